"""Camera trajectories for procedural captures: orbit, walk-through, look-around, hand-held shake.

All trajectories return ``Cameras`` (OpenCV c2w, pinhole K with square pixels and the principal
point at the image centre) in the scene's z-up world. Frames are equally spaced in time at
``fps``; ``HandHeld`` adds a smooth shake (sums of a few sinusoids per axis with random
frequencies and phases) to positions (world) and orientations (camera frame), so consecutive
frames stay close while the path looks hand-held.

- ``orbit``: around a target at a radius and elevation (object-centric captures; GeoLRM-style
  orbit views);
- ``walk_through``: along a smooth random path (Catmull-Rom through waypoints, constant speed),
  looking ahead with a slow sideways sway (room captures, Long-LRM-style wide coverage);
- ``look_around``: turning on the spot while drifting on a small circle, looking outwards (room
  captures with parallax from the drift).

Examples:
    >>> cams = orbit(8, center=(0, 0, 0), radius=2.0, elevation_deg=20, fov_y_deg=40, width=64, height=64)
    >>> len(cams), cams.width
    (8, 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.cameras import Cameras, make_K
from pipelines.transforms import axis_angle_to_rotmat

WORLD_UP = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class HandHeld:
    """Hand-held shake. position: RMS offset per axis (world units); rotation_deg: RMS angle per
    camera axis; freq_hz: range of the sinusoids' frequencies; components: sinusoids per axis."""

    position: float = 0.01
    rotation_deg: float = 0.5
    freq_hz: tuple[float, float] = (0.2, 1.5)
    components: int = 4


