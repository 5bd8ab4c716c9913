"""Long-LRM: official architecture (keys, shapes, parameter count, token counts on the meta
device), the tiny preset end to end (forward + backward), preprocessing as the official code does
it, k-means views, the world frame of the result, and the memory guard."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.models.base import Views, load_model
from pipelines.models.long_lrm.config import PRESETS, LongLRMConfig, transformer_baseline
from pipelines.models.long_lrm.memory import InsufficientMemory, _num_params, check_memory, estimate_bytes
from pipelines.models.long_lrm.model import LongLRM
from pipelines.models.long_lrm.preprocess import average_camera, model_size, prepare, select_views_kmeans
from pipelines.models.long_lrm.weights import map_key, official_key
from tests.long_lrm_official import OFFICIAL_NUM_PARAMS, num_params, official_540p_table, official_table

OFFICIAL = PRESETS["official-540p"]


def meta_model(config: LongLRMConfig) -> LongLRM:
    with torch.device("meta"):
        return LongLRM(config)


def test_official_table_data_is_consistent():
    table = official_540p_table()
    assert len(table) == 342
    assert num_params(table) == OFFICIAL_NUM_PARAMS
    c = OFFICIAL
    assert official_table(dims=c.dims, layout=c.layout, merge_at=c.merge_at) == table


def test_official_540p_keys_and_shapes_equal_the_official_ones():
    ours = {k: tuple(v.shape) for k, v in meta_model(OFFICIAL).state_dict().items()}
    official = official_540p_table()
    mapped = {map_key(k): v for k, v in official.items()}
    assert None not in mapped
    assert mapped == ours
    assert {official_key(k) for k in ours} == set(official)
    assert sum(math.prod(s) for s in ours.values()) == OFFICIAL_NUM_PARAMS
    assert map_key("tokenizer.weight") == map_key("tokenizer.0.weight")  # d92dd51 name


@pytest.mark.parametrize("preset", list(PRESETS))
def test_param_count_formula(preset):
    for cfg in (PRESETS[preset], transformer_baseline(PRESETS[preset])):
        assert _num_params(cfg) == sum(p.numel() for p in meta_model(cfg).parameters())


def test_token_counts_official_32_views_540p():
    """32 views at 960x544 on the meta device: 261,120 image tokens before the merge, 65,280 after."""
    m = meta_model(OFFICIAL)
    w, h = model_size(960, 540, resize_h=540, multiple=16)
    assert (w, h) == (960, 544)
    imgs = torch.empty(1, 32, 3, h, w, device="meta")
    c2w = torch.empty(1, 32, 4, 4, device="meta")
    K = torch.empty(1, 32, 3, 3, device="meta")
    tokens, ray_o, _ = m.tokenizer(imgs, c2w, K)
    assert tokens.shape == (1, 261_120, 256) and ray_o.shape == (1, 32 * 544 * 960, 3)
    x = torch.cat([m.global_tokens, tokens], dim=1)
    merged, hh, ww = m.merges[0](x, num_global=2, views=32, h=h // 8, w=w // 8)
    assert merged.shape == (1, 2 + 65_280, 1024) and (hh, ww) == (34, 60)
    assert m.num_tokens(32, h, w)[7] == 261_122 and m.num_tokens(32, h, w)[8] == 65_282
    raw = m.head(merged[:, 2:], views=32, h=hh, w=ww)
    assert raw.shape == (1, 16_711_680, 59)  # one Gaussian per input pixel


def synthetic_views(gen, n=6, width=120, height=70, centre=(5.0, 1.0, 2.0), radius=3.0):
    ang = torch.linspace(0, 1.5, n) + float(torch.rand(1, generator=gen))
    c = torch.tensor(centre)
    eye = (
        torch.stack(
            [radius * torch.sin(ang), 0.3 * torch.randn(n, generator=gen), -radius * torch.cos(ang)], -1
        )
        + c
    )
    cams = Cameras.look_at(eye, c.expand(n, 3), fov_y_deg=50, width=width, height=height)
    return Views(torch.rand(n, 3, height, width, generator=gen), cams)


def test_tiny_forward_backward_every_parameter(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = LongLRM(PRESETS["tiny"])
    views = synthetic_views(gen, n=3, width=64, height=32)
    prep = prepare(views, resize_h=32, multiple=16, scene_scale=1.35)
    out = model(prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])
    (g,) = out.to_gaussians()
    assert g.num == 3 * 32 * 64
    loss = (
        g.means.square().mean()
        + g.sh.square().mean()
        + g.opacities().mean()
        + g.log_scales.mean()
        + g.quats.sum()
    )
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # gradient checkpointing gives the same gradients
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.grad_checkpointing = True
    out = model(prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])
    (g,) = out.to_gaussians()
    (
        g.means.square().mean()
        + g.sh.square().mean()
        + g.opacities().mean()
        + g.log_scales.mean()
        + g.quats.sum()
    ).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], atol=1e-5, rtol=1e-4)


def test_model_size_rounding():
    assert model_size(1920, 1080, resize_h=540, multiple=16) == (960, 544)
    assert model_size(960, 540, resize_h=540, multiple=16) == (960, 544)
    assert model_size(1080, 1920, resize_h=540, multiple=16) == (304, 544)  # int(540/1920*1080) = 303 -> 304
    assert model_size(640, 480, resize_h=-1, multiple=16) == (640, 480)
    assert model_size(500, 300, resize_h=64, multiple=16) == (112, 64)  # int(106.67) = 106 -> 112


def test_pose_normalisation_official(gen):
    views = synthetic_views(gen)
    prep = prepare(views, resize_h=64, multiple=16, scene_scale=1.35)
    assert (prep.cameras.width, prep.cameras.height) == model_size(120, 70, resize_h=64, multiple=16)
    # the average camera of the normalised inputs is the identity, positions in [-1/1.35, 1/1.35]
    torch.testing.assert_close(
        average_camera(prep.cameras.c2w), torch.eye(4, dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert abs(float(prep.cameras.c2w[:, :3, 3].abs().max()) - 1 / 1.35) < 1e-5
    # to_world maps the normalised cameras back onto the originals
    back = prep.cameras.to(dtype=torch.float64).transform(prep.to_world)
    torch.testing.assert_close(back.c2w.float(), views.cameras.c2w, atol=1e-4, rtol=0)
    # K follows the resize
    sx = prep.cameras.width / 120
    torch.testing.assert_close(prep.cameras.fx, views.cameras.fx * sx)


def test_reconstruction_is_in_the_world_frame(gen):
    """With pruning off, Gaussian i lies on the world ray of input pixel i."""
    rec = load_model("long-lrm", preset="tiny", device="cpu")
    rec.config = rec.config.with_(prune_ratio=0.0)
    views = synthetic_views(gen, n=4, width=100, height=60)
    out = rec(views)
    w, h = rec.input_size(100, 60)
    assert out.gaussians.num == 4 * w * h and out.info["model_size"] == [w, h]
    o, d = views.cameras.resize(w, h).pixel_rays()  # world rays of the model-size pixels
    o, d = o.reshape(-1, 3).double(), d.reshape(-1, 3).double()
    rel = out.gaussians.means.double() - o
    t = (rel * d).sum(-1)
    off_ray = (rel - t[:, None] * d).norm(dim=-1)
    assert float(off_ray.max()) < 1e-3 * float(t.abs().max()) and bool((t > 0).all())
    # distance along the ray, in world units: (0, 500) in the normalised frame divided by its scale
    assert float(t.max()) < 500 / out.to_world.inverse().scale
    assert set(out.timings) >= {"preprocess_s", "network_s", "gaussians_s", "total_s"}


def test_reconstruction_prunes_with_a_seed(gen):
    rec = load_model("long-lrm", preset="tiny", device="cpu")
    views = synthetic_views(gen, n=3, width=64, height=48)
    a, b = rec(views), rec(views)
    w, h = rec.input_size(64, 48)
    n = 3 * w * h
    top, rand = (int(n * 0.45), int(n * 0.05))
    assert a.gaussians.num == top + rand
    torch.testing.assert_close(a.gaussians.means, b.gaussians.means)


def test_kmeans_views_pick_one_per_cluster(gen):
    n_clusters, per = 5, 12
    centres = torch.randn(n_clusters, 3, generator=gen) * 20
    eye = (centres[:, None] + 0.05 * torch.randn(n_clusters, per, 3, generator=gen)).reshape(-1, 3)
    cams = Cameras.look_at(eye, torch.zeros_like(eye), fov_y_deg=50, width=32, height=32)
    perm = torch.randperm(len(eye), generator=gen)
    cams = cams[perm]
    label = (torch.arange(n_clusters).repeat_interleave(per))[perm]
    picked = select_views_kmeans(cams, n_clusters)
    assert picked == sorted(picked) and len(set(picked)) == n_clusters
    assert sorted(label[picked].tolist()) == list(range(n_clusters))
    cand = [i for i in range(len(eye)) if i % 8 != 0]  # train split only
    picked = select_views_kmeans(cams, 7, cand)
    assert set(picked) <= set(cand) and len(set(picked)) == 7
    assert select_views_kmeans(cams, 100, cand) == cand


def test_memory_estimate_and_guard():
    est = estimate_bytes(OFFICIAL, views=32, height=544, width=960, act_bytes=2, scan="mamba_ssm")
    assert est < 24 * 2**30  # the target budget
    more = estimate_bytes(OFFICIAL, views=64, height=544, width=960, act_bytes=2, scan="mamba_ssm")
    assert more > 1.8 * est
    with pytest.raises(InsufficientMemory, match="--views"):
        check_memory(OFFICIAL, views=100_000, height=544, width=960, device="cpu", scan="torch")
    rec = load_model("long-lrm", preset="tiny", device="cpu")
    assert rec.check_memory(4, 64, 32) < 2**30
