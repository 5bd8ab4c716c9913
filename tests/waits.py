"""Waiting in tests on a machine that may be busy with other work: every timeout is a budget for
an idle machine, stretched by the load average per CPU (at most :data:`MAX_STRETCH` times), so
that a test fails for a real hang, not because CI shares its two cores with something else.

Examples:
    >>> eventually(lambda: job.finished, "the job finished", timeout=30)   # doctest: +SKIP
    >>> page.get_by_text("Done").wait_for(timeout=scaled(30) * 1000)       # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

MAX_STRETCH = 8.0


def load_factor() -> float:
    """1 on an idle machine, the 1-minute load average per CPU when it is higher (capped)."""
    try:
        per_cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return min(max(1.0, per_cpu), MAX_STRETCH)


def scaled(seconds: float) -> float:
    """``seconds`` stretched by the current :func:`load_factor`."""
    return seconds * load_factor()


def eventually(cond: Callable[[], object], what: str, timeout: float = 30.0, every: float = 0.1):
    """Poll ``cond`` until it returns something other than None or False and return that; fail
    saying ``what`` did not happen after ``timeout`` seconds stretched by the highest load
    factor seen while waiting."""
    start = time.monotonic()
    stretch = load_factor()
    while True:
        value = cond()
        if value is not None and value is not False:
            return value
        stretch = max(stretch, load_factor())
        if time.monotonic() - start > timeout * stretch:
            raise AssertionError(
                f"{what} (waited {time.monotonic() - start:.0f} s, load factor {stretch:.1f})"
            )
        time.sleep(every)
