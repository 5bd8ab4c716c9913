"""Procedural scenes, textures, trajectories and the capture writer."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import torch

from pipelines.capture.folder import Capture
from pipelines.capture.images import to_uint8
from pipelines.synth.capture import read_gt_cameras, render_capture
from pipelines.synth.primitives import Kind
from pipelines.synth.raycast import render
from pipelines.synth.scene import ZEROVERSE_COUNT_WEIGHTS, RoomConfig, object_scene, room_scene
from pipelines.synth.textures import PHOTO_NAMES, TexKind, _hash01, photo_bank, random_textures
from pipelines.synth.trajectories import HandHeld, look_around, orbit, shake_offsets, walk_through


def test_object_scene_follows_zeroverse_rules(seed):
    s = object_scene(seed % 100_000)
    assert 1 <= s.num_primitives <= len(ZEROVERSE_COUNT_WEIGHTS)
    assert set(s.kind.tolist()) <= {
        int(k) for k in (Kind.BOX, Kind.SPHERE, Kind.CYLINDER, Kind.CONE, Kind.TORUS)
    }
    lo, hi = s.bounds()
    assert torch.all(lo >= -0.5 - 1e-5) and torch.all(hi <= 0.5 + 1e-5)  # GeoLRM's [-0.5, 0.5]^3
    assert float((hi - lo).max()) > 0.999  # fitted: the largest side fills the cube
    torch.testing.assert_close(torch.linalg.det(s.rotation), torch.ones(s.num_primitives))
    assert torch.all(s.object_id == 0)


def test_object_scene_count_distribution():
    counts = torch.tensor([object_scene(i).num_primitives for i in range(300)])
    w = torch.tensor(ZEROVERSE_COUNT_WEIGHTS, dtype=torch.float64)
    expected_mean = float((w * torch.arange(1, 10)).sum() / w.sum())  # 4.33
    assert abs(counts.double().mean().item() - expected_mean) < 0.5
    assert counts.min() == 1 and counts.max() >= 8


def test_room_scene_layout(seed):
    cfg = RoomConfig(centerpiece=bool(seed % 2))
    s = room_scene(seed % 100_000, cfg)
    room = s.info["room"]
    W, D, H = room["width"], room["depth"], room["height"]
    lo, hi = s.bounds()
    tol = 1e-4
    assert float(lo[0]) >= -W / 2 - tol and float(hi[0]) <= W / 2 + tol
    assert float(lo[1]) >= -D / 2 - tol and float(hi[1]) <= D / 2 + tol
    assert float(lo[2]) >= -tol and float(hi[2]) <= H + tol
    assert (s.kind == Kind.QUAD).sum() >= 6  # floor, ceiling, 4 walls (+ posters)
    assert len(s.info["objects"]) == int(s.object_id.max()) + 1
    # nothing but the room shell (and the table with its centerpiece) inside the camera zone
    zone = s.info["camera_zone"]
    plo, phi = s.primitive_aabbs()
    names = s.info["objects"]
    for p in range(s.num_primitives):
        name = names[int(s.object_id[p])]
        if name in ("room", "table", "centerpiece") or name.startswith("poster"):
            continue
        # closest point of the footprint box to the room centre
        cx = float(torch.clamp(torch.tensor(0.0), plo[p, 0], phi[p, 0]))
        cy = float(torch.clamp(torch.tensor(0.0), plo[p, 1], phi[p, 1]))
        assert math.hypot(cx, cy) >= zone["outer"] - 0.35 * max(
            float(phi[p, 0] - plo[p, 0]), float(phi[p, 1] - plo[p, 1])
        ), name


def test_photos_load_offline_and_textures_vary(gen):
    texels, grey = photo_bank("cpu")
    assert texels.shape[0] == len(PHOTO_NAMES) and texels.shape[2] == 3
    assert texels.min() >= 0 and texels.max() <= 1
    assert texels.std(dim=1).min() > 0.05  # real images, not blanks
    t = random_textures(400, gen)
    assert set(t.kind.tolist()) == {int(k) for k in TexKind}
    assert t.palette.min() >= 0 and t.palette.max() <= 1
    # the lattice hash is uniform-ish in [0, 1) and deterministic
    ix = torch.randint(-10_000, 10_000, (20_000,), generator=gen)
    iy = torch.randint(-10_000, 10_000, (20_000,), generator=gen)
    h = _hash01(ix, iy, torch.full_like(ix, 7))
    assert h.min() >= 0 and h.max() < 1 and abs(h.mean().item() - 0.5) < 0.02
    assert torch.equal(h, _hash01(ix, iy, torch.full_like(ix, 7)))


def test_textures_are_fixed_to_surfaces(gen):
    """A surface point seen from a second camera has the same primitive and (same normal, same
    Lambert term) the same colour: textures live in object space."""
    from pipelines.cameras import Cameras

    s = object_scene(int(torch.randint(1000, (1,), generator=gen)))
    up = torch.tensor([0.0, 0.0, 1.0])
    a = Cameras.look_at(
        torch.tensor([[1.8, 0.4, 0.6]]), torch.zeros(1, 3), fov_y_deg=40, width=64, height=64, up=up
    )
    b = Cameras.look_at(
        torch.tensor([[1.6, 1.0, 0.9]]), torch.zeros(1, 3), fov_y_deg=40, width=64, height=64, up=up
    )
    ra, rb = render(s, a), render(s, b)
    hit = ra.mask[0] >= 0
    o, d = a.pixel_rays()  # unit directions: distance = depth / cos
    dist = ra.depth[0][hit] / (d[0][hit] @ a.forward_dirs()[0])
    pts = o[0][hit] + dist[:, None] * d[0][hit]
    uv, zb = b.project(pts)
    ui, vi = uv[0, :, 0].floor().long(), uv[0, :, 1].floor().long()
    ok = (ui >= 0) & (ui < 64) & (vi >= 0) & (vi < 64)
    ui, vi, zb = ui.clamp(0, 63), vi.clamp(0, 63), zb[0]
    ok &= (rb.depth[0, vi, ui] - zb).abs() < 5e-3  # visible from b as well
    assert ok.sum() > 50
    assert (rb.primitive[0, vi, ui][ok] == ra.primitive[0][hit][ok]).float().mean() > 0.95
    diff = (rb.rgb[0][:, vi, ui][:, ok] - ra.rgb[0][:, hit][:, ok]).abs().amax(0)
    assert diff.median() < 0.06


def test_orbit_geometry():
    cams = orbit(
        12, center=(0.1, -0.2, 0.3), radius=2.0, elevation_deg=25.0, fov_y_deg=40, width=64, height=48
    )
    c = cams.centers() - torch.tensor([0.1, -0.2, 0.3])
    torch.testing.assert_close(c.norm(dim=-1), torch.full((12,), 2.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        torch.asin(c[:, 2] / 2.0), torch.full((12,), math.radians(25.0)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(cams.forward_dirs(), -c / 2.0, atol=1e-5, rtol=0)  # looks at the centre
    az = torch.atan2(c[:, 1], c[:, 0])
    step = torch.remainder(az[1:] - az[:-1], 2 * math.pi)
    torch.testing.assert_close(step, torch.full((11,), 2 * math.pi / 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(cams.fov_y_rad(), torch.full((12,), math.radians(40.0)), atol=1e-6, rtol=0)


def test_handheld_shake_is_smooth_and_sized(gen):
    shake = HandHeld(position=0.02, rotation_deg=1.0)
    dpos, drot = shake_offsets(3000, 30.0, shake, gen)
    rms_pos = dpos.pow(2).mean(0).sqrt()
    rms_rot = drot.pow(2).mean(0).sqrt()
    torch.testing.assert_close(rms_pos, torch.full((3,), 0.02), rtol=0.35, atol=0)
    torch.testing.assert_close(rms_rot, torch.full((3,), math.radians(1.0)), rtol=0.35, atol=0)
    # smooth: frame-to-frame change bounded by 2 pi f_max / fps of the amplitude
    step = (dpos[1:] - dpos[:-1]).abs().max()
    assert step < 0.02 * math.sqrt(2 * 4) * 2 * math.pi * 1.5 / 30
    base = orbit(50, radius=2.0, elevation_deg=10.0, fov_y_deg=40, width=32, height=32)
    shaken = orbit(
        50, radius=2.0, elevation_deg=10.0, fov_y_deg=40, width=32, height=32, shake=shake, gen=gen
    )
    moved = (shaken.centers() - base.centers()).norm(dim=-1)
    assert 0 < moved.max() < 0.2
    R = shaken.c2w[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(50, 3, 3), atol=1e-5, rtol=0)


def test_room_trajectories_stay_in_the_camera_zone(gen):
    s = room_scene(int(torch.randint(10_000, (1,), generator=gen)))
    zone = s.info["camera_zone"]
    walk = walk_through(60, radius=0.8 * zone["outer"], fov_y_deg=60, width=32, height=24, gen=gen)
    assert walk.centers()[:, :2].norm(dim=-1).max() <= 0.8 * zone["outer"] * 1.2  # spline overshoot bound
    steps = (walk.centers()[1:] - walk.centers()[:-1]).norm(dim=-1)
    assert steps.max() < 3 * steps.mean()  # constant speed
    look = look_around(60, drift_radius=0.3, yaw_deg=(0.0, 300.0), fov_y_deg=60, width=32, height=24)
    assert look.centers()[:, :2].norm(dim=-1).max() <= 0.3 + 1e-5
    yaw = torch.atan2(look.forward_dirs()[:, 1], look.forward_dirs()[:, 0])
    assert float(torch.remainder(yaw[-1] - yaw[0], 2 * math.pi)) == pytest_approx(math.radians(300.0))


def pytest_approx(x):
    import pytest

    return pytest.approx(x, abs=1e-4)


def test_render_capture_video_and_images(tmp_path, gen):
    s = object_scene(int(torch.randint(1000, (1,), generator=gen)))
    cams = orbit(
        9, radius=2.0, elevation_deg=20.0, fov_y_deg=40, width=64, height=48, shake=HandHeld(), gen=gen
    )
    files = render_capture(s, cams, tmp_path, video="clip.mp4", images=True, fps=12, supersample=1, batch=4)
    assert files.num_frames == 9
    frames = iio.imread(files.video, plugin="pyav")
    assert frames.shape == (9, 48, 64, 3)
    meta = iio.immeta(files.video, plugin="pyav")
    assert meta["codec"] == "h264" and meta["video_format"] == "yuv420p" and meta["fps"] == 12
    idx, gt, d = read_gt_cameras(files.gt_cameras)
    assert idx == list(range(9)) and d["num_frames"] == 9 and d["video"] == "clip.mp4"
    torch.testing.assert_close(gt.c2w, cams.c2w)
    torch.testing.assert_close(gt.K, cams.K)
    cap = Capture.load(tmp_path)
    assert len(cap) == 9 and cap.splits[0] == "test" and cap.splits[1] == "train"
    torch.testing.assert_close(cap.cameras.c2w, cams.c2w)
    ref = render(s, cams)
    imgs = cap.load_images()
    assert np.array_equal(to_uint8(imgs[3]), to_uint8(ref.rgb[3]))  # PNG: lossless
    # the video is a lossy copy of the same frames
    err = np.abs(
        frames.astype(np.float64) - np.stack([to_uint8(x) for x in ref.rgb]).astype(np.float64)
    ).mean()
    assert err < 8


def test_box_corners_span_the_primitive_boxes(seed):
    """The 8 oriented-box corners' extent is the world AABB (exact for every kind but spheres,
    whose ellipsoid AABB is tighter and inside it)."""
    scene = room_scene(seed % 1000)
    corners = scene.box_corners()
    assert corners.shape == (scene.num_primitives, 8, 3)
    lo, hi = scene.primitive_aabbs()
    box = scene.kind != Kind.SPHERE
    torch.testing.assert_close(corners.amin(1)[box], lo[box], atol=1e-5, rtol=0)
    torch.testing.assert_close(corners.amax(1)[box], hi[box], atol=1e-5, rtol=0)
    assert (corners.amin(1) <= lo + 1e-5).all() and (corners.amax(1) >= hi - 1e-5).all()
