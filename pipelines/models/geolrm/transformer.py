"""GeoLRM's transformer over 3D anchor tokens (``GeoTransformer``), shared by both networks.

LLaMA-style block (RMSNorm, bias-free projections, SwiGLU), with multi-view deformable
cross-attention between self-attention and the FFN:

    h   = x + Drop(SelfAttn(RMSNorm(x), voxel_index))
    h   = MVDeformAttn(query=RMSNorm(h), feats, ref)      # adds output to the *normalised* h
    out = h + Drop(SwiGLU(RMSNorm(h)))

Tokens start as ``cat[xyz (3 raw coordinates), query_token (dim - 3)]``; a final RMSNorm follows
the last block. Self-attention modes are explained in config.py ("official" reproduces the
released code's fp32 path; "global" is attention over all anchors with 3D RoPE).

Cameras enter as OpenGL camera-to-world ``c2w_gl [B, V, 4, 4]`` and intrinsics normalised by the
image size ``K_norm [B, V, 3, 3]`` (GeoLRM's conventions). Reference points are the anchors'
projections in normalised image coordinates (x right, y down, pixel centres at (i + 0.5) / W).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.models.blocks.checkpointing import checkpointed
from pipelines.models.blocks.deformable_attention import MultiViewDeformableAttention
from pipelines.models.blocks.rope3d import rope3d
from pipelines.models.geolrm.config import TransformerConfig


def voxel_index(xyz: Tensor, xyz_scale: float, grid_size: int) -> Tensor:
    """Cube coordinates xyz [..., 3] -> integer voxel indices [..., 3] (int64) as official:
    ``long((xyz / xyz_scale + 1) * (grid_size - 1) / 2)`` (truncation toward zero)."""
    return ((xyz / xyz_scale + 1.0) * (grid_size - 1) / 2.0).long()


def project_points(xyz: Tensor, c2w_gl: Tensor, K_norm: Tensor) -> Tensor:
    """xyz [B, N, 3] cube frame; c2w_gl [B, V, 4, 4] OpenGL camera-to-world; K_norm [B, V, 3, 3]
    (row 0 divided by W, row 1 by H). Returns uv [B, V, N, 2], normalised image coordinates
    (0..1 across the image, y down).

    Official computes ``uv = (K_norm @ w2c_gl[:3] @ X) / z`` then ``u = 1 - u``; that equals this
    OpenCV-axes projection exactly when the principal point is centred (cx = 0.5) and stays
    correct otherwise. No visibility test (as official): points behind a camera project mirrored.
    """
    dt = torch.float64 if xyz.dtype == torch.float64 else torch.float32
    with torch.autocast(xyz.device.type, enabled=False):  # geometry stays in float32 under bf16
        xyz = xyz.to(dt)
        w2c = torch.linalg.inv(c2w_gl.to(dt))  # [B, V, 4, 4]
        p = (
            torch.einsum("bvij,bnj->bvni", w2c[..., :3, :3], xyz) + w2c[:, :, None, :3, 3]
        )  # [B, V, N, 3] GL camera
        p_cv = p * p.new_tensor([1.0, -1.0, -1.0])  # OpenCV camera axes (x right, y down, z forward)
        z = p_cv[..., 2:3]
        z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)
        uvw = torch.einsum("bvij,bvnj->bvni", K_norm.to(dt), p_cv / z)
    return uvw[..., :2]


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) in float32, cast back, times a learned weight [dim]."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class SelfAttention(nn.Module):
    """Bias-free q/k/v/o projections; RoPE-3D on q and k; two modes (see config.py)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.dim // cfg.heads
        self.theta, self.mode, self.dropout_p = cfg.rope_theta, cfg.attention, cfg.dropout
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        """x [B, N, D]; pos [B, N, 3] int64 voxel indices. Returns [B, N, D]."""
        b, n, d = x.shape
        q = rope3d(self.wq(x).view(b, n, self.heads, self.head_dim), pos, self.theta)  # [B, N, H, Dh]
        k = rope3d(self.wk(x).view(b, n, self.heads, self.head_dim), pos, self.theta)
        v = self.wv(x).view(b, n, self.heads, self.head_dim)
        if self.mode == "global":
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.transpose(1, 2),
                v.transpose(1, 2),
                dropout_p=self.dropout_p if self.training else 0.0,
            )  # [B, H, N, Dh]
            out = o.transpose(1, 2).reshape(b, n, d)
        else:
            out = _official_head_attention(q, k, v, self.dropout_p if self.training else 0.0)
        return self.wo(out)


