"""Peak-memory estimate of tttLRM inference, and the guard that refuses to start when it will not fit.

Counts the large tensors only: the weights, the images and per-pixel rays kept to the end, and
the largest phase: tokenizing, one block over L tokens (the residual stream in float32, the
attention's and the fast-weight layer's projections, the fast-weight update's per-token
temporaries over ``token_block`` tokens at a time, the MLP's hidden layer), or the per-pixel
head with its activations; then adds 20 %. ``lrm-studio bench ttt-lrm`` prints it beside the
measured peak.

Offline, L is every input view's tokens (the virtual views are the inputs, run once); streaming,
L is one chunk's (absorb) or one decode group's tokens, so the estimate does not grow with the
views already absorbed; only the kept images and the Gaussians do: the merge previews (pruned)
while streaming, and at the end every view's unpruned Gaussians, decoded group by group and
concatenated.

Examples:
    >>> from pipelines.models.ttt_lrm.config import PRESETS
    >>> est = estimate_bytes(PRESETS["official-full"], views=64, act_bytes=2)
    >>> 20 < est / 2**30 < 70
    True
"""

from __future__ import annotations

import torch

from pipelines.models.memory import InsufficientMemory, available_bytes, usable_bytes
from pipelines.models.runtime import activation_bytes
from pipelines.models.ttt_lrm.config import TTTLRMConfig

MARGIN = 1.2
F32 = 4

__all__ = ["InsufficientMemory", "available_bytes", "check_memory", "estimate_bytes", "num_params"]


def num_params(c: TTTLRMConfig) -> int:
    """Parameter count from the config (matches ``TTTLRM(c)``; checked in tests)."""
    d, p2 = c.dim, c.patch_size**2
    hidden = int(d * c.mlp_ratio)
    block = 3 * d  # three LayerNorms
    block += 4 * d * d + 2 * c.attn_head_dim  # attention + QK norms
    block += 3 * c.ttt_heads * c.ttt_head_dim * c.ttt_hidden  # fast weights
    block += 4 * d * d + 3 * c.ttt_heads * (d + 1) + d  # qkv, proj, lr_fc, o_norm
    block += 2 * d * hidden  # MLP
    return 12 * p2 * d + d + c.num_layers * block + d + d * c.activation.num_channels * p2


def _block_bytes(c: TTTLRMConfig, L: int, e: int, update: bool) -> int:
    d = c.dim
    live = 2 * L * d * F32  # residual stream, its next value
    attn = L * d * F32 + 3 * L * d * e + 4 * L * d * e
    ttt = L * d * F32 + 6 * L * d * e + 3 * L * c.ttt_heads * F32 + 3 * L * d * e + L * d * F32
    Lb = min(L, c.token_block or L)
    inner = Lb * c.ttt_hidden * c.ttt_heads * e * (7 if update else 3)
    mlp = L * d * F32 + 2 * L * int(d * c.mlp_ratio) * e + L * d * e
    return live + max(attn, ttt + inner, mlp)


def estimate_bytes(
    config: TTTLRMConfig, *, views: int, act_bytes: int, chunk_views: int | None = None
) -> int:
    """Estimated peak bytes of one inference (no gradients) on ``views`` views at the config's
    image size; ``act_bytes`` 2 under bf16 autocast, 4 in float32. ``chunk_views``: streaming
    with chunks (and decode groups) of that many views; None: offline, all views at once."""
    c, e = config, act_bytes
    n_pix = views * c.image_height * c.image_width
    per_view = c.image_height * c.image_width
    C = c.activation.num_channels
    fixed = num_params(c) * F32 + n_pix * 3 * F32 + 2 * n_pix * 3 * F32  # weights, images, rays
    group = views if chunk_views is None else min(chunk_views, views)
    L = group * c.tokens_per_view
    g_pix = group * per_view
    tokenize = 2 * g_pix * 12 * F32 + L * c.dim * (e + F32)
    blocks = _block_bytes(c, L, e, update=True)
    head = g_pix * C * (e + 2 * F32) + g_pix * 14 * F32
    top, rest = config.keep_ratios(views)
    kept = int(n_pix * (top + (1 - top) * rest))
    if chunk_views is None:
        finish = n_pix * C * F32 + 2 * n_pix * 8 + kept * C * F32 * 2
        previews = 0
    else:  # every view decoded group by group, then concatenated: two unpruned copies
        finish = 2 * n_pix * C * F32 + 2 * n_pix * 8 + kept * C * F32 * 2
        previews = 2 * kept * C * F32  # the pruned merge previews so far and their concatenation
    return int(MARGIN * (fixed + max(tokenize + previews, blocks + previews, head + previews, finish)))


def check_memory(
    config: TTTLRMConfig, *, views: int, device: torch.device | str, chunk_views: int | None = None
) -> int:
    """Raise :class:`InsufficientMemory` (saying what to change) when the estimate exceeds 95 % of
    the device's free memory; return the estimate."""
    device = torch.device(device)
    act = activation_bytes(device)
    need = estimate_bytes(config, views=views, act_bytes=act, chunk_views=chunk_views)
    free = available_bytes(device)
    if need > usable_bytes(free):
        raise InsufficientMemory(
            f"tttLRM on {views} views of {config.image_width}x{config.image_height} needs about "
            f"{need / 2**30:.1f} GiB on {device}, {free / 2**30:.1f} GiB are free: use fewer views "
            "(--views), stream them in chunks (--stream), or a device with more memory"
        )
    return need