def shake_offsets(n: int, fps: float, shake: HandHeld, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Smooth noise: position offsets [n, 3] (world) and axis-angle rotations [n, 3] (radians)."""
    t = torch.arange(n, dtype=torch.float64) / fps
    K = shake.components
    f = shake.freq_hz[0] + (shake.freq_hz[1] - shake.freq_hz[0]) * torch.rand(
        6, K, generator=gen, dtype=torch.float64
    )
    phase = 2 * math.pi * torch.rand(6, K, generator=gen, dtype=torch.float64)
    waves = torch.sin(2 * math.pi * f[:, :, None] * t + phase[:, :, None]).sum(1)  # [6, n], RMS sqrt(K/2)
    waves = waves / math.sqrt(K / 2)
    return (shake.position * waves[:3]).T.float(), (math.radians(shake.rotation_deg) * waves[3:]).T.float()


def apply_shake(cams: Cameras, dpos: Tensor, drot: Tensor) -> Cameras:
    """Move camera i by dpos[i] (world) and rotate it by drot[i] (axis-angle in its own frame)."""
    c2w = cams.c2w.clone()
    c2w[:, :3, :3] = cams.c2w[:, :3, :3] @ axis_angle_to_rotmat(drot.to(cams.c2w))
    c2w[:, :3, 3] = cams.c2w[:, :3, 3] + dpos.to(cams.c2w)
    return Cameras(c2w, cams.K, cams.width, cams.height)


def _look(eye: Tensor, target: Tensor, fov_y_deg: float, width: int, height: int) -> Cameras:
    return Cameras.look_at(
        eye.float(),
        target.float(),
        fov_y_deg=fov_y_deg,
        width=width,
        height=height,
        up=torch.tensor(WORLD_UP),
    )


def intrinsics(n: int, fov_y_deg: float, width: int, height: int) -> Tensor:
    """K [n, 3, 3] with square pixels and the principal point at the image centre."""
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return (
        make_K(torch.tensor(f), torch.tensor(f), torch.tensor(width / 2), torch.tensor(height / 2))
        .expand(n, 3, 3)
        .clone()
        .float()
    )


def _finish(cams: Cameras, fps: float, shake: HandHeld | None, gen: torch.Generator | None) -> Cameras:
    if shake is None:
        return cams
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    return apply_shake(cams, *shake_offsets(len(cams), fps, shake, gen))


def orbit(
    n: int,
    *,
    center: tuple[float, float, float] | Tensor = (0.0, 0.0, 0.0),
    radius: float,
    elevation_deg: float,
    azimuth_deg: tuple[float, float] = (0.0, 360.0),
    elevation_wobble_deg: float = 0.0,
    radius_wobble: float = 0.0,
    fov_y_deg: float,
    width: int,
    height: int,
    fps: float = 30.0,
    shake: HandHeld | None = None,
    gen: torch.Generator | None = None,
) -> Cameras:
    """n cameras circling ``center`` (looking at it), azimuth from azimuth_deg[0] towards
    azimuth_deg[1] (a full turn leaves out the end point), elevation above the horizontal
    plane, with optional slow wobbles (one cycle over the path) of elevation and radius."""
    a0, a1 = azimuth_deg
    full = abs(abs(a1 - a0) - 360.0) < 1e-9
    s = torch.arange(n, dtype=torch.float64) / (n if full else max(n - 1, 1))
    az = torch.deg2rad(a0 + (a1 - a0) * s)
    el = torch.deg2rad(elevation_deg + elevation_wobble_deg * torch.sin(2 * math.pi * s))
    r = radius * (1 + radius_wobble * torch.sin(2 * math.pi * s + 1.0))
    c = torch.as_tensor(center, dtype=torch.float64)
    eye = c + torch.stack(
        [r * torch.cos(el) * torch.cos(az), r * torch.cos(el) * torch.sin(az), r * torch.sin(el)], -1
    )
    return _finish(_look(eye, c.expand_as(eye), fov_y_deg, width, height), fps, shake, gen)


def _catmull_rom(points: Tensor, samples: int) -> Tensor:
    """Centripetal-free (uniform) Catmull-Rom through points [K, D] -> dense curve [samples, D]."""
    p = torch.cat([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])  # end tangents
    segs = points.shape[0] - 1
    u = torch.linspace(0, segs, samples, dtype=points.dtype)
    i = u.floor().long().clamp(max=segs - 1)
    t = (u - i)[:, None]
    p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
    return 0.5 * (
        (2 * p1)
        + (-p0 + p2) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
    )


def _resample_by_length(curve: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Points [n, D] equally spaced along a dense polyline, and unit tangents [n, D]."""
    seg = (curve[1:] - curve[:-1]).norm(dim=-1)
    s = torch.cat([torch.zeros(1, dtype=curve.dtype), seg.cumsum(0)])
    target = torch.linspace(0, float(s[-1]), n, dtype=curve.dtype)
    j = torch.searchsorted(s, target).clamp(1, curve.shape[0] - 1)
    w = ((target - s[j - 1]) / (s[j] - s[j - 1]).clamp_min(1e-12))[:, None]
    pts = curve[j - 1] * (1 - w) + curve[j] * w
    tan = torch.nn.functional.normalize(curve[j] - curve[j - 1], dim=-1)
    return pts, tan


def _direction(yaw: Tensor, pitch: Tensor) -> Tensor:
    return torch.stack(
        [torch.cos(pitch) * torch.cos(yaw), torch.cos(pitch) * torch.sin(yaw), torch.sin(pitch)], -1
    )


def walk_through(
    n: int,
    *,
    center: tuple[float, float] = (0.0, 0.0),
    radius: float,
    eye_height: float = 1.5,
    waypoints: int = 4,
    pitch_deg: float = -12.0,
    sway_deg: float = 25.0,
    fov_y_deg: float,
    width: int,
    height: int,
    fps: float = 30.0,
    shake: HandHeld | None = None,
    gen: torch.Generator | None = None,
) -> Cameras:
    """Walk at constant speed along a smooth path through ``waypoints`` random points of the
    disc (center, radius) at eye height, looking along the path with a slow yaw sway."""
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    pts = []
    while len(pts) < waypoints:  # spread-out waypoints in the disc
        q = (torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1) * radius
        if q.norm() <= radius and all((q - p).norm() > radius * 0.6 for p in pts[-1:]):
            pts.append(q)
    P = torch.stack(pts) + torch.tensor(center, dtype=torch.float64)
    xy, tan = _resample_by_length(_catmull_rom(P, 64 * waypoints), n)
    s = torch.linspace(0, 1, n, dtype=torch.float64)
    phase = float(torch.rand(1, generator=gen)) * 2 * math.pi
    yaw = torch.atan2(tan[:, 1], tan[:, 0]) + math.radians(sway_deg) * torch.sin(2 * math.pi * s + phase)
    pitch = torch.full_like(yaw, math.radians(pitch_deg))
    eye = torch.cat([xy, torch.full((n, 1), eye_height, dtype=torch.float64)], -1)
    return _finish(_look(eye, eye + _direction(yaw, pitch), fov_y_deg, width, height), fps, shake, gen)


def look_around(
    n: int,
    *,
    center: tuple[float, float] = (0.0, 0.0),
    drift_radius: float = 0.3,
    eye_height: float = 1.5,
    yaw_deg: tuple[float, float] = (0.0, 300.0),
    pitch_deg: float = -10.0,
    fov_y_deg: float,
    width: int,
    height: int,
    fps: float = 30.0,
    shake: HandHeld | None = None,
    gen: torch.Generator | None = None,
) -> Cameras:
    """Turn from yaw_deg[0] to yaw_deg[1] while drifting once around a circle of drift_radius
    behind the viewing direction (so views of the same wall differ in position: parallax)."""
    s = torch.linspace(0, 1, n, dtype=torch.float64)
    yaw = torch.deg2rad(yaw_deg[0] + (yaw_deg[1] - yaw_deg[0]) * s)
    c = torch.tensor(center, dtype=torch.float64)
    xy = c - drift_radius * torch.stack([torch.cos(yaw), torch.sin(yaw)], -1)  # stand behind the view
    eye = torch.cat([xy, torch.full((n, 1), eye_height, dtype=torch.float64)], -1)
    pitch = torch.full_like(yaw, math.radians(pitch_deg))
    return _finish(_look(eye, eye + _direction(yaw, pitch), fov_y_deg, width, height), fps, shake, gen)
