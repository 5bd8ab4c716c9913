"""Mamba2 (SSD) mixer: a chunked pure-PyTorch scan and mamba-ssm's fused kernel behind one dispatch,
and Long-LRM's bidirectional block.

Math (Mamba2, ``mamba_ssm`` ``mamba_split_conv1d_scan_ref``), per sequence of length L:

    zxbcdt = in_proj(u)                                  # [B, L, 2*d_inner + 2*G*N + H]
    z, xBC, dt = split(zxbcdt, [d_inner, d_inner + 2*G*N, H])
    xBC = silu(causal_depthwise_conv1d(xBC))             # kernel d_conv, left zero padding
    x, B, C = split(xBC, [d_inner, G*N, G*N])            # x: H heads of P channels
    dt = softplus(dt + dt_bias), clamped to dt_limit     # [B, L, H]
    A = -exp(A_log)                                      # [H], one decay rate per head
    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T           # state per head [P, N], h_{-1} = 0
    y_t = h_t C_t + D x_t
    out = rmsnorm(y * silu(z)) * norm_weight             # gated RMSNorm, norm_before_gate=False

Heads are split into G groups that share B and C (Long-LRM: G = 1). ``ssd_chunked`` evaluates
the recurrence exactly in blocks of ``chunk_size`` steps (the SSD "chunked" form: a masked
attention-like product inside each chunk, a state recurrence between chunks), in float32 (float64
for float64 inputs). ``mamba_split_conv1d_scan`` dispatches between ``_scan_torch`` and
``_scan_mamba_ssm`` (the fused Triton kernel ``mamba_split_conv1d_scan_combined``), which take the
same arguments; mamba-ssm is imported only inside the CUDA path.

Long-LRM's block (``model/mamba2.py``): ``x + BiMamba2(RMSNorm(x))`` where ``BiMamba2`` shares one
``in_proj`` and one ``out_proj`` between two scan branches; branch 0 scans the sequence, branch 1
scans it reversed and its output is reversed back; the two are summed (not averaged).

Examples:
    >>> blk = Mamba2Block(32, d_state=16, headdim=16, chunk_size=8)
    >>> blk(torch.randn(2, 20, 32)).shape
    torch.Size([2, 20, 32])
"""

from __future__ import annotations

import importlib.util
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ScanBackend = Literal["auto", "torch", "mamba_ssm"]
NO_DT_LIMIT = (0.0, float("inf"))


def mamba_ssm_available(device: torch.device | str) -> bool:
    """True when the fused path can run: a CUDA device, mamba-ssm and causal-conv1d importable."""
    if torch.device(device).type != "cuda":
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("mamba_ssm", "causal_conv1d"))


# --------------------------------------------------------------------------- chunked SSD scan
def segsum(a: Tensor) -> Tensor:
    """a [..., T] -> [..., T, T]: out[..., i, j] = a[j+1] + ... + a[i] for i >= j (0 on the
    diagonal), -inf for i < j. Summed term by term (no cumsum differences), so exp(out) keeps
    its relative precision when the cumulative sums are large."""
    t = a.shape[-1]
    x = a[..., :, None].expand(*a.shape, t)  # x[..., i, j] = a[i]
    strict = torch.ones(t, t, dtype=torch.bool, device=a.device).tril(-1)
    s = x.masked_fill(~strict, 0).cumsum(dim=-2)  # s[i, j] = sum_{j < k <= i} a[k]
    return s.masked_fill(~torch.ones(t, t, dtype=torch.bool, device=a.device).tril(), -math.inf)


