"""The compare panel's computation and state without a browser: split view, side-by-side offset,
the A/B toggle on the scene nodes, held-out comparison with cached metrics, the object-centric
check (GeoLRM warning), model choices from weights files, and the demo capture with
ground-truth cameras."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import viser
from studio_helpers import circle_cameras, make_capture, make_run, plain

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture
from pipelines.capture.layout import object_centric
from pipelines.errors import InputError
from pipelines.gaussians import Gaussians, render
from pipelines.models.checkpoints import save_weights
from pipelines.synth.capture import read_gt_cameras, render_capture
from pipelines.synth.scene import object_scene
from pipelines.synth.trajectories import orbit, walk_through
from pipelines.transforms import rotmat_to_quat
from studio.app import Studio
from studio.compare import CompareState, heldout_compare, side_offset, split_view, view_camera
from studio.demo import install_demo
from studio.models import default_choice, model_choices
from studio.workspace import Run


def _u8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


# ------------------------------------------------------------------ split view
def test_split_view_puts_a_left_and_b_right_of_the_divider(gen):
    cams = circle_cameras(1, width=48, height=32)
    a = Gaussians.random(300, sh_degree=2, extent=0.8, generator=gen)
    b = Gaussians.random(300, sh_degree=2, extent=0.8, generator=gen)
    # the cube of Gaussians covers about the middle 60 % of the view (columns ~10-38 of 48): a
    # divider there has content on both sides (at 0.8 the B side could be empty, seed 65759625)
    split = float(torch.rand(1, generator=gen) * 0.2 + 0.4)
    img = split_view(a, b, cams, split=split, device="cpu")
    col = round(split * 48)
    ra, rb = _u8(render(a, cams).rgb[0]), _u8(render(b, cams).rgb[0])
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, : col - 1], ra[:, : col - 1])
    np.testing.assert_array_equal(img[:, col:], rb[:, col:])
    assert (img[:, col - 1] == 255).all()  # the divider
    assert img[:, col:].std() > 0 and not np.array_equal(ra[:, col:], rb[:, col:])
    only_b = split_view(None, b, cams, split=0.0, device="cpu")  # divider at the edge: all B
    np.testing.assert_array_equal(only_b, rb)


def test_view_camera_looks_along_the_viser_view(gen):
    """A point straight ahead of a viser view (OpenCV axes, R from wxyz) lands on the image centre,
    and a point at the top edge of the vertical field of view on the top row."""
    R = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
    R = R * torch.sign(torch.det(R))
    wxyz = rotmat_to_quat(R[None])[0].numpy()
    pos = torch.randn(3, generator=gen, dtype=torch.float64).numpy()
    fov = 0.9
    cam = view_camera(wxyz, pos, fov, 64, 40)
    ahead = torch.tensor(pos) + 2.5 * R[:, 2]
    top = torch.tensor(pos) + 2.5 * (R[:, 2] - math.tan(fov / 2) * R[:, 1])  # camera -y is up
    uv = cam.project(torch.stack([ahead, top]).float())
    uv = uv[0] if isinstance(uv, tuple) else uv
    uv = uv.reshape(-1, uv.shape[-1])[:, :2]
    torch.testing.assert_close(uv[0], torch.tensor([32.0, 20.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(uv[1], torch.tensor([32.0, 0.0]), atol=1e-3, rtol=0)


def test_side_offset_is_the_width_along_the_right_axis(gen):
    cams = circle_cameras(4, width=64, height=48)
    right = cams.c2w[0, :3, 0].double()
    g = Gaussians.random(20000, sh_degree=0, extent=1.0, generator=gen)
    half = float(torch.rand(1, generator=gen)) + 0.5
    g.means = (torch.rand(20000, 3, generator=gen) * 2 - 1) * half  # uniform in a cube of side 2 half
    off = torch.from_numpy(side_offset(cams, g, margin=1.0))
    x = g.means.double() @ right
    lo, hi = torch.quantile(x, torch.tensor([0.02, 0.98], dtype=torch.float64))
    torch.testing.assert_close(off, float(hi - lo) * right, atol=1e-9, rtol=0)
    assert abs(float(off @ right)) > half  # at least the cube's half-width: B clears A


def test_toggle_cycles_slots():
    s = CompareState()
    assert s.showing == "both"
    assert [(s := s.toggled()).showing for _ in range(3)] == ["A", "B", "A"]


# ------------------------------------------------------------------ scene + panel
@pytest.fixture
def viewer_on_runs(tmp_path, gen):
    from viewer.app import build_viewer

    studio = Studio(tmp_path / "ws")
    make_capture(studio.workspace / "cap", 9, gen, width=48, height=32, points=50)
    ra = make_run(studio.workspace / "cap", gen, n=200, method="long-lrm")
    time.sleep(0.01)
    rb = make_run(studio.workspace / "cap", gen, n=300, method="3dgs")
    studio.open_capture("cap")
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    viewer = build_viewer(server, studio)
    studio.show_run(ra.name, "A")
    studio.show_run(rb.name, "B")
    yield studio, viewer, ra, rb
    viewer.compare.renderer.close()
    studio.close()
    server.stop()


def test_ab_toggle_and_side_by_side_drive_the_scene_nodes(viewer_on_runs):
    studio, viewer, _, _ = viewer_on_runs
    splats = viewer.scene.splats
    assert splats["A"].visible and splats["B"].visible
    studio.toggle_ab()
    assert splats["A"].visible and not splats["B"].visible
    studio.toggle_ab()
    assert not splats["A"].visible and splats["B"].visible
    assert viewer.compare.toggle_command is not None  # the hotkey T (viser command palette)
    studio.set_showing("both")
    studio.set_side_by_side(True)
    expected = side_offset(studio.capture.cameras, studio.shown["A"].gaussians)
    np.testing.assert_allclose(splats["B"].position, expected, atol=1e-6)
    np.testing.assert_allclose(splats["A"].position, 0.0)
    assert "side by side" in plain(viewer.compare.status.content)
    studio.set_side_by_side(False)
    np.testing.assert_allclose(splats["B"].position, 0.0)


def test_the_view_shows_the_visible_runs_background(viewer_on_runs):
    studio, viewer, _, _ = viewer_on_runs
    assert viewer.scene.background == (1.0, 1.0, 1.0)  # A: long-lrm, trained on white
    studio.toggle_ab()
    studio.toggle_ab()  # only B
    assert studio.compare_state.showing == "B" and viewer.scene.background == (0.0, 0.0, 0.0)
    studio.hide("A")
    studio.hide("B")
    assert viewer.scene.background is None  # nothing shown: viser's own


def test_runs_of_different_sizes_are_compared_at_one_size(tmp_path, gen):
    """The probe: a 530x946 capture, a 3DGS run trained at 72x128 (longest side 128) failed with
    '72x128 is not a downscale of the capture's 530x946'. Now both are scored at 72x128."""
    from pipelines.optimize.data import training_size

    cap = make_capture(tmp_path / "cap", 9, gen, width=530, height=946, points=0)
    size = training_size(530, 946, max_side=128)
    assert size == (72, 128)
    ff = make_run(cap.root, gen, n=100, method="geolrm")
    opt = make_run(cap.root, gen, n=100, method="3dgs", info={"params": {"resolution": list(size)}})
    h = heldout_compare(cap.root, ff, opt)
    assert h.resolution == size and len(h.a.psnr) == len(h.b.psnr) == len(cap.indices("test"))
    assert all(math.isfinite(x) for x in (*h.a.psnr, *h.b.psnr))


