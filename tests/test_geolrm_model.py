"""GeoLRM network: the official checkpoint layout, the shipped attention path, geometry
conventions, occupancy -> anchors, decoder activations, and a tiny forward + backward."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from pipelines.cameras import Cameras, make_K
from pipelines.gaussians.sh import sh0_to_rgb
from pipelines.models.geolrm.config import PRESETS, TransformerConfig
from pipelines.models.geolrm.decoder import GaussianDecoder
from pipelines.models.geolrm.encoder import ray_embedding
from pipelines.models.geolrm.model import GeoLRM, GeoLRMInputs
from pipelines.models.geolrm.proposal import grid_points, select_anchors, tokens_to_grid
from pipelines.models.geolrm.transformer import SelfAttention, project_points
from pipelines.models.geolrm.weights import convert_official
from pipelines.transforms import random_rotations
from tests.data.geolrm_official_layout import official_layout


def test_official_preset_has_the_checkpoint_layout():
    """Every official tensor (keys and shapes, from the official code) maps onto exactly our
    ``official`` state dict; only the two DINOv2 mask tokens are dropped."""
    layout = official_layout()
    assert len(layout) == 920
    with torch.device("meta"):
        model = GeoLRM(PRESETS["official"])
        fake = {k: torch.empty(s) for k, s in layout.items()}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    converted = {k: tuple(v.shape) for k, v in convert_official(fake).items()}
    assert converted == ours
    assert len(layout) - len(converted) == 2
    n_params = sum(v.numel() for v in model.state_dict().values())
    assert 330e6 < n_params < 340e6, n_params  # proposal ~105.7 M + reconstruction ~228.8 M


def _shipped_fp32_attention(x, attn: SelfAttention, pos):
    """The official fp32 branch, op by op: [B, N, H, Dh] tensors multiplied as laid out."""
    b, n, d = x.shape
    h, dh = attn.heads, attn.head_dim
    from pipelines.models.blocks.rope3d import rope3d

    xq = rope3d(attn.wq(x).view(b, n, h, dh), pos)
    xk = rope3d(attn.wk(x).view(b, n, h, dh), pos)
    xv = attn.wv(x).view(b, n, h, dh)
    scores = torch.matmul(xq, xk.transpose(2, 3)) / math.sqrt(dh)
    scores = torch.softmax(scores.float(), dim=-1).type_as(xq)
    out = torch.matmul(scores, xv).transpose(1, 2).contiguous().view(b, n, -1)
    return attn.wo(out)


def test_official_attention_is_the_shipped_path_and_ignores_positions(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    attn = SelfAttention(TransformerConfig(dim=24, layers=1, heads=2)).double()
    x = torch.randn(1, 6, 24, generator=gen, dtype=torch.float64)
    p1 = torch.randint(0, 128, (1, 6, 3), generator=gen)
    p2 = torch.randint(0, 128, (1, 6, 3), generator=gen)
    out = attn(x, p1)
    torch.testing.assert_close(out, _shipped_fp32_attention(x, attn, p1))
    torch.testing.assert_close(attn(x, p2), out, atol=1e-5, rtol=0)  # RoPE cancels within a token
    # the head-major regrouping mixes tokens: permuting tokens is not equivariant
    perm = torch.randperm(6, generator=gen)
    assert (attn(x[:, perm], p1[:, perm]) - out[:, perm]).abs().max() > 1e-6


def test_global_attention_is_rope_attention_over_tokens(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    attn = SelfAttention(TransformerConfig(dim=24, layers=1, heads=2, attention="global")).double()
    x = torch.randn(1, 6, 24, generator=gen, dtype=torch.float64)
    pos = torch.randint(0, 128, (1, 6, 3), generator=gen)
    from pipelines.models.blocks.rope3d import _rope3d_reference

    q = _rope3d_reference(attn.wq(x).view(1, 6, 2, 12), pos)
    k = _rope3d_reference(attn.wk(x).view(1, 6, 2, 12), pos)
    v = attn.wv(x).view(1, 6, 2, 12)
    w = torch.softmax(torch.einsum("bnhd,bmhd->bhnm", q, k) / math.sqrt(12), -1)
    want = attn.wo(torch.einsum("bhnm,bmhd->bnhd", w, v).reshape(1, 6, 24))
    torch.testing.assert_close(attn(x, pos), want, atol=1e-5, rtol=0)
    # equivariant under token permutation; shifting every position leaves it unchanged
    perm = torch.randperm(6, generator=gen)
    torch.testing.assert_close(attn(x[:, perm], pos[:, perm]), attn(x, pos)[:, perm], atol=1e-10, rtol=0)
    torch.testing.assert_close(attn(x, pos + 7), attn(x, pos), atol=1e-4, rtol=0)


def _random_cameras(gen, n=3, width=40, height=32, centred=True):
    R = random_rotations(n, generator=gen, dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, :3, :3] = R
    c2w[:, :3, 3] = -R[:, :, 2] * (
        1.5 + torch.rand(n, generator=gen, dtype=torch.float64)
    )  # looking at ~origin
    f = 30 + 10 * torch.rand(n, generator=gen, dtype=torch.float64)
    cx = (
        torch.full((n,), width / 2, dtype=torch.float64)
        if centred
        else width * (0.3 + 0.4 * torch.rand(n, generator=gen, dtype=torch.float64))
    )
    cy = (
        torch.full((n,), height / 2, dtype=torch.float64)
        if centred
        else height * (0.3 + 0.4 * torch.rand(n, generator=gen, dtype=torch.float64))
    )
    return Cameras(c2w, make_K(f, f, cx, cy), width, height)


def test_projection_matches_official_formula_and_cameras(gen):
    xyz = (torch.rand(1, 9, 3, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    cams = _random_cameras(gen)
    c2w_gl, K_norm = cams.c2w_opengl()[None], cams.K_normalized()[None]
    uv = project_points(xyz, c2w_gl, K_norm)[0]  # [V, N, 2]
    # official: P = K_norm @ w2c_gl[:3, :4]; uv = P X / z; u = 1 - u   (centred principal point)
    P = K_norm[0] @ torch.linalg.inv(c2w_gl[0])[:, :3, :4]
    X = torch.cat([xyz[0], torch.ones(9, 1, dtype=torch.float64)], -1)
    p = torch.einsum("vij,nj->vni", P, X)
    off = p[..., :2] / p[..., 2:]
    off[..., 0] = 1 - off[..., 0]
    torch.testing.assert_close(uv, off)
    # general principal point: pixel projection of Cameras divided by the image size
    cams = _random_cameras(gen, centred=False)
    uv = project_points(xyz, cams.c2w_opengl()[None], cams.K_normalized()[None])[0]
    px, _ = cams.project(xyz[0])
    torch.testing.assert_close(uv, px / torch.tensor([cams.width, cams.height], dtype=torch.float64))


def test_ray_embedding_is_direction_then_moment(gen):
    cams = _random_cameras(gen, centred=False)
    emb = ray_embedding(cams.c2w_opengl(), cams.K_normalized(), cams.height, cams.width).permute(0, 2, 3, 1)
    d, m = emb[..., :3], emb[..., 3:]
    o, d_unit = cams.pixel_rays()
    torch.testing.assert_close(torch.nn.functional.normalize(d, dim=-1), d_unit)
    fwd = cams.forward_dirs()[:, None, None, :]
    torch.testing.assert_close((d * fwd).sum(-1), torch.ones_like(d[..., 0]))  # unit camera-space depth
    torch.testing.assert_close(m, torch.linalg.cross(o, d, dim=-1))


def test_occupancy_grid_layout():
    """Token (i, j, k) owns voxels (i t + a, j t + b, k t + c): feed each token's sub-voxel
    logits the flat index of the voxel it should land on and read the grid back."""
    n, t = 3, 2
    g = n * t
    idx = torch.arange(n**3 * t**3)
    tok, sub = idx // t**3, idx % t**3
    i, j, k = tok // (n * n), tok // n % n, tok % n
    a, b, c = sub // (t * t), sub // t % t, sub % t
    voxel = ((i * t + a) * g + (j * t + b)) * g + (k * t + c)
    grid = tokens_to_grid(voxel.view(1, n**3, t**3), n, t)
    assert torch.equal(grid.flatten(), torch.arange(g**3))
    # each token's centre lies inside the block of voxels it owns
    tokens, voxels = grid_points(n, 0.5).view(n, n, n, 3), grid_points(g, 0.5).view(g, g, g, 3)
    for ii in range(n):
        lo, hi = voxels[ii * t, 0, 0, 0], voxels[ii * t + t - 1, 0, 0, 0]
        assert lo - 1e-6 <= tokens[ii, 0, 0, 0] <= hi + 1e-6


def test_select_anchors_rules(gen):
    g, cap = 8, 40
    logits = torch.randn(1, g, g, g, generator=gen)
    occ = torch.nonzero(logits.flatten() > 0).squeeze(1)
    centres = grid_points(g, 0.5)
    # over the cap: a random subset of the occupied voxels, reproducible with the generator
    a1 = select_anchors(logits, max_anchors=cap, cube_half=0.5, generator=torch.Generator().manual_seed(3))
    a2 = select_anchors(logits, max_anchors=cap, cube_half=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1.xyz, a2.xyz) and a1.valid.all() and int(a1.occupied[0]) == occ.numel()
    picked = torch.cdist(a1.xyz[0], centres).argmin(1)
    assert picked.unique().numel() == cap and torch.isin(picked, occ).all()
    # top: the highest logits, x-major
    top = select_anchors(logits, max_anchors=cap, cube_half=0.5, selection="top")
    want = torch.topk(logits.flatten(), cap).indices.sort().values
    torch.testing.assert_close(top.xyz[0], centres[want])
    # under the cap: every occupied voxel in x-major order, then origin padding
    big = select_anchors(logits, max_anchors=occ.numel() + 5, cube_half=0.5)
    torch.testing.assert_close(big.xyz[0, : occ.numel()], centres[occ])
    assert big.valid[0, : occ.numel()].all() and not big.valid[0, occ.numel() :].any()
    assert (big.xyz[0, occ.numel() :] == 0).all()
    nopad = select_anchors(logits, max_anchors=occ.numel() + 5, cube_half=0.5, pad=False)
    assert nopad.xyz.shape[1] == occ.numel()


def test_decoder_activations_match_official_formulas(gen):
    dec = GaussianDecoder(dim=8, per_anchor=3, offset_max=0.2, scale_max=0.02)
    anchors = torch.rand(5, 3, generator=gen) - 0.5
    raw = torch.randn(5, 3, 14, generator=gen) * 2
    g = dec.to_gaussians(anchors, raw)
    r = raw.reshape(15, 14)
    a = anchors[:, None].expand(5, 3, 3).reshape(15, 3)
    torch.testing.assert_close(g.means, a + torch.sigmoid(r[:, 0:3]) * 0.2)
    torch.testing.assert_close(g.opacities(), torch.sigmoid(r[:, 3]))
    torch.testing.assert_close(g.scales(), torch.sigmoid(r[:, 4:7]) * 0.02)
    torch.testing.assert_close(g.rotations(), r[:, 7:11] / r[:, 7:11].norm(dim=-1, keepdim=True))
    assert g.sh_degree == 0
    torch.testing.assert_close(sh0_to_rgb(g.sh[:, 0]), r[:, 11:14].clamp(-0.5, 0.5) + 0.5)


@pytest.mark.parametrize("attention", ["official", "global"])
def test_tiny_forward_backward(gen, attention):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    base = PRESETS["tiny"]
    cfg = replace(
        base,
        proposal=replace(base.proposal, attention=attention, dropout=0.1),
        reconstruction=replace(base.reconstruction, attention=attention),
    )
    net = GeoLRM(cfg).train()
    x = GeoLRMInputs.orbit(views=3, image_size=cfg.image_size, generator=gen)
    out = net(x, generator=torch.Generator().manual_seed(0))
    assert out.occupancy_logits.shape == (1, 16, 16, 16) and out.raw.shape == (1, 64, 4, 14)
    g = out.gaussians(net.reconstruction.decoder)
    assert g.num == 4 * int(out.anchors.valid.sum())
    for t in (out.occupancy_logits, out.raw):
        assert torch.isfinite(t).all()
    loss = out.occupancy_logits.sigmoid().mean() + out.raw.square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("cross_view_weight.bias"):
            # one bias shared by every view's logit: the softmax over views cancels it exactly
            continue
        assert p.grad.abs().sum() > 0, name
