"""Triton kernels around the Mamba2 scan: the depthwise conv1d + SiLU and the gated RMSNorm,
forward and backward. Imported lazily (package docstring); launched by ``mamba_split_scan``.

Conv (``causal_conv1d_silu`` in ``mamba2.py``): out[t, c] = silu(bias[c] + sum_k w[c, k] *
in[t - (W-1) + k, c]) with zeros before the start. ``reverse=True`` gives the same convolution
of the time-reversed sequence, read back in the original order, without flipped copies:
out[t, c] = silu(bias[c] + sum_k w[c, k] * in[t + (W-1) - k, c]), zeros after the end. One pass,
one write of the activated result: the scan kernels read x, B and C from it many times (B and C
once per head of their group), so recomputing the conv inside them would cost more than this
pass saves.

Gated norm (``gated_rms_norm``): g = y * silu(z); out = g * rsqrt(mean(g^2) + eps) * w over the
last dim (one group, norm_before_gate=False).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pipelines.models.blocks.kernels import next_pow2

CONV_BLOCK_L = 32
CONV_BLOCK_C = 64
NORM_ROWS_PER_PROGRAM = 16


@triton.jit
def _conv_pre(
    x_ptr,
    w_ptr,
    b_ptr,
    pid_b,
    offs_l,
    offs_c,
    L,
    C,
    sxb,
    sxl,
    W: tl.constexpr,
    REVERSE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Pre-activation [BLOCK_L, BLOCK_C] in float32 (zero for columns >= C)."""
    mc = offs_c < C
    acc = tl.zeros([BLOCK_L, BLOCK_C], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=mc, other=0.0).to(tl.float32)[None, :]
    for k in tl.static_range(W):
        if REVERSE:
            src = offs_l + (W - 1 - k)
        else:
            src = offs_l - (W - 1 - k)
        wk = tl.load(w_ptr + offs_c * W + k, mask=mc, other=0.0).to(tl.float32)
        m = ((src >= 0) & (src < L))[:, None] & mc[None, :]
        xv = tl.load(x_ptr + pid_b * sxb + src[:, None] * sxl + offs_c[None, :], mask=m, other=0.0)
        acc += wk[None, :] * xv.to(tl.float32)
    return acc


