"""Checks of values that come from outside (the page, a file): every operation checks its own
arguments, whoever calls it, so that the page's limits are not the only ones."""

from __future__ import annotations

import math


def check_range(what: str, value: object, lo: float, hi: float) -> None:
    """ValueError unless ``value`` is a real number (not a bool) in [lo, hi]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not lo <= value <= hi:  # type: ignore[operator]
        raise ValueError(f"{what} must be a number from {lo:g} to {hi:g}, not {value!r}")


def check_choice(what: str, value: object, choices) -> None:
    """ValueError unless ``value`` is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"unknown {what} {value!r}; choose {', '.join(map(str, choices))}")
