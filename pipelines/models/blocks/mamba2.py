"""Mamba2 (SSD) mixer: a chunked pure-PyTorch scan, our fused Triton kernels and mamba-ssm's fused
kernel behind one dispatch, and Long-LRM's bidirectional block.

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
for float64 inputs). ``mamba_split_conv1d_scan`` dispatches between ``_scan_torch``, ``_scan_triton``
(ours: ``kernels/mamba_split_scan.py``, conv + SSD chunk scan + gated norm, forward and backward)
and ``_scan_mamba_ssm`` (mamba-ssm's ``mamba_split_conv1d_scan_combined``; without causal-conv1d,
a PyTorch conv then mamba-ssm's Triton ``mamba_chunk_scan_combined`` and gated norm), which take
the same arguments; triton and mamba-ssm are imported only inside their paths, and nothing is compiled
before a first call. ``backend="auto"`` (:func:`resolve_scan_backend`) takes mamba-ssm where it
is installed on CUDA, else ours on CUDA where triton imports, else the PyTorch path (always on
the CPU: there Triton only runs in its interpreter, for tests).

``reverse=True`` scans the sequence from its end: the result equals scanning ``zxbcdt.flip(1)``
and flipping the output back. Our kernels index rows backwards instead of flipping (no copies);
the other paths flip.

Long-LRM's block (``model/mamba2.py``): ``x + BiMamba2(RMSNorm(x))`` where ``BiMamba2`` shares one
``in_proj`` and one ``out_proj`` between two scan branches; branch 0 scans the sequence, branch 1
scans it reversed (``reverse=True``) and its output is read back in the original order; the two
are summed (not averaged).

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

from pipelines.models.blocks.kernels import triton_available

ScanBackend = Literal["auto", "torch", "triton", "mamba_ssm"]
NO_DT_LIMIT = (0.0, float("inf"))


def mamba_ssm_available(device: torch.device | str) -> bool:
    """True when mamba-ssm's path can run: a CUDA device and mamba-ssm installed (its SSD kernels
    are Triton; with causal-conv1d installed too, the conv is fused as well: ``_scan_mamba_ssm``)."""
    return torch.device(device).type == "cuda" and importlib.util.find_spec("mamba_ssm") is not None


def _mamba_ssm_triton_modules():
    """mamba-ssm's ``ssd_combined`` and ``layernorm_gated`` (Triton). A wheel built without its CUDA
    extensions (MAMBA_SKIP_CUDA_BUILD=TRUE) holds them, but ``import mamba_ssm`` fails there (its
    package __init__ imports the selective-scan extension): then the package is registered without
    running that __init__, and only these Triton modules are loaded."""
    try:
        import mamba_ssm  # noqa: F401
    except ImportError:
        import sys
        import types

        spec = importlib.util.find_spec("mamba_ssm")
        assert spec is not None and spec.submodule_search_locations, "mamba-ssm is not installed"
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["mamba_ssm"] = pkg
    from mamba_ssm.ops.triton import layernorm_gated, ssd_combined

    return ssd_combined, layernorm_gated


def resolve_scan_backend(backend: ScanBackend, device: torch.device | str) -> str:
    """The path ``backend`` runs on ``device``: "auto" -> "mamba_ssm" when
    :func:`mamba_ssm_available`, else "triton" on CUDA with triton installed, else "torch";
    an explicit backend is returned as given (the dispatch checks that it can run)."""
    if backend != "auto":
        return backend
    if mamba_ssm_available(device):
        return "mamba_ssm"
    if torch.device(device).type == "cuda" and triton_available(device):
        return "triton"
    return "torch"


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
    reverse: bool = False,
) -> Tensor:  # [B, L, d_inner]
    if reverse:  # the reference semantics of the reversed scan
        return _scan_torch(
            zxbcdt.flip(1), conv_weight, conv_bias, dt_bias, A, D, norm_weight, headdim=headdim,
            ngroups=ngroups, chunk_size=chunk_size, norm_eps=norm_eps, dt_limit=dt_limit,
        ).flip(1)  # fmt: skip
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
    reverse: bool = False,
) -> Tensor:  # [B, L, d_inner]
    ssd_combined, layernorm_gated = _mamba_ssm_triton_modules()
    zx = (zxbcdt.flip(1) if reverse else zxbcdt).contiguous()
    kwargs = {} if tuple(dt_limit) == NO_DT_LIMIT else {"dt_limit": tuple(dt_limit)}
    if importlib.util.find_spec("causal_conv1d") is not None:  # everything fused
        out = ssd_combined.mamba_split_conv1d_scan_combined(
            zx, conv_weight, conv_bias, dt_bias, A, D, chunk_size, activation="swish",
            rmsnorm_weight=norm_weight, rmsnorm_eps=norm_eps, headdim=headdim, ngroups=ngroups,
            norm_before_gate=False, **kwargs,
        )  # fmt: skip
    else:  # no causal-conv1d (e.g. a wheel without CUDA extensions): PyTorch conv, mamba-ssm's Triton rest
        H = A.shape[0]
        d_inner, conv_dim = H * headdim, conv_weight.shape[0]
        N = (conv_dim - d_inner) // ngroups // 2
        b, L, _ = zx.shape
        z, xBC, dt = zx.split([d_inner, conv_dim, H], dim=-1)
        xBC = causal_conv1d_silu(xBC, conv_weight, conv_bias).contiguous()  # [b, L, conv_dim]
        x, B, C = xBC.split([d_inner, ngroups * N, ngroups * N], dim=-1)
        y = ssd_combined.mamba_chunk_scan_combined(
            x.reshape(b, L, H, headdim), dt, A, B.reshape(b, L, ngroups, N), C.reshape(b, L, ngroups, N),
            chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True, **kwargs,
        )  # fmt: skip
        out = layernorm_gated.rmsnorm_fn(
            y.reshape(b, L, d_inner),
            norm_weight,
            None,
            z=z.contiguous(),
            eps=norm_eps,
            norm_before_gate=False,
        )
    return out.flip(1) if reverse else out


def _scan_triton(
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
    reverse: bool = False,
) -> Tensor:  # [B, L, d_inner]
    from pipelines.models.blocks.kernels.mamba_split_scan import mamba_split_conv1d_scan_triton

    return mamba_split_conv1d_scan_triton(
        zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, headdim=headdim, ngroups=ngroups,
        chunk_size=chunk_size, norm_eps=norm_eps, dt_limit=dt_limit, reverse=reverse,
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
    reverse: bool = False,
    backend: ScanBackend = "auto",
) -> Tensor:
    """conv1d + SiLU, SSD scan with D skip, gated RMSNorm: zxbcdt [B, L, 2*d_inner + 2*G*N + H]
    -> [B, L, d_inner]. conv_weight [d_inner + 2*G*N, W]; dt_bias, A (negative), D [H];
    norm_weight [d_inner]. ``reverse``: scan from the end (module doc). ``backend``: "torch",
    "triton" (ours), "mamba_ssm", or "auto" (:func:`resolve_scan_backend`)."""
    backend = resolve_scan_backend(backend, zxbcdt.device)  # type: ignore[assignment]
    if backend == "mamba_ssm" and not mamba_ssm_available(zxbcdt.device):
        raise RuntimeError(
            f"the fused Mamba2 scan needs CUDA with mamba-ssm installed (tensor on {zxbcdt.device}); "
            f"install the `cuda` extra or use backend='torch'"
        )
    if backend == "triton" and not triton_available(zxbcdt.device):
        raise RuntimeError(
            f"our Triton Mamba2 scan needs triton and a CUDA tensor (or TRITON_INTERPRET=1 on the CPU, "
            f"for tests); tensor on {zxbcdt.device}; use backend='torch'"
        )
    fn = {"mamba_ssm": _scan_mamba_ssm, "triton": _scan_triton, "torch": _scan_torch}[backend]
    return fn(
        zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, headdim=headdim, ngroups=ngroups,
        chunk_size=chunk_size, norm_eps=norm_eps, dt_limit=dt_limit, reverse=reverse,
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

    def forward(self, zxbcdt: Tensor, reverse: bool = False) -> Tensor:
        """zxbcdt [B, L, 2*d_inner + 2*G*N + H] -> [B, L, d_inner]; ``reverse``: scan from the end."""
        A = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))  # [H]
        return mamba_split_conv1d_scan(
            zxbcdt, self.conv1d.weight[:, 0, :], self.conv1d.bias, self.dt_bias, A,
            self.D, self.norm.weight, headdim=self.headdim, ngroups=self.ngroups, chunk_size=self.chunk_size,
            norm_eps=self.norm.eps, dt_limit=self.dt_limit, reverse=reverse, backend=self.backend,
        )  # fmt: skip


class BiMamba2(nn.Module):
    """Bidirectional Mamba2: shared in_proj / out_proj, two scan branches (forward, reversed), sum.

    x [B, L, d_model] -> [B, L, d_model]:
    ``out_proj(scans[0](in_proj(x)) + flip(scans[1](flip(in_proj(x)))))``, flip along L (the
    second branch runs with ``reverse=True``, which our kernels do without flipped copies).
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
        y = self.scans[0](zxbcdt) + self.scans[1](zxbcdt, reverse=True)  # [B, L, d_inner]
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
    """Choose the scan path of every Mamba2Scan inside ``module`` ("auto", "torch", "triton",
    "mamba_ssm")."""
    for m in module.modules():
        if isinstance(m, Mamba2Scan):
            m.backend = backend


def scan_backend_of(module: nn.Module, device: torch.device | str) -> str | None:
    """The path the Mamba2 scans inside ``module`` take on ``device`` (resolved from the first
    Mamba2Scan's setting; :func:`set_scan_backend` sets them all alike), or None without one."""
    for m in module.modules():
        if isinstance(m, Mamba2Scan):
            return resolve_scan_backend(m.backend, device)
    return None
