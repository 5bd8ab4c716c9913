"""``lrm-studio reconstruct CAPTURE --model NAME [--weights FILE | --preset NAME] [--views N] [--stream]``.

Loads the capture, picks the input views among its train-split frames (the model's own selection,
e.g. Long-LRM's k-means, else evenly spaced), checks memory, runs the model with a progress bar
(Ctrl-C cancels cleanly) and writes a run folder: gaussians.ply in the capture's world frame, then
run.json (method, params, weights, timings, device, num_gaussians). Nothing is written when the
run fails or is cancelled.

``--stream`` (models with ``reconstruct_streaming``, i.e. tttLRM) feeds the views in frame order,
``--chunk-views`` at a time, updating the model's state per chunk; each chunk's timing is reported
as it happens (progress), listed in run.json (``stream``) and printed as a table.

The flags are the fields of :class:`ReconstructOptions`, which the studio's jobs pass too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro

from pipelines.capture.folder import Capture
from pipelines.errors import InputError
from pipelines.gaussians import Gaussians
from pipelines.models.base import Reconstruction, Views, load_model, model_background
from pipelines.models.runtime import resolve_device
from pipelines.progress import Cancelled, CancelToken, Progress, no_progress, sub_progress
from studio.console import default_is, device_description
from studio.models import weights_note
from studio.workspace import write_new_run

log = logging.getLogger(__name__)


DEFAULT_VIEWS = 32  # for models that do not state their own




def even_views(candidates: list[int], n: int) -> list[int]:
    if n >= len(candidates):
        return list(candidates)
    idx = torch.linspace(0, len(candidates) - 1, n).round().long().tolist()
    return [candidates[i] for i in idx]


@dataclass(frozen=True)
class ReconstructOptions:
    """How a feed-forward model runs on a capture: the flags of ``lrm-studio reconstruct``."""

    model: str = "long-lrm"
    """registered model (long-lrm, ...)."""
    weights: Path | None = None
    """a safetensors file from `lrm-studio weights import` or training."""
    preset: str | None = None
    """architecture preset (official-540p, tiny, ...); with no --weights its shipped
    weights are used if present."""
    views: Annotated[int | None, default_is("the model's, 32 for Long-LRM")] = None
    """number of input views."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:1, ..."""
    seed: int = 0
    """seed of the random share of pruning."""
    min_opacity: float = 0.001
    """drop Gaussians below this opacity when writing (the official PLY uses 0.001)."""
    stream: bool = False
    """feed the views in frame order chunk by chunk (ttt-lrm) and print each chunk's timing."""
    chunk_views: Annotated[int | None, default_is("the model's update interval, 4 for official-ar")] = None
    """views per chunk with --stream."""
    preview: Literal["merge", "full", "none"] = "merge"
    """with --stream, what is decoded after each chunk: merge (the new chunk's views,
    constant time), full (every view so far) or none."""


