"""Shared benchmark machinery: synchronized timing, peak memory, isolated cases, output.

Rules every benchmark follows: warm-up calls before timing; CUDA synchronized before reading the
clock; the median of several repeats reported with min and max; peak memory from the CUDA
allocator on GPU, and on the CPU from the growth of the process's peak RSS inside a fresh
process (``run_isolated``, ``run_bench_case``), since freed CPU memory is not returned reliably.

The feed-forward model benchmarks (Long-LRM, tttLRM) time a reconstructor end to end on
``synthetic_views`` with ``measure_reconstructor`` and print ``OFFLINE_COLUMNS`` rows.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipelines.fileio import write_json
from pipelines.models.runtime import synchronize  # the benchmarks import it from here too
from studio.console import device_description, print_table  # noqa: F401 (the benchmarks use both)


def time_calls(
    fn: Callable[[], Any], *, device: torch.device | str, warmup: int = 1, repeats: int = 5
) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls, synchronized."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int

    @staticmethod
    def of(times: list[float]) -> Timing:
        return Timing(statistics.median(times), min(times), max(times), len(times))


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@dataclass
class PeakMemory:
    bytes: int = 0


@contextlib.contextmanager
def peak_memory(device: torch.device | str) -> Iterator[PeakMemory]:
    """Peak memory used inside the block: CUDA allocator peak above the block's start, or on the
    CPU the growth of peak RSS (meaningful in a fresh process: see ``run_isolated``)."""
    device = torch.device(device)
    out = PeakMemory()
    if device.type == "cuda":
        synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        synchronize(device)
        out.bytes = torch.cuda.max_memory_allocated(device) - start
    else:
        start = _max_rss_bytes()
        yield out
        out.bytes = _max_rss_bytes() - start


def _resolve(target: str) -> Callable[..., Any]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _child(target: str, kwargs: dict) -> Any:
    return _resolve(target)(**kwargs)


def run_isolated(target: str, **kwargs: Any) -> Any:
    """Run ``module:function(**kwargs)`` in a fresh spawned Python process and return its
    (picklable) result; the child inherits the environment and torch's thread count."""
    ctx = mp.get_context("spawn")
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    with ctx.Pool(1) as pool:
        return pool.apply(_child, (target, kwargs))


def run_bench_case(target: str, *, device: str, isolate: bool = True, **kwargs: Any) -> Any:
    """``module:function(device=device, **kwargs)``: on the CPU with ``isolate`` in a fresh process
    (``run_isolated``: honest peak RSS), else in this process."""
    if isolate and torch.device(device).type == "cpu":
        return run_isolated(target, device=device, **kwargs)
    return _resolve(target)(device=device, **kwargs)


def run_or_skip(case: Callable[[], dict], **skipped_row: Any) -> dict:
    """``case()``; when CUDA runs out of memory, ``skipped_row`` with ``skipped`` saying so."""
    try:
        return case()
    except torch.cuda.OutOfMemoryError as e:
        return {**skipped_row, "skipped": f"out of memory: {str(e).splitlines()[0]}"}


def view_counts(views: str) -> list[int]:
    """``--views 4,8,16`` -> [4, 8, 16]."""
    return [int(v) for v in views.split(",") if v.strip()]


def release_memory() -> None:
    """Between cases: collect garbage and return cached CUDA blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def save_results(path: Path | None, payload: dict) -> None:
    """Write the benchmark's JSON (atomically) when --json was given."""
    if path is not None:
        write_json(path, payload)


# ---------------------------------------------------------------------- feed-forward models
def synthetic_views(views: int, width: int, height: int, seed: int = 0):
    """Random images and cameras on a forward-facing arc around a target (a DL3DV-like capture)."""
    from pipelines.cameras import Cameras
    from pipelines.models.base import Views

    g = torch.Generator().manual_seed(seed)
    ang = torch.linspace(-0.6, 0.6, views)
    eye = torch.stack([2 * torch.sin(ang), 0.1 * torch.randn(views, generator=g), -2 * torch.cos(ang)], -1)
    cams = Cameras.look_at(eye, torch.zeros(views, 3), fov_y_deg=55, width=width, height=height)
    return Views(torch.rand(views, 3, height, width, generator=g), cams)


def measure_reconstructor(
    build: Callable[[], Any], row: dict, *, views: int, width: int, height: int, device: str, warmup: int,
    repeats: int,
) -> tuple[Any, dict]:  # fmt: skip
    """One (model, views) case: ``build()`` the reconstructor inside the peak-memory window (the
    weights count), check memory (a guard's refusal becomes ``row["skipped"]`` and nothing runs),
    then time ``rec(views)`` on ``synthetic_views`` at width x height after warm-up. ``row`` gains
    estimate_gib, num_gaussians, peak_gib, median_s, min_s, max_s, repeats. Returns (rec, row)."""
    from pipelines.models.memory import InsufficientMemory

    dev = torch.device(device)
    with peak_memory(dev) as peak:  # CPU: RSS growth (fresh process); CUDA: replaced below
        rec = build()
        try:
            row["estimate_gib"] = gib(rec.check_memory(views, width, height))
        except InsufficientMemory as e:
            row["skipped"] = str(e)
            return rec, row
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
    row.update(median_s=t.median_s, min_s=t.min_s, max_s=t.max_s, repeats=t.repeats)
    return rec, row


OFFLINE_COLUMNS = [
    "model", "views", "size", "tokens", "median s", "min s", "max s", "peak GiB", "estimate GiB", "Gaussians",
]  # fmt: skip


def offline_row(r: dict) -> list:
    """A row of ``OFFLINE_COLUMNS`` for one ``measure_reconstructor`` case (a skipped case shows
    what it has: model, views, size, tokens, estimate)."""
    size = f"{r.get('width', '')}x{r.get('height', '')}"
    if "skipped" in r:
        return [r["model"], r["views"], size, r.get("tokens", ""), "skipped", "", "", "",
                r.get("estimate_gib", ""), ""]  # fmt: skip
    return [r["model"], r["views"], size, r["tokens"], r["median_s"], r["min_s"], r["max_s"], r["peak_gib"],
            r["estimate_gib"], r["num_gaussians"]]  # fmt: skip


def print_skipped(rows: list[dict]) -> None:
    """Why each skipped case was skipped (the memory guard's or CUDA's message)."""
    from studio.console import console

    for r in rows:
        if "skipped" in r:
            console.print(f"[yellow]{r['model']} {r['views']} views skipped:[/yellow] {r['skipped']}")
