"""LaCT fast-weight layer: a SwiGLU MLP whose weights are updated at test time, chunk by chunk.

The design of LaCT (Zhang et al., "Test-Time Training Done Right", ``a1600012888/LaCT``:
``lact_nvs/lact_ttt.py``) as tttLRM uses it (``cwchenwang/tttLRM``: ``model/lact_ttt.py``,
``FastWeightGluMLPMultihead``), re-implemented from those files:

Projections (x [B, L, D] pre-normalised by the block):

    q, k, v   = SiLU(Linear(x, 3D, no bias)) split, each reshaped to [B h, L, hd]    (hd = D / h)
    q, k      = q / (|q| + 1e-5), k / (|k| + 1e-5)       per head, over hd; v is not normalised
    lr0,1,2   = softplus(Linear_fp32(x, 3h) + inv_softplus(base_lr))   per token and head, [B h, L, 1]

The lr channels are laid out ``(h, 3)`` (head-major); the official ``(h lrs d)`` rearrange with
``d = h`` is only defined for one head, where both layouts are the same.

Fast weights (one state per batch element and head; initial values are the learned slow
parameters, init N(0, 2 / fan_in)):

    f_W(x) = (SiLU(x W0) * (x W2)) W1        W0, W2 [hd, dh], W1 [dh, hd]   (dh = inter_multi hd)

Update on a chunk of tokens (k, v, lr): one step on L = -sum_i lr_i <f_W(k_i), v_i> (a separate
per-token lr for each matrix), gradients written by hand, no autograd in the inner loop:

    g = silu(k W0),  u = k W2,  h = g * u,  dh = v W1^T
    G1 = (h * lr1)^T v
    G0 = (k * lr0)^T [silu'(k W0) * dh * u]         silu'(z) dz = dz s (1 + z (1 - s)), s = sigmoid(z)
    G2 = (k * lr2)^T [dh * g]                       (G = -dL/dW: a descent step adds them)
    W  = W + NS5(G)                                 Muon: one orthogonalised step, no momentum
    W  = W / (|W|_col + 1e-5) * |W_entry|_col       per-column L2 renorm ("weight norm")

``|.|_col`` is the norm over ``dim=1`` (over hd for W0/W2, over dh for W1) and ``W_entry`` the
weights the layer started from (the slow weights; kept in the state, so a stream of updates
renormalises to the same norms as the official single call does).

NS5 (:func:`newton_schulz5`): X = G / (|G|_F + 1e-7) (transposed when taller than wide), then 5
times X <- a X + (b A + (c A) A) X with A = X X^T, (a, b, c) = (3.4445, -4.7750, 2.0315); the
scaling by c comes before the product, as in the official ``zeropower_via_newtonschulz5``
(``b * A + c * A @ A``, which Python evaluates as ``(c * A) @ A``): in bfloat16 the two orders
round differently, and this one is the released model's. The
quintic maps every singular value s with s / |G|_F >= 3e-3 into [0.68, 1.21] after 5 steps (so
the update is U S' V^T with S' near 1, not exactly U V^T); the official code computes it in
bfloat16, which is our default on CUDA; on the CPU it runs in float32 (float64 for float64 inputs).

Output: ``o = RMSNorm(f_W(q)) -> Linear(D, D, no bias)`` with W the weights in force for q.

Schedules are lists of :class:`TTTOp` over the token sequence, executed by :func:`run_ops`
(the official ``fast_weight_swish_glu_weight_norm_mini_batch_apply``). An op with
``fast_weight`` computes updated weights from its token range; ``update`` keeps them; ``apply``
outputs f_W(q) for its range with the weights of that op (updated when ``fast_weight``).
:func:`full_ops` and :func:`ar_ops` are the official ``full_ttt_op`` and ``ar_ttt_op``;
:func:`causal_ops` is the streaming schedule (update on a chunk, then apply to that chunk).

Examples:
    >>> layer = FastWeightGLU(dim=32, head_dim=32, inter_multi=2)
    >>> x = torch.randn(1, 10, 32)
    >>> out, state = layer(x, full_ops(6, 10))    # update on tokens 0..5, apply to all 10
    >>> out.shape, state.w0.shape, state.w1.shape
    (torch.Size([1, 10, 32]), torch.Size([1, 32, 64]), torch.Size([1, 64, 32]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz (Muon / Moonlight)
NS_EPS = 1e-7  # Frobenius normalisation
QK_EPS = 1e-5  # q, k L2 normalisation
WEIGHT_NORM_EPS = 1e-5  # per-column renorm


class TTTOp(NamedTuple):
    """One step of a schedule over tokens [start, end): see the module doc."""

    start: int
    end: int
    fast_weight: bool
    update: bool
    apply: bool


def full_ops(num_update: int, num_total: int) -> list[TTTOp]:
    """The official full model (``full_ttt_op(update_minibatch=N_in, apply_only_minibatch=0)``):
    one update on the first ``num_update`` tokens, then apply to every token."""
    assert 0 < num_update <= num_total, (num_update, num_total)
    ops = [TTTOp(0, num_update, True, True, False), TTTOp(0, num_update, False, False, True)]
    if num_update < num_total:
        ops.append(TTTOp(num_update, num_total, False, False, True))
    return ops


def _chunks(num_update: int, chunk: int) -> list[tuple[int, int]]:
    assert chunk > 0 and num_update > 0, (num_update, chunk)
    return [(s, min(s + chunk, num_update)) for s in range(0, num_update, chunk)]


def ar_ops(num_update: int, chunk: int, num_total: int) -> list[TTTOp]:
    """The official AR model (``ar_ttt_op``): sequential updates on chunks of ``chunk`` tokens of
    the first ``num_update``, then the final weights applied to every token. (The official code
    asserts ``num_update % chunk == 0``; here a shorter last chunk is allowed.)"""
    ops = [TTTOp(s, e, True, True, False) for s, e in _chunks(num_update, chunk)]
    return ops + [TTTOp(0, num_total, False, False, True)]


def causal_ops(num_update: int, chunk: int, num_total: int) -> list[TTTOp]:
    """The streaming schedule: for each chunk, update on it then apply the updated weights to it
    (so no token reads weights written by later chunks); tokens after ``num_update`` (queries)
    read the final weights."""
    ops = [TTTOp(s, e, True, True, True) for s, e in _chunks(num_update, chunk)]
    if num_update < num_total:
        ops.append(TTTOp(num_update, num_total, False, False, True))
    return ops


@dataclass
class FastWeights:
    """The state of one fast-weight layer. w0, w2 [B h, hd, dh]; w1 [B h, dh, hd]; norm0, norm2
    [B h, 1, dh] and norm1 [B h, 1, hd]: the per-column norms every update renormalises to."""

    w0: Tensor
    w1: Tensor
    w2: Tensor
    norm0: Tensor
    norm1: Tensor
    norm2: Tensor

    @staticmethod
    def start(w0: Tensor, w1: Tensor, w2: Tensor) -> FastWeights:
        """A state entering the layer with these weights (their column norms are kept)."""
        return FastWeights(
            w0, w1, w2,
            w0.detach().norm(dim=1, keepdim=True),
            w1.detach().norm(dim=1, keepdim=True),
            w2.detach().norm(dim=1, keepdim=True),
        )  # fmt: skip

    def detach(self) -> FastWeights:
        return FastWeights(*(t.detach() for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.w0, self.w1, self.w2, self.norm0, self.norm1, self.norm2)

    @property
    def num_elements(self) -> int:
        return sum(t.numel() for t in (self.w0, self.w1, self.w2))


# ----------------------------------------------------------------------------------- math
def inv_softplus(y: float) -> float:
    """x with softplus(x) = y (y > 0)."""
    return y + math.log(-math.expm1(-y))


def silu_backward(dy: Tensor, x: Tensor) -> Tensor:
    """d/dx of SiLU(x) times dy: dy s (1 + x (1 - s)), s = sigmoid(x)."""
    s = torch.sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def default_ns_dtype(G: Tensor) -> torch.dtype:
    """bfloat16 on CUDA (as the official code); elsewhere float32, or float64 for a float64 G."""
    if G.device.type == "cuda":
        return torch.bfloat16
    return torch.float64 if G.dtype == torch.float64 else torch.float32


def newton_schulz5(G: Tensor, steps: int = 5, *, dtype: torch.dtype | None = None) -> Tensor:
    """Orthogonalise G [B, m, n] (see the module doc); returns X [B, m, n] in ``dtype``
    (default :func:`default_ns_dtype`). ``steps=0`` returns the Frobenius-normalised G."""
    assert G.ndim == 3, f"expected [B, m, n], got {tuple(G.shape)}"
    a, b, c = NS_COEFFS
    X = G.to(dtype or default_ns_dtype(G))
    tall = G.shape[1] > G.shape[2]
    if tall:
        X = X.transpose(1, 2)  # [B, n, m]: the Gram matrix below is the smaller one
    X = X / (X.norm(dim=(1, 2), keepdim=True) + NS_EPS)
    for _ in range(steps):
        A = X @ X.transpose(1, 2)
        X = a * X + (b * A + (c * A) @ A) @ X  # the official order: c * A @ A is (c * A) @ A
    return X.transpose(1, 2) if tall else X


def _blocks(n: int, block: int | None) -> list[tuple[int, int]]:
    if block is None or block >= n:
        return [(0, n)]
    return [(s, min(s + block, n)) for s in range(0, n, block)]


def inner_gradients(
    w: FastWeights, k: Tensor, v: Tensor, lr0: Tensor, lr1: Tensor, lr2: Tensor, *, block: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The descent directions (G0, G1, G2) = -dL/d(W0, W1, W2) of the chunk (k, v [B h, L, hd];
    lr* [B h, L, 1]); shapes of w0, w1, w2. ``block``: tokens per partial sum (memory bound)."""
    assert k.shape == v.shape and lr0.shape == k.shape[:2] + (1,), (
        f"k {tuple(k.shape)}, v {tuple(v.shape)}, lr {tuple(lr0.shape)}"
    )
    g0 = g1 = g2 = None
    for s, e in _blocks(k.shape[1], block):
        ki, vi = k[:, s:e], v[:, s:e]
        gate = ki @ w.w0  # [B h, l, dh]
        up = ki @ w.w2  # [B h, l, dh]
        act = F.silu(gate)
        hidden = act * up
        dhidden = vi @ w.w1.transpose(-1, -2)  # [B h, l, dh]
        d_up = dhidden * act
        d_gate = silu_backward(dhidden * up, gate)
        p1 = (hidden * lr1[:, s:e]).transpose(-1, -2) @ vi  # [B h, dh, hd]
        p0 = (ki * lr0[:, s:e]).transpose(-1, -2) @ d_gate  # [B h, hd, dh]
        p2 = (ki * lr2[:, s:e]).transpose(-1, -2) @ d_up  # [B h, hd, dh]
        if g0 is None:
            g0, g1, g2 = p0, p1, p2
        else:  # partial sums in float32 at least
            acc = torch.promote_types(p0.dtype, torch.float32)
            g0, g1, g2 = g0.to(acc) + p0, g1.to(acc) + p1, g2.to(acc) + p2
    return g0, g1, g2


