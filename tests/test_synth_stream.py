"""The procedural training stream: Long-LRM and GeoLRM view-sampling rules, determinism, targets."""

from __future__ import annotations

from dataclasses import replace

import torch

from pipelines.synth.stream import (
    PRESETS,
    ProceduralDataset,
    StreamConfig,
    example_generator,
    geolrm_selection,
    long_lrm_selection,
    make_example,
    stream,
)


def test_long_lrm_selection_rules(seed):
    cfg = StreamConfig(num_inputs=8, num_targets=4, trajectory_frames=160, window=(64, 128))
    reversed_seen = shuffled_seen = 0
    for i in range(60):
        inputs, targets = long_lrm_selection(160, cfg, example_generator(seed, i))
        assert len(inputs) == 8 and len(set(inputs)) == 8 and len(targets) == 4 and len(set(targets)) == 4
        lo, hi = min(inputs), max(inputs)
        win = hi - lo + 1
        assert 64 <= win <= 128 and 0 <= lo and hi < 160
        # inputs spread uniformly over the window (rounded linspace from its first to last frame)
        expected = torch.linspace(lo, hi, 8, dtype=torch.float64).round().long().tolist()
        assert sorted(inputs) == expected
        assert all(lo <= t <= hi for t in targets)  # targets among the window's frames
        reversed_seen += inputs == sorted(inputs, reverse=True)
        shuffled_seen += inputs not in (sorted(inputs), sorted(inputs, reverse=True))
    assert reversed_seen > 3 and shuffled_seen > 10  # order augmentation happens (p = 0.5 each)
    no_overlap = replace(cfg, target_has_input=False, reverse_prob=0.0, shuffle_prob=0.0)
    for i in range(20):
        inputs, targets = long_lrm_selection(160, no_overlap, example_generator(seed, i))
        assert not set(inputs) & set(targets)
        assert inputs == sorted(inputs)


def test_geolrm_selection_rules(seed):
    cfg = PRESETS["geolrm-tiny"]
    counts = set()
    for i in range(400):  # 1 and 7 inputs come ~6 % of the time each: 80 draws missed one in ~60 runs
        inputs, targets = geolrm_selection(cfg, example_generator(seed, i))
        orth, extra = targets[:4], targets[4:]
        assert len(targets) == 8 and len(set(targets)) == 8
        assert [(v - orth[0]) for v in orth] == [0, 6, 12, 18] and 0 <= orth[0] < 6  # 90 degrees apart
        assert all(0 <= v < 40 and v not in orth for v in extra)
        n_orth = sum(v in orth for v in inputs)
        assert (
            1 <= n_orth <= 4
            and inputs[n_orth:] == extra[: len(inputs) - n_orth]
            and len(inputs) - n_orth <= 3
        )
        assert set(inputs) <= set(targets)
        counts.add(len(inputs))
    assert counts == set(range(1, 8))


def test_examples_are_deterministic_and_consistent(seed):
    cfg = replace(
        PRESETS["long-lrm-tiny"],
        width=32,
        height=32,
        num_inputs=4,
        num_targets=2,
        window=(32, 64),
        trajectory_frames=64,
    )
    a = make_example(cfg, seed, 3)
    b = make_example(cfg, seed, 3)
    assert torch.equal(a.inputs.images, b.inputs.images) and torch.equal(a.target_depth, b.target_depth)
    assert a.input_index == b.input_index and a.target_index == b.target_index
    c = make_example(cfg, seed, 4)
    assert not torch.equal(a.inputs.images, c.inputs.images)
    assert a.inputs.images.shape == (4, 3, 32, 32) and a.targets.images.shape == (2, 3, 32, 32)
    assert a.target_depth.shape == (2, 32, 32) and a.target_mask.dtype == torch.bool
    assert torch.equal(a.target_mask, a.target_depth > 0)
    # a target that is also an input has the same image and camera
    for j, f in enumerate(a.target_index):
        if f in a.input_index:
            i = a.input_index.index(f)
            assert torch.equal(a.targets.images[j], a.inputs.images[i])
            assert torch.equal(a.targets.cameras.c2w[j], a.inputs.cameras.c2w[i])


def test_geolrm_example_and_dataset(seed):
    cfg = replace(PRESETS["geolrm-tiny"], width=32, height=32)
    ds = ProceduralDataset(cfg, seed, length=10)
    ex = ds[2]
    assert ex.targets.images.shape == (8, 3, 32, 32) and 1 <= ex.inputs.images.shape[0] <= 7
    # white background around the object, which sits at the origin
    bg = ~ex.target_mask
    assert bg.any() and ex.target_mask.any()
    assert torch.all(ex.targets.images.permute(1, 0, 2, 3)[:, bg] == 1.0)
    centres = ex.targets.cameras.centers()
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((8,), cfg.orbit_radius), atol=1e-5, rtol=0)
    orbit_elev = torch.asin(centres[:4, 2] / cfg.orbit_radius)
    torch.testing.assert_close(orbit_elev, orbit_elev[:1].expand(4), atol=1e-5, rtol=0)
    # stream splits indices across ranks
    it0, it1 = stream(cfg, seed, rank=0, world_size=2), stream(cfg, seed, rank=1, world_size=2)
    e0, e1 = next(it0), next(it1)
    assert (e0.index, e1.index) == (0, 1) and next(it0).index == 2
    assert torch.equal(e1.targets.images, ds[1].targets.images)
