"""Deformable attention against float64 brute-force bilinear sampling written out per sample."""

from __future__ import annotations

import torch

from pipelines.models.blocks.deformable_attention import (
    DeformableAttention,
    MultiViewDeformableAttention,
    _ms_deform_attn_reference,
    ms_deform_attn,
)


def _bilinear(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """img [C, h, w] float64; (x, y) normalised (0 = left/top edge, pixel centres at (i+0.5)/w).
    Sum over the four neighbouring pixel centres of (1-|dx|)(1-|dy|) * pixel, zero outside."""
    c, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    out = torch.zeros(c, dtype=torch.float64)
    for xi in (int(torch.floor(torch.tensor(px))), int(torch.floor(torch.tensor(px))) + 1):
        for yi in (int(torch.floor(torch.tensor(py))), int(torch.floor(torch.tensor(py))) + 1):
            if 0 <= xi < w and 0 <= yi < h:
                out += (1 - abs(px - xi)) * (1 - abs(py - yi)) * img[:, yi, xi]
    return out


def _brute(values, loc, wts):
    """values per level [B, H, Dh, h, w]; loc [B, Q, H, L, P, 2]; wts [B, Q, H, L, P] -> [B, Q, H*Dh]."""
    b, nq, h, nl, p, _ = loc.shape
    dh = values[0].shape[2]
    out = torch.zeros(b, nq, h, dh, dtype=torch.float64)
    for bi in range(b):
        for qi in range(nq):
            for hi in range(h):
                for li in range(nl):
                    for pi in range(p):
                        x, y = loc[bi, qi, hi, li, pi].tolist()
                        out[bi, qi, hi] += wts[bi, qi, hi, li, pi] * _bilinear(
                            values[li][bi, hi].double(), x, y
                        )
    return out.reshape(b, nq, h * dh)


def _inputs(gen, b=2, nq=5, h=2, dh=3, shapes=((6, 5), (3, 4)), p=3, dtype=torch.float64):
    values = [torch.randn(b, h, dh, hh, ww, generator=gen, dtype=dtype) for hh, ww in shapes]
    loc = torch.rand(b, nq, h, len(shapes), p, 2, generator=gen, dtype=dtype) * 1.4 - 0.2  # some outside
    loc[0, 0, 0, 0, 0] = torch.tensor([0.5 / shapes[0][1], 0.5 / shapes[0][0]])  # exactly on pixel (0, 0)
    wts = torch.rand(b, nq, h, len(shapes), p, generator=gen, dtype=dtype)
    return values, loc, wts


def test_sampling_matches_bruteforce_float64(gen):
    values, loc, wts = _inputs(gen)
    want = _brute(values, loc, wts)
    torch.testing.assert_close(ms_deform_attn(values, loc, wts, query_chunk=2), want, atol=1e-10, rtol=0)
    torch.testing.assert_close(_ms_deform_attn_reference(values, loc, wts), want, atol=1e-10, rtol=0)
    # a sample exactly on a pixel centre reads that pixel
    one = torch.zeros_like(wts)
    one[0, 0, 0, 0, 0] = 1
    got = ms_deform_attn(values, loc, one)[0, 0, :3]
    torch.testing.assert_close(got, values[0][0, 0, :, 0, 0])


def test_sampling_float32_close_to_float64(gen):
    values, loc, wts = _inputs(gen, nq=7)
    want = _brute(values, loc, wts)
    got = ms_deform_attn([v.float() for v in values], loc.float(), wts.float())
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_module_matches_bruteforce(gen):
    """DeformableAttention end to end: value projection, offsets in feature pixels of each
    level, softmax over levels x points per head, brute-force bilinear sampling."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    d, cv, h, nl, p = 8, 5, 2, 2, 3
    m = DeformableAttention(d, cv, h, nl, p).double()
    for lin in (m.sampling_offsets, m.attention_weights):
        torch.nn.init.normal_(lin.weight, std=0.5)
    query = torch.randn(1, 4, d, generator=gen, dtype=torch.float64)
    feats = [
        torch.randn(1, cv, 6, 7, generator=gen, dtype=torch.float64),
        torch.randn(1, cv, 3, 4, generator=gen, dtype=torch.float64),
    ]
    ref = torch.rand(1, 4, 2, generator=gen, dtype=torch.float64)
    got = m(query, feats, ref)

    W, bvec = m.value_proj.weight, m.value_proj.bias
    values = []
    for f in feats:
        v = torch.einsum("oc,bchw->bohw", W, f) + bvec[None, :, None, None]  # [1, d, h, w]
        values.append(v.reshape(1, h, d // h, *f.shape[-2:]))
    off = (query @ m.sampling_offsets.weight.T + m.sampling_offsets.bias).reshape(1, 4, h, nl, p, 2)
    logits = (query @ m.attention_weights.weight.T + m.attention_weights.bias).reshape(1, 4, h, nl * p)
    wts = (logits.exp() / logits.exp().sum(-1, keepdim=True)).reshape(1, 4, h, nl, p)
    loc = torch.empty_like(off)
    for li, f in enumerate(feats):
        hh, ww = f.shape[-2:]
        loc[..., li, :, 0] = ref[:, :, None, None, 0] + off[..., li, :, 0] / ww
        loc[..., li, :, 1] = ref[:, :, None, None, 1] + off[..., li, :, 1] / hh
    torch.testing.assert_close(got, _brute(values, loc, wts), atol=1e-10, rtol=0)


def test_multiview_streaming_matches_dense_and_bruteforce(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    d, cv, h, nl, p, v, nq = 8, 5, 2, 2, 2, 5, 3
    m = MultiViewDeformableAttention(d, cv, h, nl, p).double()
    for lin in (
        m.deformable_attention.sampling_offsets,
        m.deformable_attention.attention_weights,
        m.cross_view_weight,
    ):
        torch.nn.init.normal_(lin.weight, std=0.5)
    query = torch.randn(1, nq, d, generator=gen, dtype=torch.float64)
    feats = [
        torch.randn(1, v, cv, 6, 5, generator=gen, dtype=torch.float64),
        torch.randn(1, v, cv, 3, 3, generator=gen, dtype=torch.float64),
    ]
    ref = torch.rand(1, v, nq, 2, generator=gen, dtype=torch.float64)
    dense = m._forward_dense(query, feats, ref)
    for chunk in (1, 2, 5):
        torch.testing.assert_close(m(query, feats, ref, view_chunk=chunk), dense, atol=1e-12, rtol=0)
    # per-view outputs one by one, softmax over views written out
    outs = torch.stack(
        [m.deformable_attention(query, [f[:, i] for f in feats], ref[:, i]) for i in range(v)], 1
    )
    logit = outs @ m.cross_view_weight.weight.T + m.cross_view_weight.bias  # [1, V, Q, 1]
    w = logit.exp() / logit.exp().sum(1, keepdim=True)
    want = query + (outs * w).sum(1) @ m.output_proj.weight.T + m.output_proj.bias
    torch.testing.assert_close(dense, want, atol=1e-12, rtol=0)
