"""``lrm-studio bench long-lrm``: end-to-end Long-LRM inference time, peak memory and Gaussian
count against the number of views, optionally beside a same-size all-Transformer baseline.

End to end = posed images in (already at the model size) -> preprocess -> network (bf16 autocast
on CUDA, float32 on the CPU) -> activations -> pruning -> Gaussians in the world frame. Weights are
random (time and memory do not depend on them; the count follows the pruning ratio). Times are
synchronized medians after warm-up; peak memory includes the weights (CUDA allocator peak; on the
CPU the peak RSS growth of a fresh process per case). The memory guard's estimate is shown beside
the measured peak; cases the guard rejects are reported, not run.

Examples:
    lrm-studio bench long-lrm --preset official-540p --views 4,8,16,32 --baseline-transformer
    lrm-studio bench long-lrm --preset tiny --views 2,4,8 --height 64 --width 112 --device cpu
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch

from pipelines.models.long_lrm.config import PRESETS, LongLRMConfig, transformer_baseline
from pipelines.models.runtime import resolve_device
from studio.bench.common import (
    Timing,
    device_description,
    gib,
    print_table,
    run_isolated,
    save_results,
    synchronize,
    time_calls,
)


def synthetic_views(views: int, width: int, height: int, seed: int = 0):
    """Random images and cameras on a forward-facing arc around a target (a DL3DV-like capture)."""
    from pipelines.cameras import Cameras
    from pipelines.models.base import Views

    g = torch.Generator().manual_seed(seed)
    ang = torch.linspace(-0.6, 0.6, views)
    eye = torch.stack([2 * torch.sin(ang), 0.1 * torch.randn(views, generator=g), -2 * torch.cos(ang)], -1)
    cams = Cameras.look_at(eye, torch.zeros(views, 3), fov_y_deg=55, width=width, height=height)
    return Views(torch.rand(views, 3, height, width, generator=g), cams)


CASE_ARGS = ("config_json", "views", "height", "width", "device", "warmup", "repeats", "backend")


def run_case(
    config_json: str,
    views: int,
    height: int,
    width: int,
    device: str,
    warmup: int,
    repeats: int,
    backend: str,
) -> dict:
    """One (model, views) case: build, check memory, time, measure the peak. Picklable result."""
    from pipelines.models.blocks.mamba2 import set_scan_backend
    from pipelines.models.long_lrm.memory import InsufficientMemory
    from pipelines.models.long_lrm.model import LongLRM
    from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor
    from studio.bench.common import peak_memory

    config = LongLRMConfig.from_json(config_json).with_(resize_h=height)
    dev = torch.device(device)
    row = {
        "views": views,
        "width": width,
        "height": height,
        "tokens": views * (height // config.patch_size) * (width // config.patch_size),
    }
    with peak_memory(dev) as peak:  # CPU: RSS growth (fresh process); CUDA: replaced below
        model = LongLRM(config)
        set_scan_backend(model, backend)  # type: ignore[arg-type]
        rec = LongLRMReconstructor(model, device=dev)
        assert rec.input_size(width, height) == (width, height), (
            rec.input_size(width, height),
            width,
            height,
        )
        try:
            row["estimate_gib"] = gib(rec.check_memory(views, width, height))
        except InsufficientMemory as e:
            row["skipped"] = str(e)
            return row
        inputs = synthetic_views(views, width, height).to(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        out = rec(inputs)
        row["num_gaussians"] = out.gaussians.num
        del out
        times = time_calls(lambda: rec(inputs), device=dev, warmup=max(0, warmup - 1), repeats=repeats)
        synchronize(dev)
    row["peak_gib"] = gib(torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else peak.bytes)
    t = Timing.of(times)
    row.update(median_s=t.median_s, min_s=t.min_s, max_s=t.max_s, repeats=t.repeats, scan=rec.scan_backend)
    return row


def bench(
    preset: str, views: list[int], height: int, width: int, device: str, baseline_transformer: bool,
    warmup: int, repeats: int, backend: str,
) -> dict:  # fmt: skip
    base = PRESETS[preset]
    models = [("long-lrm", base)] + (
        [("all-transformer", transformer_baseline(base))] if baseline_transformer else []
    )
    rows = []
    for name, cfg in models:
        for v in views:
            args = (cfg.to_json(), v, height, width, device, warmup, repeats, backend)
            try:
                if torch.device(device).type == "cpu":  # fresh process: honest peak RSS
                    row = run_isolated(
                        "studio.bench.long_lrm:run_case", **dict(zip(CASE_ARGS, args, strict=True))
                    )
                else:
                    row = run_case(*args)
            except torch.cuda.OutOfMemoryError as e:
                row = {
                    "views": v,
                    "width": width,
                    "height": height,
                    "skipped": f"out of memory: {str(e).splitlines()[0]}",
                }
            row["model"] = name
            rows.append(row)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return {"benchmark": "long-lrm", "preset": preset, "device": device_description(device), "rows": rows}


def main(
    preset: str = "official-540p",
    views: str = "4,8,16,32",
    height: int = 544,
    width: int = 960,
    device: str = "auto",
    baseline_transformer: bool = False,
    warmup: int = 2,
    repeats: int = 5,
    backend: str = "auto",
    json: Path | None = None,
) -> int:
    """Long-LRM end-to-end inference: synchronized time after warm-up, peak memory, Gaussians.

    Args:
        preset: Long-LRM preset (official-540p, tiny).
        views: comma-separated view counts.
        height: model input height (a multiple of 16).
        width: model input width (a multiple of 16).
        device: auto, cpu, cuda, ...
        baseline_transformer: also run the same model with every block a Transformer.
        warmup: calls before timing.
        repeats: timed calls (median reported).
        backend: Mamba2 scan path: auto, torch, mamba_ssm.
        json: write the results here.
    """
    device = str(resolve_device(device))
    m = PRESETS[preset].patch_size_out
    if height % m or width % m:
        raise SystemExit(f"--height and --width must be multiples of {m}")
    counts = [int(v) for v in views.split(",") if v.strip()]
    result = bench(preset, counts, height, width, device, baseline_transformer, warmup, repeats, backend)
    cols = [
        "model",
        "views",
        "size",
        "tokens",
        "median s",
        "min s",
        "max s",
        "peak GiB",
        "estimate GiB",
        "Gaussians",
    ]
    table = []
    for r in result["rows"]:
        size = f"{r['width']}x{r['height']}"
        if "skipped" in r:
            table.append(
                [
                    r["model"],
                    r["views"],
                    size,
                    r.get("tokens", ""),
                    "skipped",
                    "",
                    "",
                    "",
                    r.get("estimate_gib", ""),
                    "",
                ]
            )
        else:
            table.append([r["model"], r["views"], size, r["tokens"], r["median_s"], r["min_s"], r["max_s"],
                          r["peak_gib"], r["estimate_gib"], r["num_gaussians"]])  # fmt: skip
    print_table(f"Long-LRM {preset} on {result['device']}", cols, table)
    for r in result["rows"]:
        if "skipped" in r:
            from studio.console import console

            console.print(f"[yellow]{r['model']} {r['views']} views skipped:[/yellow] {r['skipped']}")
    save_results(json, result)
    return 0
