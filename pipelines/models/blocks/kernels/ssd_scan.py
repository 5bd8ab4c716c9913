"""The Mamba2 SSD chunk scan in Triton, forward and backward (our kernels; the algorithm of the
SSD paper, Dao & Gu 2024, "chunked" form). Imported lazily; launched by ``mamba_split_scan``.

Per batch element and head h (group g = h // (H/G)), in scan order t = 0..L-1 (``reverse``: t
reads physical row L-1-t, so the reversed branch of BiMamba2 needs no flipped copies):

    dt_t = clamp(softplus(dt_raw_t + dt_bias), lo, hi)        a_t = dt_t A   (A < 0)
    h_t = exp(a_t) h_{t-1} + dt_t x_t B_t^T,   y_t = h_t C_t + D x_t,   h_{-1} = 0

Chunks of ``chunk`` steps (the last one shorter; its missing steps count as dt = 0). Inside chunk
c, with S_i = a_0 + ... + a_i (chunk-local cumulative sum) and hin_c the state entering it:

    y_i = sum_{j<=i} (C_i.B_j) exp(S_i - S_j) dt_j x_j  +  exp(S_i) hin_c C_i  +  D x_i
    st_c = sum_j exp(S_last - S_j) dt_j x_j B_j^T,      hin_{c+1} = exp(S_last) hin_c + st_c

Kernels (forward): ``_dt_cumsum`` (dt, S), ``_chunk_cb`` (C_i.B_j per group, causal blocks
only), ``_chunk_state`` (st_c), ``_state_passing`` (hin_c, sequential over chunks, in place),
``_chunk_scan_fwd`` (y). All arithmetic in float32; matrix products through ``tl.dot`` (IEEE
float32 for float32 inputs, TF32 for 16-bit inputs). Decays exp(S_i - S_j) are differences of
chunk-local cumulative sums (as mamba-ssm), relative error ~ eps * |S| against the reference's
term-by-term segment sums.

Backward (kernels in ``ssd_scan_bwd``), with dy the output gradient:

    dD = sum dy.x;  dH_c = sum_i exp(S_i) dy_i C_i^T;   dst_c = dL/dhin_{c+1} (reverse recurrence
    dst_{c-1} = dH_c + exp(S_last_c) dst_c, dst_{last} = 0);   E_c = <dst_c, hin_{c+1}>
    u_j = sum_{i>=j} (C_i.B_j) exp(S_i - S_j) dy_i + exp(S_last - S_j) dst_c B_j
    dx_j = dt_j u_j + D dy_j;   ddt_j = x_j.u_j + A da_j
    dS_k = dy_k.(y_k - D x_k) - dt_k x_k.u_k;   da_k = sum_{i>=k in chunk} dS_i + E_c;  dA = sum dt da
    dC_i = exp(S_i) hin_c^T dy_i + sum_{j<=i} (dy_i.dt_j x_j) exp(S_i - S_j) B_j
    dB_j = exp(S_last - S_j) dst_c^T dt_j x_j + sum_{i>=j} (dy_i.dt_j x_j) exp(S_i - S_j) C_i

(dB, dC summed over the heads of the group inside the kernel, no atomics.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from pipelines.models.blocks.kernels import next_pow2


@dataclass(frozen=True)
class ScanGeometry:
    """Sizes of one scan: batch b, length L, heads H of headdim P, groups G of state size N,
    chunk length, scan direction; block sizes of the kernels (powers of two, >= 16 for tl.dot)."""

    b: int
    L: int
    H: int
    P: int
    G: int
    N: int
    chunk: int
    reverse: bool

    @property
    def nc(self) -> int:
        return triton.cdiv(self.L, self.chunk)

    @property
    def R(self) -> int:  # heads per group
        return self.H // self.G

    @property
    def block_t(self) -> int:  # positions per tile inside a chunk
        return max(16, min(64, next_pow2(self.chunk)))

    @property
    def block_n(self) -> int:
        return max(16, min(64, next_pow2(self.N)))

    @property
    def block_p(self) -> int:  # tiled P (forward kernels)
        return max(16, min(64, next_pow2(self.P)))

    @property
    def full_p(self) -> int:  # whole headdim in one tile (backward kernels)
        return max(16, next_pow2(self.P))

    @property
    def block_t_bwd(self) -> int:  # dC / dB kernels hold five tiles at once: smaller ones
        return max(16, min(32, next_pow2(self.chunk)))

    @property
    def num_warps(self) -> int:  # 64-wide tiles: 8 warps (no register spills for sm_90 in ptxas -v)
        return 8 if self.block_t >= 64 else 4


@triton.jit
def _rows(c, offs, cs, L, REVERSE: tl.constexpr):
    """Chunk-local offsets -> (physical rows, valid): scan position t = c * cs + offs."""
    t = c * cs + offs
    valid = (offs < cs) & (t < L)
    if REVERSE:
        row = L - 1 - t
    else:
        row = t
    return row, valid


@triton.jit
def _softplus(x):
    """torch's softplus (threshold 20: linear above)."""
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))