def test_split_renderer_renders_in_the_background(viewer_on_runs):
    from viewer.panels.compare import ViewRequest

    studio, viewer, _, _ = viewer_on_runs
    r = viewer.compare.renderer
    r.width, r.min_interval_s, r.device = 40, 0.0, "cpu"
    studio.set_split(enabled=True, split=0.25)
    cams = circle_cameras(1, width=40, height=30)
    wxyz = rotmat_to_quat(cams.c2w[:, :3, :3].double())[0].numpy()
    t0 = time.monotonic()
    r.request(ViewRequest(wxyz, cams.c2w[0, :3, 3].numpy(), float(cams.fov_y_rad()[0]), 40 / 30))
    assert time.monotonic() - t0 < 0.05  # the request returns at once
    deadline = time.monotonic() + 20
    while r.renders == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.renders >= 1 and r.last_error is None
    shown = studio.shown
    cam = view_camera(wxyz, cams.c2w[0, :3, 3].numpy(), float(cams.fov_y_rad()[0]), 40, 30)
    # each side on its run's background: A a feed-forward run (the model's white), B a 3DGS run (black)
    assert shown["A"].background == (1.0, 1.0, 1.0) and shown["B"].background == (0.0, 0.0, 0.0)
    backgrounds = (shown["A"].background, shown["B"].background)
    want = split_view(
        shown["A"].gaussians, shown["B"].gaussians, cam, split=0.25, backgrounds=backgrounds, device="cpu"
    )
    np.testing.assert_array_equal(r.render(r._latest, 0.25), want)
    assert viewer.compare.split_image.visible


