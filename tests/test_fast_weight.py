"""The LaCT fast-weight layer (pipelines/models/blocks/fast_weight.py) against independent
references: the Muon orthogonalisation (NS5) against a float64 numpy transcription of the same
iteration and against the SVD (closed form: every singular value goes through the scalar
quintic), the hand-written inner gradients against autograd, the renorm, the per-token learning
rates, the official schedules written out, and the cost of a streamed chunk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipelines.models.blocks.fast_weight import (
    FastWeightGLU,
    FastWeights,
    TTTOp,
    apply,
    ar_ops,
    causal_ops,
    full_ops,
    inner_gradients,
    inv_softplus,
    newton_schulz5,
    update,
)

A, B, C = 3.4445, -4.7750, 2.0315  # the official coefficients, written here independently


def ns5_numpy(G: np.ndarray, steps: int = 5) -> np.ndarray:
    """float64 transcription of the official zeropower_via_newtonschulz5 (one matrix)."""
    X = G.astype(np.float64)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    X = X / (np.linalg.norm(X) + 1e-7)
    for _ in range(steps):
        Am = X @ X.T
        X = A * X + (B * Am + C * Am @ Am) @ X
    return X.T if tall else X


def quintic(x: np.ndarray, steps: int = 5) -> np.ndarray:
    for _ in range(steps):
        x = A * x + B * x**3 + C * x**5
    return x


@pytest.mark.parametrize("shape", [(3, 48, 160), (2, 160, 48), (1, 64, 64)])
def test_ns5_matches_float64_iteration(gen, shape):
    G = torch.randn(shape, generator=gen) * 10 ** float(torch.empty(1).uniform_(-3, 2, generator=gen))
    X = newton_schulz5(G)  # CPU: float32
    assert X.dtype == torch.float32 and X.shape == G.shape
    for b in range(shape[0]):
        ref = ns5_numpy(G[b].numpy())
        np.testing.assert_allclose(X[b].numpy(), ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    # float64 inputs stay float64 (our reference path) and agree to round-off
    X64 = newton_schulz5(G.double())
    assert X64.dtype == torch.float64
    np.testing.assert_allclose(X64[0].numpy(), ns5_numpy(G[0].numpy()), rtol=0, atol=1e-12)


def test_ns5_is_the_quintic_on_singular_values_and_near_uv(gen):
    """NS5 keeps the singular vectors and maps each singular value s to quintic^5(s / |G|_F): what
    the official design guarantees is an update U S' V^T with S' in [0.68, 1.21] for every s
    with s / |G|_F >= 3e-3, not exactly U V^T. Checked against the SVD in float64."""
    m, n = 40, 96
    U, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, m, generator=gen, dtype=torch.float64))
    rel = torch.logspace(-2.5, 0, m, dtype=torch.float64)  # s / |G|_F spans 3e-3 .. 1 (before scaling)
    s = rel / rel.norm() * 7.0
    G = U @ torch.diag(s) @ V.T  # [m, n], |G|_F = 7
    X = newton_schulz5(G[None].float())[0].double()
    inner = U.T @ X @ V  # [m, m]: diagonal when X shares G's singular vectors
    off = inner - torch.diag(torch.diagonal(inner))
    assert off.abs().max() < 1e-4
    want = quintic((s / s.norm()).numpy())
    np.testing.assert_allclose(torch.diagonal(inner).numpy(), want, rtol=1e-4, atol=1e-5)
    band = (s / s.norm()).numpy() >= 3e-3
    assert 0 < band.sum() < m  # values below the band too (checked by the closed form above)
    got = torch.diagonal(inner).numpy()[band]
    assert got.min() >= 0.68 and got.max() <= 1.21
    # hence the distance to the exact orthogonalisation U V^T (spectral norm) is at most 0.32
    assert torch.linalg.matrix_norm(X - U @ V.T, ord=2) <= 0.32
    # a random Gaussian gradient of the official shape ratio (768 x 3072 scaled down 1/8) is in the band
    Gr = torch.randn(1, 96, 384, generator=gen)
    sv = torch.linalg.svdvals(newton_schulz5(Gr)[0].double())
    assert sv.min() >= 0.68 and sv.max() <= 1.21


def _state(gen, h=2, d=8, dh=24, dtype=torch.float64) -> FastWeights:
    g = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return FastWeights.start(g(h, d, dh) / d**0.5, g(h, dh, d) / dh**0.5, g(h, d, dh) / d**0.5)


def _chunk(gen, h=2, L=37, d=8, dtype=torch.float64):
    k = F.normalize(torch.randn(h, L, d, generator=gen, dtype=dtype), dim=-1)
    v = torch.randn(h, L, d, generator=gen, dtype=dtype)
    lrs = [torch.rand(h, L, 1, generator=gen, dtype=dtype) * 0.1 for _ in range(3)]
    return k, v, lrs


def test_inner_gradients_equal_autograd(gen):
    """G_j = -d/dW_j sum_i lr_{j,i} <f_W(k_i), v_i> for each matrix j, in float64."""
    w = _state(gen)
    k, v, lrs = _chunk(gen)
    got = inner_gradients(w, k, v, *lrs)
    blocked = inner_gradients(w, k, v, *lrs, block=7)  # partial sums over token blocks
    for j in range(3):
        W = [w.w0.clone().requires_grad_(), w.w1.clone().requires_grad_(), w.w2.clone().requires_grad_()]
        f = (F.silu(k @ W[0]) * (k @ W[2])) @ W[1]  # [h, L, d]
        loss = -(lrs[j] * (f * v).sum(-1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(loss, W[j])
        torch.testing.assert_close(got[j], -grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(blocked[j], -grad, rtol=1e-10, atol=1e-12)


def test_update_is_muon_step_then_column_renorm(gen):
    w = _state(gen)
    k, v, lrs = _chunk(gen)
    new = update(w, k, v, *lrs, muon_steps=5)
    grads = inner_gradients(w, k, v, *lrs)
    for W0, G, W1, n in zip(
        (w.w0, w.w1, w.w2), grads, (new.w0, new.w1, new.w2), (w.norm0, w.norm1, w.norm2), strict=True
    ):
        for b in range(W0.shape[0]):
            step = W0[b].numpy() + ns5_numpy(G[b].numpy())
            ref = step / (np.linalg.norm(step, axis=0, keepdims=True) + 1e-5) * n[b].numpy()
            np.testing.assert_allclose(W1[b].numpy(), ref, rtol=1e-9, atol=1e-12)
        # the columns keep the norms the weights had on entry (up to the 1e-5 guard)
        torch.testing.assert_close(W1.norm(dim=1, keepdim=True), n, rtol=1e-4, atol=0)
    # the state keeps the entry norms: a second update renormalises to the same ones
    again = update(new, k, v, *lrs)
    torch.testing.assert_close(again.norm0, w.norm0, rtol=0, atol=0)


def test_per_token_learning_rates(gen):
    for y in (1e-3, 0.01, 0.5, 3.0):
        assert F.softplus(torch.tensor(inv_softplus(y), dtype=torch.float64)).item() == pytest.approx(
            y, rel=1e-12
        )
    layer = FastWeightGLU(16, 8, 2, base_lr=0.01).double()
    x = torch.randn(2, 5, 16, generator=gen, dtype=torch.float64)
    torch.nn.init.zeros_(layer.lr_fc.weight)
    torch.nn.init.zeros_(layer.lr_fc.bias)
    q, k, v, lrs = layer.project(x)
    assert q.shape == (4, 5, 8) and lrs[0].shape == (4, 5, 1)
    for lr in lrs:
        torch.testing.assert_close(lr, torch.full_like(lr, 0.01), rtol=1e-12, atol=0)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(4, 5, dtype=torch.float64), rtol=0, atol=1e-4)
    # lr = softplus(Linear(x) + inv_softplus(base_lr)): one scalar per head and matrix, (head, matrix)
    torch.nn.init.normal_(layer.lr_fc.weight, generator=gen)
    _, _, _, lrs = layer.project(x)
    raw = x @ layer.lr_fc.weight.T + layer.lr_fc.bias  # [2, 5, 3h] with h = 2
    for j in range(3):
        for head in range(2):
            want = F.softplus(raw[..., 3 * head + j] + inv_softplus(0.01))  # [2, 5]
            torch.testing.assert_close(lrs[j][head::2, :, 0], want, rtol=1e-12, atol=0)


def test_official_schedules_written_out():
    """full_ttt_op(update_minibatch=N_in, apply_only_minibatch=0, length=N, update_length=N_in)
    and ar_ttt_op(update_minibatch=c, length=N, update_length=N_in) of tttLRM model/lact_ttt.py."""
    assert full_ops(6, 10) == [
        TTTOp(0, 6, True, True, False),
        TTTOp(0, 6, False, False, True),
        TTTOp(6, 10, False, False, True),
    ]
    assert full_ops(6, 6) == [TTTOp(0, 6, True, True, False), TTTOp(0, 6, False, False, True)]
    assert ar_ops(6, 2, 10) == [TTTOp(0, 2, True, True, False), TTTOp(2, 4, True, True, False),
                                TTTOp(4, 6, True, True, False), TTTOp(0, 10, False, False, True)]  # fmt: skip
    assert causal_ops(6, 4, 9) == [
        TTTOp(0, 4, True, True, True),
        TTTOp(4, 6, True, True, True),
        TTTOp(6, 9, False, False, True),
    ]


def test_layer_stream_equals_schedules(gen):
    """Layer level: one call per chunk with the carried state == the causal schedule in one call;
    one chunk == the full schedule; the final weights of the AR schedule equal the streamed ones
    (the same updates on the same tokens, in the same order)."""
    layer = FastWeightGLU(16, 16, 2).double()
    x = torch.randn(1, 12, 16, generator=gen, dtype=torch.float64)
    full, w_full = layer(x, full_ops(12, 12))
    one, w_one = layer(x, [TTTOp(0, 12, True, True, True)])
    torch.testing.assert_close(one, full, rtol=0, atol=0)
    causal, w_causal = layer(x, causal_ops(12, 4, 12))
    ar, w_ar = layer(x, ar_ops(12, 4, 12))
    state, outs = None, []
    for s in range(0, 12, 4):
        o, state = layer(x[:, s : s + 4], [TTTOp(0, 4, True, True, True)], state)
        outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 1), causal, rtol=1e-12, atol=1e-12)
    for a, b, c in zip(state.tensors(), w_causal.tensors(), w_ar.tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    # the outputs differ: AR applies the final weights to early tokens, streaming cannot
    assert (ar[:, :4] - causal[:, :4]).abs().max() > 1e-6
    torch.testing.assert_close(ar[:, 8:], causal[:, 8:], rtol=1e-12, atol=1e-12)  # last chunk: same weights
    # apply reads the state without changing it
    q = torch.randn(1, 3, 16, generator=gen, dtype=torch.float64)
    assert apply(state, q).shape == q.shape


def test_streamed_chunk_costs_the_same_however_many_came_before(gen):
    """Token arithmetic and counted FLOPs: absorbing chunk 1 and chunk 6 processes the same
    number of tokens with the same matmul FLOPs; the state does not grow."""
    from torch.utils.flop_counter import FlopCounterMode

    from pipelines.models.ttt_lrm.config import PRESETS
    from pipelines.models.ttt_lrm.model import TTTLRM

    c = PRESETS["tiny"]
    net = TTTLRM(c).eval()
    cams_c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    cams_c2w[0, 1, 0, 3] = 0.3
    K = torch.tensor([[60.0, 0, 56], [0, 60, 32], [0, 0, 1]]).expand(1, 2, 3, 3)
    state = net.initial_state(1)
    flops, sizes = [], []
    with torch.no_grad():
        for _ in range(6):
            images = torch.rand(1, 2, 3, c.image_height, c.image_width, generator=gen)
            with FlopCounterMode(display=False) as counter:
                state = net.absorb(state, images, cams_c2w, K)
            flops.append(counter.get_total_flops())
            sizes.append(state.num_elements)
    assert len(set(flops)) == 1 and flops[0] > 0
    assert set(sizes) == {c.state_numel}
    assert net.tokens_per_chunk(2, c.image_height, c.image_width) == 2 * c.tokens_per_view
    official = PRESETS["official-ar"]
    assert official.tokens_per_view == 67 * 120 == 8040
    assert official.update_views * official.tokens_per_view == 32160  # tokens per streamed update
    assert official.state_numel == 24 * 3 * 768 * 3072  # 12 d^2 per layer, whatever was absorbed
    assert math.isclose(official.state_numel / 1e6, 169.87, rel_tol=1e-4)
