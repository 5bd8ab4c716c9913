"""GeoLRM in the trainer: occupancy targets against a brute-force nearest-centre search, the
proposal loss against its definition, the sample mapped into the cube consistently, each stage
learning on a fixed batch with the other network frozen, and stage 1 -> export -> stage 2 ->
``geolrm.load`` end to end."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.models.geolrm.proposal import grid_points
from pipelines.synth.stream import PRESETS as STREAMS
from pipelines.train.adapters import make_adapter, occupancy_grid
from pipelines.train.config import RECIPES
from pipelines.train.data import ProceduralSource
from pipelines.train.losses import LossWeights, occupancy_loss
from pipelines.train.trainer import TrainStep, export_weights, latest_checkpoint, train
from tests.test_train import FixedSource, one_thread  # noqa: F401 (one_thread: an autouse fixture)

OBJECTS = STREAMS["geolrm-tiny"]


def test_occupancy_grid_marks_the_nearest_voxel_centre(gen):
    g, half = 8, 0.5
    pts = (torch.rand(500, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 0.62
    occ = occupancy_grid(pts, g, half)
    centres = grid_points(g, half).double()  # [G^3, 3], x-major as the proposal's grid
    pitch = 2 * half / (g - 1)
    expected = torch.zeros(g**3, dtype=torch.bool)
    for p in pts:
        if (p.abs() > half + pitch / 2).any():
            continue  # beyond the outer voxels
        expected[int(torch.argmin((centres - p).norm(dim=-1)))] = True
    assert torch.equal(occ.reshape(-1), expected)
    assert 0 < int(expected.sum()) < 500


def test_occupancy_loss_matches_its_definition(gen):
    logits = torch.randn(6, 6, 6, generator=gen, dtype=torch.float64) * 2
    occ = torch.rand(6, 6, 6, generator=gen) < 0.2
    y, p = occ.double(), torch.sigmoid(logits)
    bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    precision = (p * y).sum() / p.sum()
    recall = (p * y).sum() / y.sum()
    specificity = ((1 - p) * (1 - y)).sum() / (1 - y).sum()
    expected = bce - torch.log(precision) - torch.log(recall) - torch.log(specificity)
    torch.testing.assert_close(occupancy_loss(logits, occ), expected, rtol=1e-9, atol=0)
    # a confident, right answer costs almost nothing; an all-empty one is punished by recall
    right = torch.where(occ, 30.0, -30.0).double()
    assert float(occupancy_loss(right, occ)) < 1e-6
    assert float(occupancy_loss(torch.full_like(logits, -30.0), occ)) > 10


def test_prepare_maps_the_sample_into_the_cube_consistently(seed):
    ad = make_adapter("geolrm", "tiny-demo", stage="proposal", seed=seed % 1000)
    sample = ProceduralSource(STREAMS["geolrm-tiny"], seed)[0]
    p = ad.prepare(sample)
    cfg = ad.model.cfg
    assert p.images.shape == (len(sample.inputs.cameras), 3, cfg.image_size, cfg.image_size)
    assert (p.cameras.width, p.cameras.height) == (cfg.image_size, cfg.image_size)
    # target surface points: the cube cameras with the scaled depth give the mapped world points
    d = sample.target_depth.double()
    world = sample.targets.cameras.to(dtype=torch.float64).unproject(d)[d > 0]
    cube = p.target_cameras.to(dtype=torch.float64).unproject(p.target_depth.double())[d > 0]
    torch.testing.assert_close(cube, p.to_model.apply(world), atol=1e-4, rtol=0)
    # the object fills the cube (fill 0.9 of the 2nd..98th percentiles) and its voxels are marked
    inside = (cube.abs() <= cfg.cube_half + 1e-6).all(-1).double().mean()
    assert inside > 0.9, float(inside)
    assert torch.equal(p.occupancy, occupancy_grid(torch.cat([
        p.to_model.apply(sample.inputs.cameras.to(dtype=torch.float64).unproject(sample.input_depth.double())[
            sample.input_depth > 0]), cube]), cfg.grid_size, cfg.cube_half))  # fmt: skip
    # each input camera sees the cube's centre near its principal point (square crop around it)
    uv, z = p.cameras.project(torch.zeros(1, 3))
    assert (z > 0).all() and ((uv[:, 0] - cfg.image_size / 2).abs() < cfg.image_size / 4).all()


@pytest.mark.parametrize("stage", ["proposal", "reconstruction"])
def test_each_stage_learns_with_the_other_network_frozen(stage, seed):
    ad = make_adapter("geolrm", "tiny", stage=stage, seed=seed % 1000)
    frozen = ad.model.reconstruction if stage == "proposal" else ad.model.proposal
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    src = FixedSource(2, seed, OBJECTS)
    batch = [ad.prepare(src[0]), ad.prepare(src[1])]
    weights = (
        LossWeights(mse=0.0, perceptual=0.0, opacity=0.0, depth=0.0, occupancy=1.0)
        if stage == "proposal"
        else LossWeights(mse=1.0, perceptual=0.0, opacity=0.0, depth=0.2, depth_form="log", mask=1.0)
    )
    step = TrainStep(ad, weights, None)
    opt = torch.optim.AdamW(ad.trainable_parameters(), lr=3e-3)
    losses = []
    for i in range(25):
        opt.zero_grad()
        terms, info = step(batch, torch.ones(2, 3), torch.Generator().manual_seed(i))
        terms["total"].backward()
        opt.step()
        losses.append(float(terms["total"].detach()))
    assert all(math.isfinite(v) for v in losses), losses
    assert min(losses[-3:]) < 0.85 * losses[0], losses
    assert ("occupancy" in terms) == (stage == "proposal") and ("mse" in terms) == (stage != "proposal")
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in ad.trainable_parameters()) and ad.trainable_parameters()


def test_two_stages_export_and_load(tmp_path, seed):
    from pipelines.models.geolrm import load
    from pipelines.models.geolrm.model import GeoLRMInputs

    src = FixedSource(2, seed, OBJECTS)
    base = RECIPES["geolrm-tiny"].with_(steps=3, warmup_steps=1, checkpoint_every=1000, log_every=1,
                                         seed=seed % 1000, threads=None)  # fmt: skip
    one = train(base.with_(stage="proposal", losses=RECIPES["geolrm-proposal"].losses), tmp_path / "s1",
                source=src, device="cpu")  # fmt: skip
    assert one.step == 3 and "occupancy" in one.last
    w1 = export_weights(latest_checkpoint(tmp_path / "s1"), tmp_path / "s1.safetensors")
    two = train(base.with_(init=str(w1)), tmp_path / "s2", source=src, device="cpu")
    assert two.step == 3 and "mse" in two.last
    w2 = export_weights(latest_checkpoint(tmp_path / "s2"), tmp_path / "geolrm.safetensors")
    rec = load(w2)  # the preset comes from the file
    s1 = load(w1)
    # stage 2 kept stage 1's proposal and changed the reconstruction network
    for k, v in s1.model.proposal.state_dict().items():
        assert torch.equal(v, rec.model.proposal.state_dict()[k]), k
    assert any(
        not torch.equal(v, s1.model.reconstruction.state_dict()[k])
        for k, v in rec.model.reconstruction.state_dict().items()
    )
    x = GeoLRMInputs.orbit(
        views=2, image_size=rec.cfg.image_size, generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        out = rec.model(x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.raw).all()


def test_rendered_depth_term_is_zero_for_the_true_surface(gen):
    """The depth term of a non-pixel-aligned model compares the rendered target depth: small opaque
    Gaussians on a target view's own surface points render about that view's depth, and the same
    Gaussians pushed 20 % deeper cost more, up to log 1.2."""
    from pipelines.gaussians import Gaussians
    from pipelines.gaussians.render import render
    from pipelines.train.adapters import Prediction, Prepared
    from pipelines.train.losses import compute_losses
    from pipelines.transforms import Similarity

    sample = ProceduralSource(STREAMS["geolrm-tiny"], int(torch.randint(10_000, (1,), generator=gen)))[0]
    cams, depth = sample.targets.cameras[:1], sample.target_depth[:1]
    pts = cams.unproject(depth)[depth > 0]
    c = cams.centers()[0]

    def at(points, scale):  # opaque, about a pixel's footprint (2 tan(19.8 deg) * 2 / 64 = 0.022)
        n = len(points)
        quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
        log_scales = torch.full((n, 3), math.log(scale))
        return Gaussians(points.float(), quats, log_scales, torch.full((n,), 8.0), torch.zeros(n, 1, 3))

    prep = Prepared(sample.inputs.images, sample.inputs.cameras, sample.targets.images[:1], cams, None, depth,
                    "metric", Similarity.identity())  # fmt: skip
    w = LossWeights(mse=0.0, perceptual=0.0, opacity=0.0, depth=1.0, depth_form="log")
    g_near, g_far = at(pts, 0.012), at(c + 1.2 * (pts - c), 0.012 * 1.2)  # the same pixels, 1.2 x deeper
    near = compute_losses(Prediction([g_near], None), [prep], w, background=torch.ones(3))["depth"]
    far = compute_losses(Prediction([g_far], None), [prep], w, background=torch.ones(3))["depth"]
    # exactly the log-L1 of the rendered depth over the pixels with known depth
    z = render(g_near, cams, background=torch.ones(3)).depth[..., 0]
    torch.testing.assert_close(near, (z[depth > 0].log() - depth[depth > 0].log()).abs().mean())
    # near the truth (edges blend a little), and 1.2 x deeper costs up to log 1.2 (0.18) more
    assert float(near) < 0.05, float(near)
    assert 0.1 < float(far - near) < 0.2, (float(near), float(far))


def test_gradient_checkpointing_keeps_the_gradients(seed, monkeypatch):
    import torch.utils.checkpoint as ckpt

    from pipelines.train.adapters import set_grad_checkpointing

    calls = []
    real = ckpt.checkpoint
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    sample = FixedSource(1, seed, OBJECTS)[0]
    grads = []
    for enabled in (False, True):
        for stage in ("proposal", "reconstruction"):
            ad = make_adapter("geolrm", "tiny", stage=stage, seed=seed % 1000)
            assert set_grad_checkpointing(ad.model, enabled) and ad.model.grad_checkpointing == enabled
            ad.model.train()
            w = LossWeights(
                mse=1.0, perceptual=0.0, opacity=0.1, depth=0.2, depth_form="log", mask=1.0, occupancy=1.0
            )
            terms, _ = TrainStep(ad, w, None)(
                [ad.prepare(sample)], torch.ones(1, 3), torch.Generator().manual_seed(1)
            )
            terms["total"].backward()
            grads.append([p.grad.clone() for p in ad.trainable_parameters() if p.grad is not None])
        assert bool(calls) == enabled  # blocks run checkpointed exactly when asked
    assert len(calls) == 1 + 2  # the trained transformer's blocks (tiny: 1 proposal, 2 reconstruction)
    for a, b in zip(grads[:2], grads[2:], strict=True):
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
