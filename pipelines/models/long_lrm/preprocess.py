"""Long-LRM preprocessing, as the official ``data/dataset.py`` does it, and k-means view selection.

1. Size: ``resize_h`` rows, columns ``int(resize_h / H * W)`` (aspect kept), then both rounded to
   the nearest multiple of ``patch_size_out`` (16): 1920x1080 -> 960x544. Images are resized
   bilinearly without antialiasing (``cv2.resize`` INTER_LINEAR); K scales with the pixel grid.
2. Poses, from the input cameras only: the "average camera" has the mean centre p, forward f =
   normalise(mean z axis), down = normalise(mean y axis minus its f component), right = down x f.
   Cameras are expressed in that camera's frame, then positions are multiplied by
   s = 1 / (scene_scale * max |t|) (L-infinity over input camera positions), so input cameras lie
   in [-1/scene_scale, 1/scene_scale]^3.
3. ``to_world`` maps the normalised frame back: x_world = p + R_avg x / s (a Similarity), so the
   reconstruction is returned in the capture's world frame.

View selection (official evaluation, ``input_frame_select_type: kmeans``): k-means with k = n on
the 6-vectors [camera centre, camera forward axis] of the candidate frames (the train split; test
frames are every 8th frame), then the frame nearest to each centre, sorted. The official code calls
sklearn ``KMeans(random_state=0, n_init="auto")`` (k-means++, one run); ours is a numpy k-means++
with Lloyd iterations and a fixed seed; when two centres share a nearest frame, the later one takes
its nearest unused frame (the official code would repeat the frame).

Examples:
    >>> model_size(1920, 1080, resize_h=540, multiple=16)
    (960, 544)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.models.base import Views
from pipelines.transforms import Similarity


def model_size(
    width: int, height: int, *, resize_h: int, multiple: int, resize_w: int = -1
) -> tuple[int, int]:
    """(width, height) the model runs at, the official way: missing side from the aspect ratio
    (``int``), then each side rounded to the nearest multiple (Python ``round``)."""
    if resize_h <= 0 and resize_w <= 0:
        resize_h, resize_w = height, width
    elif resize_w <= 0:
        resize_w = int(resize_h / height * width)
    elif resize_h <= 0:
        resize_h = int(resize_w / width * height)
    w = int(round(resize_w / multiple)) * multiple
    h = int(round(resize_h / multiple)) * multiple
    assert w > 0 and h > 0, (
        f"{width}x{height} resized to {resize_w}x{resize_h} rounds to nothing at multiple {multiple}"
    )
    return w, h


def resize_views(views: Views, width: int, height: int) -> Views:
    """Images resized bilinearly without antialiasing (as cv2.resize INTER_LINEAR), K scaled."""
    if (views.cameras.width, views.cameras.height) == (width, height):
        return views
    imgs = F.interpolate(
        views.images, size=(height, width), mode="bilinear", align_corners=False, antialias=False
    )
    return Views(imgs.clamp(0, 1), views.cameras.resize(width, height))


def average_camera(c2w: Tensor) -> Tensor:
    """c2w [V, 4, 4] OpenCV -> the official 'average camera' [4, 4] (float64): rotation columns
    [right, down, forward], centre the mean position."""
    c2w = c2w.detach().to("cpu", torch.float64)
    pos = c2w[:, :3, 3].mean(0)
    fwd = F.normalize(c2w[:, :3, 2].mean(0), dim=0)
    down = c2w[:, :3, 1].mean(0)
    down = F.normalize(down - down.dot(fwd) * fwd, dim=0)
    right = torch.linalg.cross(down, fwd, dim=0)
    out = torch.eye(4, dtype=torch.float64)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = right, down, fwd, pos
    return out


def normalization(cameras: Cameras, scene_scale: float) -> Similarity:
    """The similarity world -> normalised frame of the official preprocessing (see module doc)."""
    avg = average_camera(cameras.c2w)
    if not torch.isfinite(avg).all():
        raise ValueError(
            "input camera poses give a degenerate average camera (NaN/Inf); check the capture's poses"
        )
    return frame_normalization(
        cameras, avg[:3, :3], avg[:3, 3], scene_scale=scene_scale,
        degenerate="all input cameras are at one position: the model needs a baseline between views",
    )  # fmt: skip


def frame_normalization(
    cameras: Cameras, R: Tensor, p: Tensor, *, scene_scale: float, degenerate: str
) -> Similarity:
    """World -> the frame with axes R [3, 3] (columns, world) and origin p [3] (float64), positions
    then scaled by s = 1 / (scene_scale * max |R^T (t - p)|) over the camera centres t, so they lie
    in [-1/scene_scale, 1/scene_scale]^3. Raises ValueError(``degenerate``) when every camera is at p."""
    centred = (cameras.c2w.detach().to("cpu", torch.float64)[:, :3, 3] - p) @ R  # R^T (t - p), [V, 3]
    extent = float(centred.abs().max())
    if not extent > 0:
        raise ValueError(degenerate)
    s = 1.0 / (scene_scale * extent)
    return Similarity(s, R.T, -s * (R.T @ p))


@dataclass
class Prepared:
    """Inputs in the model's frame. images [V, 3, H, W] in [0, 1] at the model size; cameras in the
    normalised frame; to_world: normalised frame -> the input cameras' world frame."""

    images: Tensor
    cameras: Cameras
    to_world: Similarity


