"""``lrm-studio bench long-lrm``: end-to-end Long-LRM inference time, peak memory and Gaussian
count against the number of views, optionally beside a same-size all-Transformer baseline.

End to end = posed images in (already at the model size) -> preprocess -> network (bf16 autocast
on CUDA, float32 on the CPU) -> activations -> pruning -> Gaussians in the world frame. Weights are
random (time and memory do not depend on them; the count follows the pruning ratio). Times are
synchronized medians after warm-up; peak memory includes the weights (CUDA allocator peak; on the
CPU the peak RSS growth of a fresh process per case). The memory guard's estimate is shown beside
the measured peak; cases the guard rejects are reported, not run.

``--backend`` picks the Mamba2 scan (auto, torch, triton: ours, mamba_ssm); several, comma
separated, or ``all`` time them side by side in one run (``studio/bench/backends.py``): every case
once per backend, then a table of the medians and the speed-up over the PyTorch scan.

Examples:
    lrm-studio bench long-lrm --preset official-540p --views 4,8,16,32 --baseline-transformer
    lrm-studio bench long-lrm --preset official-540p --views 4,8,16,32 --backend torch,triton,mamba_ssm
    lrm-studio bench long-lrm --preset tiny --views 2,4,8 --height 64 --width 112 --device cpu
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from pipelines.models.long_lrm.config import PRESETS, LongLRMConfig, transformer_baseline
from pipelines.models.runtime import resolve_device
from studio.bench.backends import SCAN_BACKENDS, parse_backends, print_unavailable, scan_why_not, side_by_side
from studio.bench.common import (
    OFFLINE_COLUMNS,
    device_description,
    measure_reconstructor,
    offline_row,
    print_skipped,
    print_table,
    release_memory,
    run_bench_case,
    run_or_skip,
    save_results,
    view_counts,
)


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
    from pipelines.models.long_lrm.model import LongLRM
    from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor

    config = LongLRMConfig.from_json(config_json).with_(resize_h=height)
    dev = torch.device(device)
    row = {
        "views": views,
        "width": width,
        "height": height,
        "tokens": views * (height // config.patch_size) * (width // config.patch_size),
    }

    def build() -> LongLRMReconstructor:
        model = LongLRM(config)
        set_scan_backend(model, backend)  # type: ignore[arg-type]
        rec = LongLRMReconstructor(model, device=dev)
        assert rec.input_size(width, height) == (width, height), (
            rec.input_size(width, height), width, height,
        )  # fmt: skip
        return rec

    rec, row = measure_reconstructor(
        build, row, views=views, width=width, height=height, device=device, warmup=warmup, repeats=repeats
    )
    if "skipped" not in row:
        row["scan"] = rec.scan_backend
    return row


def bench(
    preset: str, views: list[int], height: int, width: int, device: str, baseline_transformer: bool,
    warmup: int, repeats: int, backends: list[str],
) -> dict:  # fmt: skip
    """Every (model, scan backend, views) case; the all-Transformer baseline has no scan and runs
    once per view count. Rows carry ``backend`` (as asked) and ``scan`` (the path it resolved to)."""
    base = PRESETS[preset]
    models = [("long-lrm", base, backends)] + (
        [("all-transformer", transformer_baseline(base), backends[:1])] if baseline_transformer else []
    )
    rows = []
    for name, cfg, model_backends in models:
        for backend in model_backends:
            for v in views:
                kw = dict(config_json=cfg.to_json(), views=v, height=height, width=width, warmup=warmup,
                          repeats=repeats, backend=backend)  # fmt: skip
                case = partial(run_bench_case, "studio.bench.long_lrm:run_case", device=device, **kw)
                row = run_or_skip(case, views=v, width=width, height=height)  # CPU: fresh process, honest RSS
                row["model"] = name if len(model_backends) == 1 else f"{name} ({backend})"
                row["backend"] = backend
                rows.append(row)
                release_memory()
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
        backend: Mamba2 scan path: auto, torch, triton (ours), mamba_ssm; several comma-separated
            (e.g. torch,triton,mamba_ssm) or ``all`` are timed side by side; one that cannot run
            on the device is reported as skipped.
        json: write the results here.
    """
    device = str(resolve_device(device))
    m = PRESETS[preset].patch_size_out
    if height % m or width % m:
        raise SystemExit(f"--height and --width must be multiples of {m}")
    counts = view_counts(views)
    backends, unavailable = parse_backends(backend, SCAN_BACKENDS, lambda b: scan_why_not(b, device))
    result = {"backends": backends, "skipped_backends": unavailable}
    if backends:
        result |= bench(
            preset, counts, height, width, device, baseline_transformer, warmup, repeats, backends
        )
        table = [offline_row(r) for r in result["rows"]]
        print_table(f"Long-LRM {preset} on {result['device']}", OFFLINE_COLUMNS, table)
        print_skipped(result["rows"])
        if len(backends) > 1:
            scan_rows = [r for r in result["rows"] if not r["model"].startswith("all-transformer")]
            cols, table = side_by_side(scan_rows, backends, backend_key="backend")
            print_table("Mamba2 scan backends side by side (median s, end to end)", cols, table)
            result["side_by_side"] = {"columns": cols, "rows": table}
    print_unavailable(unavailable)
    save_results(json, result)
    return 0