def update(
    w: FastWeights,
    k: Tensor,
    v: Tensor,
    lr0: Tensor,
    lr1: Tensor,
    lr2: Tensor,
    *,
    muon_steps: int = 5,
    ns_dtype: torch.dtype | None = None,
    block: int | None = None,
) -> FastWeights:
    """One update on a chunk: gradients, NS5 (Muon), per-column renorm (module doc)."""
    grads = inner_gradients(w, k, v, lr0, lr1, lr2, block=block)
    new = []
    for W, G, norm in zip((w.w0, w.w1, w.w2), grads, (w.norm0, w.norm1, w.norm2), strict=True):
        W = W + newton_schulz5(G, muon_steps, dtype=ns_dtype)
        new.append(W / (W.norm(dim=1, keepdim=True) + WEIGHT_NORM_EPS) * norm)
    return FastWeights(*new, w.norm0, w.norm1, w.norm2)


def apply(w: FastWeights, q: Tensor, *, block: int | None = None) -> Tensor:
    """f_W(q) for q [B h, L, hd] -> [B h, L, hd]."""
    out = [(F.silu(q[:, s:e] @ w.w0) * (q[:, s:e] @ w.w2)) @ w.w1 for s, e in _blocks(q.shape[1], block)]
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def run_ops(
    w: FastWeights,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    lrs: tuple[Tensor, Tensor, Tensor],
    ops: list[TTTOp],
    *,
    muon_steps: int = 5,
    ns_dtype: torch.dtype | None = None,
    block: int | None = None,
) -> tuple[Tensor, FastWeights]:
    """Execute a schedule: outputs of the apply ops concatenated in op order [B h, sum, hd], and
    the final state."""
    outputs = []
    for op in ops:
        now = w
        if op.fast_weight:
            s, e = op.start, op.end
            now = update(
                w, k[:, s:e], v[:, s:e], *(lr[:, s:e] for lr in lrs),
                muon_steps=muon_steps, ns_dtype=ns_dtype, block=block,
            )  # fmt: skip
            if op.update:
                w = now
        if op.apply:
            outputs.append(apply(now, q[:, op.start : op.end], block=block))
    assert outputs, "the schedule applies to no token"
    return torch.cat(outputs, dim=1), w


