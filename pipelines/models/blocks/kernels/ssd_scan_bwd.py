"""Backward of the SSD chunk scan (``ssd_scan``; the formulas are in its module docstring):
the gradient reaching each chunk's entering state and its reverse recurrence, then per chunk
d(x), d(dt) and the S-gradient (``_chunk_scan_bwd_dx``), dC and dB summed over the heads of a
group inside the kernel (no atomics), and the reverse cumulative sum that turns S-gradients into
d(dt A), through clamp and softplus to dt_raw (``_dt_bwd``). Imported lazily.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pipelines.models.blocks.kernels import next_pow2
from pipelines.models.blocks.kernels.ssd_scan import (
    ScanGeometry,
    ScanSaved,
    _chunk_state_kernel,
    _prec,
    _rows,
    _softplus,
)


# ----------------------------------------------------------------------------------- backward
@triton.jit
def _state_passing_bwd_kernel(dh_ptr, hin_ptr, S_ptr, E_ptr, H, nc, cs, PN, n_blk, BLOCK: tl.constexpr):
    """In place: dh[b, c, h] (dH_c, the gradient reaching hin_c from chunk c's outputs) becomes
    dst_c = dL/dhin_{c+1}; E[b, h, c, blk] = partial <dst_c, hin_{c+1}>."""
    pid_bh, pid_e = tl.program_id(0), tl.program_id(1)
    h, b = pid_bh % H, (pid_bh // H).to(tl.int64)
    offs = pid_e * BLOCK + tl.arange(0, BLOCK)
    m = offs < PN
    grad = tl.zeros([BLOCK], dtype=tl.float32)  # dL/dhin_{c+1}
    for cc in range(nc):
        c = nc - 1 - cc
        ptrs = dh_ptr + ((b * nc + c) * H + h) * PN + offs
        direct = tl.load(ptrs, mask=m, other=0.0)
        tl.store(ptrs, grad, mask=m)
        nxt = tl.load(
            hin_ptr + ((b * nc + c + 1) * H + h) * PN + offs, mask=m & (offs * 0 + c + 1 < nc), other=0.0
        )
        tl.store(E_ptr + ((b * H + h) * nc + c) * n_blk + pid_e, tl.sum(grad * nxt, axis=0))
        decay = tl.exp(tl.load(S_ptr + ((b * H + h) * nc + c) * cs + cs - 1))
        grad = direct + decay * grad


@triton.jit
def _chunk_scan_bwd_dx_kernel(
    x_ptr,
    B_ptr,
    dt_ptr,
    S_ptr,
    cb_ptr,
    dst_ptr,
    D_ptr,
    dy_ptr,
    y_ptr,
    dx_ptr,
    ddt_ptr,
    dS_ptr,
    dD_ptr,
    L,
    H,
    cs,
    nc,
    R,
    G,
    P,
    N,
    s_xb,
    s_xl,
    s_yb,
    s_yl,
    s_dxb,
    s_dxl,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """For one tile of positions j (whole headdim): u_j, dx_j, x_j.u_j, dS_j and a partial dD."""
    pid0, pid_j = tl.program_id(0), tl.program_id(1)
    h = pid0 % H
    c = (pid0 // H) % nc
    b = (pid0 // (H * nc)).to(tl.int64)
    g = h // R
    offs_j = pid_j * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_p = tl.arange(0, BLOCK_P)
    mp = offs_p < P
    row_j, valid_j = _rows(c, offs_j, cs, L, REVERSE)
    mj = valid_j[:, None] & mp[None, :]
    seq = ((b * H + h) * nc + c) * cs
    S_j = tl.load(S_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
    dt_j = tl.load(dt_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
    S_last = tl.load(S_ptr + seq + cs - 1)

    # through the chunk's end state: exp(S_last - S_j) B_j dst^T
    u = tl.zeros([BLOCK_T, BLOCK_P], dtype=tl.float32)
    dst = dst_ptr + ((b * nc + c) * H + h) * P * N
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mn = offs_n < N
        bb = tl.load(
            B_ptr + b * s_xb + row_j[:, None] * s_xl + g * N + offs_n[None, :],
            mask=valid_j[:, None] & mn[None, :],
            other=0.0,
        ).to(tl.float32)
        dT = tl.load(dst + offs_p[None, :] * N + offs_n[:, None], mask=mn[:, None] & mp[None, :], other=0.0)
        u += tl.dot(bb, dT, input_precision=PREC)
    u = u * tl.exp(S_last - S_j)[:, None]

    # inside the chunk: sum_{i >= j} cb_ij exp(S_i - S_j) dy_i
    cb = cb_ptr + ((b * nc + c) * G + g) * cs * cs
    for i0 in range(pid_j * BLOCK_T, cs, BLOCK_T):
        offs_i = i0 + tl.arange(0, BLOCK_T)
        row_i, valid_i = _rows(c, offs_i, cs, L, REVERSE)
        S_i = tl.load(S_ptr + seq + offs_i, mask=offs_i < cs, other=0.0)
        causal = (offs_i[None, :] >= offs_j[:, None]) & valid_i[None, :] & (offs_j < cs)[:, None]  # [j, i]
        cbT = tl.load(cb + offs_i[None, :] * cs + offs_j[:, None], mask=causal, other=0.0)
        decay = tl.exp(tl.where(causal, S_i[None, :] - S_j[:, None], float("-inf")))
        dy_i = tl.load(
            dy_ptr + b * s_yb + row_i[:, None] * s_yl + h * P + offs_p[None, :],
            mask=valid_i[:, None] & mp[None, :],
            other=0.0,
        )
        u += tl.dot(cbT * decay, dy_i, input_precision=PREC)

    x_j = tl.load(x_ptr + b * s_xb + row_j[:, None] * s_xl + h * P + offs_p[None, :], mask=mj, other=0.0)
    x_j = x_j.to(tl.float32)
    dy_j = tl.load(dy_ptr + b * s_yb + row_j[:, None] * s_yl + h * P + offs_p[None, :], mask=mj, other=0.0)
    y_j = tl.load(y_ptr + b * s_yb + row_j[:, None] * s_yl + h * P + offs_p[None, :], mask=mj, other=0.0)
    Dh = tl.load(D_ptr + h).to(tl.float32)
    dx = dt_j[:, None] * u + Dh * dy_j
    tl.store(dx_ptr + b * s_dxb + row_j[:, None] * s_dxl + h * P + offs_p[None, :], dx, mask=mj)
    xu = tl.sum(x_j * u, axis=1)
    dS = tl.sum(dy_j * (y_j - Dh * x_j), axis=1) - dt_j * xu
    tl.store(ddt_ptr + seq + offs_j, xu, mask=offs_j < cs)
    tl.store(dS_ptr + seq + offs_j, dS, mask=offs_j < cs)
    tl.store(dD_ptr + pid0 * tl.num_programs(1) + pid_j, tl.sum(tl.sum(dy_j * x_j, axis=1), axis=0))


@triton.jit
def _chunk_scan_bwd_dc_kernel(
    dy_ptr,
    x_ptr,
    B_ptr,
    dt_ptr,
    S_ptr,
    hin_ptr,
    dC_ptr,
    L,
    H,
    cs,
    nc,
    R,
    G,
    P,
    N,
    s_xb,
    s_xl,
    s_yb,
    s_yl,
    s_dxb,
    s_dxl,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """dC[row_i, g*N + n], summed over the R heads of group g."""
    pid0, pid_i, pid_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g = pid0 % G
    c = (pid0 // G) % nc
    b = (pid0 // (G * nc)).to(tl.int64)
    offs_i = pid_i * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_p = tl.arange(0, BLOCK_P)
    mp, mn = offs_p < P, offs_n < N
    row_i, valid_i = _rows(c, offs_i, cs, L, REVERSE)
    acc = tl.zeros([BLOCK_T, BLOCK_N], dtype=tl.float32)
    for r in range(R):
        h = g * R + r
        seq = ((b * H + h) * nc + c) * cs
        S_i = tl.load(S_ptr + seq + offs_i, mask=offs_i < cs, other=0.0)
        dy_i = tl.load(
            dy_ptr + b * s_yb + row_i[:, None] * s_yl + h * P + offs_p[None, :],
            mask=valid_i[:, None] & mp[None, :],
            other=0.0,
        )
        hin = tl.load(
            hin_ptr + ((b * nc + c) * H + h) * P * N + offs_p[:, None] * N + offs_n[None, :],
            mask=mp[:, None] & mn[None, :],
            other=0.0,
        )
        acc += tl.exp(S_i)[:, None] * tl.dot(dy_i, hin, input_precision=PREC)
        for j0 in range(0, (pid_i + 1) * BLOCK_T, BLOCK_T):
            offs_j = j0 + tl.arange(0, BLOCK_T)
            row_j, valid_j = _rows(c, offs_j, cs, L, REVERSE)
            S_j = tl.load(S_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
            dt_j = tl.load(dt_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
            x_j = tl.load(
                x_ptr + b * s_xb + row_j[:, None] * s_xl + h * P + offs_p[None, :],
                mask=valid_j[:, None] & mp[None, :],
                other=0.0,
            ).to(tl.float32)
            dM = tl.dot(dy_i, tl.trans(x_j * dt_j[:, None]), input_precision=PREC)  # [i, j]
            causal = (offs_j[None, :] <= offs_i[:, None]) & valid_j[None, :] & (offs_i < cs)[:, None]
            decay = tl.exp(tl.where(causal, S_i[:, None] - S_j[None, :], float("-inf")))
            bb = tl.load(
                B_ptr + b * s_xb + row_j[:, None] * s_xl + g * N + offs_n[None, :],
                mask=valid_j[:, None] & mn[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.dot(dM * decay, bb, input_precision=PREC)
    m = valid_i[:, None] & mn[None, :]
    tl.store(dC_ptr + b * s_dxb + row_i[:, None] * s_dxl + g * N + offs_n[None, :], acc, mask=m)


@triton.jit
def _chunk_scan_bwd_db_kernel(
    dy_ptr,
    x_ptr,
    C_ptr,
    dt_ptr,
    S_ptr,
    dst_ptr,
    dB_ptr,
    L,
    H,
    cs,
    nc,
    R,
    G,
    P,
    N,
    s_xb,
    s_xl,
    s_yb,
    s_yl,
    s_dxb,
    s_dxl,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """dB[row_j, g*N + n], summed over the R heads of group g."""
    pid0, pid_j, pid_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    g = pid0 % G
    c = (pid0 // G) % nc
    b = (pid0 // (G * nc)).to(tl.int64)
    offs_j = pid_j * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_p = tl.arange(0, BLOCK_P)
    mp, mn = offs_p < P, offs_n < N
    row_j, valid_j = _rows(c, offs_j, cs, L, REVERSE)
    acc = tl.zeros([BLOCK_T, BLOCK_N], dtype=tl.float32)
    for r in range(R):
        h = g * R + r
        seq = ((b * H + h) * nc + c) * cs
        S_j = tl.load(S_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
        dt_j = tl.load(dt_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
        S_last = tl.load(S_ptr + seq + cs - 1)
        x_j = tl.load(
            x_ptr + b * s_xb + row_j[:, None] * s_xl + h * P + offs_p[None, :],
            mask=valid_j[:, None] & mp[None, :],
            other=0.0,
        ).to(tl.float32)
        dtx = x_j * dt_j[:, None]
        dst = tl.load(
            dst_ptr + ((b * nc + c) * H + h) * P * N + offs_p[:, None] * N + offs_n[None, :],
            mask=mp[:, None] & mn[None, :],
            other=0.0,
        )
        acc += tl.exp(S_last - S_j)[:, None] * tl.dot(dtx, dst, input_precision=PREC)
        for i0 in range(pid_j * BLOCK_T, cs, BLOCK_T):
            offs_i = i0 + tl.arange(0, BLOCK_T)
            row_i, valid_i = _rows(c, offs_i, cs, L, REVERSE)
            S_i = tl.load(S_ptr + seq + offs_i, mask=offs_i < cs, other=0.0)
            dy_i = tl.load(
                dy_ptr + b * s_yb + row_i[:, None] * s_yl + h * P + offs_p[None, :],
                mask=valid_i[:, None] & mp[None, :],
                other=0.0,
            )
            dMT = tl.dot(dtx, tl.trans(dy_i), input_precision=PREC)  # [j, i]
            causal = (offs_i[None, :] >= offs_j[:, None]) & valid_i[None, :]
            decay = tl.exp(tl.where(causal, S_i[None, :] - S_j[:, None], float("-inf")))
            cc = tl.load(
                C_ptr + b * s_xb + row_i[:, None] * s_xl + g * N + offs_n[None, :],
                mask=valid_i[:, None] & mn[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.dot(dMT * decay, cc, input_precision=PREC)
    m = valid_j[:, None] & mn[None, :]
    tl.store(dB_ptr + b * s_dxb + row_j[:, None] * s_dxl + g * N + offs_n[None, :], acc, mask=m)


@triton.jit
def _dt_bwd_kernel(
    dtr_ptr,
    dtb_ptr,
    A_ptr,
    dt_ptr,
    xu_ptr,
    dS_ptr,
    E_ptr,
    ddtr_ptr,
    dA_ptr,
    dbias_ptr,
    L,
    H,
    cs,
    nc,
    s_b,
    s_l,
    s_ob,
    s_ol,
    lo,
    hi,
    REVERSE: tl.constexpr,
    BLOCK_CS: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    """da = reverse chunk cumsum of dS + E; ddt = x.u + A da; through clamp and softplus to
    dt_raw (written in place into ddtr); partial dA and d dt_bias per (b, c)."""
    pid_bc, pid_h = tl.program_id(0), tl.program_id(1)
    b, c = (pid_bc // nc).to(tl.int64), pid_bc % nc
    offs = tl.arange(0, BLOCK_CS)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    mh = offs_h < H
    row, valid = _rows(c, offs, cs, L, REVERSE)
    m = valid[:, None] & mh[None, :]
    seq = ((b * H + offs_h[None, :]) * nc + c) * cs + offs[:, None]
    ms = (offs < cs)[:, None] & mh[None, :]
    dS = tl.load(dS_ptr + seq, mask=ms, other=0.0)
    E = tl.load(E_ptr + (b * H + offs_h) * nc + c, mask=mh, other=0.0)
    da = tl.sum(dS, axis=0)[None, :] - tl.cumsum(dS, axis=0) + dS + E[None, :]
    dt = tl.load(dt_ptr + seq, mask=ms, other=0.0)
    A = tl.load(A_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)
    ddt = tl.load(xu_ptr + seq, mask=ms, other=0.0) + A[None, :] * da
    tl.store(dA_ptr + pid_bc * H + offs_h, tl.sum(tl.where(m, dt * da, 0.0), axis=0), mask=mh)
    raw = tl.load(dtr_ptr + b * s_b + row[:, None] * s_l + offs_h[None, :], mask=m, other=0.0).to(tl.float32)
    raw += tl.load(dtb_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)[None, :]
    sp = _softplus(raw)
    inside = (sp >= lo) & (sp <= hi)
    draw = tl.where(m & inside, ddt * tl.where(raw > 20.0, 1.0, tl.sigmoid(raw)), 0.0)
    tl.store(
        ddtr_ptr + b * s_ob + row[:, None] * s_ol + offs_h[None, :],
        draw.to(ddtr_ptr.dtype.element_ty),
        mask=m,
    )
    tl.store(dbias_ptr + pid_bc * H + offs_h, tl.sum(draw, axis=0), mask=mh)


def ssd_backward(
    xbc: Tensor, dt_raw: Tensor, dt_bias: Tensor, A: Tensor, D: Tensor, y: Tensor, saved: ScanSaved,
    dy: Tensor, dxbc: Tensor, ddt_raw: Tensor, geo: ScanGeometry, dt_limit: tuple[float, float],
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Gradients of ``ssd_scan.ssd_forward`` for dy [b, L, H*P] float32 contiguous: writes d(x, B,
    C) into dxbc [b, L, H*P + 2*G*N] float32 contiguous and d dt_raw into ddt_raw [b, L, H] (unit
    stride along H). Returns (dA, dD, d dt_bias) [H] float32."""
    b, L, H, P, G, N, cs, nc = geo.b, geo.L, geo.H, geo.P, geo.G, geo.N, geo.chunk, geo.nc
    assert dy.is_contiguous() and dy.dtype == torch.float32 and dy.shape == y.shape, tuple(dy.shape)
    assert dxbc.is_contiguous() and dxbc.shape == xbc.shape, tuple(dxbc.shape)
    dev, prec, rev, nw = xbc.device, _prec(xbc.dtype), geo.reverse, geo.num_warps
    lo, hi = float(dt_limit[0]), min(float(dt_limit[1]), 3.0e38)
    bt, bt2, bn, bp, fp = geo.block_t, geo.block_t_bwd, geo.block_n, geo.block_p, geo.full_p
    n_t, n_t2 = triton.cdiv(cs, bt), triton.cdiv(cs, bt2)
    x, Bm, Cm = xbc, xbc[..., H * P :], xbc[..., H * P + G * N :]
    dx, dB, dC = dxbc, dxbc[..., H * P :], dxbc[..., H * P + G * N :]
    sxb, sxl, syb, syl = xbc.stride(0), xbc.stride(1), dy.stride(0), dy.stride(1)
    sdb, sdl = dxbc.stride(0), dxbc.stride(1)
    dt, S, cb, hin = saved.dt, saved.S, saved.cb, saved.hin

    # gradient reaching each entering state, then the reverse recurrence over chunks
    dst = torch.empty(b, nc, H, P, N, dtype=torch.float32, device=dev)
    _chunk_state_kernel[(b * nc * H, triton.cdiv(P, bp), triton.cdiv(N, bn))](
        dy, Cm, dt, S, dst, L, H, cs, nc, geo.R, P, N, syb, syl, sxb, sxl,
        REVERSE=rev, FROM_END=False, BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip
    blk = min(1024, next_pow2(P * N))
    n_blk = triton.cdiv(P * N, blk)
    E = torch.empty(b, H, nc, n_blk, dtype=torch.float32, device=dev)
    _state_passing_bwd_kernel[(b * H, n_blk)](dst, hin, S, E, H, nc, cs, P * N, n_blk, BLOCK=blk)
    E = E.sum(-1)  # [b, H, nc]

    # per chunk: dx, x.u, dS (and partial dD); dC and dB summed over each group's heads
    xu, dS = torch.empty_like(dt), torch.empty_like(dt)
    dD = torch.empty(b * nc * H, n_t, dtype=torch.float32, device=dev)
    _chunk_scan_bwd_dx_kernel[(b * nc * H, n_t)](
        x, Bm, dt, S, cb, dst, D, dy, y, dx, xu, dS, dD, L, H, cs, nc, geo.R, G, P, N,
        sxb, sxl, syb, syl, sdb, sdl, REVERSE=rev, BLOCK_T=bt, BLOCK_P=fp, BLOCK_N=bn, PREC=prec,
        num_warps=nw,
    )  # fmt: skip
    grid_g = (b * nc * G, n_t2, triton.cdiv(N, bn))
    _chunk_scan_bwd_dc_kernel[grid_g](
        dy, x, Bm, dt, S, hin, dC, L, H, cs, nc, geo.R, G, P, N, sxb, sxl, syb, syl, sdb, sdl,
        REVERSE=rev, BLOCK_T=bt2, BLOCK_P=fp, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip
    _chunk_scan_bwd_db_kernel[grid_g](
        dy, x, Cm, dt, S, dst, dB, L, H, cs, nc, geo.R, G, P, N, sxb, sxl, syb, syl, sdb, sdl,
        REVERSE=rev, BLOCK_T=bt2, BLOCK_P=fp, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip

    # S-gradients -> d(dt A) -> dt_raw, dA, d dt_bias
    bh = min(16, next_pow2(H))
    dA = torch.empty(b * nc, H, dtype=torch.float32, device=dev)
    dbias = torch.empty_like(dA)
    _dt_bwd_kernel[(b * nc, triton.cdiv(H, bh))](
        dt_raw, dt_bias, A, dt, xu, dS, E, ddt_raw, dA, dbias, L, H, cs, nc, dt_raw.stride(0),
        dt_raw.stride(1), ddt_raw.stride(0), ddt_raw.stride(1), lo, hi,
        REVERSE=rev, BLOCK_CS=next_pow2(cs), BLOCK_H=bh,
    )  # fmt: skip
    return dA.sum(0), dD.view(b, nc, H, n_t).sum((0, 1, 3)), dbias.sum(0)
