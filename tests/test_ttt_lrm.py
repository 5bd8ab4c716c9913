"""tttLRM network, streaming and inference on the CPU: the tiny preset trains (finite gradient on
every parameter), streaming equals the offline schedules where the official design says they
coincide (float64), the official preprocessing against a numpy transcription of
data/dataset_scene.py, pruning counts, and results in the input cameras' world frame."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.models.base import Views, load_model
from pipelines.models.blocks.gaussian_head import keep_counts
from pipelines.models.ttt_lrm.config import PRESETS
from pipelines.models.ttt_lrm.model import TTTLRM
from pipelines.models.ttt_lrm.preprocess import prepare
from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

TINY = PRESETS["tiny"]


def arc_cameras(n: int, gen: torch.Generator, *, width: int, height: int, dtype=torch.float32) -> Cameras:
    """A forward-facing arc of cameras looking at the origin (a DL3DV-like sweep)."""
    ang = torch.linspace(-0.7, 0.7, n, dtype=torch.float64)
    eye = torch.stack(
        [2 * torch.sin(ang), 0.2 * torch.randn(n, generator=gen, dtype=torch.float64), -2 * torch.cos(ang)],
        -1,
    )
    cams = Cameras.look_at(
        eye, torch.zeros(n, 3, dtype=torch.float64), fov_y_deg=55, width=width, height=height
    )
    return cams.to(dtype=dtype)


def model_inputs(gen, v: int, c=TINY, dtype=torch.float64):
    cams = arc_cameras(v, gen, width=c.image_width, height=c.image_height, dtype=dtype)
    images = torch.rand(1, v, 3, c.image_height, c.image_width, generator=gen, dtype=dtype)
    return images, cams.c2w[None], cams.K[None]


def seeded_net(seed: int, c=TINY) -> TTTLRM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TTTLRM(c)
    for blk in net.blocks:  # non-zero learning-rate projections, so updates depend on the tokens
        torch.nn.init.normal_(blk.ttt.lr_fc.weight, std=0.2)
    return net.double().eval()


@pytest.mark.parametrize("preset", ["tiny", "tiny-ar"])
def test_tiny_trains_finite_gradient_on_every_parameter(gen, preset):
    c = PRESETS[preset]
    net = TTTLRM(c).train()
    net.grad_checkpointing = preset == "tiny-ar"
    images, c2w, K = model_inputs(gen, 4, c, dtype=torch.float32)
    out = net(images, c2w, K)
    assert out.raw.shape == (1, 4 * c.image_height * c.image_width, 59)
    (g,) = out.to_gaussians()
    loss = g.means.square().mean() * 1e-4 + g.opacities().mean() + g.sh.square().mean() + g.log_scales.mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_streaming_equals_offline_where_the_design_says(seed, gen):
    """One absorb of every view + decode == the official full model (virtual = input views, run
    explicitly or deduplicated); chunk-by-chunk absorbs + decode == the causal schedule offline."""
    net = seeded_net(seed, TINY.with_(update_views=2))
    images, c2w, K = model_inputs(gen, 6)

    def stream(chunk: int):
        state = net.initial_state()
        for s in range(0, 6, chunk):
            state = net.absorb(state, images[:, s : s + chunk], c2w[:, s : s + chunk], K[:, s : s + chunk])
        assert state.views == 6
        return net.decode(state, images, c2w, K).raw

    with torch.no_grad():
        full = net(images, c2w, K, schedule="full").raw
        full_explicit = net(images, c2w, K, virtual=(images, c2w, K), schedule="full").raw
        one = net.decode(net.absorb(net.initial_state(), images, c2w, K), images, c2w, K).raw
        causal = net(images, c2w, K, virtual=(images, c2w, K), schedule="causal").raw  # chunks of 2 views
        streamed, streamed3 = stream(2), stream(3)
    torch.testing.assert_close(full_explicit, full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(one, full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(streamed, causal, rtol=1e-10, atol=1e-10)
    assert (streamed3 - causal).abs().max() > 1e-6  # the chunking matters, so the check above can fail
    assert (streamed - full).abs().max() > 1e-6
    # decoding a subset of views (other virtual cameras) reads the same weights
    with torch.no_grad():
        sub = net(images, c2w, K, virtual=(images[:, 1:3], c2w[:, 1:3], K[:, 1:3]), schedule="full").raw
        one_state = net.absorb(net.initial_state(), images, c2w, K)
        sub_stream = net.decode(one_state, images[:, 1:3], c2w[:, 1:3], K[:, 1:3]).raw
    torch.testing.assert_close(sub_stream, sub, rtol=1e-10, atol=1e-10)


def test_official_ar_op_versus_streaming(seed, gen):
    """The official AR op (updates every 4 views, the final weights applied to every token) equals
    streaming for a one-layer network, and its virtual tokens equal its input tokens (so running
    them once is exact). With two layers it is not causal: layer 2 reads early views' features
    made with layer 1's final weights, so streaming differs there and matches in layer 1 only."""
    c1 = PRESETS["tiny-ar"].with_(num_layers=1)
    net = seeded_net(seed, c1)
    images, c2w, K = model_inputs(gen, 6, c1)
    with torch.no_grad():
        ar = net(images, c2w, K, schedule="ar").raw
        ar_explicit = net(images, c2w, K, virtual=(images, c2w, K), schedule="ar").raw
        state = net.initial_state()
        for s in range(0, 6, c1.update_views):
            e = s + c1.update_views
            state = net.absorb(state, images[:, s:e], c2w[:, s:e], K[:, s:e])
        streamed = net.decode(state, images, c2w, K).raw
    torch.testing.assert_close(ar_explicit, ar, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(streamed, ar, rtol=1e-10, atol=1e-10)

    c2 = PRESETS["tiny-ar"]
    net2 = seeded_net(seed, c2)
    with torch.no_grad():
        ar2 = net2(images, c2w, K, schedule="ar").raw
        x, _, _ = net2.tokenize(images, c2w, K)
        n = x.shape[1] // 6
        from pipelines.models.ttt_lrm.model import _ops

        _, w_ar = net2.blocks[0](x, tokens_per_view=n, ops=_ops("ar", 6, 6, n, c2.update_views))
        state = net2.initial_state()
        for s in range(0, 6, c2.update_views):
            e = s + c2.update_views
            state = net2.absorb(state, images[:, s:e], c2w[:, s:e], K[:, s:e])
        streamed2 = net2.decode(state, images, c2w, K).raw
    for a, b in zip(w_ar.tensors(), state.layers[0].tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert (streamed2 - ar2).abs().max() > 1e-6


def official_mean_pose(c2ws: np.ndarray) -> np.ndarray:
    """numpy transcription of tttLRM data/dataset_scene.py mean_pose."""
    norm = lambda x: x / np.linalg.norm(x)  # noqa: E731
    center = c2ws[:, :3, 3].mean(0)
    vec2 = norm(c2ws[:, :3, 2].sum(0))
    up = c2ws[:, :3, 1].sum(0)
    vec0 = norm(np.cross(up, vec2))
    vec1 = norm(np.cross(vec2, vec0))
    out = np.eye(4)
    out[:3] = np.stack([vec0, vec1, vec2, center], 1)
    return out


def official_normalize(c2ws: np.ndarray, frame: str) -> np.ndarray:
    """normalize_with_mean_pose: align to the mean (or first) camera, positions / max |t|."""
    apos = official_mean_pose(c2ws) if frame == "mean_cam" else c2ws[0]
    out = np.linalg.inv(apos) @ c2ws
    out[:, :3, 3] /= np.max(np.abs(out[:, :3, 3]))
    return out


@pytest.mark.parametrize("frame", ["mean_cam", "first_cam"])
def test_pose_normalization_matches_official(gen, frame):
    cams = arc_cameras(7, gen, width=320, height=180, dtype=torch.float64)
    # an arbitrary world frame: rotate, scale and move the whole rig
    from pipelines.transforms import Similarity, random_rotations

    sim = Similarity(
        3.7,
        random_rotations(1, generator=gen)[0].double(),
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    cams = cams.transform(sim)
    views = Views(torch.rand(7, 3, 180, 320, generator=gen), cams.to(dtype=torch.float32))
    prep = prepare(views, width=112, height=64, frame=frame)
    want = official_normalize(cams.c2w.numpy(), frame)
    np.testing.assert_allclose(prep.cameras.c2w.double().numpy(), want, atol=2e-5)
    assert prep.images.shape == (7, 3, 64, 112)
    # K follows each axis (the official resize_and_crop with a zero crop)
    sx, sy = 112 / 320, 64 / 180
    np.testing.assert_allclose(prep.cameras.fx.numpy(), cams.fx.numpy() * sx, rtol=1e-6)
    np.testing.assert_allclose(prep.cameras.cy.numpy(), cams.cy.numpy() * sy, rtol=1e-6)
    # to_world maps the normalised cameras back onto the input cameras
    back = prep.cameras.to(dtype=torch.float64).transform(prep.to_world)
    np.testing.assert_allclose(back.c2w.numpy(), cams.c2w.numpy(), atol=1e-4)


def test_pruning_counts_follow_the_official_arithmetic(gen):
    assert keep_counts(1000, 0.4, 0.1) == (400, 60)  # 46 % kept
    assert keep_counts(1000, 0.3, 0.05) == (
        300,
        34,
    )  # from 64 views on: int((1 - 0.3) * 0.05 * 1000) = int(34.99..)
    n = 64 * 536 * 960  # official 64 views: 32.9 M pixel Gaussians -> 11.0 M kept
    assert sum(keep_counts(n, *PRESETS["official-full"].keep_ratios(64))) == 9_879_552 + 1_152_614
    assert PRESETS["official-full"].keep_ratios(63) == (0.4, 0.1)
    rec = TTTLRMReconstructor(TTTLRM(TINY.with_(many_views=4)), device="cpu")
    cams = arc_cameras(4, gen, width=160, height=90)
    out = rec(Views(torch.rand(4, 3, 90, 160, generator=gen), cams))
    assert out.gaussians.num == sum(keep_counts(4 * 64 * 112, 0.3, 0.05))
    assert out.info["num_pixel_gaussians"] == 4 * 64 * 112


def test_reconstructions_are_in_the_world_frame_and_streaming_final_equals_one_chunk(gen):
    """Gaussians lie in front of the input cameras of the capture's frame; streamed in one chunk,
    the final decode equals the offline full model (all Gaussians kept to compare them one to one)."""
    keep_all = TINY.with_(keep_top=1.0, keep_random=0.0, keep_top_many=1.0, keep_random_many=0.0)
    torch.manual_seed(0)
    rec = TTTLRMReconstructor(TTTLRM(keep_all), device="cpu", decode_views=2)
    cams = arc_cameras(5, gen, width=200, height=110)
    views = Views(torch.rand(5, 3, 110, 200, generator=gen), cams)
    out = rec(views)
    assert out.gaussians.num == 5 * 64 * 112
    _, z = cams.project(out.gaussians.means)
    assert bool((z > 0).any(dim=0).all())
    steps = []
    streamed = rec.reconstruct_streaming(views, chunk_views=5, preview="none", on_chunk=steps.append)
    assert len(steps) == 1 and steps[0].views == 5
    torch.testing.assert_close(streamed.gaussians.means, out.gaussians.means, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        streamed.gaussians.opacity_logits, out.gaussians.opacity_logits, rtol=1e-4, atol=1e-4
    )


def test_streaming_keeps_no_earlier_previews(gen):
    """Each step's preview is handed to on_chunk and then dropped: holding every step's merged
    Gaussians would grow with the square of the chunks (the memory estimate counts one)."""
    rec = load_model("ttt-lrm", preset="tiny-ar", device="cpu")
    cams = arc_cameras(8, gen, width=160, height=90)
    views = Views(torch.rand(8, 3, 90, 160, generator=gen), cams)
    for preview in ("merge", "full"):
        refs, alive = [], []

        def on_chunk(step, refs=refs, alive=alive):
            gc.collect()  # earlier previews (the first merge preview is also the first chunk's part)
            alive.append(sum(r() is not None for r in refs[1:]))
            refs.append(weakref.ref(step.gaussians))

        out = rec.reconstruct_streaming(views, preview=preview, on_chunk=on_chunk)
        assert len(refs) == 4 and alive == [0, 0, 0, 0], (preview, alive)
        counts = [r["preview_gaussians"] for r in out.info["stream"]]
        assert counts == sorted(counts) and counts[0] > 0


def test_cuda_free_memory_counts_the_allocators_unused_blocks(monkeypatch):
    from pipelines.models import memory

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 60 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 5 * gib)
    assert memory.available_bytes("cuda:0") == 65 * gib  # 10 driver-free + 55 cached, unused


def test_streaming_steps_and_previews(gen):
    rec = load_model("ttt-lrm", preset="tiny-ar", device="cpu")
    cams = arc_cameras(7, gen, width=160, height=90)
    views = Views(torch.rand(7, 3, 90, 160, generator=gen), cams)
    for preview in ("merge", "full"):
        steps = []
        out = rec.reconstruct_streaming(views, preview=preview, on_chunk=steps.append)
        assert [s.views for s in steps] == [2, 4, 6, 7]  # tiny-ar updates every 2 views
        assert [s.chunk_tokens for s in steps] == [2 * 112, 2 * 112, 2 * 112, 112]
        assert len({s.state_numel for s in steps}) == 1
        counts = [s.gaussians.num for s in steps]
        assert counts == sorted(counts) and counts[0] > 0
        assert out.gaussians.num == sum(keep_counts(7 * 64 * 112, 0.4, 0.1))
        assert len(out.info["stream"]) == 4 and out.timings["absorb_s"] > 0
    # full previews re-decode every view: the last preview is the result
    assert steps[-1].gaussians is out.gaussians
    # decode any cameras at any time from a stream
    stream = rec.start_stream(cams)
    stream.absorb(Views(views.images[:3], cams[:3]))
    g = stream.decode(Views(views.images[5:], cams[5:]))
    assert g.num == sum(keep_counts(2 * 64 * 112, 0.4, 0.1))
