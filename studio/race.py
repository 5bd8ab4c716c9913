"""A race: a feed-forward result refined by 3DGS against 3DGS from the SfM points, on one
capture, with the same optimizer preset and step budget, as curves of test PSNR against wall
time (Long-LRM's "w/ optim" claim, on the user's capture).

:func:`race` runs the feed-forward model, refines its result, optimizes from the sparse points,
and writes ``CAPTURE/races/<id>.json``::

    {"id", "created", "capture", "device", "steps", "preset",
     "feed_forward": {"model", "preset", "weights", "run"},
     "contenders": {"refined": {"run", "init_time", "curve"}, "sfm": {"run", "init_time", "curve"}},
     "summary": {"refined_final_psnr", "sfm_final_psnr", "refined_reaches_sfm_final_s",
                 "ahead": {"time_s", "a_psnr", "b_psnr", "ahead"}}}    # a: refined, b: sfm

Each curve is a list of ``{"time_s", "step", "psnr", "ssim", "lpips"}`` (studio/curves.py: the
time includes what the start cost: SfM, and for the refined run the model's inference).

Examples:
    >>> path = race(Path("ws/demo"), RaceOptions(feed_forward="long-lrm", steps=600))   # doctest: +SKIP
    >>> read_race(path)["summary"]["ahead"]                                               # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pipelines.capture.folder import Capture
from pipelines.errors import InputError
from pipelines.fileio import read_json, write_json
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress
from studio.console import default_is
from studio.curves import ahead_at_equal_time, time_to_reach
from studio.workspace import Run

RACES_DIR = "races"


@dataclass(frozen=True)
class RaceOptions:
    """The flags of ``lrm-studio race``; the page's Race uses the same."""

    feed_forward: str = "long-lrm"
    """the feed-forward model whose result is refined (a registered model)."""
    preset: Annotated[str | None, default_is("its shipped demo weights, else the model's own")] = None
    """its preset."""
    weights: Path | None = None
    """its weights file (safetensors)."""
    steps: Annotated[int | None, default_is("the optimizer preset's")] = None
    """optimization steps, the same for both contenders."""
    optimize_preset: Annotated[str | None, default_is("cpu-fast on the CPU, cuda-30k on CUDA")] = None
    """optimizer preset, the same for both."""
    evaluations: int = 12
    """test evaluations along each curve."""
    device: str = "auto"
    """auto, cpu, cuda, ..."""


def race(
    capture_root: Path,
    options: RaceOptions = RaceOptions(),  # noqa: B008 (frozen)
    *,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Run the race on a capture (module doc) and return the race file."""
    from pipelines.models.runtime import resolve_device
    from studio.commands.optimize import make_config, optimize
    from studio.commands.reconstruct import ReconstructOptions, reconstruct

    capture = Capture.load(capture_root)
    if not capture.indices("test"):
        raise InputError(f"capture {capture.name} has no test frames to score the curves on")
    if options.evaluations < 2:
        raise InputError("--evaluations must be at least 2 (a curve needs points)")
    dev = resolve_device(options.device)
    preset = options.preset
    if preset is None and options.weights is None:
        from pipelines.models.checkpoints import shipped_weights

        preset = "tiny-demo" if shipped_weights(options.feed_forward, "tiny-demo") else None
    progress(0.0, f"{options.feed_forward}: reconstructing")
    model = ReconstructOptions(
        model=options.feed_forward, preset=preset, weights=options.weights, device=str(dev)
    )
    ff = reconstruct(capture.root, model, progress=sub_progress(progress, 0.0, 0.1), cancel=cancel)
    cfg = make_config(dev, preset=options.optimize_preset, steps=options.steps)
    cfg = replace(cfg, eval_every=max(1, cfg.steps // options.evaluations))
    contenders: dict[str, dict[str, Any]] = {}
    for k, (name, init) in enumerate((("refined", ff.name), ("sfm", "sfm"))):
        check(cancel)
        span = sub_progress(progress, 0.1 + 0.45 * k, 0.55 + 0.45 * k, f"{name}: ")
        out = optimize(capture.root, init=init, config=cfg, device=str(dev), progress=span, cancel=cancel)
        run = Run.load(out)
        contenders[name] = {"run": run.id, "init_time": run.info["init_time"], "curve": run.info["curve"]}
    refined, sfm = contenders["refined"]["curve"], contenders["sfm"]["curve"]
    summary = {
        "refined_final_psnr": refined[-1]["psnr"] if refined else None,
        "sfm_final_psnr": sfm[-1]["psnr"] if sfm else None,
        "refined_reaches_sfm_final_s": time_to_reach(refined, sfm[-1]["psnr"]) if sfm else None,
        "ahead": ahead_at_equal_time(refined, sfm),
    }
    stamp = datetime.datetime.now()
    race_id = f"{options.feed_forward}-{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    out = capture.root / RACES_DIR / f"{race_id}.json"
    write_json(
        out,
        {
            "id": race_id, "created": stamp.isoformat(timespec="seconds"), "capture": capture.name,
            "device": str(dev), "steps": cfg.steps, "preset": cfg.preset,
            "feed_forward": {"model": options.feed_forward, "preset": preset,
                             "weights": str(options.weights) if options.weights else None, "run": ff.name},
            "contenders": contenders, "summary": summary,
        },
    )  # fmt: skip
    progress(1.0, f"race written to {out.name}")
    return out


def read_race(path: Path) -> dict[str, Any]:
    """A race file, checked: InputError when it is not one."""
    try:
        d = read_json(path)
        curves = [d["contenders"][k]["curve"] for k in ("refined", "sfm")]
        for curve in curves:
            for p in curve:
                float(p["time_s"]), int(p["step"]), float(p["psnr"])  # noqa: B018 (a check)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path} is not a race file ({type(e).__name__}: {e})") from e
    return d


def list_races(capture_root: Path) -> list[Path]:
    """The capture's race files, oldest first."""
    folder = Path(capture_root) / RACES_DIR
    return sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