def test_heldout_compare_scores_match_independent_psnr_and_are_cached(viewer_on_runs):
    studio, viewer, ra, rb = viewer_on_runs
    job = studio.submit_heldout()
    state = studio.jobs.wait(job.id, timeout=120)
    assert state.status == "done", state.error
    h = studio.compare_state.heldout
    cap = Capture.load(studio.workspace / "cap")
    test = cap.indices("test")
    assert h.file_paths == tuple(cap.file_paths[i] for i in test) and h.resolution == (48, 32)
    gt = cap.load_images(test).double()  # [T, 3, H, W]
    # each run scored on its own background: A long-lrm (white, the model's), B 3dgs (black)
    for scores, run_dir, bg in ((h.a, ra, torch.ones(3)), (h.b, rb, torch.zeros(3))):
        g = Run.load(run_dir).gaussians()
        for k, i in enumerate(test):
            pred = render(g, cap.cameras[i], background=bg).rgb[0].clamp(0, 1).permute(2, 0, 1).double()
            mse = float(((pred - gt[k]) ** 2).mean())
            assert scores.psnr[k] == pytest.approx(-10 * math.log10(mse), abs=1e-3)
        assert scores.num_gaussians == Run.load(run_dir).info["num_gaussians"]
        assert scores.total_s == 1.5
    assert h.image.shape[0] == len(test) * 32 and h.image.shape[2] == 3
    table = plain(viewer.compare.heldout_table.content)
    assert f"{h.a.mean_psnr:.2f}" in table and f"{h.b.mean_psnr:.2f}" in table and "Gaussians" in table
    # the trivial baselines, as rows: the mean train colour checked in float64 by hand
    assert [b.method for b in h.baselines] == ["mean input colour", "nearest input, reprojected"]
    train = cap.load_images(cap.indices("train")).double()
    mean_rgb = train.mean(dim=(0, 2, 3))[None, :, None, None]
    want = [float(-10 * torch.log10(((mean_rgb - gt[k : k + 1]) ** 2).mean())) for k in range(len(test))]
    np.testing.assert_allclose(h.baselines[0].psnr, want, atol=1e-3)
    for b in h.baselines:
        assert f"baseline | {b.method} | {b.mean_psnr:.2f}" in table
    # both runs took 1.5 s (make_run) on ground-truth cameras: compared at 1.5 s
    assert h.ahead is not None and h.ahead["time_s"] == 1.5
    assert h.ahead["ahead"] == ("A" if h.a.mean_psnr > h.b.mean_psnr else "B")
    assert "At equal wall time (1.5 s" in table
    best = max(b.mean_psnr for b in h.baselines)
    for r in (h.a, h.b):  # random Gaussians: marked when below the better baseline
        assert (f"{r.run_id} (below a baseline)" in table) == (r.mean_psnr < best)
    cache = ra / "compare" / "metrics-48x32.json"
    assert cache.is_file()
    before = cache.stat().st_mtime_ns
    again = heldout_compare(cap.root, ra, rb)  # reads the cache
    assert cache.stat().st_mtime_ns == before and again.a.psnr == h.a.psnr


