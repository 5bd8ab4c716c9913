"""``lrm-studio optimize CAPTURE [--steps N] [--downscale F] [--init sfm|random|RUN_ID] [--preset NAME]
[--resume RUN] [--device auto|cpu|cuda]``: 3DGS optimization of a capture into a run folder.

The run folder (``runs/3dgs-*``) is created first; the trainer writes ``checkpoint.pt`` there
every ``checkpoint_every`` steps and when cancelled (Ctrl-C), so ``--resume RUN`` continues a
cancelled or crashed run exactly where its checkpoint left off. At the end it writes
gaussians.ply (capture world frame) and then run.json: method "3dgs", params (preset, the full
config, init, resolution, scene scale, a note when the preset is reduced), timings, device,
test metrics (PSNR, SSIM, LPIPS or null) with the per-view list, the loss / PSNR history and the
skipped steps. The checkpoint is removed once run.json is written (``--keep-checkpoint`` keeps it).

:func:`optimize` is the one studio function: the CLI and the studio's Optimize panel call it.

Examples:
    >>> run_dir = optimize(Path("ws/demo"), steps=500, init="sfm")      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro

from pipelines.capture.folder import Capture
from pipelines.errors import InputError
from pipelines.gaussians import Gaussians
from pipelines.metrics import load_lpips, lpips_missing_reason
from pipelines.optimize import (
    LiveUpdate,
    OptimizationDiverged,
    OptimizeConfig,
    Trainer,
    default_preset,
    init_from_points,
    load_checkpoint,
    load_training_data,
    scene_scale,
)
from pipelines.optimize import (
    preset as get_preset,
)
from pipelines.progress import Cancelled, CancelToken, Progress, check, no_progress, sub_progress
from studio.console import default_is, device_description
from studio.curves import initialisation_time, quality_curve
from studio.workspace import RUN_JSON, Run, new_run_dir, write_run

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
REFINE_FILL = 0.8  # a refined run starts with at most this fraction of the Gaussian cap
METHOD = "3dgs"
MAX_SKIPPED_LISTED = 100  # run.json lists at most this many skipped steps (the count is exact)


class RunCancelled(Cancelled):
    """The optimization was cancelled; its checkpoint is in ``run_dir`` (resume with --resume)."""

    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(f"cancelled at step {step}; checkpoint in {run_dir}")
        self.run_dir, self.step = run_dir, step


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_run(capture: Capture, run: str) -> Path:
    """A run of ``capture`` by id (a folder name under runs/) or by path."""
    path = Path(run)
    if not path.is_dir():
        path = capture.runs_dir / run
    if not (path / RUN_JSON).is_file():
        ids = (
            sorted(p.name for p in capture.runs_dir.glob("*") if (p / RUN_JSON).is_file())
            if capture.runs_dir.is_dir()
            else []
        )
        raise ValueError(f"no finished run {run!r} in {capture.root}; runs: {', '.join(ids) or 'none'}")
    return path


def make_config(
    device: torch.device,
    *,
    preset: str | None = None,
    steps: int | None = None,
    downscale: float | None = None,
    seed: int | None = None,
) -> OptimizeConfig:
    """The preset for ``device`` (or the named one) with the given overrides."""
    cfg = get_preset(preset or default_preset(device))
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if downscale is not None:  # an explicit factor replaces the preset's size limit
        cfg = replace(cfg, downscale=downscale, max_side=None)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg


def initial_gaussians(capture: Capture, init: str, cfg: OptimizeConfig) -> tuple[Gaussians, str]:
    """Start Gaussians in the capture's world frame and a description: "sfm" (the sparse points,
    gsplat's init), "random" (simple_trainer's: 100k points in 3x the scene scale, capped), or a
    run id / run folder (its gaussians.ply, e.g. a feed-forward result to refine). With a cap
    (cpu-fast: 20k) SfM points are subsampled at random to it, and a run's Gaussians keep the
    most opaque ones up to :data:`REFINE_FILL` of it: a pixel-aligned result has more Gaussians
    than the cap, and a start at the cap could never densify. By opacity, not opacity x area
    (the browser budget's score): the large faint splats a feed-forward model puts off the
    surface have the most area, and a start made of them stays behind (README, "Refining a
    feed-forward run")."""
    cap = cfg.densify.cap_max if cfg.strategy == "default" else cfg.mcmc.cap_max
    gen = torch.Generator().manual_seed(cfg.seed)
    opacity = cfg.mcmc.init_opacity if cfg.strategy == "mcmc" else cfg.init_opacity
    init_scale = cfg.mcmc.init_scale if cfg.strategy == "mcmc" else cfg.init_scale
    if init in ("sfm", "random"):
        if init == "sfm":
            pts = capture.load_points()
            if pts is None or len(pts[0]) == 0:
                raise ValueError(
                    f"{capture.root} has no sparse points (points.ply) to start from; use --init random or "
                    "--init RUN_ID (a run's Gaussians)"
                )
            xyz = torch.from_numpy(pts[0]).float()
            rgb = torch.from_numpy(pts[1]).float() / 255.0
        else:
            n = 100_000
            center = capture.cameras.centers().mean(0)
            xyz = center + 3.0 * scene_scale(capture.cameras) * (torch.rand(n, 3, generator=gen) * 2 - 1)
            rgb = torch.rand(n, 3, generator=gen)
        if cap is not None and len(xyz) > cap:
            keep = torch.randperm(len(xyz), generator=gen)[:cap].sort().values
            xyz, rgb = xyz[keep], rgb[keep]
        g = init_from_points(
            xyz, rgb, sh_degree=cfg.sh_degree, opacity=opacity, init_scale=init_scale, generator=gen
        )
        return g, init
    run_dir = resolve_run(capture, init)
    g = Run.load(run_dir).gaussians().with_sh_degree(cfg.sh_degree)
    if cap is not None:
        g = g.top_k(int(REFINE_FILL * cap), score=g.opacity_logits)
    return g, f"run:{run_dir.name}"


def refine_config(cfg: OptimizeConfig, run: Run) -> OptimizeConfig:
    """The optimizer settings for refining ``run`` (README, "Refining a feed-forward run"): its
    background; its SH bands in use from the first step (a schedule that starts at degree 0
    renders the run without them, then switches trained bands on mid-run and the PSNR drops); and
    no opacity reset (it wipes out a good start and costs a short refinement most: on the demo,
    from Long-LRM tiny-demo with cpu-fast, 27.2 dB without against 26.2 dB with it after 1,200
    steps; after the full 3,000 steps 33.4 against 33.6 dB)."""
    degree = min(run.gaussians().sh_degree_used(), cfg.sh_degree)  # its PLY pads to degree 3
    never = max(cfg.steps, cfg.densify.refine_stop_iter) + 1  # a reset only fires below refine_stop_iter
    return replace(
        cfg,
        background=run.background,
        sh_degree_start=degree,
        densify=replace(cfg.densify, reset_every=never),
    )


def optimize(
    capture_root: Path | None = None,
    *,
    steps: int | None = None,
    downscale: float | None = None,
    init: str = "sfm",
    preset: str | None = None,
    device: str = "auto",
    seed: int | None = None,
    resume: Path | None = None,
    config: OptimizeConfig | None = None,
    lpips_dir: Path | None = None,
    keep_checkpoint: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
    pause: threading.Event | None = None,
    stop: threading.Event | None = None,
    on_update: Callable[[LiveUpdate], None] | None = None,
    on_start: Callable[[Path, OptimizeConfig], None] | None = None,
) -> Path:
    """Optimize a capture (or continue ``resume``, a run folder with a checkpoint) and write the
    run; returns the run folder. ``config`` replaces the preset entirely (tests, studio).
    on_start(run_dir, config) is called once the run folder exists. Raises RunCancelled (a
    Cancelled) when cancelled, OptimizationDiverged when the loss kept failing."""
    t_start = time.perf_counter()
    dev = resolve_device(device)
    progress(0.0, "loading")
    state: dict[str, Any] | None = None
    if resume is not None:
        run_dir = Path(resume)
        if (run_dir / RUN_JSON).is_file():
            raise ValueError(f"{run_dir} is a finished run (it has {RUN_JSON}); nothing to resume")
        if not (run_dir / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT} to resume from")
        if steps is not None or downscale is not None or preset is not None or config is not None:
            raise ValueError(
                "--resume continues with the checkpoint's settings; drop --steps/--downscale/--preset"
            )
        state = load_checkpoint(run_dir / CHECKPOINT)
        cfg = OptimizeConfig.from_dict(state["config"])
        capture = Capture.load(run_dir.parent.parent)
        extra = dict(state["extra"])
        init_desc = extra.get("init", "?")
    else:
        assert capture_root is not None, "a capture folder or --resume RUN is needed"
        capture = Capture.load(capture_root)
        cfg = config or make_config(dev, preset=preset, steps=steps, downscale=downscale, seed=seed)
        if init not in ("sfm", "random"):  # refining a run
            cfg = refine_config(cfg, Run.load(resolve_run(capture, init)))
        check(cancel)
        g0, init_desc = initial_gaussians(capture, init, cfg)
        run_dir = new_run_dir(capture.root, METHOD)
        extra = {"init": init_desc, "init_gaussians": g0.num, "capture": str(capture.root)}
    if cfg.reduced_note:
        log.info("%s", cfg.reduced_note)
    try:
        data = load_training_data(
            capture,
            downscale=cfg.downscale,
            max_side=cfg.max_side,
            progress=sub_progress(progress, 0.0, 0.02),
            cancel=cancel,
        )
        lpips = load_lpips(lpips_dir, dev)
        load_s = time.perf_counter() - t_start
        if state is not None:
            try:
                trainer = Trainer.from_state_dict(state, data, device=dev, lpips=lpips)
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
                raise InputError(
                    f"{run_dir / CHECKPOINT} does not fit this capture or this build ({type(e).__name__}: "
                    f"{e}); start a new optimization"
                ) from e
            extra.setdefault("resumed_at", []).append(trainer.step)
        else:
            trainer = Trainer(data, g0, cfg, device=dev, lpips=lpips)
            init_eval = trainer.evaluate(cancel=cancel)  # the starting point of the PSNR curve
            extra["init_test"] = init_eval.summary() if init_eval is not None else None
        if on_start is not None:
            on_start(run_dir, cfg)
        result = trainer.run(
            progress=sub_progress(progress, 0.02, 0.98),
            cancel=cancel,
            pause=pause,
            stop=stop,
            on_update=on_update,
            checkpoint_path=run_dir / CHECKPOINT,
            checkpoint_extra=extra,
        )
    except OptimizationDiverged as e:
        ckpt = run_dir / CHECKPOINT
        where = f"the last good checkpoint is {ckpt}" if ckpt.is_file() else "no checkpoint had been written"
        _remove_empty(run_dir)
        raise OptimizationDiverged(f"{e} ({where})") from e
    except Cancelled as e:
        if (run_dir / CHECKPOINT).is_file():
            raise RunCancelled(run_dir, load_checkpoint(run_dir / CHECKPOINT)["step"]) from e
        _remove_empty(run_dir)
        raise
    except BaseException:
        _remove_empty(run_dir)
        raise
    progress(0.99, "writing the run")
    train_s = result.timings["train_s"]
    # A resumed run's total also counts the earlier sessions' recorded work (up to the checkpoint).
    earlier_s = sum(float(v) for v in state["timings"].values()) if state is not None else 0.0
    timings = {
        "total_s": time.perf_counter() - t_start + earlier_s,
        "load_s": load_s,
        **result.timings,
        "steps_per_s": result.steps_done / train_s if train_s > 0 else None,
        "per_1k_steps_s": 1000 * train_s / result.steps_done if result.steps_done else None,
    }
    init_time = initialisation_time(capture, init_desc)
    curve = quality_curve(result.history["test"], start_s=init_time["total_s"] + load_s)
    metrics = result.final.to_metrics() if result.final is not None else {"test": None, "per_view": []}
    if lpips is None:
        metrics["lpips_note"] = lpips_missing_reason(lpips_dir)
    info = {
        "method": METHOD,
        "params": {
            "preset": cfg.preset,
            "reduced": cfg.reduced_note,
            "init": init_desc,
            "init_gaussians": extra.get("init_gaussians"),
            "init_test": extra.get("init_test"),
            "resolution": [data.width, data.height],
            "train_views": len(data.train_cameras),
            "test_views": len(data.test_cameras),
            "scene_scale": trainer.scene_scale,
            "steps_done": result.steps_done,
            "stopped_early": result.stopped_early,
            "resumed_at": extra.get("resumed_at", []),
            "background": list(cfg.background),
            "config": cfg.to_dict(),
        },
        "weights": None,
        "timings": timings,
        "device": device_description(dev),
        "metrics": metrics,
        "history": result.history,
        "init_time": init_time,
        "curve": curve,
        "skipped_steps": {
            "count": len(result.skipped),
            "steps": [{"step": s.step, "reason": s.reason} for s in result.skipped[:MAX_SKIPPED_LISTED]],
        },
    }
    write_run(run_dir, result.gaussians, _finite_json(info))
    if not keep_checkpoint:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    progress(1.0, f"{result.gaussians.num:,} Gaussians -> {run_dir}")
    return run_dir


def _remove_empty(run_dir: Path) -> None:
    """Drop a run folder that holds nothing (no checkpoint was written yet)."""
    try:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
    except OSError:
        pass


def _finite_json(x: Any) -> Any:
    """Replace NaN / inf floats by None (run.json is strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_json(v) for v in x]
    return x


def main(
    capture: Annotated[Path | None, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")] = None,
    steps: Annotated[int | None, default_is("the preset's")] = None,
    downscale: Annotated[float | None, default_is("the preset's")] = None,
    init: str = "sfm",
    preset: Annotated[str | None, default_is("by device")] = None,
    resume: Path | None = None,
    device: str = "auto",
    seed: Annotated[int | None, default_is("42")] = None,
    lpips_dir: Path | None = None,
    keep_checkpoint: bool = False,
) -> int:
    """Optimize 3D Gaussians on a capture (gsplat's recipe) and write a run folder.

    Args:
        capture: a capture folder (with cameras.json); not needed with --resume.
        steps: optimization steps (cuda-30k: 30000, cpu-fast: 3000).
        downscale: shrink images by this factor per side (1 = full size); replaces the preset's
            size (cuda-30k: full size; cpu-fast: longer side at most 128 px).
        init: sfm (the capture's sparse points), random, or a run id of this capture (refine its
            Gaussians, e.g. a feed-forward result).
        preset: cuda-30k (gsplat's standard schedule) or cpu-fast (minutes on a CPU: at most
            128 px, 3000 steps, 20k Gaussians).
        resume: a run folder with a checkpoint.pt (a cancelled or crashed run) to continue.
        device: auto, cpu, cuda, cuda:1, ...
        seed: seed of the view order, init and densification randomness.
        lpips_dir: folder with the LPIPS weights (see pipelines/metrics.py); LPIPS is null without.
        keep_checkpoint: keep checkpoint.pt in the run folder after it finished.
    """
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging()
    if capture is None and resume is None:
        console.print("[red]error:[/red] give a CAPTURE folder or --resume RUN")
        return 2
    dev = resolve_device(device)

    def on_start(run_dir: Path, cfg: OptimizeConfig) -> None:
        console.print(f"run folder: {run_dir}  (preset {cfg.preset}, {cfg.steps:,} steps, device {dev})")
        if cfg.reduced_note:
            console.print(f"[yellow]{cfg.reduced_note}")

    try:
        with ctrl_c_cancels() as token, progress_bar("3dgs") as report:
            run = optimize(
                capture,
                steps=steps,
                downscale=downscale,
                init=init,
                preset=preset,
                device=device,
                seed=seed,
                resume=resume,
                lpips_dir=lpips_dir,
                keep_checkpoint=keep_checkpoint,
                progress=report,
                cancel=token,
                on_start=on_start,
            )
    except RunCancelled as e:
        console.print(
            f"[yellow]cancelled at step {e.step}; continue with: lrm-studio optimize --resume {e.run_dir}"
        )
        return 130
    except Cancelled:
        console.print("[yellow]cancelled; nothing written")
        return 130
    except OptimizationDiverged as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    except (FileNotFoundError, ValueError, RuntimeError, MemoryError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    info = Run.load(run).info
    test = (info.get("metrics") or {}).get("test") or {}
    skipped = info["skipped_steps"]["count"]
    psnr = test.get("psnr")
    console.print(
        f"run written to {run}: {info['num_gaussians']:,} Gaussians, "
        + (f"test PSNR {psnr:.2f} dB, SSIM {test.get('ssim'):.3f}, " if psnr is not None else "")
        + f"{info['timings']['total_s']:.0f} s"
        + (f", [yellow]{skipped} steps skipped (see run.json)[/yellow]" if skipped else "")
    )
    return 0