def ssd_chunked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, D: Tensor | None = None
) -> Tensor:
    """The selective state-space recurrence, evaluated chunk by chunk (exact up to rounding).

    x [b, L, H, P]; dt [b, L, H] (after softplus, > 0); A [H] (< 0); B, C [b, L, G, N] with H % G == 0
    (head h uses group h // (H / G)); D [H] or None. Returns y [b, L, H, P] in x's dtype:
    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D x_t, h_{-1} = 0.
    """
    b, L, H, P = x.shape
    G, N = B.shape[-2:]
    assert dt.shape == (b, L, H), f"dt must be [b, L, H] = {(b, L, H)}, got {tuple(dt.shape)}"
    assert A.shape == (H,), f"A must be [{H}], got {tuple(A.shape)}"
    assert B.shape == C.shape == (b, L, G, N) and H % G == 0, f"B {tuple(B.shape)}, C {tuple(C.shape)}, H={H}"
    R = H // G  # heads per group
    pad = (-L) % chunk_size  # zero dt at the end: no input and no decay, outputs discarded
    if pad:
        x, dt, B, C = (F.pad(t, (0, 0) * (t.ndim - 2) + (0, pad)) for t in (x, dt, B, C))
    c, l = (L + pad) // chunk_size, chunk_size
    xr = x.reshape(b, c, l, G, R, P)
    dtr = dt.reshape(b, c, l, G, R)
    Br = B.reshape(b, c, l, G, N)
    Cr = C.reshape(b, c, l, G, N)
    xdt = xr * dtr[..., None]  # [b, c, l, G, R, P]
    dA = (dtr * A.reshape(G, R)).permute(0, 3, 4, 1, 2)  # [b, G, R, c, l]

    # 1. inside each chunk: y_i += sum_{j <= i} (C_i . B_j) exp(dA_{j+1} + ... + dA_i) dt_j x_j
    decay = torch.exp(segsum(dA))  # [b, G, R, c, l(i), l(j)]
    CB = torch.einsum("bclgn,bcsgn->bgcls", Cr, Br)  # [b, G, c, l, l]
    y = torch.einsum("bgrcls,bcsgrp->bclgrp", CB[:, :, None] * decay, xdt)  # [b, c, l, G, R, P]

    # 2. state at the end of each chunk from its own inputs (decay to the chunk's last step)
    to_end = decay[..., -1, :]  # [b, G, R, c, l]: exp(dA_{j+1} + ... + dA_{l-1})
    states = torch.einsum("bcsgn,bgrcs,bcsgrp->bcgrpn", Br, to_end, xdt)  # [b, c, G, R, P, N]

    # 3. states entering each chunk: sum over earlier chunks, decayed across the chunks between
    chunk_dA = dA.sum(dim=-1)  # [b, G, R, c]
    across = torch.exp(segsum(F.pad(chunk_dA, (1, 0))))  # [b, G, R, c+1, c+1]
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # [b, c+1, G, R, P, N]
    entering = torch.einsum("bgrzc,bcgrpn->bzgrpn", across, states)[:, :-1]  # [b, c, G, R, P, N]

    # 4. contribution of the entering state to each step: C_i . (exp(dA_0 + ... + dA_i) h_in)
    from_start = torch.exp(dA.cumsum(dim=-1))  # [b, G, R, c, l]
    y = y + torch.einsum("bclgn,bcgrpn,bgrcl->bclgrp", Cr, entering, from_start)

    y = y.reshape(b, c * l, H, P)[:, :L]
    if D is not None:
        y = y + x[:, :L] * D[:, None]
    return y


# ------------------------------------------------------------------ conv + scan + gated norm
def causal_conv1d_silu(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Depthwise causal convolution then SiLU. x [B, L, C]; weight [C, W]; bias [C] -> [B, L, C]."""
    w = weight.shape[-1]
    y = F.conv1d(x.transpose(1, 2), weight[:, None, :], bias, padding=w - 1, groups=weight.shape[0])
    return F.silu(y[..., : x.shape[1]]).transpose(1, 2)


def gated_rms_norm(x: Tensor, z: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm(x * silu(z)) * weight over the last dim (norm_before_gate=False, one group)."""
    x = x * F.silu(z)
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + eps) * weight


