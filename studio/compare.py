"""Comparing the results in scene slots A and B: the compare panel's state and computation.

- A/B toggle (:meth:`CompareState.toggled`): which slots the scene shows ("both", "A", "B").
- Side by side: B moved beside A along the capture's right axis by the scene's width
  (:func:`side_offset`), so both are seen at once.
- Split view: both results rendered on the server (``pipelines.gaussians.render``: gsplat on
  CUDA, our CPU backend otherwise; exact SH, unlike the browser's DC-only splats) from one camera,
  A left of the divider and B right of it (:func:`split_view`).
- Held-out views: ground truth | A | B for each test frame of the capture, per-view PSNR / SSIM and
  means, time and Gaussian count of each run (:func:`heldout_compare`). Metrics come from
  ``studio.commands.eval.evaluate_run`` (what ``lrm-studio eval`` writes) at one resolution for
  both runs, reused from run.json when it holds them at that resolution, else cached in
  ``RUN/compare/metrics-WxH.json``.

Examples:
    >>> img = split_view(ga, gb, c2w, fov_y_rad=0.9, width=256, height=144, split=0.5)   # doctest: +SKIP
    >>> result = heldout_compare(capture_root, run_a, run_b)                           # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pipelines import metrics
from pipelines.cameras import Cameras, make_K
from pipelines.capture.folder import Capture
from pipelines.fileio import read_json, write_json
from pipelines.gaussians import BLACK, Background, Gaussians, render
from pipelines.paths.video import compose, resolve_device, to_uint8
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress
from studio.curves import ahead_at_equal_time, sfm_time
from studio.workspace import Run

Showing = Literal["both", "A", "B"]
DIVIDER_RGB = (255, 255, 255)


@dataclass(frozen=True)
class CompareState:
    """What the compare panel set. showing: slots visible in the scene; side_by_side: B placed
    beside A; split: enabled and the divider's position in [0, 1] (fraction of the width from
    the left: A left of it, B right); heldout: the last held-out comparison (None before);
    race: the open capture's latest race (studio/race.py; None before)."""

    showing: Showing = "both"
    side_by_side: bool = False
    split_enabled: bool = False
    split: float = 0.5
    heldout: HeldOut | None = None
    race: dict | None = None

    def toggled(self) -> CompareState:
        """The A/B toggle: both -> A -> B -> A ... (one slot at a time once toggled)."""
        return replace(self, showing="B" if self.showing == "A" else "A")


def side_offset(cameras: Cameras, gaussians: Gaussians | None, *, margin: float = 1.1) -> np.ndarray:
    """Where B goes beside A: [3] world offset along the capture's right axis, by ``margin`` x the
    scene's width along that axis (the 2nd-98th percentile range of A's Gaussian centres; twice
    the cameras' extent when there is no A). The right axis is the first camera's +x (OpenCV):
    the studio's initial view looks from beyond that camera, so B appears to A's right there
    (the mean right axis of an orbit cancels out)."""
    right = cameras.c2w[0, :3, 0].double().cpu()
    right = right / right.norm()
    if gaussians is not None and len(gaussians.means) > 1:
        x = gaussians.means.detach().double().cpu() @ right  # [N]
        lo, hi = torch.quantile(x[:100_000], torch.tensor([0.02, 0.98], dtype=torch.float64))
        width = float(hi - lo)
    else:
        c = cameras.centers().double().cpu()
        width = 2 * float((c - c.mean(0)).norm(dim=-1).max()) if len(c) > 1 else 1.0
    width = width if width > 1e-6 else 1.0
    return (margin * width * right).numpy()


def view_camera(wxyz: np.ndarray, position: np.ndarray, fov_y_rad: float, width: int, height: int) -> Cameras:
    """A pinhole camera [1] from a viser view: R_world_camera as wxyz [4] (OpenCV axes, as viser's
    client camera), position [3] world, vertical field of view, image size; principal point at
    the centre."""
    from pipelines.transforms import quat_to_rotmat

    c2w = torch.eye(4, dtype=torch.float32)
    c2w[:3, :3] = quat_to_rotmat(torch.tensor(np.asarray(wxyz), dtype=torch.float32)[None])[0]
    c2w[:3, 3] = torch.tensor(np.asarray(position), dtype=torch.float32)
    f = torch.tensor([height / 2 / math.tan(fov_y_rad / 2)])
    K = make_K(f, f, torch.tensor([width / 2]), torch.tensor([height / 2]))
    return Cameras(c2w[None], K.float(), width, height)


