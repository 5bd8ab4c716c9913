"""Our fused Triton kernels (Mamba2 SSD scan, multi-view deformable attention) and when they can run.

Importing this package imports neither triton nor a kernel module: the kernel modules
(``ssd_scan``, ``conv_norm``, ``mamba_split_scan``, ``deform_attn``) import triton and are
imported only inside the dispatch paths that run them (STYLE.md section 2). Nothing is compiled
before a kernel's first launch.

Where they run: on CUDA (compiled by Triton) and, for tests, on the CPU through Triton's
interpreter, which must be switched on with ``TRITON_INTERPRET=1`` before the kernel modules are
first imported (triton reads the variable when a ``@triton.jit`` function is defined; tests/
conftest.py sets it on machines without CUDA).
"""

from __future__ import annotations

import importlib.util
import os

import torch


def triton_installed() -> bool:
    """True when the ``triton`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: kernels defined from now on run on the CPU in numpy."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available(device: torch.device | str) -> bool:
    """True when our Triton kernels can run on tensors of ``device``: CUDA with triton installed,
    or the CPU with triton installed and its interpreter on (tests; far too slow for real sizes)."""
    if not triton_installed():
        return False
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and triton_interpreting())


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (>= 1): Triton block sizes must be powers of two."""
    return 1 << max(0, (int(n) - 1).bit_length())