@triton.jit
def _conv_silu_fwd_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    L,
    C,
    sxb,
    sxl,
    sob,
    sol,
    W: tl.constexpr,
    REVERSE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid_l, pid_c, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    pre = _conv_pre(
        x_ptr, w_ptr, b_ptr, pid_b, offs_l, offs_c, L, C, sxb, sxl, W, REVERSE, HAS_BIAS, BLOCK_L, BLOCK_C
    )
    out = pre * tl.sigmoid(pre)
    m = (offs_l < L)[:, None] & (offs_c < C)[None, :]
    ptrs = out_ptr + pid_b * sob + offs_l[:, None] * sol + offs_c[None, :]
    tl.store(ptrs, out.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _conv_silu_bwd_pre_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    dout_ptr,
    dw_part_ptr,
    db_part_ptr,
    L,
    C,
    sxb,
    sxl,
    sdb,
    sdl,
    W: tl.constexpr,
    REVERSE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """dout (float32) is overwritten in place by the pre-activation gradient; per-program partial
    sums of dw [C, W] and dbias [C] go to row (pid_b * n_l_blocks + pid_l) of the part buffers."""
    pid_l, pid_c, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mc = offs_c < C
    m = (offs_l < L)[:, None] & mc[None, :]
    pre = _conv_pre(
        x_ptr, w_ptr, b_ptr, pid_b, offs_l, offs_c, L, C, sxb, sxl, W, REVERSE, HAS_BIAS, BLOCK_L, BLOCK_C
    )
    dptrs = dout_ptr + pid_b * sdb + offs_l[:, None] * sdl + offs_c[None, :]
    dout = tl.load(dptrs, mask=m, other=0.0)
    s = tl.sigmoid(pre)
    dpre = dout * s * (1 + pre * (1 - s))
    tl.store(dptrs, dpre, mask=m)
    part = pid_b * tl.num_programs(0) + pid_l
    tl.store(db_part_ptr + part * C + offs_c, tl.sum(dpre, axis=0), mask=mc)
    for k in tl.static_range(W):
        if REVERSE:
            src = offs_l + (W - 1 - k)
        else:
            src = offs_l - (W - 1 - k)
        ms = ((src >= 0) & (src < L))[:, None] & mc[None, :]
        xv = tl.load(x_ptr + pid_b * sxb + src[:, None] * sxl + offs_c[None, :], mask=ms, other=0.0)
        tl.store(dw_part_ptr + (part * C + offs_c) * W + k, tl.sum(dpre * xv.to(tl.float32), axis=0), mask=mc)


@triton.jit
def _conv_bwd_dx_kernel(
    dpre_ptr,
    w_ptr,
    dx_ptr,
    L,
    C,
    sdb,
    sdl,
    sxb,
    sxl,
    W: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """dx[s, c] = sum_k w[c, k] dpre[t, c] over the outputs t that read input s."""
    pid_l, pid_c, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mc = offs_c < C
    acc = tl.zeros([BLOCK_L, BLOCK_C], dtype=tl.float32)
    for k in tl.static_range(W):
        if REVERSE:
            t = offs_l - (W - 1 - k)
        else:
            t = offs_l + (W - 1 - k)
        m = ((t >= 0) & (t < L))[:, None] & mc[None, :]
        wk = tl.load(w_ptr + offs_c * W + k, mask=mc, other=0.0).to(tl.float32)
        acc += wk[None, :] * tl.load(
            dpre_ptr + pid_b * sdb + t[:, None] * sdl + offs_c[None, :], mask=m, other=0.0
        )
    m = (offs_l < L)[:, None] & mc[None, :]
    tl.store(
        dx_ptr + pid_b * sxb + offs_l[:, None] * sxl + offs_c[None, :],
        acc.to(dx_ptr.dtype.element_ty),
        mask=m,
    )


def conv_silu_fwd(x: Tensor, weight: Tensor, bias: Tensor | None, *, reverse: bool) -> Tensor:
    """x [b, L, C] (unit stride along C; e.g. the xBC slice of zxbcdt); weight [C, W]; bias [C]
    or None. Returns silu(conv(x)) [b, L, C] contiguous, in x's dtype (module doc)."""
    b, L, C = x.shape
    W = weight.shape[1]
    assert weight.shape == (C, W) and x.stride(2) == 1, (tuple(weight.shape), x.stride())
    out = torch.empty(b, L, C, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(L, CONV_BLOCK_L), triton.cdiv(C, CONV_BLOCK_C), b)
    _conv_silu_fwd_kernel[grid](
        x, weight.contiguous(), bias if bias is not None else weight, out, L, C, x.stride(0), x.stride(1),
        out.stride(0), out.stride(1), W=W, REVERSE=reverse, HAS_BIAS=bias is not None, BLOCK_L=CONV_BLOCK_L,
        BLOCK_C=CONV_BLOCK_C,
    )  # fmt: skip
    return out


def conv_silu_bwd(
    x: Tensor, weight: Tensor, bias: Tensor | None, dout: Tensor, dx_out: Tensor, *, reverse: bool
) -> tuple[Tensor, Tensor | None]:
    """Backward of :func:`conv_silu_fwd`. dout [b, L, C] float32 contiguous (overwritten: it
    becomes the pre-activation gradient); dx_out [b, L, C] (unit stride along C) receives dx.
    Returns (dweight [C, W], dbias [C] or None) in the parameters' dtypes."""
    b, L, C = x.shape
    W = weight.shape[1]
    assert dout.dtype == torch.float32 and dout.is_contiguous() and dout.shape == x.shape
    w = weight.contiguous()
    nl = triton.cdiv(L, CONV_BLOCK_L)
    dw_part = torch.empty(b * nl, C, W, dtype=torch.float32, device=x.device)
    db_part = torch.empty(b * nl, C, dtype=torch.float32, device=x.device)
    grid = (nl, triton.cdiv(C, CONV_BLOCK_C), b)
    _conv_silu_bwd_pre_kernel[grid](
        x, w, bias if bias is not None else w, dout, dw_part, db_part, L, C, x.stride(0), x.stride(1),
        dout.stride(0), dout.stride(1), W=W, REVERSE=reverse, HAS_BIAS=bias is not None,
        BLOCK_L=CONV_BLOCK_L, BLOCK_C=CONV_BLOCK_C,
    )  # fmt: skip
    _conv_bwd_dx_kernel[grid](
        dout, w, dx_out, L, C, dout.stride(0), dout.stride(1), dx_out.stride(0), dx_out.stride(1), W=W,
        REVERSE=reverse, BLOCK_L=CONV_BLOCK_L, BLOCK_C=CONV_BLOCK_C,
    )  # fmt: skip
    dbias = db_part.sum(0).to(bias.dtype) if bias is not None else None
    return dw_part.sum(0).to(weight.dtype), dbias


# ---------------------------------------------------------------------------------- gated norm
@triton.jit
def _gated_norm_fwd_kernel(y_ptr, z_ptr, w_ptr, out_ptr, L, d, szb, szl, eps, BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)  # b * L + l
    cols = tl.arange(0, BLOCK_D)
    m = cols < d
    y = tl.load(y_ptr + row * d + cols, mask=m, other=0.0)
    z = tl.load(z_ptr + (row // L) * szb + (row % L) * szl + cols, mask=m, other=0.0).to(tl.float32)
    g = y * z * tl.sigmoid(z)
    rstd = 1.0 / tl.sqrt(tl.sum(g * g, axis=0) / d + eps)
    w = tl.load(w_ptr + cols, mask=m, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * d + cols, (g * rstd * w).to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _gated_norm_bwd_kernel(
    y_ptr,
    z_ptr,
    w_ptr,
    dout_ptr,
    dy_ptr,
    dz_ptr,
    dw_part_ptr,
    n_rows,
    L,
    d,
    szb,
    szl,
    sdzb,
    sdzl,
    eps,
    ROWS: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    mcol = cols < d
    w = tl.load(w_ptr + cols, mask=mcol, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_D], dtype=tl.float32)
    for r in range(ROWS):
        row = pid * ROWS + r
        m = mcol & (cols * 0 + row < n_rows)  # a vector predicate (the interpreter mistypes bool & scalar)
        bi, li = row // L, row % L
        y = tl.load(y_ptr + row * d + cols, mask=m, other=0.0)
        z = tl.load(z_ptr + bi * szb + li * szl + cols, mask=m, other=0.0).to(tl.float32)
        dout = tl.load(dout_ptr + row * d + cols, mask=m, other=0.0).to(tl.float32)
        sz = tl.sigmoid(z)
        gate = z * sz
        g = y * gate
        rstd = 1.0 / tl.sqrt(tl.sum(g * g, axis=0) / d + eps)
        dn = dout * w
        dw += dout * g * rstd
        dg = rstd * dn - g * (rstd * rstd * rstd) * (tl.sum(dn * g, axis=0) / d)
        tl.store(dy_ptr + row * d + cols, dg * gate, mask=m)
        dz = dg * y * sz * (1 + z * (1 - sz))
        tl.store(dz_ptr + bi * sdzb + li * sdzl + cols, dz.to(dz_ptr.dtype.element_ty), mask=m)
    tl.store(dw_part_ptr + pid * d + cols, dw, mask=mcol)


def gated_rmsnorm_fwd(y: Tensor, z: Tensor, weight: Tensor, eps: float, out_dtype: torch.dtype) -> Tensor:
    """y [b, L, d] float32 contiguous; z [b, L, d] (unit stride along d, e.g. the z slice of
    zxbcdt); weight [d]. Returns [b, L, d] in ``out_dtype`` (module doc)."""
    b, L, d = y.shape
    assert y.dtype == torch.float32 and y.is_contiguous() and z.shape == y.shape and z.stride(2) == 1
    out = torch.empty(b, L, d, dtype=out_dtype, device=y.device)
    _gated_norm_fwd_kernel[(b * L,)](
        y, z, weight, out, L, d, z.stride(0), z.stride(1), eps, BLOCK_D=next_pow2(d)
    )
    return out


def gated_rmsnorm_bwd(
    y: Tensor, z: Tensor, weight: Tensor, eps: float, dout: Tensor, dz_out: Tensor
) -> tuple[Tensor, Tensor]:
    """Backward of :func:`gated_rmsnorm_fwd`: writes dz into dz_out [b, L, d]; returns
    (dy [b, L, d] float32, dweight [d] in weight's dtype)."""
    b, L, d = y.shape
    dout = dout.contiguous()
    dy = torch.empty_like(y)
    n_rows = b * L
    n_prog = triton.cdiv(n_rows, NORM_ROWS_PER_PROGRAM)
    dw_part = torch.empty(n_prog, d, dtype=torch.float32, device=y.device)
    _gated_norm_bwd_kernel[(n_prog,)](
        y, z, weight, dout, dy, dz_out, dw_part, n_rows, L, d, z.stride(0), z.stride(1), dz_out.stride(0),
        dz_out.stride(1), eps, ROWS=NORM_ROWS_PER_PROGRAM, BLOCK_D=next_pow2(d),
    )  # fmt: skip
    return dy, dw_part.sum(0).to(weight.dtype)
