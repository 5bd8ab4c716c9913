"""What the models' memory guards share: free memory of a device, the share of it a run may
plan to use, and the error a guard raises before any work (Long-LRM, tttLRM).

Each model estimates its own peak (``pipelines/models/<model>/memory.py``) and refuses when
``need > usable_bytes(available_bytes(device))``, with a message saying what to change.

Examples:
    >>> usable_bytes(1000)
    950.0
"""

from __future__ import annotations

import os

import torch

USABLE_SHARE = 0.95  # of the free memory; the rest is left to fragmentation and other processes


class InsufficientMemory(RuntimeError):
    """The requested views and resolution will not fit on the device."""


def available_bytes(device: torch.device | str) -> int:
    """Free memory on a CUDA device (the driver's free memory plus what PyTorch's caching allocator
    holds unused), or the system's available memory for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":  # the caching allocator's reserved but unused blocks are free to us
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def usable_bytes(free: int) -> float:
    """The bytes a run may plan to use out of ``free``."""
    return USABLE_SHARE * free
