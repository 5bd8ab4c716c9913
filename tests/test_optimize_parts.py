"""The optimizer's parts against independent references: the fixed opacity reset, the Gaussian
cap, schedules (vs torch's ExponentialLR), the scene scale and kNN init (vs float64 brute
force), MCMC refused on the CPU, the config round trip."""

from __future__ import annotations

import math
from dataclasses import replace

import gsplat
import pytest
import torch
from gsplat.strategy import DefaultStrategy as GsplatDefaultStrategy

from pipelines.cameras import Cameras
from pipelines.optimize import OptimizeConfig, preset
from pipelines.optimize.init import from_params, init_from_points, knn_mean_distance, scene_scale, to_params
from pipelines.optimize.schedules import ExponentialDecay, ShDegreeSchedule, ViewOrder
from pipelines.optimize.strategy import DefaultStrategy, make_strategy


def _params_and_optimizers(gen: torch.Generator, n: int):
    g = init_from_points(torch.randn(n, 3, generator=gen), torch.rand(n, 3, generator=gen), generator=gen)
    g.opacity_logits = torch.randn(n, generator=gen) * 3  # many above the reset value 0.01
    params = to_params(g)
    opts = {k: torch.optim.Adam([{"params": p, "lr": 1e-3, "name": k}], eps=1e-15) for k, p in params.items()}
    for k, p in params.items():  # give Adam some state
        p.grad = torch.randn_like(p)
        opts[k].step()
    return params, opts


def _info(params, gen, width=64, height=48):
    """A gsplat-shaped render meta for one camera: every Gaussian visible, small 2D grads."""
    n = params["means"].shape[0]
    means2d = torch.zeros(1, n, 2, requires_grad=True)
    means2d.grad = 1e-6 * torch.randn(1, n, 2, generator=gen)  # far below grow_grad2d
    radii = torch.full((1, n, 2), 3, dtype=torch.int32)
    return {
        "means2d": means2d,
        "radii": radii,
        "width": width,
        "height": height,
        "n_cameras": 1,
        "gaussian_ids": None,
    }


@pytest.mark.parametrize("step_kind", ["reset", "not_multiple", "after_stop"])
def test_opacity_reset_fires_at_reset_every(gen, step_kind):
    s = DefaultStrategy(
        reset_every=300, refine_every=100, refine_start_iter=50, refine_stop_iter=1000, prune_opa=0.005
    )
    step = {"reset": 600, "not_multiple": 650, "after_stop": 1200}[step_kind]
    params, opts = _params_and_optimizers(gen, 200)
    state = s.initialize_state(scene_scale=100.0)  # nothing counts as too big
    before = params["opacities"].detach().clone()
    avg_before = opts["opacities"].state[params["opacities"]]["exp_avg"].clone()
    s.step_post_backward(params, opts, state, step, _info(params, gen))
    after = params["opacities"].detach()
    avg_after = opts["opacities"].state[params["opacities"]]["exp_avg"]
    max_logit = math.log(0.01 / 0.99)  # reset value 2 x prune_opa
    if step_kind == "reset":  # also a refine step: low-opacity Gaussians are pruned first
        kept = torch.sigmoid(before) >= s.prune_opa
        assert (before[kept] > max_logit + 1e-3).any(), "the test needs opacities above the reset value"
        torch.testing.assert_close(after, before[kept].clamp(max=max_logit), rtol=0, atol=1e-6)
        assert torch.all(avg_after == 0)
    else:
        torch.testing.assert_close(after, before, rtol=0, atol=0)
        torch.testing.assert_close(avg_after, avg_before, rtol=0, atol=0)


@pytest.mark.skipif(gsplat.__version__ != "1.5.3", reason="documents the bug of the PyPI 1.5.3 release")
def test_gsplat_1_5_3_default_strategy_never_resets(gen):
    """Why the subclass exists: the base class's reset condition is always False in 1.5.3."""
    s = GsplatDefaultStrategy(reset_every=300, refine_every=100, refine_start_iter=50, refine_stop_iter=1000)
    params, opts = _params_and_optimizers(gen, 100)
    state = s.initialize_state(scene_scale=100.0)
    before = params["opacities"].detach().clone()
    s.step_post_backward(params, opts, state, 300, _info(params, gen))  # a reset (and refine) step
    kept = torch.sigmoid(before) >= s.prune_opa
    assert (before[kept] > math.log(0.01 / 0.99) + 1e-3).any()
    torch.testing.assert_close(params["opacities"].detach(), before[kept], rtol=0, atol=0)  # nothing clamped


def test_cap_limits_growth_to_the_largest_gradients(gen):
    n, cap = 300, 340
    s = DefaultStrategy(
        refine_start_iter=0, refine_every=10, reset_every=10_000, grow_grad2d=1e-4, prune_opa=0.0, cap_max=cap
    )
    params, opts = _params_and_optimizers(gen, n)
    state = s.initialize_state(scene_scale=1e4)  # all Gaussians "small": growth duplicates them
    info = _info(params, gen)
    grads = torch.rand(1, n, 2, generator=gen) * 1e-3  # many above grow_grad2d (normalized below)
    info["means2d"].grad = grads
    norm = (grads * torch.tensor([64 / 2, 48 / 2])).norm(dim=-1)[0]
    assert int((norm > 1e-4).sum()) > cap - n, "the test needs more candidates than the cap allows"
    means_before = params["means"].detach().clone()
    s.step_post_backward(params, opts, state, 10, info)
    assert params["means"].shape[0] == cap
    dup = params["means"].detach()[n:]  # duplicates are appended copies of the chosen ones
    chosen = torch.topk(norm, cap - n).indices
    torch.testing.assert_close(dup.sort(dim=0).values, means_before[chosen].sort(dim=0).values)
    # at the cap nothing grows
    info2 = _info(params, gen)
    info2["means2d"].grad = torch.rand(1, cap, 2, generator=gen) * 1e-3
    s.step_post_backward(params, opts, state, 20, info2)
    assert params["means"].shape[0] == cap


