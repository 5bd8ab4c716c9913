"""Shared model blocks against independent references: attention (SDPA vs math vs float64),
token merge (explicit 2x2 windows), Plücker features and patch order (per-pixel formulas), the
Gaussian head's activations (closed form) and opacity pruning (official counts)."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.cameras import make_K
from pipelines.models.blocks.attention import TransformerBlock, set_fused_attention
from pipelines.models.blocks.gaussian_head import (
    GaussianActivation,
    PixelGaussianHead,
    PixelGaussians,
    prune,
    prune_counts,
    prune_indices,
)
from pipelines.models.blocks.plucker import PluckerTokenizer, patchify, pixel_features, pixel_rays, unpatchify
from pipelines.models.blocks.token_merge import TokenMerge
from pipelines.transforms import random_rotations


def test_attention_fused_math_and_float64_agree(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    blk = TransformerBlock(32, head_dim=8)
    x = torch.randn(2, 19, 32, generator=gen)
    fused = blk(x)
    set_fused_attention(blk, False)
    math_path = blk(x)
    torch.testing.assert_close(fused, math_path, atol=1e-5, rtol=1e-5)
    # float64 reference written from the definition
    sd = {k: v.double() for k, v in blk.state_dict().items()}
    xd = x.double()
    ln = lambda t, w: torch.nn.functional.layer_norm(t, (32,), w, None, 1e-5)  # noqa: E731
    h = ln(xd, sd["norm1.weight"])
    q, k, v = (h @ sd["attn.qkv.weight"].T).reshape(2, 19, 3, 4, 8).unbind(2)  # [B, L, heads, hd]
    att = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(8)
    o = torch.einsum("bhqk,bkhd->bqhd", att.softmax(-1), v).reshape(2, 19, 32)
    y = xd + o @ sd["attn.proj.weight"].T
    m = ln(y, sd["norm2.weight"]) @ sd["mlp.fc1.weight"].T
    y = y + torch.nn.functional.gelu(m) @ sd["mlp.fc2.weight"].T
    torch.testing.assert_close(fused.double(), y, atol=1e-5, rtol=1e-5)


def test_token_merge_matches_explicit_windows(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    din, dout, v, h, w, G = 4, 12, 3, 4, 6, 2
    m = TokenMerge(din, dout)
    x = torch.randn(2, G + v * h * w, din, generator=gen)
    y, h2, w2 = m(x, num_global=G, views=v, h=h, w=w)
    assert (h2, w2) == (2, 3) and y.shape == (2, G + v * h2 * w2, dout)
    torch.testing.assert_close(y[:, :G], x[:, :G] @ m.global_proj.weight.T + m.global_proj.bias)
    img = x[:, G:].reshape(2, v, h, w, din)
    Wt, bt, r = m.conv.weight, m.conv.bias, dout // din  # [dout, 1, 2, 2]: out channel o reads input o // r
    for vi in range(v):
        for i in range(h2):
            for j in range(w2):
                win = img[:, vi, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]  # [2, 2, 2, din]
                for o in range(dout):
                    expect = (win[..., o // r] * Wt[o, 0]).sum((-1, -2)) + bt[o]
                    got = y[:, G + (vi * h2 + i) * w2 + j, o]
                    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def random_cameras(gen, n, width, height):
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, :3] = random_rotations(n, generator=gen)
    c2w[:, :3, 3] = torch.randn(n, 3, generator=gen)
    f = 0.8 * width + 10 * torch.rand(n, generator=gen)
    K = make_K(
        f, f * 1.1, width / 2 + torch.randn(n, generator=gen), height / 2 + torch.randn(n, generator=gen)
    )
    return c2w, K


def test_plucker_features_and_patch_order(gen):
    V, H, W, p = 2, 16, 24, 8
    c2w, K = random_cameras(gen, V, W, H)
    imgs = torch.rand(1, V, 3, H, W, generator=gen)
    o, d = pixel_rays(c2w[None], K[None], H, W)
    feats = pixel_features(imgs, o, d)  # [1, V, H, W, 9]
    for vi, y, x in ((0, 0, 0), (1, 5, 17), (1, H - 1, W - 1), (0, 9, 3)):
        ray = torch.linalg.inv(K[vi]) @ torch.tensor([x + 0.5, y + 0.5, 1.0])
        dw = c2w[vi, :3, :3] @ (ray / ray.norm())
        ow = c2w[vi, :3, 3]
        expect = torch.cat([imgs[0, vi, :, y, x] * 2 - 1, torch.linalg.cross(ow, dw, dim=0), dw])
        torch.testing.assert_close(feats[0, vi, y, x], expect, atol=1e-5, rtol=1e-5)
        # token (vi, y // p, x // p), position (y % p, x % p) inside it, 9 channels innermost
        tok = patchify(feats, p)[0, (vi * (H // p) + y // p) * (W // p) + x // p]
        start = ((y % p) * p + x % p) * 9
        torch.testing.assert_close(tok[start : start + 9], expect, atol=1e-5, rtol=1e-5)
    # unpatchify inverts patchify, pixels in (view, row, column) order
    back = unpatchify(patchify(feats, p), V, H // p, W // p, p)
    torch.testing.assert_close(back, feats.reshape(1, V * H * W, 9))
    tokens, ro, rd = PluckerTokenizer(p, 16)(imgs, c2w[None], K[None])
    assert tokens.shape == (1, V * (H // p) * (W // p), 16) and ro.shape == rd.shape == (1, V * H * W, 3)
    # under bf16 autocast (training, CUDA inference) the rays stay exactly the float32 ones
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, ro16, rd16 = PluckerTokenizer(p, 16)(imgs, c2w[None], K[None])
    assert ro16.dtype == rd16.dtype == torch.float32
    assert torch.equal(ro16, ro) and torch.equal(rd16, rd)


def test_gaussian_activations_closed_form(gen):
    act = GaussianActivation(sh_degree=3, scale_bias=-6.9, scale_max=-1.2, opacity_bias=-2.0, max_dist=500.0)
    n = 50
    raw = torch.randn(1, n, act.num_channels, generator=gen) * 4
    o = torch.randn(1, n, 3, generator=gen)
    d = torch.nn.functional.normalize(torch.randn(1, n, 3, generator=gen), dim=-1)
    g = PixelGaussians(raw, o, d, act).to_gaussians()[0]
    for i in range(n):
        r = raw[0, i].double()
        dist = 500.0 / (1 + math.exp(-float(r[0:3].mean())))
        torch.testing.assert_close(
            g.means[i].double(), o[0, i].double() + dist * d[0, i].double(), atol=1e-3, rtol=1e-5
        )
        # 48 SH channels: coefficient k, colour c at 3 + 3k + c (official feature.view(..., 16, 3))
        for k, c in ((0, 0), (0, 2), (5, 1), (15, 2)):
            assert g.sh[i, k, c] == raw[0, i, 3 + 3 * k + c]
        torch.testing.assert_close(
            g.log_scales[i].double(), torch.clamp(r[51:54] - 6.9, max=-1.2), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(g.quats[i], raw[0, i, 54:58])
        torch.testing.assert_close(g.opacity_logits[i].double(), r[58] - 2.0, atol=1e-6, rtol=0)
    assert float(g.scales().max()) <= math.exp(-1.2) + 1e-6


def test_head_output_is_pixel_aligned(gen):
    head = PixelGaussianHead(8, patch_size=4, num_channels=59)
    out = head(torch.randn(1, 2 * 3 * 5, 8, generator=gen), views=2, h=3, w=5)
    assert out.shape == (1, 2 * 12 * 20, 59)


def test_prune_counts_official_numbers():
    n = 32 * 544 * 960
    assert n == 16_711_680
    assert prune_counts(n, 0.5, 0.1) == (7_520_256, 835_584)
    top, rand = prune_counts(n, 0.6, 0.1)
    assert top + rand == 6_684_671


def test_prune_keeps_most_opaque_and_a_random_share(gen, seed):
    n = 10_000
    logits = torch.randn(n, generator=gen)
    keep = prune_indices(logits, 0.5, 0.1, torch.Generator().manual_seed(seed))
    n_top, n_rand = prune_counts(n, 0.5, 0.1)
    assert keep.shape == (n_top + n_rand,) and keep.unique().numel() == keep.numel()
    ranked = torch.argsort(logits, descending=True)
    assert set(keep[:n_top].tolist()) == set(ranked[:n_top].tolist())
    assert set(keep[n_top:].tolist()) <= set(ranked[n_top:].tolist())
    again = prune_indices(logits, 0.5, 0.1, torch.Generator().manual_seed(seed))
    assert torch.equal(keep, again)  # seeded
    other = prune_indices(logits, 0.5, 0.1, torch.Generator().manual_seed(seed + 1))
    assert not torch.equal(keep[n_top:], other[n_top:])


@pytest.mark.parametrize("ratio", [0.0, 0.3])
def test_prune_gaussians_subset(gen, ratio):
    from pipelines.gaussians import Gaussians

    g = Gaussians.random(1000, generator=gen)
    out = prune(g, ratio, 0.1, torch.Generator().manual_seed(0))
    assert out.num == (1000 if ratio == 0 else sum(prune_counts(1000, ratio, 0.1)))
