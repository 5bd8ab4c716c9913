"""Automatic paths follow the captured range, on procedural captures of the shapes people bring
(tests/path_captures.py): a frontal arc in front of a poster on a wall keeps every frame in
front of the wall and looking at the poster, a 360 degree orbit closes, a walk-through follows
its cameras; every path starts at the first camera. Portrait, square, landscape and odd sizes."""

from __future__ import annotations

import math

import pytest
import torch
from path_captures import SIZES, ShapeCapture, frontal_arc, full_orbit, walk

from pipelines.cameras import Cameras
from pipelines.paths import CameraPath, auto_path, interpolate, sample_cameras
from pipelines.paths.auto import covered_arc


def random_size(gen) -> tuple[int, int]:
    return list(SIZES.values())[int(torch.randint(len(SIZES), (1,), generator=gen))]


def frames_of(path: CameraPath) -> Cameras:
    """The video frames of ``path`` at its own size (the capture's) and fps."""
    return sample_cameras(path)


def assert_starts_at_first_camera(path: CameraPath, cams: Cameras) -> None:
    torch.testing.assert_close(path.c2ws()[0], cams.c2w[0].double(), atol=1e-5, rtol=0)
    start = interpolate(path, torch.zeros(1)).c2w[0]
    torch.testing.assert_close(start, cams.c2w[0].double(), atol=1e-5, rtol=0)


def assert_sees_target(frames: Cameras, target: torch.Tensor) -> None:
    """The target's projection is inside every frame, in front of the camera."""
    uv, z = frames.project(target.float()[None])
    uv, z = uv[:, 0], z[:, 0]  # [F, 2], [F]
    size = torch.tensor([frames.width, frames.height])
    inside = (z > 0) & ((uv >= 0) & (uv <= size)).all(-1)
    assert bool(inside.all()), f"{int((~inside).sum())} of {len(inside)} frames lose the target"


def assert_in_room(frames: Cameras, cap: ShapeCapture) -> None:
    c = frames.centers().double()
    inside = ((c > cap.room_lo + 0.05) & (c < cap.room_hi - 0.05)).all(-1)
    assert bool(inside.all()), f"{int((~inside).sum())} of {len(c)} frames outside the room"


@pytest.mark.parametrize("size", list(SIZES))
def test_frontal_arc_stays_in_front_of_the_wall_looking_at_the_object(gen, size):
    width, height = SIZES[size]
    arc_deg = 60 + 60 * float(torch.rand(1, generator=gen))
    cap = frontal_arc(gen, arc_deg, width, height)
    path, shape = auto_path(cap.cameras, cap.points, duration_s=4.0, fps=15)
    # The arc measured: the stray camera behind the wall does not widen it to a circle.
    assert shape.kind == "arc" and not path.loop
    assert 0.85 * arc_deg < shape.span_deg < arc_deg + 3, (shape.span_deg, arc_deg)
    assert_starts_at_first_camera(path, cap.cameras)
    frames = frames_of(path)
    assert (frames.width, frames.height) == (width, height)
    assert_sees_target(frames, cap.target)
    in_front = (frames.centers().double() - cap.wall_point) @ cap.wall_normal  # [F] metres
    assert float(in_front.min()) > 0.1, float(in_front.min())
    assert_in_room(frames, cap)
    # It sweeps the covered range, at the cameras' distance: the frames' azimuths about the
    # centre span the arc and stay inside the cameras' (stray excluded) range.
    good = ((cap.cameras.centers().double() - cap.wall_point) @ cap.wall_normal) > 0  # not the stray

    def azimuth(c: torch.Tensor) -> torch.Tensor:  # about the wall normal, in the horizontal plane
        rel = c.double() - cap.target
        side = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), cap.wall_normal)
        return torch.atan2(rel @ side, rel @ cap.wall_normal)

    a_cams, a_path = azimuth(cap.cameras.centers()[good]), azimuth(frames.centers())
    assert float(a_path.max() - a_path.min()) > 0.85 * float(a_cams.max() - a_cams.min())
    assert float(a_path.min()) > float(a_cams.min()) - math.radians(1)
    assert float(a_path.max()) < float(a_cams.max()) + math.radians(1)
    d_cams = (cap.cameras.centers()[good].double() - cap.target).norm(dim=-1)
    d_path = (frames.centers().double() - cap.target).norm(dim=-1)
    assert float((d_path.median() / d_cams.median() - 1).abs()) < 0.1


