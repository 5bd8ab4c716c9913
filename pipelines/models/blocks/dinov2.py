"""DINOv2 ViT (our implementation) with the parameter layout of Hugging Face ``Dinov2Backbone``.

Written from the architecture (facebookresearch/dinov2 ``vision_transformer.py``: pre-norm
blocks with LayerScale, learned absolute position embeddings for a 37x37 grid at 518 px,
bicubic interpolation to other sizes) with HF module names, so checkpoints that embed a
``Dinov2Backbone`` (e.g. GeoLRM's ``encoder.model.*``) load without renaming:

    embeddings.{cls_token, position_embeddings, patch_embeddings.projection.{weight,bias}}
    encoder.layer.{i}.{norm1, attention.attention.{query,key,value}, attention.output.dense,
                       layer_scale1.lambda1, norm2, mlp.fc1, mlp.fc2, layer_scale2.lambda1}
    layernorm

HF's ``embeddings.mask_token`` (used only for masked-image pre-training) is not a parameter here;
importers drop it. ``forward`` returns what ``Dinov2Backbone(...).feature_maps[-1]`` returns
with the default ``out_features=["stage12"]``: the last block's tokens, final LayerNorm applied,
CLS dropped, reshaped to [N, D, H/14, W/14]. Checked once against transformers 4.34.1 (GeoLRM's
pinned version; random weights, ViT-B/14 at 448 and 560 px): max difference 3e-6. That version
reshapes non-square maps as [W/14, H/14] (fixed later upstream); GeoLRM only feeds square images,
and we keep the correct [H/14, W/14] order.

Examples:
    >>> vit = DinoV2(DinoV2Config(dim=48, depth=1, heads=2, pos_grid=4))
    >>> vit(torch.rand(2, 3, 56, 42)).shape
    torch.Size([2, 48, 4, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DinoV2Config:
    dim: int = 768  # token width (ViT-B)
    depth: int = 12
    heads: int = 12
    patch: int = 14
    mlp_ratio: float = 4.0
    pos_grid: int = 37  # position-embedding grid side (518 px / 14)
    eps: float = 1e-6  # LayerNorm epsilon
    layerscale_init: float = 1.0

    def __post_init__(self) -> None:
        assert self.dim % self.heads == 0, f"dim {self.dim} not divisible by heads {self.heads}"


VIT_B14 = DinoV2Config()


class _PatchEmbeddings(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch, stride=cfg.patch)


class _Embeddings(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.pos_grid**2 + 1, cfg.dim))
        self.patch_embeddings = _PatchEmbeddings(cfg)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.position_embeddings, std=0.02)

    def positions(self, h: int, w: int) -> Tensor:
        """Position embeddings [1, 1 + h*w, D] for an h x w patch grid: the stored 37x37 grid
        resampled bicubically with scale factors ((h + 0.1) / 37, (w + 0.1) / 37), as the
        reference implementations do (the 0.1 avoids a floor landing one short)."""
        g = self.cfg.pos_grid
        pos = self.position_embeddings
        if h * w == g * g and h == w:
            return pos
        grid = pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)  # [1, D, g, g]
        grid = F.interpolate(
            grid.float(), scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode="bicubic", align_corners=False
        ).to(pos.dtype)
        assert grid.shape[-2:] == (h, w), (
            f"position grid resampled to {tuple(grid.shape[-2:])}, wanted {(h, w)}"
        )
        return torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, pixels: Tensor) -> Tensor:
        """pixels [N, 3, H, W] (ImageNet-normalised) -> tokens [N, 1 + h*w, D]."""
        x = self.patch_embeddings.projection(pixels)  # [N, D, h, w]
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # [N, h*w, D]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return x + self.positions(h, w).to(x.dtype)


class _SelfAttention(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.dim, cfg.dim)
        self.key = nn.Linear(cfg.dim, cfg.dim)
        self.value = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        q, k, v = (
            p(x).view(n, t, self.heads, -1).transpose(1, 2) for p in (self.query, self.key, self.value)
        )
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d)  # [N, T, D]


class _Output(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.dim, cfg.dim)


class _Attention(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.attention = _SelfAttention(cfg)
        self.output = _Output(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.output.dense(self.attention(x))


class _LayerScale(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.full((cfg.dim,), cfg.layerscale_init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.lambda1


class _MLP(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.dim, hidden)
        self.fc2 = nn.Linear(hidden, cfg.dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class _Layer(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.attention = _Attention(cfg)
        self.layer_scale1 = _LayerScale(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.mlp = _MLP(cfg)
        self.layer_scale2 = _LayerScale(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class _Encoder(nn.Module):
    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg.depth))


class DinoV2(nn.Module):
    """ViT backbone returning the last block's patch-token map (see the module docstring)."""

    def __init__(self, cfg: DinoV2Config = VIT_B14) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Encoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.dim, eps=cfg.eps)

    def forward(self, pixels: Tensor) -> Tensor:
        """pixels [N, 3, H, W], ImageNet-normalised -> feature map [N, D, H // 14, W // 14]."""
        assert pixels.ndim == 4 and pixels.shape[1] == 3, (
            f"pixels must be [N, 3, H, W], got {tuple(pixels.shape)}"
        )
        n, _, hh, ww = pixels.shape
        h, w = hh // self.cfg.patch, ww // self.cfg.patch
        x = self.embeddings(pixels)
        for layer in self.encoder.layer:
            x = layer(x)
        x = self.layernorm(x)[:, 1:]  # [N, h*w, D]
        return x.transpose(1, 2).reshape(n, -1, h, w)


def imagenet_normalize(images: Tensor) -> Tensor:
    """images [..., 3, H, W] in [0, 1] -> (x - mean) / std with ImageNet statistics."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device)[:, None, None]
    return (images - mean) / std