# --------------------------------------------------------------------------------- module
class FastWeightGLU(nn.Module):
    """The fast-weight layer (module doc). x [B, L, D] -> (out [B, L', D], state), where L' is
    the number of tokens the schedule applies to (L for every official schedule).

    Parameters (tttLRM names in brackets): ``w0, w1, w2`` [h, hd, dh] / [h, dh, hd] / [h, hd, dh]
    (the initial fast weights), ``qkv`` [3D, D] (``to_qkv``), ``lr_fc`` [3h, D] + bias,
    ``o_norm`` [D], ``proj`` [D, D] (``c_proj``)."""

    def __init__(
        self,
        dim: int,
        head_dim: int,
        inter_multi: float = 4,
        *,
        base_lr: float = 0.01,
        muon_steps: int = 5,
        token_block: int | None = None,
    ) -> None:
        super().__init__()
        assert dim % head_dim == 0, f"dim {dim} is not a multiple of head_dim {head_dim}"
        self.dim, self.head_dim = dim, head_dim
        self.num_heads = dim // head_dim
        self.hidden = int(head_dim * inter_multi)
        self.muon_steps = muon_steps
        self.token_block = token_block  # tokens per partial sum in update/apply (memory), None: all
        self.ns_dtype: torch.dtype | None = None  # None: bfloat16 on CUDA, float32 on the CPU
        h, d, dh = self.num_heads, head_dim, self.hidden
        gain = math.sqrt(2)
        self.w0 = nn.Parameter(torch.randn(h, d, dh) * gain / math.sqrt(d))
        self.w1 = nn.Parameter(torch.randn(h, dh, d) * gain / math.sqrt(dh))
        self.w2 = nn.Parameter(torch.randn(h, d, dh) * gain / math.sqrt(d))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.lr_fc = nn.Linear(dim, 3 * h)
        self.base_lr_inv = inv_softplus(base_lr)
        self.o_norm = nn.RMSNorm(dim, eps=1e-5)

    def initial_state(self, batch: int) -> FastWeights:
        """The slow weights repeated per batch element: w0 [B h, hd, dh], ..."""
        return FastWeights.start(
            self.w0.repeat(batch, 1, 1), self.w1.repeat(batch, 1, 1), self.w2.repeat(batch, 1, 1)
        )

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """x [B, L, D] -> q, k, v [B h, L, hd] (q, k unit per head) and lr0, lr1, lr2 [B h, L, 1] fp32."""
        assert x.ndim == 3 and x.shape[-1] == self.dim, f"expected [B, L, {self.dim}], got {tuple(x.shape)}"
        qkv = F.silu(self.qkv(x))
        q, k, v = rearrange(qkv, "b l (qkv h d) -> qkv (b h) l d", qkv=3, h=self.num_heads)
        q = q / (q.norm(dim=2, keepdim=True) + QK_EPS).to(q.dtype)
        k = k / (k.norm(dim=2, keepdim=True) + QK_EPS).to(k.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            lr = self.lr_fc(x.to(self.lr_fc.weight.dtype))  # [B, L, 3h], float32 parameters
        lr = F.softplus(lr + self.base_lr_inv)
        lr0, lr1, lr2 = rearrange(lr, "b l (h lrs) -> lrs (b h) l 1", lrs=3, h=self.num_heads)
        return q, k, v, (lr0, lr1, lr2)

    def forward(
        self, x: Tensor, ops: list[TTTOp], state: FastWeights | None = None
    ) -> tuple[Tensor, FastWeights]:
        """Run the schedule ``ops`` over x [B, L, D] from ``state`` (default: the slow weights)."""
        b = x.shape[0]
        q, k, v, lrs = self.project(x)
        state = self.initial_state(b) if state is None else state
        out, state = run_ops(
            state,
            q,
            k,
            v,
            lrs,
            ops,
            muon_steps=self.muon_steps,
            ns_dtype=self.ns_dtype,
            block=self.token_block,
        )
        out = rearrange(out, "(b h) l d -> b l (h d)", b=b, h=self.num_heads)  # [B, L', D]
        return self.proj(self.o_norm(out)), state

    def extra_repr(self) -> str:
        return (
            f"heads={self.num_heads}, head_dim={self.head_dim}, hidden={self.hidden}, "
            f"muon_steps={self.muon_steps}, base_lr={F.softplus(torch.tensor(self.base_lr_inv)).item():.4g}"
        )
