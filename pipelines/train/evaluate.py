"""Held-out evaluation of a feed-forward model against two trivial baselines, by one code path.

For each scene: the model reconstructs from the input views (its own Reconstructor, exactly
what ``lrm-studio reconstruct`` runs), the Gaussians are rendered into the held-out target
cameras (white background), and PSNR is taken against the targets at the size the model runs
at (images resized by the model's own preprocessing, as the official evaluations do: the
renders are clamped to [0, 1]). The baselines (``baselines.py``: the mean input colour, the
nearest input view reprojected at a constant depth) see the same inputs at the same size and are
scored against the same targets. PSNR is averaged over target views, then over scenes.

Evaluation sets:

- :func:`evaluate_procedural`: ``count`` examples of a synth stream with a held-out seed;
  targets are never inputs (``target_has_input=False``).
- :func:`evaluate_capture`: a capture with cameras (the demo video with its ground-truth
  cameras, or a capture folder): test frames are every 8th frame, inputs chosen among the
  others by the model's own view selection (Long-LRM / tttLRM: k-means, as their official
  evaluations), ``views`` of them (default: the model's).

Examples:
    >>> rec = load_model("long-lrm", preset="tiny-demo")             # doctest: +SKIP
    >>> evaluate_capture(rec, demo_capture()).model_psnr              # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.gaussians.render import render
from pipelines.metrics import psnr
from pipelines.models.base import Reconstructor, Views
from pipelines.progress import CancelToken, Progress, check, no_progress
from pipelines.synth.stream import StreamConfig, make_example
from pipelines.train import baselines

BASELINES = ("mean_colour", "reprojection")  # the keys score_scene gives each baseline's PSNRs
DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"


@dataclass
class EvalResult:
    """Mean PSNR (dB) of the model and of each baseline over ``views`` target views of
    ``scenes`` scenes; wins: per baseline, the target views where the model's PSNR is higher
    (a paired count: is the mean margin broad or carried by a few views?); per_scene rows for
    the record; seconds: time spent in the model."""

    model_psnr: float
    baselines: dict[str, float]
    views: int
    scenes: int
    seconds: float = 0.0
    per_scene: list[dict] = field(default_factory=list)
    wins: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model_psnr": self.model_psnr, "baselines": self.baselines, "views": self.views,
                "scenes": self.scenes, "model_seconds": self.seconds, "wins": self.wins,
                "per_scene": self.per_scene}  # fmt: skip


def model_resolution(rec: Reconstructor, views: Views) -> Views:
    """``views`` resized the way the model resizes its inputs (its network size)."""
    cams = views.cameras
    if rec.name == "long-lrm":
        from pipelines.models.long_lrm.preprocess import resize_views

        w, h = rec.input_size(cams.width, cams.height)  # type: ignore[attr-defined]
        return resize_views(views, w, h)
    if rec.name == "ttt-lrm":
        from pipelines.models.ttt_lrm.preprocess import resize_views as ttt_resize

        w, h = rec.input_size(cams.width, cams.height)  # type: ignore[attr-defined]
        return ttt_resize(views, w, h)
    return views


def score_scene(
    rec: Reconstructor, inputs: Views, targets: Views, *, cancel: CancelToken | None = None
) -> dict:
    """PSNR per target view of the model and of both baselines (one scene)."""
    import time

    inputs, targets = model_resolution(rec, inputs), model_resolution(rec, targets)
    t0 = time.perf_counter()
    out = rec(inputs, cancel=cancel)
    seconds = time.perf_counter() - t0
    g = out.gaussians.detach().to("cpu")
    cams = targets.cameras.to("cpu")
    with torch.no_grad():
        rgb = render(g, cams, background=torch.ones(3)).rgb.permute(0, 3, 1, 2).clamp(0, 1)
    gt = targets.images.float().cpu()
    depth = baselines.constant_depth(inputs.cameras)
    cpu_inputs = inputs.to("cpu")
    return {
        "model": psnr(rgb, gt).tolist(),
        "mean_colour": psnr(baselines.mean_colour(cpu_inputs, cams), gt).tolist(),
        "reprojection": psnr(baselines.reproject_nearest(cpu_inputs, cams, depth), gt).tolist(),
        "constant_depth": depth,
        "seconds": seconds,
        "gaussians": g.num,
    }


def _summarise(rows: list[dict], names: list[str]) -> EvalResult:
    mean = lambda key: float(np.mean([np.mean(r[key]) for r in rows]))  # noqa: E731
    per_scene = [
        {"name": n, "model": float(np.mean(r["model"])), "mean_colour": float(np.mean(r["mean_colour"])),
         "reprojection": float(np.mean(r["reprojection"])), "views": len(r["model"]),
         "constant_depth": r["constant_depth"], "gaussians": r["gaussians"]}
        for n, r in zip(names, rows, strict=True)
    ]  # fmt: skip
    return EvalResult(
        model_psnr=mean("model"),
        baselines={b: mean(b) for b in BASELINES},
        views=sum(len(r["model"]) for r in rows),
        scenes=len(rows),
        seconds=float(sum(r["seconds"] for r in rows)),
        per_scene=per_scene,
        wins={b: sum(int(np.sum(np.greater(r["model"], r[b]))) for r in rows) for b in BASELINES},
    )


def evaluate_procedural(
    rec: Reconstructor,
    stream: StreamConfig,
    *,
    seed: int = 1_000_000,
    count: int = 8,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> EvalResult:
    """Held-out procedural scenes: examples 0..count-1 of stream ``seed`` (module docstring).
    Object streams (GeoLRM's sampling, whose targets include the inputs) are scored on the
    targets that are not inputs; the inputs carry their depth's surface points as a capture
    carries SfM points."""
    from pipelines.train.data import sparse_points, surface_points

    cfg = replace(stream, target_has_input=False)
    rows, names = [], []
    for i in range(count):
        check(cancel)
        ex = make_example(cfg, seed, i)
        held = [k for k, t in enumerate(ex.target_index) if t not in ex.input_index]
        targets = Views(ex.targets.images[held], ex.targets.cameras[held])
        depth = torch.where(ex.input_mask, ex.input_depth, torch.zeros_like(ex.input_depth))
        points = sparse_points(surface_points(ex.inputs.cameras, depth))
        inputs = Views(ex.inputs.images, ex.inputs.cameras, points)
        rows.append(score_scene(rec, inputs, targets, cancel=cancel))
        names.append(f"procedural {seed}/{i}")
        progress((i + 1) / count, f"scene {i + 1}/{count}")
    return _summarise(rows, names)


@dataclass
class EvalCapture:
    """A capture to evaluate on: cameras [N], splits, and a loader of frames
    (indices -> images [V, 3, H, W] in [0, 1] at the cameras' size)."""

    name: str
    cameras: Cameras
    splits: list[str]
    load: Callable[[list[int]], Tensor]


def demo_capture(root: str | os.PathLike = DEMO_DIR) -> EvalCapture:
    """The bundled demo: frames decoded from ``demo.mp4`` by index, ground-truth cameras and
    splits from ``gt_cameras.json`` (every 8th frame is a test frame)."""
    from pipelines.synth.capture import read_gt_cameras

    root = Path(root)
    index, cams, payload = read_gt_cameras(root / "gt_cameras.json")
    splits = [f.get("split", "train") for f in payload["frames"]]
    video = root / payload.get("video", "demo.mp4")
    frames: dict[int, Tensor] = {}

    def load(indices: list[int]) -> Tensor:
        if not frames:
            import av

            with av.open(str(video)) as container:
                for k, fr in enumerate(container.decode(video=0)):
                    frames[k] = torch.from_numpy(fr.to_ndarray(format="rgb24")).permute(2, 0, 1)
        missing = [index[i] for i in indices if index[i] not in frames]
        if missing:
            raise ValueError(f"{video} has no frames {missing[:5]} listed in gt_cameras.json")
        return torch.stack([frames[index[i]] for i in indices]).float() / 255.0

    return EvalCapture("demo", cams, splits, load)


def folder_capture(root: str | os.PathLike) -> EvalCapture:
    """A studio capture folder (cameras.json with splits)."""
    from pipelines.capture.folder import Capture

    cap = Capture.load(root)
    return EvalCapture(cap.name, cap.cameras, list(cap.splits), lambda idx: cap.load_images(idx))


def evaluate_capture(
    rec: Reconstructor,
    capture: EvalCapture,
    *,
    views: int | None = None,
    cancel: CancelToken | None = None,
) -> EvalResult:
    """Reconstruct from ``views`` train frames (the model's selection) and score every test frame."""
    train = [i for i, s in enumerate(capture.splits) if s == "train"]
    test = [i for i, s in enumerate(capture.splits) if s == "test"]
    if not test or not train:
        raise ValueError(f"{capture.name}: needs train and test frames (every 8th frame is a test frame)")
    n = min(views or getattr(rec, "default_views", 8), len(train))
    select = getattr(rec, "select_views", None)
    picked = select(capture.cameras, n, train) if select else train[:: max(1, len(train) // n)][:n]
    inputs = Views(capture.load(picked), capture.cameras[picked])
    targets = Views(capture.load(test), capture.cameras[test])
    row = score_scene(rec, inputs, targets, cancel=cancel)
    res = _summarise([row], [capture.name])
    res.per_scene[0]["input_frames"] = list(picked)
    return res


def reconstructor_for(adapter, device: torch.device | str = "cpu") -> Reconstructor:
    """The inference pipeline of an adapter's (training) network, for evaluation during training.
    The network is switched to eval mode; the caller switches it back."""
    name = adapter.name
    if name == "long-lrm":
        from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor

        return LongLRMReconstructor(adapter.model, device=device)
    if name == "ttt-lrm":
        from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

        return TTTLRMReconstructor(adapter.model, device=device)
    if name == "geolrm":
        from pipelines.models.geolrm.reconstructor import GeoLRMReconstructor

        return GeoLRMReconstructor(adapter.model.to(device))
    raise ValueError(f"no evaluation pipeline for {name!r}")


__all__ = [
    "EvalResult", "EvalCapture", "demo_capture", "folder_capture", "evaluate_capture", "evaluate_procedural",
    "reconstructor_for", "score_scene",
]  # fmt: skip
