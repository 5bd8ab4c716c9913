"""Peak-memory estimate of one Long-LRM inference, and the guard that refuses to start when it
will not fit.

The estimate adds the weights, the inputs and rays kept to the end, and the largest of the
phases: one block at its sequence length (the live activations of a Mamba2 block with the
scan's temporaries, or of a transformer block with fused attention), the per-pixel head and its
activations, and pruning plus the transform to the world frame. It counts the large tensors
only, then adds 15 %; ``lrm-studio bench long-lrm`` prints it beside the measured peak.

Examples:
    >>> from pipelines.models.long_lrm.config import PRESETS
    >>> cfg = PRESETS["official-540p"]
    >>> est = estimate_bytes(cfg, views=32, height=544, width=960, act_bytes=2, scan="mamba_ssm")
    >>> 4 < est / 2**30 < 24
    True
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch

from pipelines.models.long_lrm.config import LongLRMConfig
from pipelines.models.memory import InsufficientMemory, available_bytes, usable_bytes
from pipelines.models.runtime import activation_bytes

MARGIN = 1.15
F32 = 4


def _num_params(c: LongLRMConfig) -> int:
    """Parameter count from the config (matches ``LongLRM(c)``; checked in tests)."""
    n = 9 * c.patch_size**2 * c.dims[0] + c.num_global_tokens * c.dims[0] + c.dims[0]
    for a, b in itertools.pairwise(c.dims):
        n += a * b + b + b * 4 + b  # global Linear, grouped 2x2 conv
    for kind, d in zip(c.layout, c.block_dims, strict=True):
        if kind == "t":
            hidden = int(d * c.mlp_ratio)
            n += 2 * d + 3 * d * d + d * d + 2 * d * hidden
        else:
            di, heads = c.expand * d, c.expand * d // c.ssm_head_dim
            conv = di + 2 * c.d_state
            n += d + d * (2 * di + 2 * c.d_state + heads) + di * d
            n += 2 * (conv * c.d_conv + conv + 3 * heads + di)
    n += c.dims[-1] + c.dims[-1] * c.activation.num_channels * c.patch_size_out**2
    return n


def _mamba_block(c: LongLRMConfig, L: int, d: int, e: int, scan: str) -> int:
    di, heads, N = c.expand * d, c.expand * d // c.ssm_head_dim, c.d_state
    p_in = 2 * di + 2 * N + heads
    chunks, l = math.ceil(L / c.chunk_size), c.chunk_size
    flips = 2 if scan != "triton" else 1  # our kernels read the reversed branch without a flipped copy
    live = 2 * L * d * F32 + flips * L * p_in * e  # residual, norm; in_proj output (and its flip)
    branch = L * (di + 2 * N) * e + 3 * L * di * F32 + L * di * e  # conv out, scan + gating, output
    states = chunks * heads * c.ssm_head_dim * N * F32
    if scan == "torch":
        temps = L * (di + 2 * N + heads) * F32 + 5 * chunks * heads * l * l * F32 + 3 * states
    else:  # fused (mamba-ssm's or ours): dt and its cumsum, C.B per chunk, chunk states
        temps = chunks * l * l * F32 + 2 * states + L * heads * F32 * 2
    return live + branch + temps + 2 * L * di * e + L * d * e


def _transformer_block(c: LongLRMConfig, L: int, d: int, e: int) -> int:
    hidden = int(d * c.mlp_ratio)
    return 2 * L * d * F32 + 2 * 3 * L * d * e + 2 * L * d * e + 2 * L * hidden * e


def estimate_bytes(
    config: LongLRMConfig, *, views: int, height: int, width: int, act_bytes: int,
    scan: Literal["torch", "triton", "mamba_ssm"] = "torch",
) -> int:  # fmt: skip
    """Estimated peak bytes of one inference (no gradients) at the model size height x width;
    ``act_bytes`` 2 under bf16 autocast, 4 in float32."""
    c, e = config, act_bytes
    n_pix = views * height * width
    C = c.activation.num_channels
    fixed = _num_params(c) * F32 + n_pix * 3 * F32 + 2 * n_pix * 3 * F32  # weights, images, rays
    tokenize = 2 * n_pix * 9 * F32 + n_pix // c.patch_size**2 * c.dims[0] * e
    blocks = 0
    L = views * (height // c.patch_size) * (width // c.patch_size)
    for i, (kind, d) in enumerate(zip(c.layout, c.block_dims, strict=True)):
        if i in c.merge_at:
            L //= 4
        Lg = L + c.num_global_tokens
        blocks = max(
            blocks, _mamba_block(c, Lg, d, e, scan) if kind == "m" else _transformer_block(c, Lg, d, e)
        )
    head = n_pix * C * (2 * e + (F32 if e != F32 else 0)) + n_pix * 7 * F32
    kept = n_pix - int(n_pix * c.prune_ratio)
    finish = n_pix * C * F32 + 2 * n_pix * 8 + kept * C * F32 * 2 + kept * 48 * F32
    return int(MARGIN * (fixed + max(tokenize, blocks, head, finish)))


def check_memory(
    config: LongLRMConfig, *, views: int, height: int, width: int, device: torch.device | str, scan: str
) -> int:
    """Raise :class:`InsufficientMemory` (saying what to change) when the estimate exceeds 95 % of
    the device's free memory; return the estimate."""
    device = torch.device(device)
    act = activation_bytes(device)
    need = estimate_bytes(config, views=views, height=height, width=width, act_bytes=act, scan=scan)  # type: ignore[arg-type]
    free = available_bytes(device)
    if need > usable_bytes(free):
        per_view = need / views
        fit = max(0, int(usable_bytes(free) / per_view))
        raise InsufficientMemory(
            f"Long-LRM with {views} views at {width}x{height} needs about {need / 2**30:.1f} GiB "
            f"on {device}, "
            f"but only {free / 2**30:.1f} GiB is free. Use fewer views (about {fit} fit: --views {fit}), "
            f"a smaller input (--height), or a GPU."
        )
    return need