def _scan_torch(
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
    dt_limit: tuple[float, float] = NO_DT_LIMIT,
) -> Tensor:  # [B, L, d_inner]
    H = A.shape[0]
    d_inner = H * headdim
    N = (conv_weight.shape[0] - d_inner) // ngroups // 2
    b, L, _ = zxbcdt.shape
    assert zxbcdt.shape[-1] == 2 * d_inner + 2 * ngroups * N + H, (
        f"zxbcdt has {zxbcdt.shape[-1]} channels, expected {2 * d_inner + 2 * ngroups * N + H}"
    )
    z, xBC, dt = zxbcdt.split([d_inner, d_inner + 2 * ngroups * N, H], dim=-1)
    xBC = causal_conv1d_silu(xBC, conv_weight, conv_bias)
    x, B, C = xBC.split([d_inner, ngroups * N, ngroups * N], dim=-1)
    cd = torch.float64 if zxbcdt.dtype == torch.float64 else torch.float32  # scan precision
    dt = F.softplus(dt.to(cd) + dt_bias.to(cd))  # [B, L, H]
    if tuple(dt_limit) != NO_DT_LIMIT:
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    y = ssd_chunked(
        x.to(cd).reshape(b, L, H, headdim), dt, A.to(cd),
        B.to(cd).reshape(b, L, ngroups, N), C.to(cd).reshape(b, L, ngroups, N), chunk_size, D.to(cd),
    )  # fmt: skip
    out = gated_rms_norm(y.reshape(b, L, d_inner), z.to(cd), norm_weight.to(cd), norm_eps)
    return out.to(zxbcdt.dtype)


def _scan_mamba_ssm(
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
    dt_limit: tuple[float, float] = NO_DT_LIMIT,
) -> Tensor:  # [B, L, d_inner]
    from mamba_ssm.ops.triton.ssd_combined import mamba_split_conv1d_scan_combined

    kwargs = {} if tuple(dt_limit) == NO_DT_LIMIT else {"dt_limit": tuple(dt_limit)}
    return mamba_split_conv1d_scan_combined(
        zxbcdt.contiguous(), conv_weight, conv_bias, dt_bias, A, D, chunk_size,
        activation="swish", rmsnorm_weight=norm_weight, rmsnorm_eps=norm_eps,
        headdim=headdim, ngroups=ngroups, norm_before_gate=False, **kwargs,
    )  # fmt: skip


