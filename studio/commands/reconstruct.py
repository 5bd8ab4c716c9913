"""``lrm-studio reconstruct CAPTURE --model NAME [--weights FILE | --preset NAME] [--views N]``.

Loads the capture, picks the input views among its train-split frames (the model's own selection,
e.g. Long-LRM's k-means, else evenly spaced), checks memory, runs the model with a progress bar
(Ctrl-C cancels cleanly) and writes a run folder: gaussians.ply in the capture's world frame, then
run.json (method, params, weights, timings, device, num_gaussians). Nothing is written when the
run fails or is cancelled.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import torch
import tyro

from pipelines.capture.folder import Capture
from pipelines.models.base import Reconstruction, Views, load_model
from pipelines.progress import Cancelled, CancelToken, Progress, no_progress, sub_progress
from studio.workspace import new_run_dir, write_run

log = logging.getLogger(__name__)


DEFAULT_VIEWS = 32  # for models that do not state their own


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _device_description(device: str) -> str:
    from studio.bench.common import device_description

    return device_description(device)


def even_views(candidates: list[int], n: int) -> list[int]:
    if n >= len(candidates):
        return list(candidates)
    idx = torch.linspace(0, len(candidates) - 1, n).round().long().tolist()
    return [candidates[i] for i in idx]


def reconstruct(
    capture_root: Path,
    *,
    model: str = "long-lrm",
    weights: Path | None = None,
    preset: str | None = None,
    views: int | None = None,
    device: str = "auto",
    seed: int = 0,
    min_opacity: float = 0.001,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Run a feed-forward model on a capture and write a run; returns the run folder."""
    device = _resolve_device(device)
    t_start = time.perf_counter()
    capture = Capture.load(capture_root)
    rec = load_model(model, weights=weights, preset=preset, device=device)
    if hasattr(rec, "seed"):
        rec.seed = seed
    candidates = capture.indices("train") or capture.indices()
    n = views or getattr(rec, "default_views", None) or min(len(candidates), DEFAULT_VIEWS)
    if n > len(candidates):
        log.warning("asked for %d views but the capture has %d train frames: using all", n, len(candidates))
        n = len(candidates)
    if hasattr(rec, "check_memory"):
        rec.check_memory(n, capture.cameras.width, capture.cameras.height)  # before any loading
    select = getattr(rec, "select_views", None)
    picked = select(capture.cameras, n, candidates) if select else even_views(candidates, n)
    progress(0.0, f"loading {len(picked)} views")
    t_load = time.perf_counter()
    pts = capture.load_points()  # sparse SfM points, for models that use them (GeoLRM)
    points = torch.as_tensor(pts[0], dtype=torch.float32) if pts is not None else None
    inputs = Views(capture.load_images(picked), capture.cameras[picked], points)
    load_s = time.perf_counter() - t_load
    result: Reconstruction = rec(inputs, progress=sub_progress(progress, 0.05, 0.95), cancel=cancel)
    g = result.gaussians
    if min_opacity > 0:
        g = g.prune_opacity(min_opacity)
    progress(0.97, "writing the run")
    run_dir = new_run_dir(capture.root, model)
    info = {
        "method": model,
        "params": {
            "preset": preset,
            "views": len(picked),
            "input_frames": [capture.file_paths[i] for i in picked],
            "seed": seed,
            "min_opacity": min_opacity,
            **{k: v for k, v in result.info.items()},
        },
        "weights": str(Path(weights).resolve())
        if weights
        else (str(rec.weights) if getattr(rec, "weights", None) else None),
        "timings": {"load_images_s": load_s, **result.timings, "command_s": time.perf_counter() - t_start},
        "device": _device_description(device),
        "to_world": result.to_world.to_dict(),
    }
    write_run(run_dir, g.detach().to("cpu"), info)
    progress(1.0, f"{g.num:,} Gaussians -> {run_dir}")
    return run_dir


def main(
    capture: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")],
    model: str = "long-lrm",
    weights: Path | None = None,
    preset: str | None = None,
    views: int | None = None,
    device: str = "auto",
    seed: int = 0,
    min_opacity: float = 0.001,
) -> int:
    """Reconstruct a capture with a feed-forward model and write a run folder.

    Args:
        capture: a capture folder (with cameras.json).
        model: registered model (long-lrm, ...).
        weights: a safetensors file from `lrm-studio weights import` or training.
        preset: architecture preset (official-540p, tiny, ...); with no --weights its shipped
            weights are used if present.
        views: number of input views (default: the model's, 32 for Long-LRM).
        device: auto, cpu, cuda, cuda:1, ...
        seed: seed of the random share of pruning.
        min_opacity: drop Gaussians below this opacity when writing (the official PLY uses 0.001).
    """
    from pipelines.models.checkpoints import WeightsError
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging()
    try:
        with ctrl_c_cancels() as token, progress_bar(f"{model}") as report:
            run = reconstruct(
                capture, model=model, weights=weights, preset=preset, views=views, device=device,
                seed=seed, min_opacity=min_opacity, progress=report, cancel=token,
            )  # fmt: skip
    except Cancelled:
        console.print("[yellow]cancelled; nothing written")
        return 130
    except (WeightsError, FileNotFoundError, ValueError, MemoryError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(f"run written to {run}")
    return 0