def reconstruct(
    capture_root: Path,
    options: ReconstructOptions = ReconstructOptions(),  # noqa: B008 (frozen)
    *,
    on_chunk: Callable[[Any], None] | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Run a feed-forward model on a capture and write a run; returns the run folder. With
    ``options.stream``, ``on_chunk(step)`` hears each absorbed chunk (the model's StreamStep:
    timings and a preview of the Gaussians in the capture's frame)."""
    o = options
    device = str(resolve_device(o.device))
    t_start = time.perf_counter()
    capture = Capture.load(capture_root)
    rec = load_model(o.model, weights=o.weights, preset=o.preset, device=device)
    if o.stream and not hasattr(rec, "reconstruct_streaming"):
        raise ValueError(f"model {o.model!r} does not stream; --stream works with ttt-lrm")
    if hasattr(rec, "seed"):
        rec.seed = o.seed
    candidates = capture.indices("train") or capture.indices()
    n = o.views or getattr(rec, "default_views", None) or min(len(candidates), DEFAULT_VIEWS)
    if n > len(candidates):
        log.warning("asked for %d views but the capture has %d train frames: using all", n, len(candidates))
        n = len(candidates)
    chunk_views = o.chunk_views
    if o.stream:
        chunk_views = rec.stream_chunk_views(chunk_views)
        rec.check_memory(n, capture.cameras.width, capture.cameras.height, chunk_views=chunk_views)
    elif hasattr(rec, "check_memory"):
        rec.check_memory(n, capture.cameras.width, capture.cameras.height)  # before any loading
    select = getattr(rec, "select_views", None)
    picked = select(capture.cameras, n, candidates) if select else even_views(candidates, n)
    progress(0.0, f"loading {len(picked)} views")
    t_load = time.perf_counter()
    pts = capture.load_points()  # sparse SfM points, for models that use them (GeoLRM)
    points = torch.as_tensor(pts[0], dtype=torch.float32) if pts is not None else None
    inputs = Views(capture.load_images(picked), capture.cameras[picked], points)
    load_s = time.perf_counter() - t_load
    if o.stream:
        result: Reconstruction = rec.reconstruct_streaming(
            inputs, chunk_views=chunk_views, preview=o.preview, on_chunk=on_chunk,
            progress=sub_progress(progress, 0.05, 0.95), cancel=cancel,
        )  # fmt: skip
    else:
        result = rec(inputs, progress=sub_progress(progress, 0.05, 0.95), cancel=cancel)
    stream_rows = result.info.pop("stream", None)
    g = checked_output(result.gaussians.detach().to("cpu"), o.model)
    if o.min_opacity > 0:
        g = g.prune_opacity(o.min_opacity)
        if g.num == 0:
            raise InputError(
                f"{o.model}: every Gaussian is below --min-opacity {o.min_opacity:g}; lower it (0 keeps all)"
            )
    progress(0.97, "writing the run")
    info = {
        "method": o.model,
        "params": {
            "preset": o.preset,
            "views": len(picked),
            "input_frames": [capture.file_paths[i] for i in picked],
            "seed": o.seed,
            "min_opacity": o.min_opacity,
            "background": list(model_background(o.model)),
            **{k: v for k, v in result.info.items()},
        },
        "weights": str(Path(o.weights).resolve())
        if o.weights
        else (str(rec.weights) if getattr(rec, "weights", None) else None),
        "timings": {"load_images_s": load_s, **result.timings, "command_s": time.perf_counter() - t_start},
        "device": device_description(device),
        "to_world": result.to_world.to_dict(),
    }
    if stream_rows is not None:
        info["stream"] = stream_rows  # per chunk: views, tokens, absorb_s, decode_s, preview Gaussians
    note = weights_note(Path(info["weights"]) if info["weights"] else None)
    if note is not None:
        info["weights_note"] = note
    if g.num < result.gaussians.num and o.min_opacity == 0:
        info["nonfinite_dropped"] = result.gaussians.num - g.num
    run_dir = write_new_run(capture.root, o.model, g, info)
    progress(1.0, f"{g.num:,} Gaussians -> {run_dir}")
    return run_dir


def checked_output(g: Gaussians, model: str) -> Gaussians:
    """A model's Gaussians without those holding NaN or infinite values (logged); InputError
    when none is left, which means the weights are broken or do not suit the model."""
    if g.num == 0:
        raise InputError(
            f"{model} produced no Gaussians on this capture: it may not suit the model (GeoLRM needs one "
            "object seen from around it); the log says what the model found"
        )
    finite = g.finite()
    if finite.num == 0:
        raise InputError(
            f"{model} produced no usable Gaussians ({g.num:,} with NaN or infinite values): its weights are "
            "damaged or were not made for this model; re-import or re-download them"
        )
    if finite.num < g.num:
        dropped = g.num - finite.num
        log.warning("%s: %d of %d Gaussians had NaN or infinite values; left out", model, dropped, g.num)
    return finite


def main(
    capture: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")],
    options: Annotated[ReconstructOptions, tyro.conf.arg(name="")] = ReconstructOptions(),  # noqa: B008
) -> int:
    """Reconstruct a capture with a feed-forward model and write a run folder.

    Args:
        capture: a capture folder (with cameras.json).
        options: see ReconstructOptions.
    """
    from pipelines.models.checkpoints import WeightsError
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging()
    try:
        with ctrl_c_cancels() as token, progress_bar(f"{options.model}") as report:
            run = reconstruct(capture, options, progress=report, cancel=token)
    except Cancelled:
        console.print("[yellow]cancelled; nothing written")
        return 130
    except (WeightsError, FileNotFoundError, ValueError, MemoryError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    if options.stream:
        print_stream_table(run)
    console.print(f"run written to {run}")
    return 0


def print_stream_table(run: Path) -> None:
    """The per-chunk timing of a streamed run (run.json ``stream``)."""
    from pipelines.fileio import read_json
    from studio.console import print_table

    info = read_json(Path(run) / "run.json")
    keys = ("views", "chunk_tokens", "absorb_s", "decode_s")
    chunks = info.get("stream", [])
    rows = [[r["chunk"] + 1, *(r[k] for k in keys), r["preview_gaussians"] or ""] for r in chunks]
    cols = ["chunk", "views so far", "chunk tokens", "absorb s", "preview s", "preview Gaussians"]
    print_table(f"{info['method']} streaming on {info['device']}", cols, rows)