@torch.no_grad()
def split_view(
    a: Gaussians | None,
    b: Gaussians | None,
    camera: Cameras,
    *,
    split: float = 0.5,
    backgrounds: tuple[Background, Background] = (BLACK, BLACK),
    device: str = "auto",
) -> np.ndarray:
    """A left of the divider, B right of it: uint8 [H, W, 3] rendered from ``camera`` [1]
    (``pipelines.gaussians.render``, all SH bands, each on its own run's background: RGB in
    [0, 1]; a missing result is black). ``split`` in [0, 1] is the divider's column as a
    fraction of the width; a one-pixel white line marks it. Columns left of round(split W) come
    from A, the others from B."""
    assert len(camera) == 1, f"one camera expected, got {len(camera)}"
    dev = resolve_device(device)
    cam = camera.to(dev)
    W, H = camera.width, camera.height
    col = min(max(round(float(split) * W), 0), W)
    out = np.zeros((H, W, 3), dtype=np.uint8)
    for g, cols, bg in ((a, slice(0, col), backgrounds[0]), (b, slice(col, W), backgrounds[1])):
        if g is None or cols.start == cols.stop or len(g.means) == 0:
            continue
        rgb = render(g.to(dev), cam, background=torch.tensor(bg, dtype=torch.float32, device=dev)).rgb[0]
        out[:, cols] = to_uint8(rgb)[:, cols]  # [H, W, 3]
    if 0 < col < W:
        out[:, col - 1 : col] = DIVIDER_RGB
    return out


# ------------------------------------------------------------------ held-out views
@dataclass(frozen=True)
class RunScores:
    """One run on the held-out views: per-view PSNR (dB) / SSIM in the test frames' order, their
    means, its run.json time and Gaussian count."""

    run_id: str
    method: str
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    total_s: float | None
    num_gaussians: int | None

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr)) if self.psnr else float("nan")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim)) if self.ssim else float("nan")


@dataclass(frozen=True)
class HeldOut:
    """Ground truth | A | B on the capture's test frames at one resolution. image: uint8
    [T h, 3 w, 3], one row per test frame (thumbnails); b is None when only A was compared.
    baselines: the trivial predictions (:func:`baseline_scores`) at the same resolution, so a
    result below them is seen as such."""

    capture: str
    file_paths: tuple[str, ...]
    resolution: tuple[int, int]  # (W, H) the metrics were computed at
    a: RunScores
    b: RunScores | None
    image: np.ndarray
    baselines: tuple[RunScores, ...] = ()
    ahead: dict | None = None  # studio.curves.ahead_at_equal_time of A's and B's curves


BASELINES = ("mean input colour", "nearest input, reprojected")


def baseline_scores(capture: Capture, size: tuple[int, int]) -> tuple[RunScores, ...]:
    """PSNR / SSIM of the two trivial predictions of ``pipelines.train.baselines`` on the test
    frames at ``size`` (W, H): every pixel the mean colour of the train frames, and the nearest
    train frame reprojected through a plane at the capture's typical depth. Inputs: all train
    frames (what a 3DGS run sees)."""
    from pipelines.models.base import Views
    from pipelines.train.baselines import constant_depth, mean_colour, reproject_nearest

    train, test = capture.indices("train"), capture.indices("test")
    w, h = size
    inputs = Views(capture.load_images(train, size=(w, h)), capture.cameras[train].resize(w, h))
    targets = capture.cameras[test].resize(w, h)
    gt = capture.load_images(test, size=(w, h))  # [T, 3, H, W]
    preds = (mean_colour(inputs, targets), reproject_nearest(inputs, targets, constant_depth(inputs.cameras)))
    return tuple(
        RunScores(
            run_id="",
            method=name,
            psnr=tuple(float(metrics.psnr(p, g)) for p, g in zip(pred, gt, strict=True)),
            ssim=tuple(float(metrics.ssim(p, g)) for p, g in zip(pred, gt, strict=True)),
            total_s=None,
            num_gaussians=None,
        )  # fmt: skip
        for name, pred in zip(BASELINES, preds, strict=True)
    )


def common_size(capture: Capture, runs: list[Run]) -> tuple[int, int]:
    """One evaluation size for every run: the smallest of the sizes ``lrm-studio eval`` would use
    for each (a 3DGS run's training resolution, else the capture's size)."""
    from studio.commands.eval import eval_size

    return min((eval_size(r, capture, None) for r in runs), key=lambda s: s[0] * s[1])


