"""Automatic camera paths from a capture's cameras: an orbit over the range the capture
covered around the scene's centre of interest, a smoothed path through the input cameras in
capture order (what Long-LRM's input-trajectory videos show), and :func:`auto_path`, which picks
one from the capture's shape.

:func:`capture_shape` measures that shape: where the optical axes converge (the centre of
interest), which way is up (the normal of the cameras' right axes: people hold cameras level),
whether the cameras converge at all (a walk-through does not), and the arc of azimuths about the
up axis through the centre that they cover (robust to stray cameras and to hand shake). A
capture all around gets a closed circle, a partial one (say a 90 degree arc in front of an
object against a wall) an open arc over its covered range and never beyond it, a walk-through
the path through its cameras. Every automatic path starts at the first camera's pose.

World frame: the cameras' (cameras.json); OpenCV camera axes; angles in radians unless named
``_deg``.

Examples:
    >>> cams = Cameras.look_at(torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [-3.0, 0, 0]]),
    ...                        torch.zeros(3, 3), fov_y_deg=50, width=64, height=48,
    ...                        up=torch.tensor([0.0, 0, 1]))
    >>> center_of_interest(cams).abs().max() < 1e-5
    tensor(True)
    >>> shape = capture_shape(cams)
    >>> shape.kind, round(shape.span_deg)
    ('arc', 180)
    >>> path, _ = auto_path(cams)
    >>> path.loop, len(path)     # 180 degrees, keyframes at most 30 degrees apart
    (False, 7)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.paths.path import CameraPath, Keyframe
from pipelines.transforms import quat_conjugate, quat_log, quat_multiply, quat_to_rotmat, rotmat_to_quat


def world_up(cameras: Cameras) -> Tensor:
    """World up [3] float64, unit, from how the cameras were held.

    People hold cameras level (no roll), so every camera's right axis (camera +x) is
    horizontal and up is the direction perpendicular to all of them: the eigenvector of the
    smallest eigenvalue of sum x x^T, signed towards the cameras' mean up (camera -y). That is
    exact for level cameras however much they tilt up or down. When the right axes barely vary
    (a straight sweep without turning) that direction is undetermined and the mean of the
    cameras' up directions is used; +z when those cancel out.
    """
    c2w = cameras.c2w.double().cpu()
    mean = -c2w[:, :3, 1].mean(0)
    n = float(mean.norm())
    mean = mean / n if n > 1e-6 else torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    x = c2w[:, :3, 0]  # [N, 3] right axes
    evals, evecs = torch.linalg.eigh(x.T @ x)
    if float(evals[1]) > 0.05 * len(x):  # the right axes span a plane: its normal is up
        up = evecs[:, 0]
        return up if float(up @ mean) >= 0 else -up
    return mean


def camera_extent(cameras: Cameras) -> float:
    """Largest distance of a camera centre from the centres' mean (1 for a single camera or
    cameras at one point)."""
    c = cameras.centers().double().cpu()
    r = float((c - c.mean(0)).norm(dim=-1).max()) if len(c) > 1 else 0.0
    return r if r > 1e-6 else 1.0


def axes_convergence(cameras: Cameras) -> Tensor | None:
    """The point [3] closest (least squares) to every camera's optical axis, or None when the
    axes do not converge (near-parallel axes, or a point behind most cameras)."""
    c = cameras.centers().double().cpu()
    d = torch.nn.functional.normalize(cameras.forward_dirs().double().cpu(), dim=-1)
    P = torch.eye(3, dtype=torch.float64)[None] - d[:, :, None] * d[:, None, :]  # [N, 3, 3] off each axis
    A, b = P.sum(0), torch.einsum("nij,nj->i", P, c)
    if float(torch.linalg.eigvalsh(A)[0]) <= 0.05 * len(c):
        return None
    x = torch.linalg.solve(A, b)
    ahead = ((x - c) * d).sum(-1)  # [N] depth of x along each axis
    return x if float(ahead.median()) > 0 else None


def center_of_interest(
    cameras: Cameras, points: Tensor | np.ndarray | None = None, *, prefer: Literal["axes", "points"] = "axes"
) -> Tensor:
    """What the capture looks at, [3] float64 world.

    ``prefer="axes"``: where the optical axes converge (an orbit's centre), else the median of
    the sparse ``points`` [P, 3], else a point ahead of the mean camera (by the cameras'
    extent). ``prefer="points"``: the points' median first, then the axes, then ahead.
    """
    pts = None if points is None else np.asarray(points, dtype=np.float64)
    from_points = torch.from_numpy(np.median(pts, axis=0)) if pts is not None and len(pts) else None
    from_axes = axes_convergence(cameras)
    order = (from_axes, from_points) if prefer == "axes" else (from_points, from_axes)
    for x in order:
        if x is not None:
            return x
    c = cameras.centers().double().cpu()
    d = cameras.forward_dirs().double().cpu()
    return c.mean(0) + camera_extent(cameras) * d.mean(0)


def _median_fov_deg(cameras: Cameras) -> float:
    return float(torch.rad2deg(cameras.fov_y_rad().double().median()))


MAX_AIM_DEG = 10.0  # median angle between the optical axes and the centre for converging cameras
KEEP_FRACTION = 0.95  # the covered arc holds this share of the cameras: 1 in 20 may be stray
CIRCLE_GAP_DEG = 30.0  # a gap wider than the cameras' spacing by at most this: a full circle
EASE_FRACTION = 0.25  # share of an orbit over which it eases from the first camera's radius and height
MIN_FIRST_LEG = 0.25  # share of the arc the first camera must sit inside it to sweep to its nearer end first
ShapeKind = Literal["orbit", "arc", "walk"]


@dataclass(frozen=True)
class CaptureShape:
    """How a capture's cameras sit around what they look at. World: the cameras'; angles in
    radians, azimuths counter-clockwise about ``up`` from ``e1`` towards ``e2``.

    kind: "orbit" (converging cameras all around: a full circle), "arc" (converging cameras over
    part of a circle), "walk" (the axes do not converge on one point: a walk-through).
    centre [3] float64: :func:`center_of_interest`; up [3]: :func:`world_up`; e1, e2 [3]: unit
    horizontal axes, e1 towards the first camera, e2 = up x e1. azimuth [N]: each camera's
    azimuth about the centre, the first camera's 0. arc_start, arc_span: the smallest arc
    (from arc_start, counter-clockwise, in [0, 2 pi)) holding :data:`KEEP_FRACTION` of the
    cameras, so stray cameras do not widen it. radius, height: the cameras' median horizontal
    distance from the centre and height above it. aim_deg: the cameras' median angle between
    the optical axis and the direction to the centre. turn: +1 when the capture moved
    counter-clockwise (from e1 towards e2), else -1.
    """

    kind: ShapeKind
    centre: Tensor
    up: Tensor
    e1: Tensor
    e2: Tensor
    azimuth: Tensor
    arc_start: float
    arc_span: float
    radius: float
    height: float
    aim_deg: float
    turn: float

    @property
    def span_deg(self) -> float:
        """The covered arc in degrees (360 for a full circle)."""
        return 360.0 if self.kind == "orbit" else math.degrees(self.arc_span)

    def direction(self, azimuth: Tensor) -> Tensor:
        """Horizontal unit vectors [K, 3] at azimuths [K] (radians)."""
        return torch.cos(azimuth)[:, None] * self.e1 + torch.sin(azimuth)[:, None] * self.e2


def aim_angles_deg(cameras: Cameras, target: Tensor) -> Tensor:
    """Angle [N] in degrees, float64, between each camera's optical axis and the direction from
    the camera to ``target`` [3] (0: the target is at the principal point)."""
    to = torch.nn.functional.normalize(target.double() - cameras.centers().double().cpu(), dim=-1)
    cos = (to * cameras.forward_dirs().double().cpu()).sum(-1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def covered_arc(azimuth: Tensor, keep: float = KEEP_FRACTION) -> tuple[float, float]:
    """(start, span) in radians of the smallest arc of the circle that holds ceil(keep * N) of
    the azimuths [N] (any order, any range): start in [0, 2 pi), counter-clockwise.
    Order-independent, so hand-held back-and-forth does not matter, and up to (1 - keep) N
    stray cameras cannot widen it."""
    a = torch.sort(torch.remainder(azimuth.double(), 2 * math.pi)).values  # [N]
    n = len(a)
    k = max(1, math.ceil(keep * n - 1e-9))
    spans = torch.cat([a, a + 2 * math.pi])[k - 1 : k - 1 + n] - a  # [N] from a[i] over k cameras
    i = int(torch.argmin(spans))
    return float(a[i]), float(spans[i])


def typical_spacing(azimuth: Tensor) -> float:
    """Median gap in radians between circularly neighbouring azimuths [N] (N >= 2)."""
    a = torch.sort(torch.remainder(azimuth.double(), 2 * math.pi)).values
    gaps = torch.diff(torch.cat([a, a[:1] + 2 * math.pi]))  # [N], the last one wraps around
    return float(gaps.median())


def capture_shape(cameras: Cameras, points: Tensor | np.ndarray | None = None) -> CaptureShape:
    """Measure how ``cameras`` [N] cover the scene (see :class:`CaptureShape`).

    The cameras converge when their median :func:`aim_angles_deg` to the centre of interest is
    at most :data:`MAX_AIM_DEG`. Converging cameras form a full circle when the circle's largest
    gap left by :func:`covered_arc` exceeds their typical spacing by at most
    :data:`CIRCLE_GAP_DEG`, else an arc."""
    centre = center_of_interest(cameras, points)
    up = world_up(cameras)
    rel = cameras.centers().double().cpu() - centre  # [N, 3]
    height = rel @ up  # [N]
    flat = rel - height[:, None] * up  # [N, 3] horizontal offsets
    r = flat.norm(dim=-1)
    e1 = flat[0] / r[0] if float(r[0]) > 1e-6 else _any_perpendicular(up)
    e2 = torch.linalg.cross(up, e1)
    az = torch.atan2(flat @ e2, flat @ e1)  # [N]
    turn = float(np.sum(np.diff(np.unwrap(az.numpy())))) if len(az) > 1 else 0.0
    start, span = covered_arc(az)
    aim = float(aim_angles_deg(cameras, centre).median())
    full = len(az) > 1 and (2 * math.pi - span) - typical_spacing(az) <= math.radians(CIRCLE_GAP_DEG)
    kind: ShapeKind = "walk" if aim > MAX_AIM_DEG else "orbit" if full else "arc"
    median_r = float(r.median())
    return CaptureShape(
        kind=kind,
        centre=centre,
        up=up,
        e1=e1,
        e2=e2,
        azimuth=az,
        arc_start=start,
        arc_span=span,
        radius=median_r if median_r > 1e-6 else float(rel.norm(dim=-1).median()),
        height=float(height.median()),
        aim_deg=aim,
        turn=-1.0 if turn < 0 else 1.0,
    )


def _circle_stops(shape: CaptureShape, n: int) -> tuple[Tensor, Tensor]:
    """A full turn from the first camera the way the capture turned: azimuths [n] and the
    share [n] of the path done at each (k / n)."""
    s = torch.arange(n, dtype=torch.float64) / n
    return shape.turn * 2 * math.pi * s, s


def _arc_stops(shape: CaptureShape, step: float) -> tuple[Tensor, Tensor]:
    """The covered arc from the first camera: azimuths [K] (the first camera's 0 first) at most
    ``step`` radians apart, and the share [K] of the path's angle done at each. The path sweeps
    to the arc's far end; when the first camera sits more than :data:`MIN_FIRST_LEG` of the arc
    inside it, it goes to the nearer end first."""
    span = shape.arc_span
    u0 = (-shape.arc_start) % (2 * math.pi)  # the first camera along the arc, from its start
    if u0 > span and 2 * math.pi - u0 < u0 - span:  # a stray first camera just before the start
        u0 -= 2 * math.pi
    near, far = (0.0, span) if u0 < span / 2 else (span, 0.0)
    ends = ([near] if 0 <= u0 <= span and abs(u0 - near) > MIN_FIRST_LEG * span else []) + [far]
    stops = [torch.tensor([u0], dtype=torch.float64)]
    for a, b in zip([u0, *ends[:-1]], ends, strict=True):
        if abs(b - a) < 1e-9:  # nothing covered: the path is the first camera alone
            continue
        segments = max(1, math.ceil(abs(b - a) / step - 1e-9))
        stops.append(torch.linspace(a, b, segments + 1, dtype=torch.float64)[1:])
    u = torch.cat(stops)  # [K] along the arc
    travelled = torch.cat([torch.zeros(1, dtype=torch.float64), torch.diff(u).abs().cumsum(0)])
    total = float(travelled[-1])
    return u - u0, travelled / total if total > 0 else travelled


def _ease_from_start(s: Tensor, loop: bool) -> Tensor:
    """Weight [K] of the first camera's radius and height at path share s [K]: 1 at the start
    (and, for a loop, back at the end), 0 from :data:`EASE_FRACTION` of the path on, cosine in
    between."""
    d = torch.minimum(s, 1 - s) if loop else s
    return 0.5 * (1 + torch.cos(math.pi * (d / EASE_FRACTION).clamp(max=1.0)))


def orbit_path(
    cameras: Cameras,
    points: Tensor | np.ndarray | None = None,
    *,
    n_keyframes: int = 12,
    duration_s: float = 8.0,
    fps: float = 30.0,
    radius_scale: float = 1.0,
    elevation_deg: float | None = None,
    fov_deg: float | None = None,
    shape: CaptureShape | None = None,
) -> CameraPath:
    """An orbit over the range the capture covered (:func:`capture_shape`, computed when not
    given), looking at the centre of interest with the image's up towards world up.

    Keyframe 0 is the first camera's pose. A capture all around gets a closed circle turning
    the way the capture did, ``n_keyframes`` keyframes evenly spaced in angle and time; a
    partial capture gets an open arc over its covered range (never beyond it), keyframes at
    most 360 / ``n_keyframes`` degrees apart at constant angular speed. Radius: the cameras'
    median horizontal distance from the centre times ``radius_scale``; height: their median
    height above it (or ``elevation_deg`` above the horizon); both ease from the first camera's
    over the first quarter of the path (and back over the last quarter of a circle). fov: the
    cameras' median (or ``fov_deg``).
    """
    assert n_keyframes >= 3, f"an orbit needs at least 3 keyframes per turn, got {n_keyframes}"
    shape = capture_shape(cameras, points) if shape is None else shape
    loop = shape.kind == "orbit"
    az, s = _circle_stops(shape, n_keyframes) if loop else _arc_stops(shape, 2 * math.pi / n_keyframes)
    radius = max(shape.radius, 1e-3) * radius_scale
    height = shape.height if elevation_deg is None else radius * math.tan(math.radians(elevation_deg))
    first = cameras.centers()[0].double().cpu() - shape.centre
    h0 = float(first @ shape.up)
    r0 = float((first - h0 * shape.up).norm())
    w = _ease_from_start(s, loop)  # [K]
    eye = shape.centre + ((w * r0 + (1 - w) * radius)[:, None] * shape.direction(az))
    eye = eye + (w * h0 + (1 - w) * height)[:, None] * shape.up  # [K, 3]
    look = Cameras.look_at(
        eye, shape.centre.expand(len(eye), 3), fov_y_deg=60.0, width=cameras.width, height=cameras.height,
        up=shape.up,
    )  # fmt: skip
    c2w = torch.cat([cameras.c2w[:1].double().cpu(), look.c2w[1:].double()])  # keyframe 0: the first camera
    times = [None] * len(c2w) if loop else (s * duration_s).tolist()
    return CameraPath(
        tuple(Keyframe(c, time_s=t) for c, t in zip(c2w, times, strict=True)),
        duration_s=duration_s,
        fps=fps,
        loop=loop,
        default_fov_deg=_median_fov_deg(cameras) if fov_deg is None else fov_deg,
        width=cameras.width,
        height=cameras.height,
    )


def _any_perpendicular(v: Tensor) -> Tensor:
    helper = (
        torch.tensor([1.0, 0, 0], dtype=v.dtype)
        if abs(float(v[0])) < 0.9
        else torch.tensor([0, 1.0, 0], dtype=v.dtype)
    )
    return torch.nn.functional.normalize(torch.linalg.cross(v, helper), dim=0)


def _gaussian_smooth(x: Tensor, sigma: float) -> Tensor:
    """x [N, D] smoothed along N by a Gaussian of ``sigma`` samples. Beyond each end the
    sequence continues point-reflected through the end sample (x[-k] = 2 x[0] - x[k]), so the
    end samples stay exactly where they are and motion at constant velocity is unchanged."""
    n = len(x)
    if sigma <= 0 or n < 3:
        return x.clone()
    radius = min(n - 1, max(1, int(math.ceil(3 * sigma))))  # one reflection reaches every offset
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-0.5 * (offsets / sigma) ** 2)
    w = w / w.sum()  # [2r+1]
    idx = torch.arange(n)[:, None] + torch.arange(-radius, radius + 1)[None]  # [N, 2r+1]
    before, after = idx < 0, idx >= n
    mirror = torch.where(before, -idx, torch.where(after, 2 * (n - 1) - idx, idx))
    vals = x[mirror]  # [N, 2r+1, D]
    vals = torch.where(before[..., None], 2 * x[0] - vals, vals)
    vals = torch.where(after[..., None], 2 * x[-1] - vals, vals)
    return (w[None, :, None] * vals).sum(1)


def input_cameras_path(
    cameras: Cameras,
    order: list[int] | None = None,
    *,
    max_keyframes: int = 24,
    smooth_frames: float = 1.5,
    duration_s: float = 10.0,
    fps: float = 30.0,
    points: Tensor | np.ndarray | None = None,
) -> CameraPath:
    """An open path through the cameras ``order`` (default: all, in capture order).

    The poses are smoothed along the sequence first (a Gaussian of ``smooth_frames`` cameras
    over positions and over hemisphere-aligned quaternions) to remove hand shake, keeping the
    first and last cameras' poses exactly (the path starts at the first camera), then at most
    ``max_keyframes`` of them, evenly spread over the sequence, become keyframes, timed for a
    steady speed: each step takes time in proportion to its distance plus its rotation angle
    times the distance to the centre of interest. A keyframe keeps its camera's vertical fov
    when the cameras' fovs differ by more than 0.5 degrees.
    """
    order = list(range(len(cameras))) if order is None else list(order)
    assert len(order) >= 1, "no cameras to follow"
    cams = cameras[order].to("cpu", torch.float64)
    pos = cams.centers()
    quat = rotmat_to_quat(cams.c2w[:, :3, :3])
    for i in range(1, len(quat)):  # one hemisphere along the sequence, so averages do not cancel
        if float((quat[i] * quat[i - 1]).sum()) < 0:
            quat[i] = -quat[i]
    pos = _gaussian_smooth(pos, smooth_frames)
    quat = torch.nn.functional.normalize(_gaussian_smooth(quat, smooth_frames), dim=-1)
    n_key = min(len(order), max(2, max_keyframes))
    pick = sorted(set(torch.linspace(0, len(order) - 1, n_key).round().long().tolist()))
    pos, quat = pos[pick], quat[pick]
    fovs = torch.rad2deg(cams.fov_y_rad())[pick]
    varied = float(fovs.max() - fovs.min()) > 0.5
    scale = float(
        (cameras.centers().double().cpu() - center_of_interest(cameras, points)).norm(dim=-1).median()
    )
    step = (pos[1:] - pos[:-1]).norm(dim=-1)
    step = step + max(scale, 1e-6) * quat_log(quat_multiply(quat_conjugate(quat[:-1]), quat[1:])).norm(dim=-1)
    step = step + 1e-3 * float(step.mean()) + 1e-12  # strictly increasing times
    times = torch.cat([torch.zeros(1, dtype=torch.float64), step.cumsum(0)])
    times = times * (duration_s / float(times[-1])) if len(times) > 1 else times
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(pick), 1, 1)
    c2w[:, :3, :3] = quat_to_rotmat(quat)
    c2w[:, :3, 3] = pos
    keys = tuple(
        Keyframe(c2w[i], fov_y_deg=float(fovs[i]) if varied else None, time_s=float(times[i]))
        for i in range(len(pick))
    )
    return CameraPath(
        keys,
        duration_s=duration_s,
        fps=fps,
        loop=False,
        default_fov_deg=_median_fov_deg(cameras),
        width=cameras.width,
        height=cameras.height,
    )


def auto_path(
    cameras: Cameras,
    points: Tensor | np.ndarray | None = None,
    *,
    duration_s: float = 8.0,
    fps: float = 30.0,
    n_keyframes: int = 12,
) -> tuple[CameraPath, CaptureShape]:
    """The automatic path for a capture and the shape it was chosen from: :func:`orbit_path`
    (a circle or an arc; ``n_keyframes`` per full turn) for converging cameras,
    :func:`input_cameras_path` for a walk-through. Either starts at the first camera's pose."""
    shape = capture_shape(cameras, points)
    if shape.kind == "walk":
        path = input_cameras_path(cameras, points=points, duration_s=duration_s, fps=fps)
    else:
        path = orbit_path(
            cameras, points, n_keyframes=n_keyframes, duration_s=duration_s, fps=fps, shape=shape
        )
    return path, shape