def prepare(
    views: Views, *, resize_h: int, multiple: int, scene_scale: float, resize_w: int = -1
) -> Prepared:
    """Resize (official rounding) and normalise the poses of ``views``."""
    w, h = model_size(
        views.cameras.width, views.cameras.height, resize_h=resize_h, resize_w=resize_w, multiple=multiple
    )
    views = resize_views(views, w, h)
    to_model = normalization(views.cameras, scene_scale)
    cams = views.cameras.to(dtype=torch.float64).transform(to_model).to(dtype=torch.float32)
    return Prepared(views.images, cams, to_model.inverse())


# ------------------------------------------------------------------------------ view selection
def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (2 + log k candidates per step, as sklearn): centres [k, D]."""
    n = x.shape[0]
    trials = 2 + int(np.log(k))
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        cand = rng.choice(n, size=trials, p=d2 / total) if total > 0 else rng.choice(n, size=trials)
        cand_d2 = np.minimum(d2[None], ((x[None] - x[cand][:, None]) ** 2).sum(-1))  # [trials, n]
        best = int(np.argmin(cand_d2.sum(1)))
        centres.append(x[cand[best]])
        d2 = cand_d2[best]
    return np.stack(centres)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 300, tol: float = 1e-4) -> np.ndarray:
    """Lloyd's k-means on x [n, D] from k-means++ seeds; returns centres [k, D]. ``tol`` is relative
    to the mean per-feature variance (as sklearn)."""
    rng = np.random.default_rng(seed)
    centres = _kmeans_pp(x, k, rng)
    tol_abs = tol * float(np.mean(np.var(x, axis=0)))
    for _ in range(max_iter):
        label = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        new = np.stack([x[label == j].mean(0) if np.any(label == j) else centres[j] for j in range(k)])
        shift = float(((new - centres) ** 2).sum())
        centres = new
        if shift <= tol_abs:
            break
    return centres


def select_views_kmeans(
    cameras: Cameras, n: int, candidates: list[int] | None = None, *, seed: int = 0
) -> list[int]:
    """n frame indices (sorted, distinct) among ``candidates`` (default: all), chosen by k-means on
    [camera centre, forward axis] as the official evaluation does (see module doc)."""
    candidates = list(range(len(cameras))) if candidates is None else list(candidates)
    if n >= len(candidates):
        return sorted(candidates)
    assert n > 0, f"need at least one view, got {n}"
    c2w = cameras.c2w[candidates].detach().to("cpu", torch.float64).numpy()
    feats = np.concatenate([c2w[:, :3, 3], c2w[:, :3, 2]], axis=1)  # [n_cand, 6]
    centres = kmeans(feats, n, seed=seed)
    used: set[int] = set()
    for centre in centres:
        order = np.argsort(np.linalg.norm(feats - centre, axis=1), kind="stable")
        pick = next(int(i) for i in order if int(i) not in used)
        used.add(pick)
    return sorted(candidates[i] for i in used)