def run_metrics(
    run: Run,
    capture: Capture,
    size: tuple[int, int],
    *,
    device: str = "auto",
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> dict:
    """run.json-style metrics of ``run`` on the test split at ``size`` (W, H): run.json's own
    when computed at that size, else the cache ``RUN/compare/metrics-WxH.json``, else computed by
    ``evaluate_run`` (and cached there; run.json is left as the eval command wrote it)."""
    from studio.commands.eval import evaluate_run

    w, h = size
    stored = run.info.get("metrics") or {}
    if list(stored.get("resolution") or []) == [w, h] and stored.get("per_view"):
        return stored
    cache = run.path / "compare" / f"metrics-{w}x{h}.json"
    if cache.is_file():
        return read_json(cache)
    metrics = evaluate_run(
        run.path, size=(w, h), device=device, write=False, progress=progress, cancel=cancel
    )
    write_json(cache, metrics)
    return metrics


def _scores(run: Run, metrics: dict, file_paths: list[str]) -> RunScores:
    by_path = {v["file_path"]: v for v in metrics["per_view"]}
    missing = [fp for fp in file_paths if fp not in by_path]
    if missing:
        raise ValueError(f"run {run.id}'s metrics lack test views {missing[:3]}; re-run `lrm-studio eval`")

    def num(x) -> float:
        return float(x) if isinstance(x, (int, float)) else float("nan")

    n = run.info.get("num_gaussians")
    t = (run.info.get("timings") or {}).get("total_s")
    return RunScores(
        run_id=run.id,
        method=str(run.info.get("method", "?")),
        psnr=tuple(num(by_path[fp]["psnr"]) for fp in file_paths),
        ssim=tuple(num(by_path[fp]["ssim"]) for fp in file_paths),
        total_s=float(t) if isinstance(t, (int, float)) else None,
        num_gaussians=int(n) if isinstance(n, int) else None,
    )


@torch.no_grad()
def heldout_compare(
    capture_root: Path,
    run_a: Path,
    run_b: Path | None = None,
    *,
    thumb_height: int = 96,
    device: str = "auto",
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> HeldOut:
    """Compare runs A (and B) on the capture's test frames (see module doc): metrics at one size
    for both, and thumbnails ground truth | A | B, one row per test frame."""
    capture = Capture.load(capture_root)
    test = capture.indices("test")
    if not test:
        raise ValueError(f"capture {capture.name} has no test frames (every 8th frame is held out)")
    runs = [Run.load(run_a)] + ([Run.load(run_b)] if run_b is not None else [])
    size = common_size(capture, runs)
    file_paths = [capture.file_paths[i] for i in test]
    scores = []
    span = 0.8 / len(runs)
    for k, run in enumerate(runs):
        check(cancel)
        p = sub_progress(progress, k * span, (k + 1) * span, f"{'AB'[k]}: ")
        scores.append(
            _scores(
                run, run_metrics(run, capture, size, device=device, progress=p, cancel=cancel), file_paths
            )
        )
    progress(0.8, "scoring the trivial baselines")
    baselines = baseline_scores(capture, size) if capture.indices("train") else ()
    # thumbnails: ground truth | A | B
    th = min(thumb_height, size[1])
    tw = max(1, round(th * capture.cameras.width / capture.cameras.height))
    progress(0.85, "rendering thumbnails")
    gt = capture.load_images(test, size=(tw, th)).permute(0, 2, 3, 1)  # [T, th, tw, 3]
    cams = capture.cameras[test].resize(tw, th)
    dev = resolve_device(device)
    renders = []
    for run in runs:
        check(cancel)
        g = run.gaussians().to(dev)
        bg = torch.tensor(run.background, dtype=torch.float32, device=dev)
        renders.append([to_uint8(render(g, cams[i].to(dev), background=bg).rgb[0]) for i in range(len(test))])
    blank = np.zeros((th, tw, 3), dtype=np.uint8)
    rows = []
    for i in range(len(test)):
        panels = [to_uint8(gt[i]), renders[0][i], renders[1][i] if len(runs) > 1 else blank]
        labels = ["ground truth", f"A {scores[0].psnr[i]:.1f} dB"] + (
            [f"B {scores[1].psnr[i]:.1f} dB"] if len(runs) > 1 else [""]
        )
        rows.append(compose(panels, labels))
    progress(1.0, f"compared on {len(test)} held-out views")
    return HeldOut(
        capture=capture.name,
        file_paths=tuple(file_paths),
        resolution=size,
        a=scores[0],
        b=scores[1] if len(runs) > 1 else None,
        image=np.concatenate(rows, axis=0),
        baselines=baselines,
        ahead=ahead_at_equal_time(
            run_curve(runs[0], capture, scores[0]), run_curve(runs[1], capture, scores[1])
        )
        if len(runs) > 1
        else None,
    )


def run_curve(run: Run, capture: Capture, scores: RunScores) -> list[dict]:
    """A run's test PSNR against wall time (studio/curves.py): an optimization's run.json
    ``curve``; a feed-forward run is one point, its held-out PSNR here at the time SfM and its
    inference took."""
    curve = run.info.get("curve")
    if isinstance(curve, list) and curve:
        return curve
    t = (run.info.get("timings") or {}).get("total_s")
    if not isinstance(t, (int, float)):
        return []
    return [{"step": 0, "time_s": sfm_time(capture)[0] + float(t), "psnr": scores.mean_psnr}]