# ------------------------------------------------------------------ object-centric check
def test_object_centric_orbit_vs_forward_walk(gen):
    ring = orbit(24, radius=2.0, elevation_deg=20.0, fov_y_deg=50, width=64, height=48, gen=gen)
    assert object_centric(ring).ok
    t = torch.linspace(0, 4, 20, dtype=torch.float32)
    eye = torch.stack([t, 0.05 * torch.randn(20, generator=gen), torch.full_like(t, 1.5)], -1)
    walk = Cameras.look_at(eye, eye + torch.tensor([3.0, 0, -0.3]), fov_y_deg=60, width=64, height=48,
                           up=torch.tensor([0.0, 0, 1]))  # fmt: skip
    v = object_centric(walk)
    assert not v.ok and "common centre" in v.reason
    room = walk_through(40, radius=2.0, fov_y_deg=60, width=64, height=48, gen=gen)
    assert not object_centric(room).ok
    # an orbit inside a room: the cameras converge, but the scene lies beyond them
    walls = torch.randn(500, 3, generator=gen)
    walls = 4.0 * walls / walls.norm(dim=-1, keepdim=True)
    v = object_centric(ring, walls)
    assert not v.ok and "beyond the cameras" in v.reason
    assert object_centric(ring, 0.3 * torch.rand(500, 3, generator=gen)).ok


def test_reconstruct_panel_warns_for_geolrm_on_a_walk(tmp_path, gen):
    from viewer.app import build_viewer

    studio = Studio(tmp_path / "ws")
    make_capture(studio.workspace / "orbit", 8, gen, points=0)
    walk = make_capture(studio.workspace / "walk", 8, gen, points=0)
    t = torch.linspace(0, 4, 8)
    eye = torch.stack([t, torch.zeros(8), torch.ones(8)], -1)
    walk.cameras = Cameras.look_at(eye, eye + torch.tensor([1.0, 0, 0]), fov_y_deg=50, width=64, height=48,
                                   up=torch.tensor([0.0, 0, 1]))  # fmt: skip
    walk.save()
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        viewer = build_viewer(server, studio)
        panel = viewer.reconstruct
        studio.open_capture("orbit")
        panel.model.value = "geolrm"
        panel.refresh(studio)
        assert not panel.warning.visible
        studio.open_capture("walk")
        assert panel.warning.visible and "object-centric" in plain(panel.warning.content)
        panel.model.value = "long-lrm"
        panel.refresh(studio)
        assert not panel.warning.visible
    finally:
        studio.close()
        server.stop()


# ------------------------------------------------------------------ model choices
def test_model_choices_list_shipped_and_workspace_weights(tmp_path):
    shipped, ws = tmp_path / "assets-models", tmp_path / "weights"
    shipped.mkdir()
    ws.mkdir()
    models = ("geolrm", "long-lrm", "ttt-lrm")
    tiny = {"w": torch.zeros(2)}
    save_weights(shipped / "long-lrm-tiny-demo.safetensors", tiny, {})
    save_weights(shipped / "ttt-lrm-tiny-ar.safetensors", tiny, {})
    save_weights(shipped / "unknown-model-x.safetensors", tiny, {})  # no registered model: skipped
    save_weights(ws / "my run.safetensors", tiny, {"model": "long-lrm"})  # model from the metadata
    save_weights(ws / "geolrm-finetuned.safetensors", tiny, {})  # model from the name
    choices = model_choices(ws, shipped=shipped, models=models)
    assert [(c.model, c.preset, c.origin) for c in choices] == [
        ("long-lrm", "tiny-demo", "shipped"), ("ttt-lrm", "tiny-ar", "shipped"),
        ("geolrm", None, "workspace"), ("long-lrm", None, "workspace"),
        ("geolrm", None, "registered"), ("long-lrm", None, "registered"), ("ttt-lrm", None, "registered"),
    ]  # fmt: skip
    assert default_choice(choices).label == "long-lrm tiny-demo (shipped)"
    assert all(c.note is None for c in choices)
    # weights this project trained on procedural scenes say so; trained on a dataset they do not
    save_weights(ws / "geolrm-finetuned.safetensors", tiny, {"source": "lrm-studio train"})
    save_weights(
        ws / "my run.safetensors", tiny, {"model": "long-lrm", "source": "lrm-studio train", "data": "dl3dv"}
    )
    notes = {c.weights.name: c.note for c in model_choices(ws, shipped=shipped, models=models) if c.weights}
    assert "procedural scenes only" in notes["geolrm-finetuned.safetensors"]
    assert notes["my run.safetensors"] is None and notes["long-lrm-tiny-demo.safetensors"] is None
    (shipped / "long-lrm-tiny-demo.safetensors").unlink()
    assert (
        default_choice(model_choices(ws, shipped=shipped, models=models)).label == "ttt-lrm tiny-ar (shipped)"
    )
    assert default_choice(model_choices(None, shipped=tmp_path / "none", models=models)).label == "ttt-lrm"