# ------------------------------------------------------------------------------------ forward
@triton.jit
def _dt_cumsum_kernel(
    dtr_ptr,
    dtb_ptr,
    A_ptr,
    dt_ptr,
    S_ptr,
    L,
    H,
    cs,
    nc,
    s_b,
    s_l,
    lo,
    hi,
    REVERSE: tl.constexpr,
    BLOCK_CS: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    """dt and S = chunk-local cumsum of dt A, both [b, H, nc, cs] float32 (0 / constant past L)."""
    pid_bc, pid_h = tl.program_id(0), tl.program_id(1)
    b, c = (pid_bc // nc).to(tl.int64), pid_bc % nc
    offs = tl.arange(0, BLOCK_CS)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    mh = offs_h < H
    row, valid = _rows(c, offs, cs, L, REVERSE)
    m = valid[:, None] & mh[None, :]
    raw = tl.load(dtr_ptr + b * s_b + row[:, None] * s_l + offs_h[None, :], mask=m, other=0.0).to(tl.float32)
    raw += tl.load(dtb_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)[None, :]
    dt = tl.minimum(tl.maximum(_softplus(raw), lo), hi)
    dt = tl.where(m, dt, 0.0)
    S = tl.cumsum(dt * tl.load(A_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)[None, :], axis=0)
    out = ((b * H + offs_h[None, :]) * nc + c) * cs + offs[:, None]
    ms = (offs < cs)[:, None] & mh[None, :]
    tl.store(dt_ptr + out, dt, mask=ms)
    tl.store(S_ptr + out, S, mask=ms)


@triton.jit
def _chunk_cb_kernel(
    C_ptr,
    B_ptr,
    cb_ptr,
    L,
    cs,
    nc,
    G,
    N,
    s_b,
    s_l,
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """cb[b, c, g, i, j] = C_i . B_j for the tiles with j-tile <= i-tile ([b, nc, G, cs, cs])."""
    pid0, pid_i = tl.program_id(0), tl.program_id(1)
    g = pid0 % G
    c = (pid0 // G) % nc
    b = (pid0 // (G * nc)).to(tl.int64)
    offs_i = pid_i * BLOCK_T + tl.arange(0, BLOCK_T)
    row_i, valid_i = _rows(c, offs_i, cs, L, REVERSE)
    base = cb_ptr + ((b * nc + c) * G + g) * cs * cs
    for j0 in range(0, (pid_i + 1) * BLOCK_T, BLOCK_T):
        offs_j = j0 + tl.arange(0, BLOCK_T)
        row_j, valid_j = _rows(c, offs_j, cs, L, REVERSE)
        acc = tl.zeros([BLOCK_T, BLOCK_T], dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            mn = offs_n < N
            cc = tl.load(
                C_ptr + b * s_b + row_i[:, None] * s_l + g * N + offs_n[None, :],
                mask=valid_i[:, None] & mn[None, :],
                other=0.0,
            ).to(tl.float32)
            bb = tl.load(
                B_ptr + b * s_b + row_j[:, None] * s_l + g * N + offs_n[None, :],
                mask=valid_j[:, None] & mn[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.dot(cc, tl.trans(bb), input_precision=PREC)
        m = (offs_i < cs)[:, None] & (offs_j < cs)[None, :]
        tl.store(base + offs_i[:, None] * cs + offs_j[None, :], acc, mask=m)


@triton.jit
def _chunk_state_kernel(
    u_ptr,
    v_ptr,
    dt_ptr,
    S_ptr,
    out_ptr,
    L,
    H,
    cs,
    nc,
    R,
    P,
    N,
    s_ub,
    s_ul,
    s_vb,
    s_vl,
    REVERSE: tl.constexpr,
    FROM_END: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """out[b, c, h, p, n] = sum_i scale_i u[i, h*P + p] v[i, g*N + n] over chunk c ([b, nc, H, P, N]).
    FROM_END: scale = dt_i exp(S_last - S_i) (u = x, v = B: the chunk's own end state);
    else scale = exp(S_i) (u = dy, v = C: the gradient reaching the entering state)."""
    pid0, pid_p, pid_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    h = pid0 % H
    c = (pid0 // H) % nc
    b = (pid0 // (H * nc)).to(tl.int64)
    g = h // R
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mp, mn = offs_p < P, offs_n < N
    seq = ((b * H + h) * nc + c) * cs
    S_last = tl.load(S_ptr + seq + cs - 1)
    acc = tl.zeros([BLOCK_P, BLOCK_N], dtype=tl.float32)
    for i0 in range(0, cs, BLOCK_T):
        offs = i0 + tl.arange(0, BLOCK_T)
        row, valid = _rows(c, offs, cs, L, REVERSE)
        S = tl.load(S_ptr + seq + offs, mask=offs < cs, other=0.0)
        if FROM_END:
            scale = tl.load(dt_ptr + seq + offs, mask=offs < cs, other=0.0) * tl.exp(S_last - S)
        else:
            scale = tl.exp(S)
        u = tl.load(
            u_ptr + b * s_ub + row[:, None] * s_ul + h * P + offs_p[None, :],
            mask=valid[:, None] & mp[None, :],
            other=0.0,
        ).to(tl.float32)
        v = tl.load(
            v_ptr + b * s_vb + row[:, None] * s_vl + g * N + offs_n[None, :],
            mask=valid[:, None] & mn[None, :],
            other=0.0,
        ).to(tl.float32)
        acc += tl.dot(tl.trans(u * scale[:, None]), v, input_precision=PREC)
    out = out_ptr + ((b * nc + c) * H + h) * P * N + offs_p[:, None] * N + offs_n[None, :]
    tl.store(out, acc, mask=mp[:, None] & mn[None, :])


@triton.jit
def _state_passing_kernel(st_ptr, S_ptr, H, nc, cs, PN, BLOCK: tl.constexpr):
    """In place: st[b, c, h] (the chunk's own end state) becomes hin_c, the state entering chunk c."""
    pid_bh, pid_e = tl.program_id(0), tl.program_id(1)
    h, b = pid_bh % H, (pid_bh // H).to(tl.int64)
    offs = pid_e * BLOCK + tl.arange(0, BLOCK)
    m = offs < PN
    state = tl.zeros([BLOCK], dtype=tl.float32)
    for c in range(nc):
        ptrs = st_ptr + ((b * nc + c) * H + h) * PN + offs
        own = tl.load(ptrs, mask=m, other=0.0)
        tl.store(ptrs, state, mask=m)
        decay = tl.exp(tl.load(S_ptr + ((b * H + h) * nc + c) * cs + cs - 1))
        state = decay * state + own


@triton.jit
def _chunk_scan_fwd_kernel(
    x_ptr,
    C_ptr,
    dt_ptr,
    S_ptr,
    cb_ptr,
    hin_ptr,
    D_ptr,
    y_ptr,
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
    REVERSE: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREC: tl.constexpr,
):
    """y[row_i, h*P + p] for one tile of chunk positions i and headdim p (module doc)."""
    pid0, pid_i, pid_p = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    h = pid0 % H
    c = (pid0 // H) % nc
    b = (pid0 // (H * nc)).to(tl.int64)
    g = h // R
    offs_i = pid_i * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mp = offs_p < P
    row_i, valid_i = _rows(c, offs_i, cs, L, REVERSE)
    seq = ((b * H + h) * nc + c) * cs
    S_i = tl.load(S_ptr + seq + offs_i, mask=offs_i < cs, other=0.0)

    # state entering the chunk: exp(S_i) C_i hin^T
    acc = tl.zeros([BLOCK_T, BLOCK_P], dtype=tl.float32)
    hin = hin_ptr + ((b * nc + c) * H + h) * P * N
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mn = offs_n < N
        cc = tl.load(
            C_ptr + b * s_xb + row_i[:, None] * s_xl + g * N + offs_n[None, :],
            mask=valid_i[:, None] & mn[None, :],
            other=0.0,
        ).to(tl.float32)
        hT = tl.load(hin + offs_p[None, :] * N + offs_n[:, None], mask=mn[:, None] & mp[None, :], other=0.0)
        acc += tl.dot(cc, hT, input_precision=PREC)
    acc = acc * tl.exp(S_i)[:, None]

    # inside the chunk: sum_{j <= i} cb_ij exp(S_i - S_j) dt_j x_j
    cb = cb_ptr + ((b * nc + c) * G + g) * cs * cs
    for j0 in range(0, (pid_i + 1) * BLOCK_T, BLOCK_T):
        offs_j = j0 + tl.arange(0, BLOCK_T)
        row_j, valid_j = _rows(c, offs_j, cs, L, REVERSE)
        S_j = tl.load(S_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
        dt_j = tl.load(dt_ptr + seq + offs_j, mask=offs_j < cs, other=0.0)
        causal = (offs_j[None, :] <= offs_i[:, None]) & valid_j[None, :] & (offs_i < cs)[:, None]
        cbij = tl.load(cb + offs_i[:, None] * cs + offs_j[None, :], mask=causal, other=0.0)
        decay = tl.exp(tl.where(causal, S_i[:, None] - S_j[None, :], float("-inf")))
        x_j = tl.load(
            x_ptr + b * s_xb + row_j[:, None] * s_xl + h * P + offs_p[None, :],
            mask=valid_j[:, None] & mp[None, :],
            other=0.0,
        ).to(tl.float32)
        acc += tl.dot(cbij * decay * dt_j[None, :], x_j, input_precision=PREC)

    m = valid_i[:, None] & mp[None, :]
    x_i = tl.load(x_ptr + b * s_xb + row_i[:, None] * s_xl + h * P + offs_p[None, :], mask=m, other=0.0)
    acc += tl.load(D_ptr + h).to(tl.float32) * x_i.to(tl.float32)
    tl.store(y_ptr + b * s_yb + row_i[:, None] * s_yl + h * P + offs_p[None, :], acc, mask=m)


# -------------------------------------------------------------------------------- host side
@dataclass
class ScanSaved:
    """Forward intermediates the backward reuses: dt, S [b, H, nc, chunk]; cb [b, nc, G, chunk,
    chunk]; hin [b, nc, H, P, N] (state entering each chunk); all float32."""

    dt: Tensor
    S: Tensor
    cb: Tensor
    hin: Tensor


def _prec(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def ssd_forward(
    xbc: Tensor, dt_raw: Tensor, dt_bias: Tensor, A: Tensor, D: Tensor, geo: ScanGeometry,
    dt_limit: tuple[float, float],
) -> tuple[Tensor, ScanSaved]:  # fmt: skip
    """xbc [b, L, H*P + 2*G*N] contiguous: x, B, C after conv + SiLU (physical order); dt_raw
    [b, L, H] (unit stride along H; before dt_bias and softplus); dt_bias, A, D [H]. Returns
    y [b, L, H*P] float32 (physical order, D skip included) and the saved intermediates."""
    b, L, H, P, G, N, cs, nc = geo.b, geo.L, geo.H, geo.P, geo.G, geo.N, geo.chunk, geo.nc
    assert xbc.is_contiguous() and xbc.shape == (b, L, H * P + 2 * G * N), tuple(xbc.shape)
    dev, prec, rev, nw = xbc.device, _prec(xbc.dtype), geo.reverse, geo.num_warps
    lo, hi = float(dt_limit[0]), min(float(dt_limit[1]), 3.0e38)
    x, Bm, Cm = xbc, xbc[..., H * P :], xbc[..., H * P + G * N :]  # column offsets into xbc
    sxb, sxl = xbc.stride(0), xbc.stride(1)
    bt, bn, bp = geo.block_t, geo.block_n, geo.block_p
    n_t = triton.cdiv(cs, bt)

    dt = torch.empty(b, H, nc, cs, dtype=torch.float32, device=dev)
    S = torch.empty_like(dt)
    bh = min(16, next_pow2(H))
    _dt_cumsum_kernel[(b * nc, triton.cdiv(H, bh))](
        dt_raw, dt_bias, A, dt, S, L, H, cs, nc, dt_raw.stride(0), dt_raw.stride(1), lo, hi,
        REVERSE=rev, BLOCK_CS=next_pow2(cs), BLOCK_H=bh,
    )  # fmt: skip
    cb = torch.empty(b, nc, G, cs, cs, dtype=torch.float32, device=dev)
    _chunk_cb_kernel[(b * nc * G, n_t)](
        Cm, Bm, cb, L, cs, nc, G, N, sxb, sxl, REVERSE=rev, BLOCK_T=bt, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip
    hin = torch.empty(b, nc, H, P, N, dtype=torch.float32, device=dev)
    _chunk_state_kernel[(b * nc * H, triton.cdiv(P, bp), triton.cdiv(N, bn))](
        x, Bm, dt, S, hin, L, H, cs, nc, geo.R, P, N, sxb, sxl, sxb, sxl,
        REVERSE=rev, FROM_END=True, BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip
    blk = min(1024, next_pow2(P * N))
    _state_passing_kernel[(b * H, triton.cdiv(P * N, blk))](hin, S, H, nc, cs, P * N, BLOCK=blk)
    y = torch.empty(b, L, H * P, dtype=torch.float32, device=dev)
    _chunk_scan_fwd_kernel[(b * nc * H, n_t, triton.cdiv(P, bp))](
        x, Cm, dt, S, cb, hin, D, y, L, H, cs, nc, geo.R, G, P, N, sxb, sxl, y.stride(0), y.stride(1),
        REVERSE=rev, BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=bn, PREC=prec, num_warps=nw,
    )  # fmt: skip
    return y, ScanSaved(dt, S, cb, hin)
