"""Terminal output for the CLI: progress bars that accept the pipelines' Progress callback.

Examples:
    >>> with progress_bar("SfM") as report:     # doctest: +SKIP
    ...     run_sfm(..., progress=report)
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

import tyro
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipelines.progress import CancelToken

console = Console(stderr=True)


def default_is(words: str):
    """For an option whose default is said in words (its value is a None sentinel): ``--help``
    shows "(default: WORDS)" once, instead of tyro's "(default: None)" after the same words.

    Examples:
        >>> views: Annotated[int | None, default_is("the model's")] = None   # doctest: +SKIP
    """
    return tyro.conf.arg(help_behavior_hint=f"(default: {words})")


def setup_logging(level: int = logging.INFO) -> None:
    """Route the pipelines' logging to the terminal once."""
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(console=console, show_path=False, show_time=False))
    root.setLevel(level)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator:
    """Yield a ``Progress`` callback (fraction, message) drawn as one rich progress bar with its
    time left. The bar appears with the first report, so an operation refused before it starts
    prints nothing but its error."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[message]}"),
        console=console,
        transient=False,
    )
    task = None

    def report(fraction: float, message: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=1.0, message="")
        bar.update(task, completed=min(max(fraction, 0.0), 1.0), message=message)

    try:
        yield report
    finally:
        if task is not None:
            bar.stop()


@contextlib.contextmanager
def ctrl_c_cancels() -> Iterator[CancelToken]:
    """A CancelToken that the first Ctrl-C cancels (the operation stops cleanly); a second
    Ctrl-C interrupts at once."""
    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if token.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        console.print("[yellow]cancelling... (Ctrl-C again to abort at once)")
        token.cancel()

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield token
        return
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A table on the console (stderr); floats with 4 significant digits."""
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    console.print(table)


def device_description(device) -> str:
    """e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads, x86_64)': what run.json and the
    benchmarks record."""
    import platform

    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"
