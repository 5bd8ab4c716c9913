"""Device, precision and timing conventions shared by the feed-forward models and their tools.

- :func:`resolve_device`: ``"auto"`` -> CUDA when available, else the CPU.
- :func:`synchronize`: wait for queued CUDA work (nothing on the CPU); every timing reads the
  clock after it.
- :class:`LapTimer`: synchronized lap times of a pipeline's stages.
- The pixel-aligned models (Long-LRM, tttLRM) run under bf16 autocast on CUDA and in float32 on
  the CPU: :func:`bf16_autocast`, :func:`precision_label` (what ``info["precision"]`` says) and
  :func:`activation_bytes` (the element size their memory estimates assume).

Examples:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> clock = LapTimer("cpu")
    >>> clock.lap() >= 0.0
    True
"""

from __future__ import annotations

import contextlib
import time

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: ``cuda`` when available, else ``cpu``; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on a CUDA device; nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class LapTimer:
    """Synchronized lap timer: starts at construction (after a synchronize)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = device
        synchronize(device)
        self.t0 = self.t = time.perf_counter()

    def lap(self) -> float:
        """Seconds since the previous lap (or the start), after synchronizing."""
        synchronize(self.device)
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        return dt

    def total(self) -> float:
        """Seconds since the start (not synchronized: read it after a lap)."""
        return time.perf_counter() - self.t0


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, disabled (float32) elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def precision_label(device: torch.device) -> str:
    """What :func:`bf16_autocast` runs at on ``device``: ``bf16-autocast`` or ``float32``."""
    return "bf16-autocast" if device.type == "cuda" else "float32"


def activation_bytes(device: torch.device | str) -> int:
    """Bytes per activation element under :func:`bf16_autocast`: 2 on CUDA, 4 on the CPU."""
    return 2 if torch.device(device).type == "cuda" else 4
