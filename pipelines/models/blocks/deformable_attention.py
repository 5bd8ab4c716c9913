"""Multi-scale deformable attention (Deformable DETR) and its multi-view cross-attention form.

Each query has one reference point per view (normalised image coordinates); per head it samples
``points`` locations on each of ``levels`` feature maps around that point (learned offsets in
feature pixels of each level), bilinearly, and mixes the samples with learned weights (softmax
over levels x points per head). Across views the per-view results are mixed with a learned
softmax over views (VoxFormer / GeoLRM "cross_view_weight"), projected, and added to the query.

Coordinates: a location (x, y) in [0, 1]^2 is normalised by the map size with 0 at the left/top
image edge, so pixel i of a map of width w has its centre at (i + 0.5) / w (``grid_sample`` with
``align_corners=False``; the same convention as mmcv's ``ms_deform_attn`` CUDA kernel). Samples
outside the map read zeros.

Fast path: ``ms_deform_attn`` (``F.grid_sample`` per level, chunked over queries). Reference
path: ``_ms_deform_attn_reference`` (explicit four-corner gather), same signature.

Fused multi-view path: ``multiview_deform_attn`` does the sampling, the weighting and the sums
over points, levels and views (softmax over views) for pre-projected values in one Triton kernel
of ours (``kernels/deform_attn.py``, forward and backward) or, with ``backend="torch"``, with
``ms_deform_attn`` per view (``_multiview_deform_attn_torch``, same signature).
``MultiViewDeformableAttention.backend`` ("auto": ours on CUDA where triton imports, else the
PyTorch path; :func:`set_deform_backend`) chooses; triton is imported only inside that path.

Examples:
    >>> attn = MultiViewDeformableAttention(query_dim=32, value_dim=16, heads=4, levels=2, points=2)
    >>> q = torch.randn(1, 10, 32)                                          # [B, Q, D]
    >>> feats = [torch.randn(1, 3, 16, 8, 8), torch.randn(1, 3, 16, 4, 4)]  # [B, V, C, h, w]
    >>> ref = torch.rand(1, 3, 10, 2)                                       # [B, V, Q, 2]
    >>> attn(q, feats, ref).shape
    torch.Size([1, 10, 32])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.models.blocks.kernels import triton_available

DeformBackend = Literal["auto", "torch", "triton"]


def resolve_deform_backend(backend: DeformBackend, device: torch.device | str) -> str:
    """ "auto" -> "triton" (our fused kernel) on CUDA with triton installed, else "torch"; an
    explicit backend is returned as given."""
    if backend != "auto":
        return backend
    return "triton" if torch.device(device).type == "cuda" and triton_available(device) else "torch"


def ms_deform_attn(
    values: list[Tensor], locations: Tensor, weights: Tensor, *, query_chunk: int = 4096
) -> Tensor:
    """Deformable sampling, fast path.

    values: per level [B, H, Dh, h_l, w_l]; locations [B, Q, H, L, P, 2] (x, y) normalised as in
    the module docstring; weights [B, Q, H, L, P] (already normalised). Returns [B, Q, H*Dh]:
    sum over levels and points of weight x bilinear sample, per head, heads concatenated.
    """
    b, nq, h, nl, p, _ = locations.shape
    assert len(values) == nl, f"{len(values)} value levels for locations with {nl} levels"
    assert weights.shape == (b, nq, h, nl, p), (
        f"weights {tuple(weights.shape)} vs locations {tuple(locations.shape)}"
    )
    dh = values[0].shape[2]
    for v in values:
        assert v.shape[:3] == (b, h, dh), (
            f"value level {tuple(v.shape)} must be [B={b}, H={h}, Dh={dh}, h, w]"
        )
    # sample in float32 at least: bf16 grids would quantise locations to ~1/256 of the map
    values = [v if v.dtype in (torch.float32, torch.float64) else v.float() for v in values]
    locations = locations.to(values[0].dtype)
    chunks = []
    for s in range(0, nq, query_chunk):
        loc = locations[:, s : s + query_chunk]  # [B, q, H, L, P, 2]
        w = weights[:, s : s + query_chunk]
        q = loc.shape[1]
        acc = None
        for lvl, v in enumerate(values):
            grid = 2 * loc[:, :, :, lvl] - 1  # [B, q, H, P, 2]
            grid = grid.permute(0, 2, 1, 3, 4).reshape(b * h, q, p, 2)
            sampled = F.grid_sample(
                v.reshape(b * h, dh, *v.shape[-2:]),
                grid,
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )  # [B*H, Dh, q, P]
            wl = w[:, :, :, lvl].permute(0, 2, 1, 3).reshape(b * h, 1, q, p).to(sampled.dtype)
            part = (sampled * wl).sum(-1)  # [B*H, Dh, q]
            acc = part if acc is None else acc + part
        chunks.append(acc.view(b, h, dh, q).permute(0, 3, 1, 2).reshape(b, q, h * dh))
    return torch.cat(chunks, dim=1)


def _ms_deform_attn_reference(
    values: list[Tensor], locations: Tensor, weights: Tensor, *, query_chunk: int = 4096
) -> Tensor:
    """Reference path with the same signature: the bilinear weights of the four neighbouring
    pixel centres written out and gathered by index, zero outside the map."""
    del query_chunk
    b, nq, h, nl, p, _ = locations.shape
    dh = values[0].shape[2]
    out = torch.zeros(b, h, dh, nq, dtype=values[0].dtype, device=values[0].device)
    for lvl, v in enumerate(values):
        hl, wl = v.shape[-2:]
        flat = v.reshape(b, h, dh, hl * wl)
        x = locations[:, :, :, lvl, :, 0].permute(0, 2, 1, 3) * wl - 0.5  # [B, H, Q, P] pixel coords
        y = locations[:, :, :, lvl, :, 1].permute(0, 2, 1, 3) * hl - 0.5
        x0, y0 = torch.floor(x), torch.floor(y)
        wgt = weights[:, :, :, lvl].permute(0, 2, 1, 3)  # [B, H, Q, P]
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                bil = (1 - (x - xi).abs()) * (1 - (y - yi).abs())  # [B, H, Q, P]
                inside = (xi >= 0) & (xi < wl) & (yi >= 0) & (yi < hl)
                idx = (yi.clamp(0, hl - 1) * wl + xi.clamp(0, wl - 1)).long()  # [B, H, Q, P]
                g = torch.gather(flat, 3, idx.reshape(b, h, 1, nq * p).expand(b, h, dh, nq * p))
                g = g.reshape(b, h, dh, nq, p)
                out = out + (g * (bil * inside * wgt).to(g.dtype)[:, :, None]).sum(-1)
    return out.permute(0, 3, 1, 2).reshape(b, nq, h * dh)


def split_levels(values: Tensor, level_shapes: list[tuple[int, int]], heads: int) -> list[Tensor]:
    """values [N, S, H*Dh] channel-last, levels' rows concatenated (row-major) -> per level
    [N, H, Dh, h, w] (the layout of ``ms_deform_attn``)."""
    n, _, c = values.shape
    out, start = [], 0
    for h, w in level_shapes:
        lv = values[:, start : start + h * w].reshape(n, h, w, heads, c // heads)
        out.append(lv.permute(0, 3, 4, 1, 2))  # [N, H, Dh, h, w]
        start += h * w
    assert start == values.shape[1], f"level shapes {level_shapes} cover {start} of {values.shape[1]} rows"
    return out


def _multiview_deform_attn_torch(
    values: Tensor,
    level_shapes: list[tuple[int, int]],
    reference: Tensor,
    offsets: Tensor,
    weights: Tensor,
    view_w: Tensor,
    view_b: Tensor,
    *,
    query_chunk: int = 4096,
) -> Tensor:  # [B, Q, H*Dh]
    """The PyTorch path of :func:`multiview_deform_attn` (all views at once, ``ms_deform_attn``)."""
    b, v, _, c = values.shape
    _, nq, h, nl, p, _ = offsets.shape
    levels = split_levels(values.flatten(0, 1), level_shapes, h)  # per level [B*V, H, Dh, h, w]
    loc = reference[:, :, :, None, None, None, :] + offsets[:, None]  # [B, V, Q, H, L, P, 2]
    wts = weights[:, None].expand(b, v, nq, h, nl, p)
    out = ms_deform_attn(levels, loc.flatten(0, 1), wts.flatten(0, 1), query_chunk=query_chunk)
    out = out.view(b, v, nq, c)  # [B, V, Q, H*Dh]
    prob = (out @ view_w.to(out.dtype) + view_b.to(out.dtype)).softmax(dim=1)  # [B, V, Q]
    return (out * prob[..., None]).sum(1)


def multiview_deform_attn(
    values: Tensor,
    level_shapes: list[tuple[int, int]],
    reference: Tensor,
    offsets: Tensor,
    weights: Tensor,
    view_w: Tensor,
    view_b: Tensor,
    *,
    backend: DeformBackend = "auto",
    query_chunk: int = 4096,
) -> Tensor:  # [B, Q, H*Dh]
    """Deformable sampling in every view, fused over views by a softmax of a linear score.

    values [B, V, S, H*Dh] channel-last per view, the levels' rows concatenated (level l holds
    h_l*w_l rows, row-major; ``level_shapes`` [(h_l, w_l), ...]); reference [B, V, Q, 2] (x, y)
    normalised as in the module doc; offsets [B, Q, H, L, P, 2] normalised map units (shared by
    the views); weights [B, Q, H, L, P] (already normalised); view_w [H*Dh], view_b [1] (the
    ``cross_view_weight`` Linear). out_v = ``ms_deform_attn`` of view v at reference_v + offsets;
    returns sum_v softmax_v(out_v . view_w + view_b) out_v [B, Q, H*Dh], float32 (float64 for
    float64 values on the torch path). ``backend``: "torch", "triton" (ours) or "auto"."""
    backend = resolve_deform_backend(backend, values.device)  # type: ignore[assignment]
    if backend == "torch":
        return _multiview_deform_attn_torch(
            values, level_shapes, reference, offsets, weights, view_w, view_b, query_chunk=query_chunk
        )
    if not triton_available(values.device):
        raise RuntimeError(
            f"the fused deformable attention needs triton and a CUDA tensor (or TRITON_INTERPRET=1 on the "
            f"CPU, for tests); tensor on {values.device}; use backend='torch'"
        )
    from pipelines.models.blocks.kernels.deform_attn import multiview_deform_attn_triton

    shapes = tuple((int(hh), int(ww)) for hh, ww in level_shapes)
    return multiview_deform_attn_triton(values, shapes, reference, offsets, weights, view_w, view_b)


class DeformableAttention(nn.Module):
    """Per-view multi-scale deformable attention (the BEVFormer/VoxFormer ``MSDeformableAttention3D``
    with one reference point per query). Parameter names follow that module:
    ``sampling_offsets`` Linear(D -> H*L*P*2), ``attention_weights`` Linear(D -> H*L*P),
    ``value_proj`` Linear(C_value -> D). No output projection inside."""

    def __init__(self, query_dim: int, value_dim: int, heads: int, levels: int, points: int) -> None:
        super().__init__()
        assert query_dim % heads == 0, f"query_dim {query_dim} not divisible by heads {heads}"
        self.query_dim, self.value_dim = query_dim, value_dim
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(query_dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(query_dim, heads * levels * points)
        self.value_proj = nn.Linear(value_dim, query_dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Deformable-DETR init: offsets start on a ring of head directions (cos, sin) scaled to
        unit max-norm and by (point index + 1) feature pixels; uniform sampling weights."""
        nn.init.zeros_(self.sampling_offsets.weight)
        if self.sampling_offsets.bias.is_meta:
            return
        thetas = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values  # [H, 2]
        grid = grid[:, None, None, :].repeat(1, self.levels, self.points, 1)  # [H, L, P, 2]
        grid = grid * torch.arange(1, self.points + 1, dtype=torch.float32)[None, None, :, None]
        self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)

    def project_values(self, feats: list[Tensor]) -> list[Tensor]:
        """feats per level [N, C_value, h, w] -> [N, H, Dh, h, w]."""
        out = []
        for f in feats:
            n, c, hh, ww = f.shape
            assert c == self.value_dim, f"value channels {c} != value_dim {self.value_dim}"
            v = self.value_proj(f.permute(0, 2, 3, 1))  # [N, h, w, D]
            out.append(v.reshape(n, hh, ww, self.heads, -1).permute(0, 3, 4, 1, 2).contiguous())
        return out

    def project_values_flat(self, feats: list[Tensor]) -> Tensor:
        """feats per level [N, C_value, h, w] -> [N, S, D] channel-last, the levels' rows
        concatenated (S = sum h*w; the layout of :func:`multiview_deform_attn`)."""
        out = []
        for f in feats:
            assert f.shape[1] == self.value_dim, f"value channels {f.shape[1]} != value_dim {self.value_dim}"
            out.append(self.value_proj(f.flatten(2).transpose(1, 2)))  # [N, h*w, D]
        return torch.cat(out, dim=1)

    def sampling(self, query: Tensor, spatial_shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """query [B, Q, D] -> (offsets [B, Q, H, L, P, 2] in normalised map units, i.e. feature
        pixels divided by each level's (w, h); weights [B, Q, H, L, P], softmax over L*P)."""
        b, nq, _ = query.shape
        h, nl, p = self.heads, self.levels, self.points
        assert len(spatial_shapes) == nl, f"{len(spatial_shapes)} levels given, module has {nl}"
        off = self.sampling_offsets(query).view(b, nq, h, nl, p, 2)
        norm = torch.tensor(
            [[w, hh] for hh, w in spatial_shapes], dtype=off.dtype, device=off.device
        )  # [L, 2]
        off = off / norm[None, None, None, :, None, :]
        wts = self.attention_weights(query).view(b, nq, h, nl * p).softmax(-1).view(b, nq, h, nl, p)
        return off, wts

    def forward(
        self, query: Tensor, feats: list[Tensor], reference: Tensor, *, query_chunk: int = 4096
    ) -> Tensor:
        """query [B, Q, D]; feats per level [B, C_value, h, w]; reference [B, Q, 2] normalised.
        Returns [B, Q, D]."""
        off, wts = self.sampling(query, [tuple(f.shape[-2:]) for f in feats])
        loc = reference[:, :, None, None, None, :] + off
        return ms_deform_attn(self.project_values(feats), loc, wts, query_chunk=query_chunk)


class MultiViewDeformableAttention(nn.Module):
    """Deformable cross-attention from 3D queries to the feature maps of V views (GeoLRM's
    ``MSDCAWrapper``): per view ``out_v = DeformableAttention(query, feats_v, ref_v)``, mixed by
    ``softmax_v(cross_view_weight(out_v))``, then ``output_proj``; the result is added to the
    query passed in (GeoLRM passes the RMS-normalised query, so the residual is the normalised
    one). PyTorch path: views in chunks with a running (online) softmax, so memory does not grow
    with V; fused path (``backend``, module doc): :func:`multiview_deform_attn` on our kernel;
    ``_forward_dense`` is the all-views-at-once reference."""

    def __init__(
        self, query_dim: int, value_dim: int, heads: int, levels: int, points: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.deformable_attention = DeformableAttention(query_dim, value_dim, heads, levels, points)
        self.output_proj = nn.Linear(query_dim, query_dim)
        self.cross_view_weight = nn.Linear(query_dim, 1)
        self.dropout = nn.Dropout(dropout)
        self.backend: DeformBackend = "auto"
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def _check(self, query: Tensor, feats: list[Tensor], reference: Tensor) -> tuple[int, int, int]:
        b, nq, d = query.shape
        v = reference.shape[1]
        assert reference.shape == (b, v, nq, 2), (
            f"reference must be [B, V, Q, 2] = {(b, v, nq, 2)}, got {tuple(reference.shape)}"
        )
        for f in feats:
            assert f.ndim == 5 and f.shape[:2] == (b, v), (
                f"feature level must be [B={b}, V={v}, C, h, w], got {tuple(f.shape)}"
            )
        return b, v, nq

    def _views(
        self,
        query: Tensor,
        feats: list[Tensor],
        reference: Tensor,
        off: Tensor,
        wts: Tensor,
        query_chunk: int,
    ) -> Tensor:
        """Per-view outputs [B, Vc, Q, D] for a chunk of views (feats [B, Vc, C, h, w])."""
        b, vc, nq, _ = reference.shape
        da = self.deformable_attention
        values = da.project_values([f.flatten(0, 1) for f in feats])  # [B*Vc, H, Dh, h, w]
        loc = reference[:, :, :, None, None, None, :] + off[:, None]  # [B, Vc, Q, H, L, P, 2]
        wv = wts[:, None].expand(b, vc, *wts.shape[1:])
        out = ms_deform_attn(values, loc.flatten(0, 1), wv.flatten(0, 1), query_chunk=query_chunk)
        return out.view(b, vc, nq, -1)

    def forward(
        self,
        query: Tensor,
        feats: list[Tensor],
        reference: Tensor,
        *,
        view_chunk: int = 4,
        query_chunk: int = 4096,
    ) -> Tensor:
        """query [B, Q, D]; feats per level [B, V, C_value, h, w]; reference [B, V, Q, 2]
        normalised image coordinates of each query in each view. Returns [B, Q, D]."""
        b, v, nq = self._check(query, feats, reference)
        if resolve_deform_backend(self.backend, query.device) == "triton":
            return self._forward_fused(query, feats, reference)
        off, wts = self.deformable_attention.sampling(query, [tuple(f.shape[-2:]) for f in feats])
        m = num = den = None
        for s in range(0, v, view_chunk):
            out = self._views(
                query,
                [f[:, s : s + view_chunk] for f in feats],
                reference[:, s : s + view_chunk],
                off,
                wts,
                query_chunk,
            )
            logit = self.cross_view_weight(out)  # [B, Vc, Q, 1]
            m_new = logit.amax(1) if m is None else torch.maximum(m, logit.amax(1))  # [B, Q, 1]
            e = torch.exp(logit - m_new[:, None])
            part_num, part_den = (e * out).sum(1), e.sum(1)  # [B, Q, D], [B, Q, 1]
            if m is None:
                num, den = part_num, part_den
            else:
                rescale = torch.exp(m - m_new)
                num, den = num * rescale + part_num, den * rescale + part_den
            m = m_new
        fused = num / den
        return query + self.dropout(self.output_proj(fused))

    def _forward_fused(self, query: Tensor, feats: list[Tensor], reference: Tensor) -> Tensor:
        """Every view in one call of our fused kernel (:func:`multiview_deform_attn`)."""
        b, v, _ = self._check(query, feats, reference)
        da = self.deformable_attention
        shapes = [tuple(f.shape[-2:]) for f in feats]
        off, wts = da.sampling(query, shapes)
        values = da.project_values_flat([f.flatten(0, 1) for f in feats])  # [B*V, S, D]
        values = values.view(b, v, *values.shape[1:])  # [B, V, S, D]
        fused = multiview_deform_attn(
            values,
            shapes,
            reference,
            off,
            wts,
            self.cross_view_weight.weight[0],
            self.cross_view_weight.bias,
            backend="triton",
        )  # [B, Q, D] float32
        return query + self.dropout(self.output_proj(fused.to(query.dtype)))

    def _forward_dense(
        self, query: Tensor, feats: list[Tensor], reference: Tensor, *, query_chunk: int = 4096
    ) -> Tensor:
        """Reference path with the same inputs: every view at once, plain softmax over views."""
        self._check(query, feats, reference)
        off, wts = self.deformable_attention.sampling(query, [tuple(f.shape[-2:]) for f in feats])
        out = self._views(query, feats, reference, off, wts, query_chunk)  # [B, V, Q, D]
        w = self.cross_view_weight(out).softmax(1)
        return query + self.dropout(self.output_proj((out * w).sum(1)))


def set_deform_backend(module: nn.Module, backend: DeformBackend) -> None:
    """Choose the path of every MultiViewDeformableAttention inside ``module`` ("auto", "torch",
    "triton")."""
    for m in module.modules():
        if isinstance(m, MultiViewDeformableAttention):
            m.backend = backend


def deform_backend_of(module: nn.Module, device: torch.device | str) -> str | None:
    """The path the deformable cross-attention inside ``module`` takes on ``device`` (the first
    one's setting, resolved), or None without one."""
    for m in module.modules():
        if isinstance(m, MultiViewDeformableAttention):
            return resolve_deform_backend(m.backend, device)
    return None
