"""``lrm-studio eval RUN [--downscale F] [--device auto|cpu|cuda] [--lpips-dir DIR]``: metrics of a
run on its capture's test split, written into run.json's "metrics".

Each test camera is rendered (all of the run's SH bands, on the run's background:
:attr:`studio.workspace.Run.background`) and scored against the photo: PSNR, SSIM, and LPIPS when
its weights are local (else null, with a note saying where to put them). Resolution, in whole
pixels and recorded with the metrics: the run's training resolution when it records one (3DGS
runs: ``params.resolution``), else the capture's full size; ``--downscale F`` sets it through the
one sizing rule (:func:`pipelines.optimize.data.training_size`: both sides divided by F and
rounded); the studio passes an exact ``size`` (the compare panel, to score two runs alike).
:func:`evaluate_run` is the function the studio calls too.

Examples:
    >>> metrics = evaluate_run(Path("ws/demo/runs/3dgs-20250101-120000-ab12"))   # doctest: +SKIP
    >>> metrics["test"]["psnr"], len(metrics["per_view"])                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
import tyro

from pipelines.capture.folder import Capture
from pipelines.evaluation import evaluate
from pipelines.metrics import load_lpips, lpips_missing_reason
from pipelines.optimize.data import training_size
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress
from studio.commands.optimize import _finite_json, resolve_device
from studio.console import default_is
from studio.workspace import Run, update_run_info


def eval_size(run: Run, capture: Capture, downscale: float | None) -> tuple[int, int]:
    """(W, H) to evaluate ``run`` at (see the module doc)."""
    w, h = capture.cameras.width, capture.cameras.height
    if downscale is not None:
        return training_size(w, h, downscale)
    res = (run.info.get("params") or {}).get("resolution")
    if isinstance(res, (list, tuple)) and len(res) == 2:
        return int(res[0]), int(res[1])
    return w, h


def evaluate_run(
    run_dir: Path,
    *,
    downscale: float | None = None,
    size: tuple[int, int] | None = None,
    device: str = "auto",
    lpips_dir: Path | None = None,
    write: bool = True,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Score a finished run on its capture's test split; returns run.json's new "metrics"
    ({"test": {psnr, ssim, lpips}, "per_view": [...], "resolution": [W, H], "views": n}) and
    writes it there unless ``write`` is False. ``size`` (W, H) overrides the resolution rule
    (any size: images and cameras are resampled to it)."""
    run = Run.load(run_dir)
    capture = Capture.load(run.capture_root)
    test = capture.indices("test")
    if not test:
        raise ValueError(f"capture {capture.root} has no test frames (every 8th frame is held out)")
    dev = resolve_device(device)
    w, h = size if size is not None else eval_size(run, capture, downscale)
    if w < 1 or h < 1:
        raise ValueError(f"cannot evaluate at {w}x{h}")
    progress(0.0, f"loading {len(test)} test views at {w}x{h}")
    images = capture.load_images(test, size=(w, h))  # [T, 3, H, W]
    check(cancel)
    g = run.gaussians().to(dev)
    background = torch.tensor(run.background, dtype=torch.float32, device=dev)
    lpips = load_lpips(lpips_dir, dev)
    result = evaluate(
        g,
        capture.cameras[test].resize(w, h).to(dev),
        images.to(dev),
        [capture.file_paths[i] for i in test],
        background=background,
        lpips=lpips,
        progress=sub_progress(progress, 0.05, 1.0),
        cancel=cancel,
    )
    metrics = result.to_metrics()
    if lpips is None:
        metrics["lpips_note"] = lpips_missing_reason(lpips_dir)
    metrics = _finite_json(metrics)
    if write:
        update_run_info(run.path, metrics=metrics)
    return metrics


def main(
    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")],
    downscale: Annotated[
        float | None, default_is("the run's training resolution if it has one, else full size")
    ] = None,
    device: str = "auto",
    lpips_dir: Path | None = None,
) -> int:
    """Evaluate a run on its capture's test split (PSNR, SSIM, LPIPS when its weights are local)
    and write the metrics into its run.json.

    Args:
        run: a run folder (CAPTURE/runs/<id>).
        downscale: evaluate at the capture's size divided by this.
        device: auto, cpu, cuda, ...
        lpips_dir: folder with the LPIPS weights (alexnet-owt-7be5be79.pth, alex.pth).
    """
    from pipelines.progress import Cancelled
    from studio.console import console, ctrl_c_cancels, print_table, progress_bar, setup_logging

    setup_logging()
    try:
        with ctrl_c_cancels() as token, progress_bar("eval") as report:
            metrics = evaluate_run(
                run, downscale=downscale, device=device, lpips_dir=lpips_dir, progress=report, cancel=token
            )
    except Cancelled:
        console.print("[yellow]cancelled; run.json unchanged")
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    rows = [
        [v["file_path"], v["psnr"], v["ssim"], "–" if v["lpips"] is None else v["lpips"]]
        for v in metrics["per_view"]
    ]
    t = metrics["test"]
    rows.append(["mean", t["psnr"], t["ssim"], "–" if t["lpips"] is None else t["lpips"]])
    w, h = metrics["resolution"]
    print_table(f"{run.name}: test split at {w}x{h}", ["view", "PSNR dB", "SSIM", "LPIPS"], rows)
    if metrics.get("lpips_note"):
        console.print(f"[yellow]{metrics['lpips_note']}")
    console.print(f"metrics written to {Path(run) / 'run.json'}")
    return 0
