"""Fused multi-view deformable attention in Triton, forward and backward (our kernels; imported
lazily by ``deformable_attention.multiview_deform_attn``).

For each query q, head h (Dh channels) and view v, with values channel-last per view:

    out_v[q, h] = sum_{l, p} a[q, h, l, p] * bilinear(values[v, level l, :, h], ref[v, q] + off[q, h, l, p])
    logit_v[q]  = <out_v[q], view_w> + view_b                     (out_v[q] = all heads, [H*Dh])
    fused[q]    = sum_v softmax_v(logit)[v] * out_v[q]

Bilinear sampling as ``F.grid_sample(align_corners=False, padding_mode="zeros")``: a location
(x, y) in [0, 1]^2 maps to pixel coordinates (x w - 0.5, y h - 0.5) (pixel i has its centre at
(i + 0.5) / w); the four neighbouring pixel centres are weighted (1-|dx|)(1-|dy|) and those
outside the map read zero. One program handles a tile of queries with every head and channel,
loops over views (online softmax), levels, points and the four corners: nothing per view is
written to memory.

Backward (one program per query tile, two passes over the views): pass 1 recomputes out_v and
gives dlogit_v = p_v (<dfused, out_v> - <dfused, fused>) and d view_w = sum dlogit_v out_v;
pass 2, per level and point, with G_v = p_v dfused + dlogit_v view_w the gradient reaching
out_v: d a = sum_v <G_v, sample_v>, d location from the derivative of the bilinear weights,
d values by atomic adds of a * corner weight * G_v. Offsets and weights are shared by the
views, so their gradients are sums over views; d ref_v sums over heads, levels and points.
(d view_b is 0: a bias common to every view cancels in the softmax.)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pipelines.models.blocks.kernels import next_pow2

# queries x heads x channels per program, and warps: no register spills for sm_90 at GeoLRM's
# sizes (16 heads x 48 channels; ptxas -v on the compiled kernels)
TILE_FWD, TILE_BWD, NUM_WARPS = 4096, 1024, 8


@triton.jit
def _corner(vbase, start, xi, yi, wl, hl, ok_qh, col, md, C):
    """Values at integer pixel (xi, yi) [BQ, BH] of one level -> [BQ, BH, BD] float32 (0 outside)."""
    ok = ok_qh & (xi >= 0) & (xi < wl) & (yi >= 0) & (yi < hl)
    pix = (start + yi * wl + xi).to(tl.int64)
    ptrs = vbase + pix[:, :, None] * C + col[None, :, :]
    return tl.load(ptrs, mask=ok[:, :, None] & md[None, None, :], other=0.0).to(tl.float32)


@triton.jit
def _pixel_coords(rx, ry, ox, oy, wl, hl):
    """Normalised location (ref + offset) -> (x0, y0 integer corner, fx, fy fractions)."""
    px = (rx[:, None] + ox) * wl - 0.5
    py = (ry[:, None] + oy) * hl - 0.5
    px = tl.minimum(tl.maximum(px, -2.0), wl + 1.0)  # far outside: every corner stays outside
    py = tl.minimum(tl.maximum(py, -2.0), hl + 1.0)
    x0f, y0f = tl.floor(px), tl.floor(py)
    return x0f.to(tl.int32), y0f.to(tl.int32), px - x0f, py - y0f


@triton.jit
def _sample_view(
    val_ptr,
    shape_ptr,
    ref_ptr,
    off_ptr,
    wt_ptr,
    b,
    v,
    q,
    hh,
    col,
    mq,
    mh,
    md,
    Q,
    V,
    S,
    H,
    C,
    NL: tl.constexpr,
    NP: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """out_v [BQ, BH, BD] float32 for view v (module doc)."""
    rbase = ((b * V + v) * Q + q) * 2
    rx = tl.load(ref_ptr + rbase, mask=mq, other=0.0).to(tl.float32)
    ry = tl.load(ref_ptr + rbase + 1, mask=mq, other=0.0).to(tl.float32)
    vbase = val_ptr + (b * V + v) * S * C
    mqh = mq[:, None] & mh[None, :]
    qh = (b * Q + q[:, None]) * H + hh[None, :]  # [BQ, BH]
    acc = tl.zeros([BLOCK_Q, BLOCK_H, BLOCK_D], dtype=tl.float32)
    for lvl in range(NL):
        hl, wl, start = (
            tl.load(shape_ptr + 3 * lvl),
            tl.load(shape_ptr + 3 * lvl + 1),
            tl.load(shape_ptr + 3 * lvl + 2),
        )
        for p in range(NP):
            k = qh * (NL * NP) + lvl * NP + p
            ox = tl.load(off_ptr + 2 * k, mask=mqh, other=0.0).to(tl.float32)
            oy = tl.load(off_ptr + 2 * k + 1, mask=mqh, other=0.0).to(tl.float32)
            a = tl.load(wt_ptr + k, mask=mqh, other=0.0).to(tl.float32)
            x0, y0, fx, fy = _pixel_coords(rx, ry, ox, oy, wl, hl)
            s = ((1 - fx) * (1 - fy))[:, :, None] * _corner(vbase, start, x0, y0, wl, hl, mqh, col, md, C)
            s += (fx * (1 - fy))[:, :, None] * _corner(vbase, start, x0 + 1, y0, wl, hl, mqh, col, md, C)
            s += ((1 - fx) * fy)[:, :, None] * _corner(vbase, start, x0, y0 + 1, wl, hl, mqh, col, md, C)
            s += (fx * fy)[:, :, None] * _corner(vbase, start, x0 + 1, y0 + 1, wl, hl, mqh, col, md, C)
            acc += a[:, :, None] * s
    return acc


@triton.jit
def _deform_attn_fwd_kernel(
    val_ptr,
    shape_ptr,
    ref_ptr,
    off_ptr,
    wt_ptr,
    vw_ptr,
    vb_ptr,
    out_ptr,
    logit_ptr,
    Q,
    V,
    S,
    H,
    DH,
    NL: tl.constexpr,
    NP: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid_q, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    C = H * DH
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    hh, dd = tl.arange(0, BLOCK_H), tl.arange(0, BLOCK_D)
    mq, mh, md = q < Q, hh < H, dd < DH
    col = hh[:, None] * DH + dd[None, :]  # [BH, BD]
    mcol = mh[:, None] & md[None, :]
    vw = tl.load(vw_ptr + col, mask=mcol, other=0.0).to(tl.float32)
    vb = tl.load(vb_ptr).to(tl.float32)
    run_max = tl.full([BLOCK_Q], float("-inf"), dtype=tl.float32)
    den = tl.zeros([BLOCK_Q], dtype=tl.float32)
    num = tl.zeros([BLOCK_Q, BLOCK_H, BLOCK_D], dtype=tl.float32)
    for v in range(V):
        o = _sample_view(
            val_ptr,
            shape_ptr,
            ref_ptr,
            off_ptr,
            wt_ptr,
            b,
            v,
            q,
            hh,
            col,
            mq,
            mh,
            md,
            Q,
            V,
            S,
            H,
            C,
            NL,
            NP,
            BLOCK_Q,
            BLOCK_H,
            BLOCK_D,
        )
        logit = tl.sum(tl.sum(o * vw[None, :, :], axis=2), axis=1) + vb
        tl.store(logit_ptr + (b * V + v) * Q + q, logit, mask=mq)
        new_max = tl.maximum(run_max, logit)
        rescale = tl.exp(run_max - new_max)
        e = tl.exp(logit - new_max)
        num = num * rescale[:, None, None] + e[:, None, None] * o
        den = den * rescale + e
        run_max = new_max
    fused = num / den[:, None, None]
    m = mq[:, None, None] & mcol[None, :, :]
    tl.store(out_ptr + (b * Q + q[:, None, None]) * C + col[None, :, :], fused, mask=m)


@triton.jit
def _deform_attn_bwd_kernel(
    val_ptr,
    shape_ptr,
    ref_ptr,
    off_ptr,
    wt_ptr,
    vw_ptr,
    fused_ptr,
    logit_ptr,
    dfused_ptr,
    dval_ptr,
    dref_ptr,
    doff_ptr,
    dwt_ptr,
    dvw_ptr,
    Q,
    V,
    S,
    H,
    DH,
    NL: tl.constexpr,
    NP: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    pid_q, b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    C = H * DH
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    hh, dd, vv = tl.arange(0, BLOCK_H), tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_V)
    mq, mh, md, mv = q < Q, hh < H, dd < DH, vv < V
    col = hh[:, None] * DH + dd[None, :]
    mcol = mh[:, None] & md[None, :]
    m3 = mq[:, None, None] & mcol[None, :, :]
    vw = tl.load(vw_ptr + col, mask=mcol, other=0.0).to(tl.float32)
    dfused = tl.load(dfused_ptr + (b * Q + q[:, None, None]) * C + col[None, :, :], mask=m3, other=0.0)
    fused = tl.load(fused_ptr + (b * Q + q[:, None, None]) * C + col[None, :, :], mask=m3, other=0.0)
    s0 = tl.sum(tl.sum(dfused * fused, axis=2), axis=1)  # [BQ]

    # view probabilities from the saved logits
    mqv = mq[:, None] & mv[None, :]
    lg = tl.load(logit_ptr + (b * V + vv[None, :]) * Q + q[:, None], mask=mqv, other=float("-inf"))
    lmax = tl.where(mq, tl.max(lg, axis=1), 0.0)
    e = tl.where(mqv, tl.exp(lg - lmax[:, None]), 0.0)
    esum = tl.sum(e, axis=1)
    prob = e / tl.where(esum > 0, esum, 1.0)[:, None]  # [BQ, BV]

    # pass 1: dlogit per view, d view_w
    dlogit = tl.zeros([BLOCK_Q, BLOCK_V], dtype=tl.float32)
    dvw = tl.zeros([BLOCK_H, BLOCK_D], dtype=tl.float32)
    for v in range(V):
        o = _sample_view(
            val_ptr,
            shape_ptr,
            ref_ptr,
            off_ptr,
            wt_ptr,
            b,
            v,
            q,
            hh,
            col,
            mq,
            mh,
            md,
            Q,
            V,
            S,
            H,
            C,
            NL,
            NP,
            BLOCK_Q,
            BLOCK_H,
            BLOCK_D,
        )
        pv = tl.sum(tl.where(vv[None, :] == v, prob, 0.0), axis=1)
        dl = pv * (tl.sum(tl.sum(dfused * o, axis=2), axis=1) - s0)  # [BQ]
        dlogit = tl.where(vv[None, :] == v, dl[:, None], dlogit)
        dvw += tl.sum(dl[:, None, None] * o, axis=0)
    tl.store(dvw_ptr + (b * tl.num_programs(0) + pid_q) * C + col, dvw, mask=mcol)

    # pass 2: per level and point, sum over views
    mqh = mq[:, None] & mh[None, :]
    qh = (b * Q + q[:, None]) * H + hh[None, :]
    drx = tl.zeros([BLOCK_Q, BLOCK_V], dtype=tl.float32)
    dry = tl.zeros([BLOCK_Q, BLOCK_V], dtype=tl.float32)
    for lvl in range(NL):
        hl, wl, start = (
            tl.load(shape_ptr + 3 * lvl),
            tl.load(shape_ptr + 3 * lvl + 1),
            tl.load(shape_ptr + 3 * lvl + 2),
        )
        for p in range(NP):
            k = qh * (NL * NP) + lvl * NP + p
            ox = tl.load(off_ptr + 2 * k, mask=mqh, other=0.0).to(tl.float32)
            oy = tl.load(off_ptr + 2 * k + 1, mask=mqh, other=0.0).to(tl.float32)
            a = tl.load(wt_ptr + k, mask=mqh, other=0.0).to(tl.float32)
            da = tl.zeros([BLOCK_Q, BLOCK_H], dtype=tl.float32)
            dlx = tl.zeros([BLOCK_Q, BLOCK_H], dtype=tl.float32)
            dly = tl.zeros([BLOCK_Q, BLOCK_H], dtype=tl.float32)
            for v in range(V):
                sel = vv[None, :] == v
                pv = tl.sum(tl.where(sel, prob, 0.0), axis=1)
                dl = tl.sum(tl.where(sel, dlogit, 0.0), axis=1)
                G = pv[:, None, None] * dfused + dl[:, None, None] * vw[None, :, :]  # d out_v
                rbase = ((b * V + v) * Q + q) * 2
                rx = tl.load(ref_ptr + rbase, mask=mq, other=0.0).to(tl.float32)
                ry = tl.load(ref_ptr + rbase + 1, mask=mq, other=0.0).to(tl.float32)
                vbase = val_ptr + (b * V + v) * S * C
                dvbase = dval_ptr + (b * V + v) * S * C
                x0, y0, fx, fy = _pixel_coords(rx, ry, ox, oy, wl, hl)
                gx = tl.zeros([BLOCK_Q, BLOCK_H], dtype=tl.float32)
                gy = tl.zeros([BLOCK_Q, BLOCK_H], dtype=tl.float32)
                for corner in tl.static_range(4):
                    cx = corner % 2  # corner (x0 + cx, y0 + cy)
                    cy = corner // 2
                    wx = cx * fx + (1 - cx) * (1 - fx)
                    wy = cy * fy + (1 - cy) * (1 - fy)
                    xi, yi = x0 + cx, y0 + cy
                    val = _corner(vbase, start, xi, yi, wl, hl, mqh, col, md, C)
                    gv = tl.sum(G * val, axis=2)  # [BQ, BH]
                    da += wx * wy * gv
                    gx += (2 * cx - 1) * wy * gv
                    gy += (2 * cy - 1) * wx * gv
                    ok = mqh & (xi >= 0) & (xi < wl) & (yi >= 0) & (yi < hl)
                    pix = (start + yi * wl + xi).to(tl.int64)
                    tl.atomic_add(
                        dvbase + pix[:, :, None] * C + col[None, :, :],
                        (a * wx * wy)[:, :, None] * G,
                        mask=ok[:, :, None] & md[None, None, :],
                    )
                lx, ly = a * gx * wl, a * gy * hl  # d location (normalised units)
                dlx += lx
                dly += ly
                drx = tl.where(sel, drx + tl.sum(lx, axis=1)[:, None], drx)
                dry = tl.where(sel, dry + tl.sum(ly, axis=1)[:, None], dry)
            tl.store(dwt_ptr + k, da, mask=mqh)
            tl.store(doff_ptr + 2 * k, dlx, mask=mqh)
            tl.store(doff_ptr + 2 * k + 1, dly, mask=mqh)
    rptr = dref_ptr + ((b * V + vv[None, :]) * Q + q[:, None]) * 2
    tl.store(rptr, drx, mask=mqv)
    tl.store(rptr + 1, dry, mask=mqv)


def _blocks(H: int, Dh: int, V: int, tile: int) -> tuple[int, int, int, int]:
    """(queries, heads, channels, views) per program, powers of two."""
    bh, bd = next_pow2(H), next_pow2(Dh)
    return max(1, min(16, tile // (bh * bd))), bh, bd, next_pow2(V)


def _shape_table(level_shapes: tuple[tuple[int, int], ...], device: torch.device) -> Tensor:
    """[L, 3] int32: (h, w, first row in the concatenated value rows) per level."""
    rows, start = [], 0
    for h, w in level_shapes:
        rows.append((h, w, start))
        start += h * w
    return torch.tensor(rows, dtype=torch.int32, device=device)


class _MultiViewDeformAttn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, reference, offsets, weights, view_w, view_b, level_shapes):
        B, V, S, C = values.shape
        _, Q, H, NL, NP, _ = offsets.shape
        shapes = _shape_table(level_shapes, values.device)
        bq, bh, bd, _ = _blocks(H, C // H, V, TILE_FWD)
        fused = torch.empty(B, Q, C, dtype=torch.float32, device=values.device)
        logits = torch.empty(B, V, Q, dtype=torch.float32, device=values.device)
        _deform_attn_fwd_kernel[(triton.cdiv(Q, bq), B)](
            values, shapes, reference, offsets, weights, view_w, view_b, fused, logits, Q, V, S, H, C // H,
            NL=NL, NP=NP, BLOCK_Q=bq, BLOCK_H=bh, BLOCK_D=bd, num_warps=NUM_WARPS,
        )  # fmt: skip
        ctx.save_for_backward(values, reference, offsets, weights, view_w, view_b, fused, logits, shapes)
        return fused

    @staticmethod
    def backward(ctx, dfused):
        values, reference, offsets, weights, view_w, view_b, fused, logits, shapes = ctx.saved_tensors
        B, V, S, C = values.shape
        _, Q, H, NL, NP, _ = offsets.shape
        bq, bh, bd, bv = _blocks(H, C // H, V, TILE_BWD)
        nq = triton.cdiv(Q, bq)
        f32 = dict(dtype=torch.float32, device=values.device)
        dval = torch.zeros(B, V, S, C, **f32)  # atomic adds
        dref, doff, dwt = (
            torch.empty(B, V, Q, 2, **f32),
            torch.empty(offsets.shape, **f32),
            torch.empty(weights.shape, **f32),
        )
        dvw = torch.empty(B * nq, C, **f32)
        _deform_attn_bwd_kernel[(nq, B)](
            values, shapes, reference, offsets, weights, view_w, fused, logits, dfused.float().contiguous(),
            dval, dref, doff, dwt, dvw, Q, V, S, H, C // H, NL=NL, NP=NP, BLOCK_Q=bq, BLOCK_H=bh,
            BLOCK_D=bd, BLOCK_V=bv, num_warps=NUM_WARPS,
        )  # fmt: skip
        return (
            dval.to(values.dtype),
            dref.to(reference.dtype),
            doff.to(offsets.dtype),
            dwt.to(weights.dtype),
            dvw.sum(0).to(view_w.dtype),
            torch.zeros_like(view_b),
            None,
        )


def multiview_deform_attn_triton(
    values: Tensor,
    level_shapes: tuple[tuple[int, int], ...],
    reference: Tensor,
    offsets: Tensor,
    weights: Tensor,
    view_w: Tensor,
    view_b: Tensor,
) -> Tensor:  # [B, Q, H*Dh] float32
    """values [B, V, S, H*Dh] channel-last, levels' rows concatenated (level l: h_l*w_l rows,
    row-major); level_shapes ((h_l, w_l), ...); reference [B, V, Q, 2] (x, y) normalised;
    offsets [B, Q, H, L, P, 2] normalised map units; weights [B, Q, H, L, P]; view_w [H*Dh];
    view_b [1] or []. Returns the view-fused result [B, Q, H*Dh] float32 (module doc).
    Differentiable in every tensor argument."""
    B, V, S, C = values.shape
    _, Q, H, NL, NP, _ = offsets.shape
    assert S == sum(h * w for h, w in level_shapes) and len(level_shapes) == NL, (S, level_shapes, NL)
    assert C % H == 0 and reference.shape == (B, V, Q, 2) and weights.shape == offsets.shape[:-1], (
        tuple(values.shape),
        tuple(reference.shape),
        tuple(offsets.shape),
        tuple(weights.shape),
    )
    assert view_w.shape == (C,) and view_b.numel() == 1, (tuple(view_w.shape), tuple(view_b.shape))
    return _MultiViewDeformAttn.apply(
        values.contiguous(),
        reference.contiguous(),
        offsets.contiguous(),
        weights.contiguous(),
        view_w.contiguous(),
        view_b.reshape(()),
        tuple(tuple(int(v) for v in s) for s in level_shapes),
    )
