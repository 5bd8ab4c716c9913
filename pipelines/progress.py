"""Progress reporting and cancellation: the one callback type every long operation takes.

A long operation takes ``progress: Progress`` and ``cancel: CancelToken | None``. It calls
``progress(fraction, message)`` with a fraction in [0, 1] and checks ``cancel`` between units of
work; a cancelled token makes ``cancel.check()`` raise :class:`Cancelled`, which callers treat
as a clean stop (no error notification, earlier results kept).

Examples:
    >>> token = CancelToken()
    >>> seen = []
    >>> report = sub_progress(lambda f, m: seen.append(round(f, 2)), 0.5, 1.0)
    >>> report(0.5, "half of the second half")
    >>> seen
    [0.75]
"""

from __future__ import annotations

import threading
from typing import Callable

Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A Progress that ignores every report."""


class Cancelled(Exception):
    """Raised inside an operation whose CancelToken was cancelled."""


class CancelToken:
    """A thread-safe flag that a UI or CLI sets and a worker polls."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check(cancel: CancelToken | None) -> None:
    """``cancel.check()`` that accepts None (no token: never cancelled)."""
    if cancel is not None:
        cancel.check()


def sub_progress(progress: Progress, start: float, end: float, prefix: str = "") -> Progress:
    """A Progress mapping [0, 1] onto [start, end] of ``progress``, messages prefixed."""

    def report(fraction: float, message: str) -> None:
        f = min(max(fraction, 0.0), 1.0)
        progress(start + (end - start) * f, prefix + message)

    return report
