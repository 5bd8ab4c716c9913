"""``lrm-studio train``: train a feed-forward model (one process, or every rank under torchrun);
``lrm-studio train export``: a training checkpoint -> safetensors; ``lrm-studio train eval``:
held-out PSNR of a model next to the two trivial baselines (procedural scenes, the demo capture,
capture folders).

A recipe (``pipelines.train.config.RECIPES``) gives every setting; flags override single ones.
Running ``train`` again on the same ``--out`` resumes from the newest checkpoint there.

Examples (shell):
    lrm-studio train --recipe long-lrm-tiny --out runs/tiny --steps 200
    torchrun --nproc_per_node 2 -m studio.cli train --recipe long-lrm-tiny --out runs/tiny-ddp
    lrm-studio train export runs/tiny --out tiny.safetensors
    lrm-studio train eval --model long-lrm --preset tiny-demo --procedural 16 --demo
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import tyro

from studio.console import default_is

log = logging.getLogger(__name__)


def main(
    recipe: Annotated[str | None, default_is("the recipe of --model / --preset")] = None,
    out: Path = Path("train-runs/run"),
    model: str | None = None,
    preset: str | None = None,
    data: str | None = None,
    stream: str | None = None,
    steps: int | None = None,
    max_minutes: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    warmup_steps: int | None = None,
    pool: int | None = None,
    cache_dir: str | None = None,
    perceptual_weights: str | None = None,
    init: str | None = None,
    stage: Literal["proposal", "reconstruction"] | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    threads: int | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    no_resume: bool = False,
    tensorboard: bool = False,
) -> int:
    """Train a feed-forward model (any registered model with a trainer adapter).

    Args:
        recipe: a named recipe (long-lrm, long-lrm-tiny, long-lrm-tiny-demo, ttt-lrm, ttt-lrm-tiny,
            geolrm-proposal, geolrm, geolrm-tiny, geolrm-tiny-demo-proposal, geolrm-tiny-demo).
        out: run folder: checkpoints/, log.jsonl, config.json (resumed when it has checkpoints).
        model: a model with a trainer adapter: long-lrm, ttt-lrm or geolrm.
        preset: the model's architecture preset.
        data: "procedural" (the synth stream), or a folder / .json / .txt list of scenes in Long-LRM's
            opencv_cameras.json layout, or studio capture folders (cameras.json).
        stream: synth stream preset (procedural data; view-selection rules for scene files).
        steps: optimizer steps (the cosine schedule spans them).
        max_minutes: stop with a checkpoint after this much training time (all sessions).
        batch_size: samples per process per step (the global batch is this x processes).
        lr: peak learning rate.
        warmup_steps: linear warm-up steps.
        pool: procedural rooms rendered once and reused (0: a new room per sample).
        cache_dir: where the pool's rendered rooms are kept between sessions.
        perceptual_weights: a VGG-19 weights file (torchvision layout) for the perceptual loss; the
            loss is off without it (nothing is downloaded).
        init: safetensors weights to start from (GeoLRM's stage 2: the export of stage 1).
        stage: GeoLRM's stage: proposal (occupancy network) or reconstruction (Gaussian network,
            the proposal frozen).
        eval_every: held-out procedural PSNR vs baselines every N steps (0: never).
        checkpoint_every: steps between checkpoints.
        threads: torch CPU threads per process.
        num_workers: data-loader worker processes.
        seed: network init and per-step randomness.
        device: auto, cpu, cuda (under torchrun each rank takes cuda:LOCAL_RANK).
        no_resume: start over even if --out has checkpoints.
        tensorboard: also log to OUT/tb (needs the tensorboard package).
    """
    from pipelines.train import distributed as D
    from pipelines.train.config import RECIPES, default_recipe
    from pipelines.train.trainer import train
    from studio.console import console, ctrl_c_cancels, setup_logging

    setup_logging()
    name = recipe or default_recipe(model or "long-lrm", preset or "tiny")
    if name not in RECIPES:
        console.print(f"[red]error:[/red] unknown recipe {name!r}; available: {', '.join(RECIPES)}")
        return 2
    overrides = {
        k: v
        for k, v in dict(
            model=model, preset=preset, data=data, stream=stream, steps=steps, max_minutes=max_minutes,
            batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, pool=pool, cache_dir=cache_dir,
            perceptual_weights=perceptual_weights, init=init, stage=stage, eval_every=eval_every,
            checkpoint_every=checkpoint_every, threads=threads, num_workers=num_workers, seed=seed,
        ).items()
        if v is not None
    }  # fmt: skip
    config = RECIPES[name].with_(**overrides)
    main_rank = D.rank_from_env() == 0
    if main_rank:
        console.print(
            f"training {config.model} / {config.preset} (recipe {name}) on {config.data} into {out}: "
            f"{config.steps:,} steps, batch {config.batch_size} per process"
        )
    with ctrl_c_cancels() as cancel:
        result = train(
            config, out, device=device, resume=not no_resume, tensorboard=tensorboard, cancel=cancel
        )
    D.shutdown()
    if main_rank:
        console.print(
            f"stopped at step {result.step}: {result.elapsed_s / 60:.1f} min, skipped non-finite "
            f"{result.skipped_nonfinite}, large {result.skipped_large}; checkpoint {result.checkpoint}"
        )
    return 0


def export(
    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_OR_CHECKPOINT")],
    out: Path,
) -> int:
    """Export a training run's newest checkpoint (or a given step_*.pt) as safetensors weights
    that ``lrm-studio reconstruct --weights`` (or a shipped preset file) loads.

    Args:
        run: a run folder (its newest checkpoint) or a checkpoints/step_*.pt file.
        out: the .safetensors file to write.
    """
    from pipelines.train.trainer import export_weights, latest_checkpoint
    from studio.console import console

    ck = run if run.is_file() else latest_checkpoint(run)
    if ck is None:
        console.print(f"[red]error:[/red] no checkpoint under {run}/checkpoints")
        return 2
    export_weights(ck, out)
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB) from {ck}")
    return 0


def evaluate(
    model: str = "long-lrm",
    preset: str | None = None,
    weights: Path | None = None,
    procedural: int = 16,
    stream: Annotated[
        str | None, default_is("the model's domain: geolrm-tiny objects for GeoLRM, demo-tiny rooms else")
    ] = None,
    seed: int = 1_000_000,
    demo: bool = False,
    capture: list[Path] | None = None,
    views: Annotated[int | None, default_is("the model's")] = None,
    device: str = "auto",
    json_out: Annotated[Path | None, tyro.conf.arg(name="json")] = None,
) -> int:
    """Held-out PSNR of a model and of two trivial baselines (mean input colour; nearest input
    view reprojected at a constant depth), by one code path.

    Args:
        model: registered model name.
        preset: its preset (shipped weights assets/models/<model>-<preset>.safetensors are used
            when no --weights).
        weights: a safetensors weights file.
        procedural: held-out procedural scenes (0: none).
        stream: synth stream preset of the procedural scenes.
        seed: stream seed of the held-out scenes (training uses other seeds).
        demo: also the bundled demo capture (assets/demo: demo.mp4 + gt_cameras.json).
        capture: capture folders (cameras.json with a test split) to evaluate on.
        views: input views per capture.
        device: auto, cpu, cuda.
        json_out: write every number (per scene too) to this JSON file.
    """
    import torch

    from pipelines.fileio import write_json
    from pipelines.models.base import load_model
    from pipelines.synth.stream import PRESETS as STREAMS
    from pipelines.train.evaluate import demo_capture, evaluate_capture, evaluate_procedural, folder_capture
    from studio.console import console, print_table, progress_bar, setup_logging

    setup_logging()
    dev = (
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    rec = load_model(model, weights=weights, preset=preset, device=dev)
    stream = stream or ("geolrm-tiny" if model == "geolrm" else "demo-tiny")
    results = {}
    if procedural > 0:
        with progress_bar("procedural") as progress:
            results[f"procedural ({procedural} scenes, {stream}, seed {seed})"] = evaluate_procedural(
                rec, STREAMS[stream], seed=seed, count=procedural, progress=progress
            )
    if demo:
        results["demo capture"] = evaluate_capture(rec, demo_capture(), views=views)
    for c in capture or []:
        results[f"capture {c}"] = evaluate_capture(rec, folder_capture(c), views=views)
    rows = [
        [k, f"{r.model_psnr:.2f}", f"{r.baselines['mean_colour']:.2f}", f"{r.baselines['reprojection']:.2f}",
         f"{r.wins['reprojection']} / {r.views}"]
        for k, r in results.items()
    ]  # fmt: skip
    print_table(
        f"{model} {preset or weights}",
        ["set", "model PSNR", "mean colour", "reprojection", "views model > reprojection"],
        rows,
    )
    if json_out is not None:
        write_json(json_out, {"model": model, "preset": preset, "weights": str(weights) if weights else None,
                              "results": {k: r.to_dict() for k, r in results.items()}})  # fmt: skip
        console.print(f"wrote {json_out}")
    return 0
