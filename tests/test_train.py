"""Feed-forward trainer: the loss falls on a fixed batch, a 2-process gloo DDP step equals one
process on the whole batch, a resumed run equals an uninterrupted one, the schedule and the loss
terms match closed forms, and the baselines behave as defined."""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from pipelines.cameras import Cameras
from pipelines.models.base import Views
from pipelines.synth.stream import PRESETS as STREAMS
from pipelines.synth.stream import StreamConfig
from pipelines.train import baselines
from pipelines.train.adapters import make_adapter, pixel_z
from pipelines.train.config import RECIPES, TrainConfig
from pipelines.train.data import PooledSource, ProceduralSource, Sample
from pipelines.train.losses import LossWeights, compute_losses, depth_loss
from pipelines.train.trainer import TrainStep, latest_checkpoint, load_checkpoint, lr_factor, train


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one intra-op thread is faster than two on a loaded 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = StreamConfig("long-lrm", 32, 32, num_inputs=2, num_targets=2, trajectory_frames=16, window=(8, 16))
# the demo capture's domain (orbits around a centre table) at the same small size: its rooms fit the
# tiny-demo presets' depth range (0, 5) in the models' normalised frames. SMALL's two inputs of a
# walk-through / look-around can lie almost at one point; normalising their positions into
# [-1, 1] then puts the room up to ~200 units away and the targets ~26, beyond every Gaussian.
ORBIT = replace(STREAMS["demo-tiny"], width=32, height=32, num_inputs=2, num_targets=2, trajectory_frames=16,
                window=(8, 16))  # fmt: skip


class FixedSource:
    """``n`` precomputed procedural samples, index i -> sample i mod n (cheap, deterministic)."""

    def __init__(self, n: int, seed: int, stream: StreamConfig = SMALL) -> None:
        src = ProceduralSource(stream, seed)
        self.samples = [src[i] for i in range(n)]

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i % len(self.samples)]


def small_config(**changes) -> TrainConfig:
    base = RECIPES["long-lrm-tiny"].with_(
        stream="long-lrm-tiny", steps=4, warmup_steps=1, lr=1e-3, checkpoint_every=1000, log_every=1,
        losses=LossWeights(mse=1.0, perceptual=0.0, opacity=0.1, depth=0.05, depth_form="log"), threads=None,
        bf16=False, grad_checkpointing=False, skip_grad_factor=0.0,
    )  # fmt: skip
    return base.with_(**changes)


def params(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(path))["model"]


# ------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("model,preset,steps", [("long-lrm", "tiny-demo", 10), ("ttt-lrm", "tiny-demo", 30)])
def test_loss_decreases_on_fixed_batch(model, preset, steps, seed):
    adapter = make_adapter(model, preset, seed=seed)
    src = FixedSource(2, seed, ORBIT)
    batch = [adapter.prepare(src[0]), adapter.prepare(src[1])]
    step = TrainStep(adapter, LossWeights(mse=1.0, opacity=0.0, depth=0.0), None)
    opt = torch.optim.AdamW(adapter.model.parameters(), lr=3e-3)  # the tiny nets' fast rate
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        terms, _ = step(batch, torch.ones(2, 3))
        terms["total"].backward()
        opt.step()
        losses.append(float(terms["total"].detach()))
    assert all(math.isfinite(v) for v in losses), losses
    assert min(losses[-3:]) < 0.85 * losses[0] and losses[-1] < min(losses[:3]), losses


def test_resume_continues_exactly(tmp_path, seed):
    src = FixedSource(3, seed)
    cfg = small_config(steps=5, seed=seed % 1000)
    full = train(cfg, tmp_path / "full", source=src, device="cpu")
    part = train(cfg, tmp_path / "resumed", source=src, device="cpu", stop_after=2)
    assert part.step == 2
    rest = train(cfg, tmp_path / "resumed", source=src, device="cpu")
    assert full.step == rest.step == 5
    a, b = params(tmp_path / "full"), params(tmp_path / "resumed")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    opt_a = load_checkpoint(latest_checkpoint(tmp_path / "full"))["optimizer"]["state"]
    opt_b = load_checkpoint(latest_checkpoint(tmp_path / "resumed"))["optimizer"]["state"]
    for k in opt_a:
        torch.testing.assert_close(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"], atol=1e-6, rtol=0)
    # the run changed the weights at all (otherwise equality proves nothing)
    init = make_adapter("long-lrm", "tiny", seed=cfg.seed).model.state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in a)


