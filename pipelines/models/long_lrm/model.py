"""The Long-LRM network: Plücker patch tokens -> {7 Mamba2 + 1 Transformer} x 3 with a token
merge -> one Gaussian per input pixel.

The network works in the normalised frame produced by :mod:`.preprocess`; it holds no
preprocessing, loss, rendering, timing or pruning policy. ``forward`` returns the raw per-pixel
head output with its rays (:class:`PixelGaussians`); ``PixelGaussians.to_gaussians()`` applies
every activation.

Examples:
    >>> from pipelines.models.long_lrm.config import PRESETS
    >>> net = LongLRM(PRESETS["tiny"])
    >>> imgs = torch.rand(1, 2, 3, 32, 48)
    >>> c2w = torch.eye(4).expand(1, 2, 4, 4)
    >>> K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]]).expand(1, 2, 3, 3)
    >>> out = net(imgs, c2w, K)
    >>> out.raw.shape                      # one Gaussian per pixel: 2 * 32 * 48, 59 channels
    torch.Size([1, 3072, 59])
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from pipelines.models.blocks.attention import TransformerBlock
from pipelines.models.blocks.checkpointing import checkpointed
from pipelines.models.blocks.gaussian_head import PixelGaussianHead, PixelGaussians
from pipelines.models.blocks.mamba2 import Mamba2Block
from pipelines.models.blocks.plucker import PluckerTokenizer
from pipelines.models.blocks.token_merge import TokenMerge
from pipelines.models.blocks.weight_init import init_normal
from pipelines.models.long_lrm.config import LongLRMConfig
from pipelines.progress import CancelToken, Progress, check, no_progress


class LongLRM(nn.Module):
    def __init__(self, config: LongLRMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.grad_checkpointing = False  # per-block activation checkpointing (training)
        self.tokenizer = PluckerTokenizer(c.patch_size, c.dims[0])
        self.global_tokens = nn.Parameter(torch.zeros(1, c.num_global_tokens, c.dims[0]))
        nn.init.trunc_normal_(self.global_tokens, std=0.02)
        self.input_norm = nn.LayerNorm(c.dims[0], bias=False)
        self.merges = nn.ModuleList([TokenMerge(a, b) for a, b in itertools.pairwise(c.dims)])
        self.blocks = nn.ModuleList()
        for kind, dim in zip(c.layout, c.block_dims, strict=True):
            if kind == "t":
                self.blocks.append(TransformerBlock(dim, c.attn_head_dim, c.mlp_ratio))
                self.blocks[-1].apply(init_normal)
            else:
                self.blocks.append(
                    Mamba2Block(
                        dim,
                        c.d_state,
                        headdim=c.ssm_head_dim,
                        expand=c.expand,
                        d_conv=c.d_conv,
                        chunk_size=c.chunk_size,
                    )
                )
        self.head = PixelGaussianHead(c.dims[-1], c.patch_size_out, c.activation.num_channels)
        self.tokenizer.apply(init_normal)  # official _init_weights
        self.head.apply(init_normal)

    def forward(
        self,
        images: Tensor,
        c2w: Tensor,
        K: Tensor,
        *,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
    ) -> PixelGaussians:
        """images [B, V, 3, H, W] in [0, 1]; c2w [B, V, 4, 4] OpenCV, normalised frame; K [B, V, 3, 3] px.
        H and W must be multiples of ``config.patch_size_out``. ``progress`` is told after each block."""
        c = self.config
        b, v, _, H, W = images.shape
        assert H % c.patch_size_out == 0 and W % c.patch_size_out == 0, (
            f"image {W}x{H}: sides must be multiples of {c.patch_size_out} (use preprocess.prepare)"
        )
        tokens, ray_o, ray_d = self.tokenizer(images, c2w, K)  # [B, V*h*w, D0], rays [B, V*H*W, 3]
        x = self.input_norm(torch.cat([self.global_tokens.expand(b, -1, -1), tokens], dim=1))
        h, w = H // c.patch_size, W // c.patch_size
        g = c.num_global_tokens
        for i, block in enumerate(self.blocks):
            check(cancel)
            if i in c.merge_at:
                merge = self.merges[c.merge_at.index(i)]
                x, h, w = self._run(merge, x, num_global=g, views=v, h=h, w=w)  # [B, G + V*h*w, D]
            x = self._run(block, x)
            progress((i + 1) / len(self.blocks), f"block {i + 1}/{len(self.blocks)}")
        raw = self._run(self.head, x[:, g:], views=v, h=h, w=w)  # [B, V*H*W, C]
        return PixelGaussians(raw, ray_o, ray_d, c.activation)

    def _run(self, module: nn.Module, *args, **kwargs):
        return checkpointed(self.grad_checkpointing, module, *args, **kwargs)

    def num_tokens(self, views: int, height: int, width: int) -> list[int]:
        """Sequence length (global tokens included) entering each block."""
        c = self.config
        n = views * (height // c.patch_size) * (width // c.patch_size)
        out = []
        for i in range(c.num_blocks):
            if i in c.merge_at:
                n //= 4
            out.append(n + c.num_global_tokens)
        return out