def test_mcmc_is_refused_on_the_cpu_with_a_reason():
    with pytest.raises(ValueError, match="needs CUDA.*strategy 'default'"):
        make_strategy(replace(OptimizeConfig(), strategy="mcmc"), "cpu")
    assert isinstance(make_strategy(preset("cpu-fast"), "cpu"), DefaultStrategy)


def test_means_lr_matches_torch_exponential_lr(gen):
    steps = int(torch.randint(50, 400, (1,), generator=gen))
    lr0 = float(torch.rand(1, generator=gen)) * 1e-3 + 1e-5
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1.0 / steps))
    ours = ExponentialDecay(lr0, 0.01, steps)
    for step in range(steps):
        assert math.isclose(opt.param_groups[0]["lr"], ours.at(step), rel_tol=1e-9), step
        opt.step()
        sched.step()
    assert math.isclose(ours.at(steps), 0.01 * lr0, rel_tol=1e-12)


def test_sh_schedule_and_view_order(seed):
    sh = ShDegreeSchedule(interval=1000, max_degree=3)
    assert [sh.degree(s) for s in (0, 999, 1000, 2999, 3000, 29_999)] == [0, 0, 1, 2, 3, 3]
    refined = ShDegreeSchedule(interval=1000, max_degree=3, start=2)  # a run with 2 bands trained
    assert [refined.degree(s) for s in (0, 999, 2999, 3000)] == [2, 2, 2, 3]
    order = ViewOrder(num_views=7, seed=seed)
    state = order.init_state()
    seen = []
    for _ in range(21):
        i, state = order.next(state)
        seen.append(i)
    for epoch in range(3):
        assert sorted(seen[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert seen[:7] != seen[7:14] or seen[7:14] != seen[14:]  # fresh permutations
    # the state is a value: continuing from a copy gives the same sequence
    i1, s1 = order.next(state)
    i2, _ = order.next({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()})
    assert i1 == i2


def test_scene_scale_and_knn_against_brute_force(gen):
    n = 40
    eye = torch.randn(n, 3, generator=gen) * 3
    cams = Cameras.look_at(eye, torch.zeros(n, 3), fov_y_deg=50, width=32, height=32)
    c = eye.double()
    expected = 1.1 * max(float((c[i] - c.mean(0)).norm()) for i in range(n))
    assert math.isclose(scene_scale(cams), expected, rel_tol=1e-6)
    pts = torch.randn(700, 3, generator=gen)
    pts[5] = pts[6]  # a duplicate point: its neighbour at distance 0
    got = knn_mean_distance(pts, chunk=128)
    p = pts.double()
    d = ((p[:, None] - p[None]) ** 2).sum(-1)
    d.fill_diagonal_(float("inf"))
    ref = d.topk(3, dim=1, largest=False).values.mean(1).sqrt()
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-6)
    g = init_from_points(pts, torch.rand(700, 3, generator=gen), generator=gen)
    assert torch.isfinite(g.log_scales).all()
    torch.testing.assert_close(g.log_scales[:, 0], ref.clamp_min(1e-7).log().float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g.opacities(), torch.full((700,), 0.1))
    back = from_params(to_params(g))
    for k, v in g.tensors().items():
        torch.testing.assert_close(getattr(back, k), v)


def test_config_round_trip_and_reduced_note():
    for name in ("cuda-30k", "cpu-fast"):
        cfg = preset(name)
        assert OptimizeConfig.from_dict(cfg.to_dict()) == cfg
    assert preset("cuda-30k").reduced_note is None
    note = preset("cpu-fast").reduced_note
    assert note is not None and "3,000 steps" in note and "128 px" in note and "20,000 Gaussians" in note
    with pytest.raises(ValueError, match="unknown optimizer settings"):
        OptimizeConfig.from_dict({**preset("cpu-fast").to_dict(), "bogus": 1})


def test_cli_settings_pick_the_preset_by_device_and_apply_overrides():
    from pipelines.optimize.data import training_size
    from studio.commands.optimize import make_config

    assert make_config(torch.device("cpu")).preset == "cpu-fast"
    assert make_config(torch.device("cuda")) == preset("cuda-30k")
    cfg = make_config(torch.device("cpu"), steps=700, seed=3)
    assert (cfg.steps, cfg.seed, cfg.max_side) == (700, 3, 128)
    assert training_size(960, 540, cfg.downscale, cfg.max_side) == (128, 72)
    half = make_config(torch.device("cpu"), downscale=2.0)  # an explicit factor replaces the size cap
    assert half.max_side is None and training_size(960, 540, half.downscale, half.max_side) == (480, 270)
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        make_config(torch.device("cpu"), preset="fast")