def _ddp_config(seed: int, batch_size: int) -> TrainConfig:
    """float64: the DDP run and the whole-batch run compute the same step and differ only in the
    order of their float additions (a batch of 1 per process, or of 2 in one). In float32 that
    rounding (a few 1e-7 of the Gaussians' parameters) can carry a (pixel, Gaussian) pair across
    the rasterizer's alpha >= 1/255 cutoff; the gradient then differs by that pixel's share, and
    AdamW, whose step scales each coordinate by its own gradient size, turns it into a parameter
    difference of several % of lr (seed 1363349907: 7e-5; 1 seed in 25). In float64 the rounding
    is ~1e-16 and no pair comes that close."""
    return small_config(steps=2, batch_size=batch_size, seed=seed % 1000, dtype="float64")


def _ddp_worker(rank: int, world: int, init_file: str, out: str, seed: int) -> None:
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train(_ddp_config(seed, batch_size=1), out, source=FixedSource(4, seed), device="cpu")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process_whole_batch(tmp_path, seed):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), seed), nprocs=2, join=True)
    one = _ddp_config(seed, batch_size=2)
    train(one, tmp_path / "single", source=FixedSource(4, seed), device="cpu")
    a, b = params(tmp_path / "ddp"), params(tmp_path / "single")
    init = make_adapter("long-lrm", "tiny", seed=one.seed).model.state_dict()
    # the step moved the weights (by about lr = 1e-3), far more than the tolerance below
    assert max(float((b[k] - init[k].double()).abs().max()) for k in b) > 1e-4
    for k in a:
        assert a[k].dtype == b[k].dtype == torch.float64, (k, a[k].dtype, b[k].dtype)
        torch.testing.assert_close(a[k], b[k], atol=1e-10, rtol=0, msg=k)  # measured: 4e-15 at most


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, seed):
    src = FixedSource(2, seed)
    bad = src.samples[1]
    bad.targets = Views(bad.targets.images * float("nan"), bad.targets.cameras)
    res = train(small_config(steps=4, seed=seed % 1000), tmp_path, source=src, device="cpu")
    assert res.skipped_nonfinite == 2 and res.step == 4
    assert all(torch.isfinite(v).all() for v in params(tmp_path).values())


# ------------------------------------------------------------------------------ closed forms
def test_lr_schedule_matches_cosine_with_warmup():
    cfg = TrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.0)
    # transformers.get_cosine_schedule_with_warmup: s/w in warm-up, then 0.5 (1 + cos(pi p))
    for s in (0, 1, 50, 99):
        assert lr_factor(s, cfg) == pytest.approx(s / 100)
    for s in (100, 325, 550, 775, 1000):
        p = (s - 100) / 900
        assert lr_factor(s, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * p)))
    floor = replace(cfg, min_lr_ratio=0.1)
    assert lr_factor(1000, floor) == pytest.approx(0.1)
    assert lr_factor(550, floor) == pytest.approx(0.1 + 0.9 * 0.5)


def test_loss_terms_match_their_definitions(gen):
    adapter = make_adapter("long-lrm", "tiny", seed=int(torch.randint(100, (1,), generator=gen)))
    src = FixedSource(1, int(torch.randint(10_000, (1,), generator=gen)))
    p = adapter.prepare(src[0])
    with torch.no_grad():
        pred = adapter.forward([p])
        w = LossWeights(mse=1.0, perceptual=0.0, opacity=0.3, depth=0.7, depth_form="log")
        terms = compute_losses(pred, [p], w, background=torch.ones(3))
    g = pred.gaussians[0]
    opac = torch.sigmoid(g.opacity_logits.double()).mean()
    assert float(terms["opacity"]) == pytest.approx(0.3 * float(opac), rel=1e-5)
    # pixel depth: camera z of each pixel's Gaussian, brute force per pixel
    cams = p.cameras
    z = pixel_z(g, cams)
    v, y, x = 1, 7, 11
    mean = g.means.reshape(len(cams), cams.height, cams.width, 3)[v, y, x].double()
    c2w = cams.c2w[v].double()
    assert float(z[v, y, x]) == pytest.approx(float((mean - c2w[:3, 3]) @ c2w[:3, 2]), rel=1e-5)
    gt = p.input_depth
    valid = gt > 0
    ref = np.abs(
        np.log(z[valid].clamp_min(1e-4).double().numpy()) - np.log(gt[valid].double().numpy())
    ).mean()
    assert float(terms["depth"]) == pytest.approx(0.7 * ref, rel=1e-4)


