"""Shared benchmark machinery: synchronized timing, peak memory, isolated cases, output.

Rules every benchmark follows: warm-up calls before timing; CUDA synchronized before reading the
clock; the median of several repeats reported with min and max; peak memory from the CUDA
allocator on GPU, and on the CPU from the growth of the process's peak RSS inside a fresh
process (``run_isolated``), since freed CPU memory is not returned reliably.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import platform
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


def device_description(device: torch.device | str) -> str:
    """e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads, x86_64)'."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def time_calls(fn: Callable[[], Any], *, device: torch.device | str, warmup: int = 1, repeats: int = 5) -> list[float]:
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


def _child(target: str, kwargs: dict) -> Any:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(**kwargs)


def run_isolated(target: str, **kwargs: Any) -> Any:
    """Run ``module:function(**kwargs)`` in a fresh spawned Python process and return its
    (picklable) result; the child inherits the environment and torch's thread count."""
    ctx = mp.get_context("spawn")
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    with ctx.Pool(1) as pool:
        return pool.apply(_child, (target, kwargs))


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    from studio.console import console

    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    console.print(table)


def save_results(path: Path | None, payload: dict) -> None:
    """Write the benchmark's JSON (atomically) when --json was given."""
    if path is not None:
        write_json(path, payload)
