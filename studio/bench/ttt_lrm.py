"""``lrm-studio bench ttt-lrm``: tttLRM inference time and peak memory against the number of views,
beside Long-LRM on the same views; with ``--stream``, the time of each streamed chunk against the
number of chunks already absorbed.

Offline = posed images in (already at the model size) -> preprocess -> network under the preset's
schedule (bf16 autocast on CUDA, float32 on the CPU) -> activations -> pruning -> Gaussians in the
world frame. Weights are random (time and memory do not depend on them). Times are synchronized
medians after warm-up; peak memory includes the weights (CUDA allocator peak; on the CPU the peak
RSS growth of a fresh process per case). The memory guard's estimate is shown beside the peak.
The paper's figures (DL3DV, 960x540-class, GPU not stated: tttLRM 3.6 / 7.2 / 14.8 s and Long-LRM
0.4 / 1 / 3.7 s for 16 / 32 / 64 views) are printed beside ours; our target on an H100 is half
the published tttLRM times.

Streaming: one warm-up stream, then ``repeats`` streams of ``chunks`` chunks of ``chunk_views``
views each; per chunk the median absorb time (the fast-weight update of every layer) and merge-
preview decode time. The chunk's tokens and the state's size are the same for every chunk, so
the time must not grow with the chunks already absorbed: the table shows the ratio of the last
quarter's median to the first quarter's.

Examples:
    lrm-studio bench ttt-lrm --views 16,32,64 --compare-long-lrm              # official sizes on CUDA
    lrm-studio bench ttt-lrm --device cpu --views 2,4,8 --compare-long-lrm    # tiny presets on the CPU
    lrm-studio bench ttt-lrm --device cpu --stream --chunks 16 --chunk-views 2
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated

import torch

from pipelines.models.runtime import resolve_device
from pipelines.models.ttt_lrm.config import PRESETS, TTTLRMConfig
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
    synthetic_views,
    view_counts,
)
from studio.console import default_is

PAPER_S = {  # tttLRM Tab. 2 via third-party transcriptions (reference notes)
    "ttt-lrm": {16: 3.6, 32: 7.2, 64: 14.8},
    "long-lrm": {16: 0.4, 32: 1.0, 64: 3.7},
}
LONG_LRM_PRESET = {"official-full": "official-540p", "official-ar": "official-540p"}  # else tiny


def run_case(config_json: str, views: int, device: str, warmup: int, repeats: int) -> dict:
    """One offline case: build, check memory, time, measure the peak. Picklable result."""
    from pipelines.models.ttt_lrm.model import TTTLRM
    from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

    c = TTTLRMConfig.from_json(config_json)
    dev = torch.device(device)
    row = {
        "model": "ttt-lrm",
        "views": views,
        "width": c.image_width,
        "height": c.image_height,
        "tokens": views * c.tokens_per_view,
    }
    _, row = measure_reconstructor(
        lambda: TTTLRMReconstructor(TTTLRM(c), device=dev), row, views=views, width=c.image_width,
        height=c.image_height, device=device, warmup=warmup, repeats=repeats,
    )  # fmt: skip
    return row


def long_lrm_case(preset: str, views: int, ttt: TTTLRMConfig, device: str, warmup: int, repeats: int) -> dict:
    """Long-LRM on the same number of views at the nearest size it accepts (sides multiples of 16:
    960x544 beside tttLRM's 960x536)."""
    from pipelines.models.long_lrm.config import PRESETS as LL

    c = LL[preset]
    m = c.patch_size_out
    h, w = (round(ttt.image_height / m) * m, round(ttt.image_width / m) * m)
    row = run_bench_case(
        "studio.bench.long_lrm:run_case", device=device, config_json=c.to_json(), views=views, height=h,
        width=w, warmup=warmup, repeats=repeats, backend="auto",
    )  # fmt: skip
    row["model"] = "long-lrm"
    return row


def bench_offline(
    c: TTTLRMConfig, preset: str, views: list[int], device: str, compare_long_lrm: bool, warmup: int,
    repeats: int, isolate: bool,
) -> dict:  # fmt: skip
    rows = []
    for v in views:
        kw = dict(config_json=c.to_json(), views=v, warmup=warmup, repeats=repeats)
        case = partial(run_bench_case, "studio.bench.ttt_lrm:run_case", device=device, isolate=isolate, **kw)
        rows.append(run_or_skip(case, model="ttt-lrm", views=v))
        if compare_long_lrm:
            ll = partial(long_lrm_case, LONG_LRM_PRESET.get(preset, "tiny"), v, c, device, warmup, repeats)
            rows.append(run_or_skip(ll, model="long-lrm", views=v))
        release_memory()
    return {"benchmark": "ttt-lrm", "preset": preset, "device": device_description(device), "rows": rows}


def _record(steps: list, step) -> None:
    """Keep a stream step's timings, not its preview (every step's previews together would hold
    Gaussians growing with the square of the chunks)."""
    steps.append(replace(step, gaussians=None))


def run_stream(
    config_json: str, chunks: int, chunk_views: int, device: str, repeats: int, preview: bool = True
) -> dict:
    """Stream ``chunks`` chunks of ``chunk_views`` synthetic views, ``repeats`` times after one
    warm-up stream; per chunk the absorb and preview times of every repeat."""
    from pipelines.models.base import Views
    from pipelines.models.ttt_lrm.model import TTTLRM
    from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

    c = TTTLRMConfig.from_json(config_json)
    dev = torch.device(device)
    rec = TTTLRMReconstructor(TTTLRM(c), device=dev)
    views = synthetic_views(chunks * chunk_views, c.image_width, c.image_height).to(dev)
    absorb = [[] for _ in range(chunks)]
    decode = [[] for _ in range(chunks)]
    state_numel = set()
    for r in range(repeats + 1):
        steps = []
        record = partial(_record, steps)
        rec.reconstruct_streaming(
            Views(views.images, views.cameras), chunk_views=chunk_views,
            preview="merge" if preview else "none", on_chunk=record,
        )  # fmt: skip
        if r == 0:
            continue  # warm-up
        for s in steps:
            absorb[s.index].append(s.absorb_s)
            decode[s.index].append(s.decode_s)
            state_numel.add(s.state_numel)
    rows = [
        {
            "chunk": i + 1,
            "views_before": i * chunk_views,
            "chunk_tokens": chunk_views * c.tokens_per_view,
            "absorb_median_s": statistics.median(absorb[i]),
            "preview_median_s": statistics.median(decode[i]),
        }
        for i in range(chunks)
    ]
    q = max(1, chunks // 4)
    first = statistics.median(r["absorb_median_s"] for r in rows[:q])
    last = statistics.median(r["absorb_median_s"] for r in rows[-q:])
    return {
        "benchmark": "ttt-lrm-stream",
        "device": device_description(dev),
        "chunk_views": chunk_views,
        "repeats": repeats,
        "state_numel": sorted(state_numel),
        "rows": rows,
        "absorb_last_over_first_quarter": last / first,
    }


def main(
    preset: Annotated[str | None, default_is("official-full on CUDA, tiny on the CPU")] = None,
    views: str = "16,32,64",
    device: str = "auto",
    compare_long_lrm: bool = False,
    stream: bool = False,
    chunks: int = 16,
    chunk_views: Annotated[int | None, default_is("the preset's update interval")] = None,
    height: int | None = None,
    width: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    isolate: bool = True,
    json: Path | None = None,
) -> int:
    """tttLRM inference: synchronized time after warm-up, peak memory, Gaussians; or per-chunk
    streaming time (--stream).

    Args:
        preset: tttLRM preset.
        views: comma-separated view counts (offline).
        device: auto, cpu, cuda, ...
        compare_long_lrm: also run Long-LRM on the same views (official-540p beside the official
            presets, else its tiny preset).
        stream: time each streamed chunk against the chunks already absorbed instead.
        chunks: number of chunks streamed (--stream).
        chunk_views: views per chunk (--stream).
        height: model input height instead of the preset's (a multiple of the patch size, 8).
        width: model input width instead of the preset's.
        warmup: calls before timing (offline).
        repeats: timed calls, or timed streams with --stream (median reported).
        isolate: on the CPU, run each offline case in a fresh process (honest peak RSS).
        json: write the results here.
    """
    from studio.console import console

    device = str(resolve_device(device))
    preset = preset or ("official-full" if torch.device(device).type == "cuda" else "tiny")
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    c = PRESETS[preset].with_(
        image_height=height or PRESETS[preset].image_height, image_width=width or PRESETS[preset].image_width
    )
    if stream:
        n = chunk_views or c.update_views
        result = run_stream(c.to_json(), chunks, n, device, repeats)
        result["preset"] = preset
        table = [
            [r["chunk"], r["views_before"], r["chunk_tokens"], r["absorb_median_s"], r["preview_median_s"]]
            for r in result["rows"]
        ]
        print_table(
            f"tttLRM {preset} streaming, {n} views per chunk, on {result['device']}",
            ["chunk", "views before", "chunk tokens", "absorb median s", "preview median s"],
            table,
        )
        console.print(
            f"state: {result['state_numel']} numbers throughout; absorb time, last quarter / first quarter "
            f"of the chunks: {result['absorb_last_over_first_quarter']:.2f}"
        )
        save_results(json, result)
        return 0
    result = bench_offline(c, preset, view_counts(views), device, compare_long_lrm, warmup, repeats, isolate)
    official = preset.startswith("official")
    cols = OFFLINE_COLUMNS + (["paper s", "target s"] if official else [])
    table = []
    for r in result["rows"]:
        paper = PAPER_S[r["model"]].get(r["views"], "")
        target = paper / 2 if (r["model"] == "ttt-lrm" and paper) else ""
        table.append(offline_row(r) + ([paper, target] if official else []))
    print_table(f"tttLRM {preset} on {result['device']}", cols, table)
    print_skipped(result["rows"])
    save_results(json, result)
    return 0