def test_disparity_depth_loss_is_scale_shift_invariant_and_matches_reference(gen):
    z_gt = 0.5 + 3 * torch.rand(2, 6, 5, generator=gen, dtype=torch.float64)
    z_gt[0, 0, :2] = 0  # unknown pixels are left out
    # a prediction whose disparity is an affine map of the truth's: loss 0
    d = 1 / z_gt.clamp_min(1e-2)
    pred = 1 / (2.5 * d + 0.3)
    assert float(depth_loss(pred, z_gt, "disparity")) == pytest.approx(0.0, abs=1e-10)
    # against a numpy brute force of (d - median) / mean |d - median| and smooth-L1
    pred = 0.5 + 3 * torch.rand(2, 6, 5, generator=gen, dtype=torch.float64)

    def norm(zz, m):
        dd = 1 / np.maximum(zz[m], 1e-2)
        med = np.sort(dd)[(len(dd) - 1) // 2]  # torch.median: the lower middle value
        return (dd - med) / np.abs(dd - med).mean()

    a, b = [], []
    for v in range(2):
        m = z_gt[v].numpy() > 0
        a.append(norm(pred[v].numpy(), m))
        b.append(norm(z_gt[v].numpy(), m))
    diff = np.abs(np.concatenate(a) - np.concatenate(b))
    ref = np.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert float(depth_loss(pred, z_gt, "disparity")) == pytest.approx(ref, rel=1e-9)


# ------------------------------------------------------------------------------ data and baselines
def test_pooled_source_is_deterministic_and_cached(tmp_path, seed):
    cfg = replace(SMALL, trajectory_frames=12, window=(8, 12))
    a = PooledSource(cfg, seed % 1000, scenes=2, cache_dir=str(tmp_path))
    s1 = a[5]
    assert len(list(tmp_path.glob("scene_*.pt"))) == 1
    b = PooledSource(cfg, seed % 1000, scenes=2, cache_dir=str(tmp_path))  # reads the cache
    s2 = b[5]
    torch.testing.assert_close(s1.inputs.images, s2.inputs.images)
    torch.testing.assert_close(s1.target_depth, s2.target_depth)
    assert s1.inputs.images.shape == (2, 3, 32, 32) and s1.input_depth.shape == (2, 32, 32)
    assert float(s1.input_depth.max()) > 0


def _random_cameras(gen, n, w=24, h=16):
    eye = torch.randn(n, 3, generator=gen) * 0.3 + torch.tensor([0.0, -3.0, 0.0])
    return Cameras.look_at(
        eye, torch.zeros(n, 3), fov_y_deg=50.0, width=w, height=h, up=torch.tensor([0.0, 0.0, 1.0])
    )


def test_reprojection_baseline_reproduces_an_identical_view(gen):
    cams = _random_cameras(gen, 3)
    imgs = torch.rand(3, 3, cams.height, cams.width, generator=gen)
    out = baselines.reproject_nearest(Views(imgs, cams), cams[[1]], depth=2.0)
    torch.testing.assert_close(out[0], imgs[1], atol=1e-5, rtol=0)
    mc = baselines.mean_colour(Views(imgs, cams), cams[[0, 2]])
    torch.testing.assert_close(mc[1, :, 3, 5], imgs.double().mean(dim=(0, 2, 3)).float())


def test_reprojection_baseline_is_exact_for_a_fronto_parallel_plane(gen):
    """A textured plane at camera z = 2 seen by two cameras translated within that plane's
    parallel: the reprojection at depth 2 is the other view's image (where it is visible)."""
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]])
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, 0, 3] = 0.1  # 0.1 right: 1 pixel of shift at z = 2
    cams = Cameras(c2w, K.expand(2, 3, 3).clone(), 32, 24)

    def plane(u_shift):
        u = torch.arange(32, dtype=torch.float64) + 0.5 + u_shift
        return torch.sin(u / 3)[None, None, :].expand(3, 24, 32).float()

    src = plane(0.0)
    out = baselines.reproject_nearest(Views(src[None], cams[[0]]), cams[[1]], depth=2.0)
    torch.testing.assert_close(out[0, :, :, 2:-2], plane(1.0)[:, :, 2:-2], atol=2e-3, rtol=0)


def test_sequence_frames_equal_the_stream_examples(seed):
    from pipelines.synth.stream import make_example, make_sequence

    cfg = replace(SMALL, trajectory_frames=10, window=(6, 10), num_targets=2)
    ex = make_example(cfg, seed % 1000, 4)
    seq = make_sequence(cfg, seed % 1000, 4)
    torch.testing.assert_close(seq.views.images[ex.input_index], ex.inputs.images)
    torch.testing.assert_close(seq.views.cameras.c2w[ex.target_index], ex.targets.cameras.c2w)
    torch.testing.assert_close(seq.depth[ex.target_index], ex.target_depth * ex.target_mask)
