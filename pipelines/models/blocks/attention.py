"""Pre-norm transformer block with full bidirectional self-attention (no mask, no dropout).

Layout (Long-LRM ``model/transformer.py``, timm-style): ``x = x + attn(norm1(x))``,
``x = x + mlp(norm2(x))``; LayerNorms without bias; ``qkv`` Linear(d, 3d) and ``proj`` Linear(d, d)
without bias; MLP Linear(d, 4d) -> GELU (erf) -> Linear(4d, d), without bias. The qkv output is
laid out ``[3, heads, head_dim]`` along its channels.

``qk_norm=True`` adds an RMSNorm (learned weight, eps the dtype's machine epsilon as
``torch.nn.RMSNorm``'s default) over each head's q and k before the dot product (tttLRM
``model/block.py``, ``use_qk_norm``).

Attention runs on ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels on GPU) or, with ``fused=False``, on an explicit softmax (the math path used as a
reference in tests).

Examples:
    >>> blk = TransformerBlock(64, head_dim=16)
    >>> blk(torch.randn(2, 10, 64)).shape
    torch.Size([2, 10, 64])
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest)
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """Multi-head self-attention, dim = heads * head_dim. x [B, L, D] -> [B, L, D]."""

    def __init__(self, dim: int, head_dim: int = 64, *, fused: bool = True, qk_norm: bool = False) -> None:
        super().__init__()
        assert dim % head_dim == 0, f"dim {dim} is not a multiple of head_dim {head_dim}"
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.fused = fused  # SDPA when True, explicit softmax when False
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        if qk_norm:
            self.q_norm = nn.RMSNorm(head_dim)
            self.k_norm = nn.RMSNorm(head_dim)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)  # [B, L, 3, h, hd]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, h, L, hd]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)  # [B, h, L, hd]
        else:
            attn = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # [B, h, L, L]
            out = attn.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(b, n, d)  # [B, L, D]
        return self.proj(out)


class Mlp(nn.Module):
    """Linear(d, r d) -> GELU -> Linear(r d, d), no bias."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block. x [B, L, D] -> [B, L, D]."""

    def __init__(self, dim: int, head_dim: int = 64, mlp_ratio: float = 4.0, *, fused: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, bias=False)
        self.attn = SelfAttention(dim, head_dim, fused=fused)
        self.norm2 = nn.LayerNorm(dim, bias=False)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        assert x.ndim == 3, f"expected tokens [B, L, D], got {tuple(x.shape)}"
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def set_fused_attention(module: nn.Module, fused: bool) -> None:
    """Switch every SelfAttention inside ``module`` between SDPA and the math path."""
    for m in module.modules():
        if isinstance(m, SelfAttention):
            m.fused = fused