def _official_head_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """The released fp32 path. q, k, v [B, N, H, Dh] -> [B, N, H*Dh].

    scores[b, n, h, g] = <q[b, n, h], k[b, n, g]> / sqrt(Dh) (dropout on the scores in training,
    as official), softmax over g in float32, o[b, n, h] = sum_g p * v[b, n, g]; then the
    head-major regrouping [B, N, H, Dh] -> [B, H, N, Dh] -> [B, N, H*Dh]."""
    b, n, h, dh = q.shape
    scores = torch.einsum("bnhd,bngd->bnhg", q, k) / math.sqrt(dh)
    if dropout_p > 0:
        scores = F.dropout(scores, dropout_p, training=True)
    p = F.softmax(scores.float(), dim=-1).type_as(q)
    o = torch.einsum("bnhg,bngd->bnhd", p, v)
    return o.transpose(1, 2).reshape(b, n, h * dh)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), bias-free."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class GeoTransformerBlock(nn.Module):
    def __init__(self, cfg: TransformerConfig, feat_dim: int) -> None:
        super().__init__()
        self.self_attention = SelfAttention(cfg)
        self.cross_attention = MultiViewDeformableAttention(
            cfg.dim, feat_dim, cfg.heads, cfg.levels, cfg.points, dropout=cfg.dropout
        )
        self.feed_forward = FeedForward(cfg)
        self.self_attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.cross_attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, h: Tensor, pos: Tensor, feats: list[Tensor], ref: Tensor, *, view_chunk: int, query_chunk: int
    ) -> Tensor:
        """h [B, N, D]; pos [B, N, 3]; feats per level [B, V, C, h, w]; ref [B, V, N, 2]."""
        h = h + self.dropout(self.self_attention(self.self_attention_norm(h), pos))
        h = self.cross_attention(
            self.cross_attention_norm(h), feats, ref, view_chunk=view_chunk, query_chunk=query_chunk
        )
        return h + self.dropout(self.feed_forward(self.ffn_norm(h)))


class GeoTransformer(nn.Module):
    """Anchor tokens -> latents. Parameter names follow the official ``GeoTransformer``."""

    def __init__(self, cfg: TransformerConfig, feat_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.query_token = nn.Parameter(torch.randn(1, 1, cfg.dim - 3))
        self.layers = nn.ModuleList(GeoTransformerBlock(cfg, feat_dim) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.grad_checkpointing = False  # per-block activation checkpointing (training)

    def forward(
        self,
        xyz: Tensor,
        pos: Tensor,
        feats: list[Tensor],
        ref: Tensor,
        *,
        view_chunk: int = 4,
        query_chunk: int = 4096,
        after_layer: Callable[[int], None] | None = None,
    ) -> Tensor:
        """xyz [B, N, 3] anchor centres (cube frame); pos [B, N, 3] int64 voxel indices for RoPE;
        feats per level [B, V, C, h, w]; ref [B, V, N, 2] (``project_points``). ``after_layer(i)``
        is called after block i (progress / cancel). Returns latents [B, N, D]."""
        b, n, _ = xyz.shape
        assert pos.shape == (b, n, 3), f"pos must be [B, N, 3] = {(b, n, 3)}, got {tuple(pos.shape)}"
        h = torch.cat([xyz, self.query_token.expand(b, n, -1).to(xyz.dtype)], dim=-1)  # [B, N, D]
        for i, layer in enumerate(self.layers):
            h = checkpointed(
                self.grad_checkpointing,
                layer,
                h,
                pos,
                feats,
                ref,
                view_chunk=view_chunk,
                query_chunk=query_chunk,
            )
            if after_layer is not None:
                after_layer(i)
        return self.norm(h)
