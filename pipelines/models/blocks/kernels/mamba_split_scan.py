"""conv1d + SiLU, SSD chunk scan with D skip, gated RMSNorm: the whole Mamba2 scan branch on our
Triton kernels, as one autograd Function (``mamba2._scan_triton`` calls it; imported lazily).

Forward: ``conv_norm.conv_silu_fwd`` -> ``ssd_scan.ssd_forward`` -> ``conv_norm.gated_rmsnorm_fwd``.
Only the inputs are saved; the backward recomputes the conv output, the scan output and the
chunk states (as mamba-ssm does), then runs the backward kernels in reverse order, writing the
gradients of z, xBC and dt straight into one gradient tensor shaped like zxbcdt.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pipelines.models.blocks.kernels.conv_norm import (
    conv_silu_bwd,
    conv_silu_fwd,
    gated_rmsnorm_bwd,
    gated_rmsnorm_fwd,
)
from pipelines.models.blocks.kernels.ssd_scan import ScanGeometry, ssd_forward
from pipelines.models.blocks.kernels.ssd_scan_bwd import ssd_backward


def _split(
    zxbcdt: Tensor, H: int, headdim: int, ngroups: int, conv_dim: int
) -> tuple[Tensor, Tensor, Tensor]:
    """zxbcdt [b, L, d_inner + conv_dim + H] -> views z [b, L, d_inner], xBC [b, L, conv_dim],
    dt [b, L, H]."""
    d_inner = H * headdim
    return zxbcdt[..., :d_inner], zxbcdt[..., d_inner : d_inner + conv_dim], zxbcdt[..., d_inner + conv_dim :]


class _MambaSplitScan(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        zxbcdt,
        conv_weight,
        conv_bias,
        dt_bias,
        A,
        D,
        norm_weight,
        headdim,
        ngroups,
        chunk_size,
        norm_eps,
        dt_limit,
        reverse,
    ):
        H, conv_dim = A.shape[0], conv_weight.shape[0]
        N = (conv_dim - H * headdim) // ngroups // 2
        b, L, _ = zxbcdt.shape
        geo = ScanGeometry(b, L, H, headdim, ngroups, N, chunk_size, reverse)
        z, xBC, dt_raw = _split(zxbcdt, H, headdim, ngroups, conv_dim)
        xbc = conv_silu_fwd(xBC, conv_weight, conv_bias, reverse=reverse)  # [b, L, conv_dim]
        y, _ = ssd_forward(xbc, dt_raw, dt_bias, A, D, geo, dt_limit)  # [b, L, d_inner] float32
        out = gated_rmsnorm_fwd(y, z, norm_weight, norm_eps, zxbcdt.dtype)
        ctx.save_for_backward(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight)
        ctx.geo, ctx.norm_eps, ctx.dt_limit = geo, norm_eps, dt_limit
        return out

    @staticmethod
    def backward(ctx, dout):
        zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight = ctx.saved_tensors
        geo: ScanGeometry = ctx.geo
        conv_dim = conv_weight.shape[0]
        z, xBC, dt_raw = _split(zxbcdt, geo.H, geo.P, geo.G, conv_dim)
        xbc = conv_silu_fwd(xBC, conv_weight, conv_bias, reverse=geo.reverse)
        y, saved = ssd_forward(xbc, dt_raw, dt_bias, A, D, geo, ctx.dt_limit)
        dzxbcdt = torch.empty_like(zxbcdt)  # every column is written below
        dz, dxBC, ddt_raw = _split(dzxbcdt, geo.H, geo.P, geo.G, conv_dim)
        dy, dnorm = gated_rmsnorm_bwd(y, z, norm_weight, ctx.norm_eps, dout, dz)
        dxbc = torch.empty(xbc.shape, dtype=torch.float32, device=xbc.device)
        dA, dD, ddt_bias = ssd_backward(
            xbc, dt_raw, dt_bias, A, D, y, saved, dy, dxbc, ddt_raw, geo, ctx.dt_limit
        )
        dconv_w, dconv_b = conv_silu_bwd(xBC, conv_weight, conv_bias, dxbc, dxBC, reverse=geo.reverse)
        return (
            dzxbcdt,
            dconv_w,
            dconv_b,
            ddt_bias.to(dt_bias.dtype),
            dA.to(A.dtype),
            dD.to(D.dtype),
            dnorm,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def mamba_split_conv1d_scan_triton(
    zxbcdt: Tensor,
    conv_weight: Tensor,
    conv_bias: Tensor | None,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor,
    norm_weight: Tensor,
    *,
    headdim: int,
    ngroups: int,
    chunk_size: int,
    norm_eps: float,
    dt_limit: tuple[float, float],
    reverse: bool = False,
) -> Tensor:  # [B, L, d_inner]
    """Same arguments and result as ``mamba2._scan_torch`` (its docstring states the shapes);
    ``reverse=True`` equals scanning ``zxbcdt.flip(1)`` and flipping the result back, without
    the flips. Differentiable in every tensor argument."""
    H = A.shape[0]
    d_inner, conv_dim = H * headdim, conv_weight.shape[0]
    assert (conv_dim - d_inner) % (2 * ngroups) == 0 and H % ngroups == 0, (conv_dim, d_inner, ngroups, H)
    assert zxbcdt.shape[-1] == d_inner + conv_dim + H, (
        f"zxbcdt has {zxbcdt.shape[-1]} channels, expected {d_inner + conv_dim + H}"
    )
    assert chunk_size > 0, chunk_size
    return _MambaSplitScan.apply(
        zxbcdt.contiguous(),
        conv_weight,
        conv_bias,
        dt_bias,
        A,
        D,
        norm_weight,
        headdim,
        ngroups,
        chunk_size,
        norm_eps,
        tuple(float(v) for v in dt_limit),
        reverse,
    )