def test_full_orbit_closes_and_starts_at_the_first_camera(gen):
    width, height = random_size(gen)
    cap = full_orbit(gen, width, height)
    path, shape = auto_path(cap.cameras, cap.points, duration_s=4.0, fps=15)
    assert shape.kind == "orbit" and path.loop and shape.span_deg == 360
    assert_starts_at_first_camera(path, cap.cameras)
    frames = frames_of(path)
    assert_sees_target(frames, cap.target)
    assert_in_room(frames, cap)
    # Closed: after the last frame comes the first (t = duration is t = 0), one ordinary step away.
    end = interpolate(path, torch.tensor([path.duration_s], dtype=torch.float64)).c2w[0]
    torch.testing.assert_close(end, path.c2ws()[0], atol=1e-9, rtol=0)
    c = frames.centers().double()
    steps = (c[1:] - c[:-1]).norm(dim=-1)
    closing = float((c[0] - c[-1]).norm())
    assert 0.5 * float(steps.median()) < closing < 1.5 * float(steps.max())
    # It turns the way the capture did, once around the target.
    rel = c - cap.target
    az = torch.atan2(rel[:, 1], rel[:, 0])
    turned = float(torch.remainder(torch.diff(az) + math.pi, 2 * math.pi).sub(math.pi).sum())
    rel_cams = cap.cameras.centers().double() - cap.target
    az_cams = torch.atan2(rel_cams[:, 1], rel_cams[:, 0])
    capture_turn = float(torch.remainder(torch.diff(az_cams) + math.pi, 2 * math.pi).sub(math.pi).sum())
    assert turned * capture_turn > 0 and abs(abs(turned) - 2 * math.pi) < 2 * math.pi / len(frames) + 1e-6


def test_walk_through_follows_its_cameras(gen):
    width, height = random_size(gen)
    cap = walk(gen, width, height)
    path, shape = auto_path(cap.cameras, cap.points, duration_s=4.0, fps=15)
    assert shape.kind == "walk" and not path.loop
    assert_starts_at_first_camera(path, cap.cameras)
    torch.testing.assert_close(path.c2ws()[-1], cap.cameras.c2w[-1].double(), atol=1e-5, rtol=0)
    frames = frames_of(path)
    assert_in_room(frames, cap)
    # Along the inputs: every frame within one camera spacing of the cameras' polyline.
    c = cap.cameras.centers().double()
    a, b = c[:-1], c[1:]  # [S, 3] segments
    p = frames.centers().double()[:, None]  # [F, 1, 3]
    s = (((p - a) * (b - a)).sum(-1) / (b - a).pow(2).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    dist = (p - (a + s[..., None] * (b - a))).norm(dim=-1).amin(-1)  # [F]
    spacing = float((b - a).norm(dim=-1).median())
    assert float(dist.max()) < 1.5 * spacing, (float(dist.max()), spacing)


def test_covered_arc_matches_brute_force(gen):
    n = int(torch.randint(3, 40, (1,), generator=gen))
    keep = float(torch.empty(1).uniform_(0.5, 1.0, generator=gen))
    extent = float(torch.empty(1).uniform_(0.1, 7.0, generator=gen))  # radians, up to past a full turn
    az = torch.rand(n, generator=gen, dtype=torch.float64) * extent
    az = az + 10 * torch.randn(1, generator=gen, dtype=torch.float64)  # any offset
    start, span = covered_arc(az, keep)
    k = math.ceil(keep * n - 1e-9)
    # Reference: from every camera, counter-clockwise, the angle to the k-th camera (itself first).
    a = torch.remainder(az, 2 * math.pi)
    best = min(float(torch.sort(torch.remainder(a - a[i], 2 * math.pi)).values[k - 1]) for i in range(n))
    assert span == pytest.approx(best, abs=1e-9)
    inside = torch.remainder(a - start, 2 * math.pi) <= span + 1e-9
    assert int(inside.sum()) >= k


def test_turning_on_the_spot_is_not_an_orbit():
    """Cameras at one point looking outwards all around: nothing to orbit; the path is theirs."""
    yaw = torch.linspace(0, 2 * math.pi, 24)[:-1]
    ahead = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)], -1)
    cams = Cameras.look_at(
        torch.zeros(23, 3), ahead, fov_y_deg=60, width=54, height=96, up=torch.tensor([0.0, 0, 1])
    )
    path, shape = auto_path(cams)
    assert shape.kind == "walk" and not path.loop
    assert_starts_at_first_camera(path, cams)
    assert float(path.c2ws()[:, :3, 3].norm(dim=-1).max()) < 1e-6
