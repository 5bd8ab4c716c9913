"""Token merging: 2x2 image tokens -> 1, widening the channels (Long-LRM ``merge_layers``).

Image tokens of each view are laid back on their patch grid and passed through
``Conv2d(d_in, d_out, kernel 2, stride 2, groups=d_in)``: a channel-wise convolution in which each
input channel makes d_out / d_in output channels from its own 2x2 window (weight [d_out, 1, 2, 2]).
Global tokens (prepended to the sequence) go through ``Linear(d_in, d_out)`` with bias.

Examples:
    >>> m = TokenMerge(8, 32)
    >>> x, h, w = m(torch.randn(1, 2 + 3 * 4 * 6, 8), num_global=2, views=3, h=4, w=6)
    >>> x.shape, h, w
    (torch.Size([1, 20, 32]), 2, 3)
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


class TokenMerge(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        assert dim_out % dim_in == 0, (
            f"dim_out {dim_out} must be a multiple of dim_in {dim_in} (grouped conv)"
        )
        self.global_proj = nn.Linear(dim_in, dim_out)
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size=2, stride=2, padding=0, bias=True, groups=dim_in)

    def forward(self, x: Tensor, *, num_global: int, views: int, h: int, w: int) -> tuple[Tensor, int, int]:
        """x [B, G + V*h*w, d_in] -> ([B, G + V*(h/2)*(w/2), d_out], h/2, w/2)."""
        assert x.shape[1] == num_global + views * h * w, (
            f"{x.shape[1]} tokens, expected {num_global} + {views}*{h}*{w}"
        )
        assert h % 2 == 0 and w % 2 == 0, f"token grid {h}x{w} must be even to merge 2x2"
        g, img = x[:, :num_global], x[:, num_global:]
        img = rearrange(img, "b (v h w) d -> (b v) d h w", v=views, h=h, w=w)
        img = self.conv(img)  # [(B V), d_out, h/2, w/2]
        img = rearrange(img, "(b v) d h w -> b (v h w) d", v=views)
        return torch.cat([self.global_proj(g), img], dim=1), h // 2, w // 2
