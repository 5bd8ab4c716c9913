"""Camera paths: interpolation through keyframes (closed-form references: constant velocity and
acceleration, rotations about one axis), smoothness, sign flips, automatic paths on rigs with
known geometry, and nerfstudio camera_path.json interchange."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.paths import (
    CameraPath,
    Keyframe,
    center_of_interest,
    from_nerfstudio,
    input_cameras_path,
    interpolate,
    nerfstudio_world,
    orbit_path,
    read_camera_path,
    sample_cameras,
    to_nerfstudio,
    world_up,
    write_camera_path,
)
from pipelines.transforms import Similarity, axis_angle_to_rotmat, random_rotations, rotmat_to_quat


def rot_angle(Ra: torch.Tensor, Rb: torch.Tensor) -> torch.Tensor:
    """Angle [...] in radians of Ra^T Rb, float64, from the trace (no quaternions)."""
    tr = torch.einsum("...ji,...ji->...", Ra.double(), Rb.double())
    return torch.arccos(((tr - 1) / 2).clamp(-1, 1))


def c2w_of(R: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3], m[:3, 3] = R.double(), p.double()
    return m


def random_walk_path(gen, n: int, *, loop: bool, max_angle: float = math.radians(80), explicit_times=True):
    """n keyframes: positions a random walk (steps <= ~1.7), each rotation within max_angle of
    the previous, random fovs (some default), transitions of 0.5 to 1.5 s."""
    R = [random_rotations(1, gen, torch.float64)[0]]
    p = [torch.randn(3, generator=gen, dtype=torch.float64)]
    for _ in range(n - 1):
        axis = torch.nn.functional.normalize(torch.randn(3, generator=gen, dtype=torch.float64), dim=0)
        angle = float(torch.rand(1, generator=gen)) * max_angle
        R.append(R[-1] @ axis_angle_to_rotmat(axis * angle))
        p.append(p[-1] + torch.rand(3, generator=gen, dtype=torch.float64) * 2 - 1)
    steps = 0.5 + torch.rand(n if loop else n - 1, generator=gen, dtype=torch.float64)  # 0.5 to 1.5 s
    t = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    duration = float(t[-1])
    keys = []
    for i in range(n):
        fov = None if torch.rand(1, generator=gen) < 0.3 else 30 + 60 * float(torch.rand(1, generator=gen))
        keys.append(Keyframe(c2w_of(R[i], p[i]), fov, float(t[i]) if explicit_times else None))
    return CameraPath(
        tuple(keys), duration_s=duration, fps=30.0, loop=loop, default_fov_deg=55.0, width=96, height=64
    )


@pytest.mark.parametrize("loop", [False, True])
def test_path_passes_through_every_keyframe_at_its_time(gen, loop):
    n = int(torch.randint(2, 8, (1,), generator=gen))
    path = random_walk_path(gen, n, loop=loop)
    poses = interpolate(path, path.keyframe_times())
    torch.testing.assert_close(poses.c2w, path.c2ws(), atol=1e-10, rtol=0)
    torch.testing.assert_close(poses.fov_y_deg, path.fovs_deg(), atol=1e-10, rtol=0)
    if loop:  # one period later, the same poses
        again = interpolate(path, path.keyframe_times() + path.duration_s)
        torch.testing.assert_close(again.c2w, path.c2ws(), atol=1e-9, rtol=0)
    # Evenly spaced when no time is given: keyframe i at i * duration / transitions.
    even = CameraPath(tuple(Keyframe(k.c2w, k.fov_y_deg) for k in path.keyframes), duration_s=3.0, loop=loop)
    want = torch.arange(n, dtype=torch.float64) * 3.0 / (n if loop else n - 1)
    torch.testing.assert_close(even.keyframe_times(), want)
    torch.testing.assert_close(interpolate(even, want).c2w, path.c2ws(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("loop", [False, True])
def test_no_jumps_between_frames(gen, loop):
    path = random_walk_path(gen, 6, loop=loop)
    poses = interpolate(path, path.frame_times())
    knots = path.knot_times()
    c2w = path.c2ws()
    idx = list(range(len(path))) + ([0] if loop else [])
    # The fastest chord between neighbouring keyframes, in metres / radians per second.
    v = max(
        float((c2w[idx[i + 1], :3, 3] - c2w[idx[i], :3, 3]).norm()) / float(knots[i + 1] - knots[i])
        for i in range(len(idx) - 1)
    )
    w = max(
        float(rot_angle(c2w[idx[i], :3, :3], c2w[idx[i + 1], :3, :3])) / float(knots[i + 1] - knots[i])
        for i in range(len(idx) - 1)
    )
    dt = 1 / path.fps
    dp = (poses.c2w[1:, :3, 3] - poses.c2w[:-1, :3, 3]).norm(dim=-1)
    da = rot_angle(poses.c2w[:-1, :3, :3], poses.c2w[1:, :3, :3])
    # A cubic Hermite segment moves at most 1.5x its chord speed plus its end tangents, each a
    # weighted mean of chord speeds: bounded by 3x the fastest chord.
    assert float(dp.max()) <= 3 * v * dt + 1e-9, (float(dp.max()), v * dt)
    assert float(da.max()) <= 3 * w * dt + 1e-9, (float(da.max()), w * dt)
    # No kinks: consecutive steps differ by far less than a step (transitions last >= 15 frames).
    ddp = (poses.c2w[2:, :3, 3] - 2 * poses.c2w[1:-1, :3, 3] + poses.c2w[:-2, :3, 3]).norm(dim=-1)
    assert float(ddp.max()) <= 0.5 * float(dp.max()) + 1e-12


@pytest.mark.parametrize("loop", [False, True])
def test_velocity_is_continuous_through_keyframes(gen, loop):
    path = random_walk_path(gen, 5, loop=loop)
    eps = 1e-6
    inner = path.keyframe_times()[(0 if loop else 1) : (None if loop else -1)]
    for t in inner.tolist():
        a, b, c = interpolate(path, torch.tensor([t - eps, t, t + eps], dtype=torch.float64)).c2w
        v_left, v_right = (b[:3, 3] - a[:3, 3]) / eps, (c[:3, 3] - b[:3, 3]) / eps
        torch.testing.assert_close(v_left, v_right, atol=1e-4 * (1 + float(v_left.norm())), rtol=0)

        # angular velocity (world frame) from the skew part of R(t+e) R(t)^T
        def omega(R0, R1):
            S = (R1[:3, :3] @ R0[:3, :3].T - R0[:3, :3] @ R1[:3, :3].T) / 2
            return torch.stack([S[2, 1], S[0, 2], S[1, 0]]) / eps

        w_left, w_right = omega(a, b), omega(b, c)
        torch.testing.assert_close(w_left, w_right, atol=1e-4 * (1 + float(w_left.norm())), rtol=0)


def test_positions_reproduce_constant_velocity_and_acceleration(gen):
    n = 7
    t = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64),
            (0.3 + torch.rand(n - 1, generator=gen, dtype=torch.float64)).cumsum(0),
        ]
    )
    a, b, c = (torch.randn(3, generator=gen, dtype=torch.float64) for _ in range(3))
    eye = torch.eye(3, dtype=torch.float64)

    def path_of(pos):
        keys = tuple(Keyframe(c2w_of(eye, pos[i]), None, float(t[i])) for i in range(n))
        return CameraPath(keys, duration_s=float(t[-1]))

    dense = torch.linspace(0, float(t[-1]), 301, dtype=torch.float64)
    linear = path_of(b * t[:, None] + c)
    torch.testing.assert_close(
        interpolate(linear, dense).c2w[:, :3, 3], b * dense[:, None] + c, atol=1e-10, rtol=0
    )
    # Constant acceleration: exact between interior keyframes (the end segments use chords).
    quad = path_of(a * t[:, None] ** 2 + b * t[:, None] + c)
    inner = dense[(dense >= t[1]) & (dense <= t[-2])]
    got = interpolate(quad, inner).c2w[:, :3, 3]
    torch.testing.assert_close(got, a * inner[:, None] ** 2 + b * inner[:, None] + c, atol=1e-10, rtol=0)


def test_quaternion_sign_flip_between_keyframes_does_not_spin(gen):
    """Rotations about one axis through 180 degrees: rotmat_to_quat (w >= 0) flips the sign of
    the quaternion there, so the stored quaternions of neighbours lie on opposite hemispheres.
    The path must turn the short way, at the angular speed the keyframes set (closed form)."""
    axis = torch.nn.functional.normalize(torch.randn(3, generator=gen, dtype=torch.float64), dim=0)
    start = math.radians(120 + 40 * float(torch.rand(1, generator=gen)))
    step = math.radians(15 + 10 * float(torch.rand(1, generator=gen)))
    angles = start + step * torch.arange(6, dtype=torch.float64)  # crosses 180 degrees
    R = axis_angle_to_rotmat(axis * angles[:, None])
    q = rotmat_to_quat(R)
    assert ((q[1:] * q[:-1]).sum(-1) < 0).any(), "the test rig must contain a quaternion sign flip"
    pos = torch.randn(3, generator=gen, dtype=torch.float64)
    path = CameraPath(tuple(Keyframe(c2w_of(R[i], pos)) for i in range(6)), duration_s=5.0, fps=24.0)
    times = path.frame_times()
    got = interpolate(path, times).c2w[:, :3, :3]
    want = axis_angle_to_rotmat(axis * (start + step * times)[:, None])  # constant angular speed
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)
    per_frame = rot_angle(got[:-1], got[1:])
    assert float(per_frame.max()) <= step / 24.0 * 1.0001  # a spin would take ~2 pi in a few frames


def test_two_keyframes_follow_the_geodesic(gen):
    R0, R1 = random_rotations(2, gen, torch.float64)
    p0, p1 = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    path = CameraPath(
        (Keyframe(c2w_of(R0, p0), 40.0), Keyframe(c2w_of(R1, p1), 70.0)), duration_s=2.0, fps=10
    )
    s = path.frame_times() / 2.0
    poses = interpolate(path, path.frame_times())
    # geodesic R0 exp(s log(R0^T R1)) from the axis-angle of R0^T R1 (eigenvector of angle)
    rel = R0.T @ R1
    angle = rot_angle(R0, R1)
    axis = torch.stack([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]])
    axis = axis / axis.norm()
    want = R0 @ axis_angle_to_rotmat(axis * (s * angle)[:, None])
    torch.testing.assert_close(poses.c2w[:, :3, :3], want, atol=1e-9, rtol=0)
    torch.testing.assert_close(poses.c2w[:, :3, 3], p0 + s[:, None] * (p1 - p0), atol=1e-12, rtol=0)
    torch.testing.assert_close(poses.fov_y_deg, 40 + 30 * s, atol=1e-12, rtol=0)


def test_frame_times_and_counts():
    k = Keyframe(torch.eye(4, dtype=torch.float64))
    open_path = CameraPath((k, k), duration_s=2.0, fps=30.0)
    assert open_path.num_frames() == 61 and float(open_path.frame_times()[-1]) == 2.0
    loop = CameraPath((k, k, k), duration_s=2.0, fps=30.0, loop=True)
    assert loop.num_frames() == 60 and float(loop.frame_times()[-1]) == pytest.approx(2.0 - 1 / 30)
    with pytest.raises(ValueError, match="increase strictly"):
        CameraPath((Keyframe(k.c2w, None, 1.0), Keyframe(k.c2w, None, 0.5)), duration_s=2.0)


def test_edits(gen):
    path = random_walk_path(gen, 4, loop=False)
    times = path.keyframe_times()
    swapped = path.swapped(1, 2)
    torch.testing.assert_close(swapped.keyframes[1].c2w, path.keyframes[2].c2w, atol=1e-12, rtol=0)
    torch.testing.assert_close(swapped.keyframe_times(), times)  # time slots stay
    added = path.added(Keyframe(torch.eye(4, dtype=torch.float64)), index=1)
    assert len(added) == 5 and torch.equal(added.keyframes[1].c2w, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(
        added.keyframe_times(), torch.linspace(0, path.duration_s, 5, dtype=torch.float64)
    )
    deleted = path.deleted(0)
    assert len(deleted) == 3
    torch.testing.assert_close(deleted.keyframes[0].c2w, path.keyframes[1].c2w, atol=1e-12, rtol=0)
    torch.testing.assert_close(path.with_duration(2 * path.duration_s).keyframe_times(), 2 * times)
    assert path.with_fov(2, None).keyframes[2].fov_y_deg is None
    looped = path.with_loop(True)  # the last keyframe's explicit time no longer fits a loop's timing
    assert looped.loop and len(looped.keyframe_times()) == 4


def ring_rig(gen, n: int = 10, noise: float = 0.0, span: float = 1.5 * math.pi):
    """Cameras on a horizontal circle (radius r, height h above a centre c) over ``span``
    radians looking at c, the whole rig rotated so world up is a random direction; returns
    cams, c, up, r, h."""
    Rw = random_rotations(1, gen, torch.float64)[0]
    c = torch.randn(3, generator=gen, dtype=torch.float64)
    r = 1.5 + float(torch.rand(1, generator=gen)) * 2
    h = float(torch.rand(1, generator=gen)) - 0.3
    a = torch.linspace(0, span, n, dtype=torch.float64) + float(torch.rand(1, generator=gen))
    local = torch.stack([r * torch.cos(a), r * torch.sin(a), torch.full_like(a, h)], 1)
    eye = local @ Rw.T + c
    up = Rw[:, 2]
    target = c + noise * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    cams = Cameras.look_at(
        eye.float(), target.float().expand(n, 3), fov_y_deg=50.0, width=80, height=60, up=up.float()
    )
    return cams, c, up, r, h


def test_orbit_circles_the_centre_of_interest(gen):
    cams, c, up, r, h = ring_rig(gen, span=2 * math.pi * 9 / 10)  # all around
    torch.testing.assert_close(center_of_interest(cams), c, atol=1e-4, rtol=0)
    torch.testing.assert_close(world_up(cams), up, atol=1e-5, rtol=0)
    path = orbit_path(cams, n_keyframes=12, duration_s=6.0, fps=20)
    assert path.loop and len(path) == 12 and path.default_fov_deg == pytest.approx(50.0, abs=1e-4)
    poses = interpolate(path, path.frame_times())
    rel = poses.c2w[:, :3, 3] - c
    height = rel @ up
    radius = (rel - height[:, None] * up).norm(dim=-1)
    torch.testing.assert_close(height, torch.full_like(height, h), atol=1e-4 * r, rtol=0)
    assert float((radius - r).abs().max()) < 0.005 * r  # the spline between 12 keyframes on a circle
    key_forward = path.c2ws()[:, :3, 2]
    torch.testing.assert_close(
        key_forward, torch.nn.functional.normalize(c - path.c2ws()[:, :3, 3], dim=-1), atol=1e-5, rtol=0
    )
    assert float((-path.c2ws()[:, :3, 1] @ up).min()) > 0  # image up towards world up
    torch.testing.assert_close(
        path.c2ws()[:, :3, 0] @ up, torch.zeros(12, dtype=torch.float64), atol=1e-5, rtol=0
    )

    # It turns the way the capture did: the reversed capture gives the mirrored orbit.
    def turn(p):
        f = p.c2ws()[:, :3, 3] - c
        return float(torch.linalg.cross(f[0], f[1]) @ up)

    reversed_path = orbit_path(cams[list(reversed(range(len(cams))))], n_keyframes=12)
    assert turn(path) * turn(reversed_path) < 0
    # A point cloud does not move the orbit's centre while the axes converge.
    pts = torch.randn(50, 3, generator=gen, dtype=torch.float64) + 5
    torch.testing.assert_close(center_of_interest(cams, pts), center_of_interest(cams), atol=1e-9, rtol=0)
    torch.testing.assert_close(
        center_of_interest(cams, pts, prefer="points"), torch.from_numpy(np.median(pts.numpy(), axis=0))
    )


def test_input_camera_path_follows_the_capture(gen):
    cams, *_ = ring_rig(gen, n=40)
    exact = input_cameras_path(cams, smooth_frames=0, max_keyframes=100)
    assert not exact.loop and len(exact) == 40
    torch.testing.assert_close(exact.c2ws(), cams.c2w.double(), atol=1e-6, rtol=0)
    # Steady speed: the cameras are equally spaced on the ring, so are the keyframe times.
    t = exact.keyframe_times()
    torch.testing.assert_close(
        t, torch.linspace(0, exact.duration_s, 40, dtype=torch.float64), atol=1e-6, rtol=0
    )
    sub = input_cameras_path(cams, max_keyframes=8, smooth_frames=0)
    assert len(sub) == 8
    torch.testing.assert_close(sub.c2ws()[0], cams.c2w[0].double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(sub.c2ws()[-1], cams.c2w[-1].double(), atol=1e-6, rtol=0)
    # Hand shake is smoothed: a dolly along a straight line, jittered, comes out closer to the
    # line (smoothing has no bias on a line) and much less rough.
    line = torch.linspace(0, 4, 40)[:, None] * torch.nn.functional.normalize(
        torch.randn(1, 3, generator=gen), dim=-1
    )
    dolly = Cameras.look_at(line, line + torch.tensor([0.0, 0, 5]), fov_y_deg=50.0, width=80, height=60)
    jitter = dolly.c2w.clone()
    jitter[:, :3, 3] += 0.05 * torch.randn(40, 3, generator=gen)
    shaky = Cameras(jitter, dolly.K, dolly.width, dolly.height)
    raw = input_cameras_path(shaky, smooth_frames=0, max_keyframes=100).c2ws()[:, :3, 3]
    smooth = input_cameras_path(shaky, smooth_frames=2.0, max_keyframes=100).c2ws()[:, :3, 3]

    def roughness(p):
        return float((p[2:] - 2 * p[1:-1] + p[:-2]).norm(dim=-1).mean())

    def off_line(p):
        return float((p - line.double())[6:-6].norm(dim=-1).mean())

    assert roughness(smooth) < 0.3 * roughness(raw)
    assert off_line(smooth) < 0.7 * off_line(raw)
    # Smoothing keeps the ends where the cameras are (the path starts at the first camera) and
    # leaves motion at constant velocity unchanged, ends included.
    smooth_path = input_cameras_path(shaky, smooth_frames=2.0, max_keyframes=100)
    torch.testing.assert_close(smooth_path.c2ws()[0], shaky.c2w[0].double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(smooth_path.c2ws()[-1], shaky.c2w[-1].double(), atol=1e-6, rtol=0)
    steady = input_cameras_path(dolly, smooth_frames=2.0, max_keyframes=100).c2ws()
    torch.testing.assert_close(steady, dolly.c2w.double(), atol=1e-5, rtol=0)


def test_sampled_cameras_aim_at_the_point_the_keyframe_looks_at(gen):
    target = torch.randn(1, 3, generator=gen)
    eye = target + torch.nn.functional.normalize(torch.randn(1, 3, generator=gen), dim=-1) * 3
    look = Cameras.look_at(eye, target, fov_y_deg=45.0, width=96, height=64)
    other = Cameras.look_at(eye + 1.0, target + 0.5, fov_y_deg=45.0, width=96, height=64)
    path = CameraPath(
        (Keyframe(other.c2w[0]), Keyframe(look.c2w[0], 35.0), Keyframe(other.c2w[0])), duration_s=2.0, fps=5
    )
    cams = sample_cameras(path, 96, 64, times=torch.tensor([1.0]))
    uv, z = cams.project(target)
    torch.testing.assert_close(uv[0, 0], torch.tensor([48.0, 32.0]), atol=1e-3, rtol=0)
    assert float(z) > 0
    assert float(cams.fov_y_rad()[0]) == pytest.approx(math.radians(35.0), abs=1e-6)


# ------------------------------------------------------------------ nerfstudio camera_path.json


@pytest.mark.parametrize("loop", [False, True])
def test_camera_path_json_round_trip(gen, tmp_path, loop):
    path = random_walk_path(gen, int(torch.randint(2, 7, (1,), generator=gen)), loop=loop)
    file = write_camera_path(tmp_path / "paths" / "p.json", path)
    back = read_camera_path(file)
    torch.testing.assert_close(back.c2ws(), path.c2ws(), atol=1e-12, rtol=0)
    torch.testing.assert_close(back.keyframe_times(), path.keyframe_times(), atol=1e-12, rtol=0)
    assert [k.fov_y_deg for k in back.keyframes] == pytest.approx([k.fov_y_deg for k in path.keyframes])
    assert (back.duration_s, back.fps, back.loop, back.width, back.height, back.default_fov_deg) == (
        path.duration_s,
        path.fps,
        path.loop,
        path.width,
        path.height,
        path.default_fov_deg,
    )
    # Without our block, nerfstudio's fields alone give the same keyframes and timing (the
    # transitions start at keyframe 0 and end at the last / back at keyframe 0).
    d = to_nerfstudio(path)
    del d["lrm_studio"]
    plain = from_nerfstudio(d)
    torch.testing.assert_close(plain.keyframe_times(), path.keyframe_times(), atol=1e-9, rtol=0)
    assert plain.duration_s == pytest.approx(path.duration_s) and plain.loop == loop
    # Dense frames: what ns-render plays, len / seconds = fps.
    frames = d["camera_path"]
    assert len(frames) == path.num_frames() and len(frames) / d["seconds"] == pytest.approx(path.fps)


def test_camera_path_json_axes_fov_and_world(gen):
    R = random_rotations(1, gen, torch.float64)[0]
    p = torch.randn(3, generator=gen, dtype=torch.float64)
    path = CameraPath(
        (Keyframe(c2w_of(R, p), 40.0), Keyframe(c2w_of(R, p + 1))), duration_s=1.0, width=200, height=100
    )
    sim = Similarity(
        0.5 + float(torch.rand(1, generator=gen)),
        random_rotations(1, gen, torch.float64)[0],
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    d = to_nerfstudio(path, world=sim)
    m = torch.tensor(d["keyframes"][0]["matrix"], dtype=torch.float64).reshape(4, 4)  # row-major
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # OpenCV -> OpenGL axes
    torch.testing.assert_close(m[:3, :3], sim.rotation @ R @ flip, atol=1e-12, rtol=0)
    torch.testing.assert_close(m[:3, 3], sim.scale * sim.rotation @ p + sim.translation, atol=1e-12, rtol=0)
    assert d["keyframes"][0]["fov"] == 40.0 and d["keyframes"][1]["fov"] == d["default_fov"]
    assert d["keyframes"][0]["aspect"] == 2.0 and (d["render_width"], d["render_height"]) == (200, 100)
    # nerfstudio's reader: focal = (H / 2) / tan(fov / 2) (vertical fov, degrees)
    f = 0.5 * 100 / math.tan(math.radians(d["camera_path"][0]["fov"]) / 2)
    cams = sample_cameras(path, 200, 100, times=torch.tensor([0.0]))
    assert float(cams.fy[0]) == pytest.approx(f, rel=1e-6) and float(cams.fx[0]) == pytest.approx(f, rel=1e-6)
    back = from_nerfstudio(d, world=sim)
    torch.testing.assert_close(back.c2ws(), path.c2ws(), atol=1e-10, rtol=0)


def test_reads_a_file_written_by_nerfstudios_viewer():
    """As nerfstudio's render panel writes it: the transition into keyframe i is stored on
    keyframe i; for a cycle keyframe 0 holds the closing one. Identity rotation in OpenGL axes
    looks down world -z."""

    def key(x, fov, dt=None):
        m = torch.eye(4, dtype=torch.float64)
        m[0, 3] = x
        return {
            "matrix": m.reshape(16).tolist(),
            "fov": fov,
            "aspect": 1.5,
            "override_transition_enabled": dt is not None,
            "override_transition_sec": dt,
        }

    d = {
        "default_fov": 75.0,
        "default_transition_sec": 2.0,
        "keyframes": [key(0, 75.0, 0.5), key(1, 75.0), key(2, 50.0, 1.0)],
        "camera_type": "perspective",
        "render_height": 480,
        "render_width": 720,
        "fps": 24,
        "seconds": 5.5,
        "is_cycle": True,
        "smoothness_value": 0.3,
        "camera_path": [],
    }
    path = from_nerfstudio(d)
    torch.testing.assert_close(path.keyframe_times(), torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64))
    assert path.duration_s == 3.5 and path.loop and path.smoothness == 0.3
    assert [k.fov_y_deg for k in path.keyframes] == [None, None, 50.0] and path.default_fov_deg == 75.0
    torch.testing.assert_close(path.c2ws()[:, :3, 2], torch.tensor([[0.0, 0, -1]] * 3, dtype=torch.float64))
    d["is_cycle"] = False
    assert from_nerfstudio(d).duration_s == 3.0
    # A script-made file with dense frames only: every frame a keyframe, 1 / fps apart.
    dense = {
        "render_height": 480,
        "render_width": 720,
        "seconds": 2.0,
        "camera_path": [
            {"camera_to_world": key(i * 0.1, 60.0)["matrix"], "fov": 60.0, "aspect": 1.5} for i in range(48)
        ],
    }
    frames = from_nerfstudio(dense)
    assert len(frames) == 48 and frames.fps == pytest.approx(24.0) and frames.num_frames() == 48
    with pytest.raises(ValueError, match="fisheye"):
        from_nerfstudio({**d, "camera_type": "fisheye"})


def test_nerfstudio_world_composes_applied_and_dataparser_transforms(gen):
    A = random_rotations(1, gen, torch.float64)[0]
    a = torch.randn(3, generator=gen, dtype=torch.float64)
    T = random_rotations(1, gen, torch.float64)[0]
    t = torch.randn(3, generator=gen, dtype=torch.float64)
    s = 0.3
    sim = nerfstudio_world(
        {"transform": torch.cat([T, t[:, None]], 1).tolist(), "scale": s}, torch.cat([A, a[:, None]], 1)
    )
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sim.apply(x), s * ((x @ A.T + a) @ T.T + t))