# ------------------------------------------------------------------ demo capture
def test_gt_capture_from_a_video_uses_the_ground_truth_cameras(tmp_path, gen):
    scene = object_scene(int(torch.randint(0, 1000, (1,), generator=gen)))
    cams = orbit(20, radius=2.2, elevation_deg=25.0, fov_y_deg=45, width=64, height=48, gen=gen)
    render_capture(scene, cams, tmp_path / "src", video="clip.mp4", fps=10, supersample=1)
    ws = tmp_path / "ws"
    from pipelines.synth.capture import gt_capture

    cap = gt_capture(tmp_path / "src" / "clip.mp4", ws / "clip", max_frames=10, max_side=32, scene=scene,
                     points_width=32)  # fmt: skip
    assert len(cap) == 10 and (cap.cameras.width, cap.cameras.height) == (32, 24)
    idx, gt, _ = read_gt_cameras(tmp_path / "src" / "gt_cameras.json")
    frames = [f["index"] for f in cap.meta["frames"]]
    assert frames == sorted(frames) and len(set(frames)) == 10
    want = gt[[idx.index(f) for f in frames]].resize(32, 24)
    torch.testing.assert_close(cap.cameras.c2w, want.c2w)
    torch.testing.assert_close(cap.cameras.K, want.K)
    assert cap.meta["cameras"] == "ground truth" and cap.splits.count("test") == 2
    xyz, _ = cap.load_points()
    assert len(xyz) > 100 and np.abs(xyz).max() <= 0.5 + 1e-3  # object scenes fit [-0.5, 0.5]^3
    with pytest.raises(InputError, match="already exists"):  # never overwritten silently
        gt_capture(tmp_path / "src" / "clip.mp4", ws / "clip", max_frames=10)


def test_first_start_makes_the_demo_capture_and_reuses_it(tmp_path):
    from studio.demo import DEMO_ASSET, DEMO_FRAMES, demo_video

    if demo_video(DEMO_ASSET) is None:
        pytest.skip("this build ships no demo video")
    t0 = time.monotonic()
    target = install_demo(tmp_path / "ws")
    made_s = time.monotonic() - t0
    cap = Capture.load(target)
    assert len(cap) == DEMO_FRAMES and cap.meta["cameras"] == "ground truth" and cap.load_points() is not None
    idx, gt, _ = read_gt_cameras(DEMO_ASSET / "gt_cameras.json")
    frames = [f["index"] for f in cap.meta["frames"]]
    torch.testing.assert_close(cap.cameras.c2w, gt.c2w[[idx.index(f) for f in frames]])
    assert not object_centric(cap.cameras, cap.load_points()[0]).ok  # a room: GeoLRM is warned about
    t0 = time.monotonic()
    assert install_demo(tmp_path / "ws") == target
    assert time.monotonic() - t0 < 0.5 < made_s + 0.5  # the second start reuses it
    assert [p.name for p in (tmp_path / "ws").iterdir()] == ["demo"]  # no leftover temp folder


@pytest.mark.gpu
def test_split_view_on_cuda_matches_the_cpu(gen):
    """The split view through gsplat (CUDA) against our CPU backend: same divider, close pixels."""
    cams = circle_cameras(1, width=160, height=120)
    a = Gaussians.random(2000, sh_degree=3, extent=0.8, generator=gen)
    b = Gaussians.random(2000, sh_degree=3, extent=0.8, generator=gen)
    cpu = split_view(a, b, cams, split=0.4, device="cpu").astype(np.int16)
    gpu = split_view(a, b, cams, split=0.4, device="cuda").astype(np.int16)
    assert (np.abs(cpu - gpu) > 3).mean() < 0.01  # uint8 rounding and fp32 sort ties
    assert (gpu[:, 63] == 255).all()