def mamba_split_conv1d_scan(
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
    dt_limit: tuple[float, float] = NO_DT_LIMIT,
    backend: ScanBackend = "auto",
) -> Tensor:
    """conv1d + SiLU, SSD scan with D skip, gated RMSNorm: zxbcdt [B, L, 2*d_inner + 2*G*N + H]
    -> [B, L, d_inner]. conv_weight [d_inner + 2*G*N, W]; dt_bias, A (negative), D [H];
    norm_weight [d_inner]. ``backend="auto"`` takes mamba-ssm's fused kernel when
    :func:`mamba_ssm_available`, else the PyTorch path."""
    if backend == "auto":
        backend = "mamba_ssm" if mamba_ssm_available(zxbcdt.device) else "torch"
    if backend == "mamba_ssm" and not mamba_ssm_available(zxbcdt.device):
        raise RuntimeError(
            f"the fused Mamba2 scan needs CUDA with mamba-ssm and causal-conv1d installed (tensor on "
            f"{zxbcdt.device}); install the `cuda` extra or use backend='torch'"
        )
    fn = _scan_mamba_ssm if backend == "mamba_ssm" else _scan_torch
    return fn(
        zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight,
        headdim=headdim, ngroups=ngroups, chunk_size=chunk_size, norm_eps=norm_eps, dt_limit=dt_limit,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ modules
class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim, computed in float32 at least (float64
    stays float64); weight only."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        cd = torch.promote_types(x.dtype, torch.float32)
        return F.rms_norm(x.to(cd), (x.shape[-1],), self.weight.to(cd), self.eps).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """Holds the weight [d] of ``gated_rms_norm`` (applied inside the fused scan)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return gated_rms_norm(x, z, self.weight, self.eps)


class Mamba2Scan(nn.Module):
    """One scan branch: depthwise causal conv1d, dt_bias, A_log, D and the gated RMSNorm.

    zxbcdt [B, L, 2*d_inner + 2*G*N + H] -> [B, L, d_inner]. Initialisation as mamba_ssm's
    Mamba2Simple: dt = exp(U(log dt_min, log dt_max)) floored at dt_init_floor, dt_bias its
    inverse softplus; A = U(A_init_range), A_log = log A; D = 1; conv1d PyTorch default.
    """

    def __init__(
        self,
        d_inner: int,
        d_state: int,
        headdim: int = 64,
        ngroups: int = 1,
        d_conv: int = 4,
        chunk_size: int = 256,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_limit: tuple[float, float] = NO_DT_LIMIT,
    ) -> None:
        super().__init__()
        assert d_inner % headdim == 0, f"d_inner {d_inner} is not a multiple of headdim {headdim}"
        self.headdim, self.ngroups, self.d_state = headdim, ngroups, d_state
        self.nheads = d_inner // headdim
        self.chunk_size = chunk_size
        self.dt_limit = tuple(dt_limit)
        self.backend: ScanBackend = "auto"
        conv_dim = d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=True)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*A_init_range)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(d_inner, eps=1e-5)
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # type: ignore[attr-defined]

    def forward(self, zxbcdt: Tensor) -> Tensor:
        A = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))  # [H]
        return mamba_split_conv1d_scan(
            zxbcdt, self.conv1d.weight[:, 0, :], self.conv1d.bias, self.dt_bias, A,
            self.D, self.norm.weight, headdim=self.headdim, ngroups=self.ngroups, chunk_size=self.chunk_size,
            norm_eps=self.norm.eps, dt_limit=self.dt_limit, backend=self.backend,
        )  # fmt: skip


class BiMamba2(nn.Module):
    """Bidirectional Mamba2: shared in_proj / out_proj, two scan branches, flip, sum.

    x [B, L, d_model] -> [B, L, d_model]:
    ``out_proj(scans[0](in_proj(x)) + flip(scans[1](flip(in_proj(x)))))``, flip along L.
    """

    def __init__(
        self, d_model: int, d_state: int, headdim: int = 64, expand: int = 2, ngroups: int = 1, **scan_kwargs
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        nheads = d_inner // headdim
        self.in_proj = nn.Linear(
            d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=False
        )  # [z, x, B, C, dt]
        self.scans = nn.ModuleList(
            [Mamba2Scan(d_inner, d_state, headdim, ngroups, **scan_kwargs) for _ in range(2)]
        )
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        zxbcdt = self.in_proj(x)  # [B, L, 2*d_inner + 2*G*N + H]
        y = self.scans[0](zxbcdt) + self.scans[1](zxbcdt.flip(1)).flip(1)  # [B, L, d_inner]
        return self.out_proj(y)


class Mamba2Block(nn.Module):
    """Pre-norm residual block ``x + BiMamba2(RMSNorm(x))``. x [B, L, d_model] -> same."""

    def __init__(self, d_model: int, d_state: int = 256, **kwargs) -> None:
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.mamba = BiMamba2(d_model, d_state, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        assert x.ndim == 3, f"expected tokens [B, L, D], got {tuple(x.shape)}"
        return x + self.mamba(self.norm(x))


def set_scan_backend(module: nn.Module, backend: ScanBackend) -> None:
    """Choose the scan path of every Mamba2Scan inside ``module`` ("auto", "torch", "mamba_ssm")."""
    for m in module.modules():
        if isinstance(m, Mamba2Scan):
            m.backend = backend
