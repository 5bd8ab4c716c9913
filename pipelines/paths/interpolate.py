"""Smooth camera motion through a :class:`CameraPath`'s keyframes, in time.

Positions and fields of view: a cubic Hermite spline in time whose tangent at each keyframe is
the derivative, at that keyframe, of the parabola through it and its two neighbours
(Catmull-Rom with the keyframe times as knots, "Bessel" tangents). The curve passes through
every keyframe at its time, is C1 in time (no velocity jumps), reproduces motion at constant
velocity exactly and, between interior keyframes, motion at constant acceleration. The two end
keyframes of an open path use the chord velocity to their neighbour; a loop wraps around.

Rotations: the same construction on the sphere of unit quaternions. The angular velocity at a
keyframe (body frame) is the same time-weighted average of the rotation vectors to its
neighbours, each taken as the *shortest* rotation (``quat_log``), and each segment is a
spherical cubic Bezier (De Casteljau with slerps along shorter arcs) whose inner control points
sit a third of the segment along those velocities. Since q and -q give the same shortest
rotation, a sign flip between keyframes cannot produce a spin; two keyframes give exactly the
geodesic at constant speed.

Examples:
    >>> eye = torch.tensor([[0.0, 0, -3], [3.0, 0, 0]])
    >>> cams = Cameras.look_at(eye, torch.zeros(2, 3), fov_y_deg=50, width=64, height=48)
    >>> path = CameraPath(tuple(Keyframe(c) for c in cams.c2w), duration_s=1.0, fps=10)
    >>> sample_cameras(path, 64, 48).c2w.shape
    torch.Size([11, 4, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.cameras import Cameras, make_K
from pipelines.paths.path import MAX_FOV_DEG, MIN_FOV_DEG, CameraPath, fov_to_focal
from pipelines.transforms import (
    quat_conjugate,
    quat_exp,
    quat_log,
    quat_multiply,
    quat_slerp,
    quat_to_rotmat,
    rotmat_to_quat,
)


@dataclass(frozen=True)
class PathPoses:
    """c2w [T, 4, 4] float64 OpenCV camera-to-world; fov_y_deg [T] vertical, degrees."""

    c2w: Tensor
    fov_y_deg: Tensor


@dataclass(frozen=True)
class _Knots:
    """Keyframes as spline knots: times [M], positions [M, 3], quats [M, 4], fovs [M]; for a loop
    M = N + 1 (keyframe 0 repeated at t0 + duration). prev/next: neighbour index [M] (-1: none)
    and its time [M] (a loop's first knot looks back to keyframe N-1 one period earlier)."""

    t: Tensor
    pos: Tensor
    quat: Tensor
    fov: Tensor
    prev: Tensor
    t_prev: Tensor
    next: Tensor
    t_next: Tensor


def _knots(path: CameraPath) -> _Knots:
    n = len(path)
    if n == 0:
        raise ValueError("the camera path has no keyframes; add at least one")
    t = path.knot_times()  # [M]
    c2w = path.c2ws()
    pos, quat, fov = c2w[:, :3, 3], rotmat_to_quat(c2w[:, :3, :3]), path.fovs_deg()
    idx = torch.arange(n)
    if path.loop:
        pos, quat, fov = (torch.cat([x, x[:1]]) for x in (pos, quat, fov))
        prev = torch.cat([(idx - 1) % n, torch.tensor([n - 1])])
        t_prev = torch.cat([t[:1] - (t[n] - t[n - 1]), t[:-1]])
        nxt = torch.cat([idx + 1, torch.tensor([1 % n])])
        t_next = torch.cat([t[1:], t[n : n + 1] + (t[1 % n] - t[0]) if n > 1 else t[n:] + path.duration_s])
    else:
        prev = torch.where(idx > 0, idx - 1, -1)
        t_prev = torch.cat([t[:1], t[:-1]])
        nxt = torch.where(idx < n - 1, idx + 1, -1)
        t_next = torch.cat([t[1:], t[-1:]])
    return _Knots(t, pos, quat, fov, prev, t_prev, nxt, t_next)


def _tangents(k: _Knots, fwd: Tensor, bwd: Tensor) -> Tensor:
    """Tangents [M, D] from chord velocities to the next (fwd) and from the previous (bwd)
    knot, both [M, D]: the parabola's derivative inside, the chord at open ends."""
    h_prev = (k.t - k.t_prev)[:, None]
    h_next = (k.t_next - k.t)[:, None]
    inner = (h_next * bwd + h_prev * fwd) / (h_prev + h_next).clamp_min(1e-12)
    has_prev, has_next = (k.prev >= 0)[:, None], (k.next >= 0)[:, None]
    out = torch.where(has_prev & has_next, inner, torch.where(has_next, fwd, bwd))
    return torch.where(has_prev | has_next, out, torch.zeros_like(out))


def _chords(k: _Knots, values: Tensor) -> tuple[Tensor, Tensor]:
    """Chord velocities fwd, bwd [M, D] of Euclidean values [M, D]."""
    nxt, prv = k.next.clamp_min(0), k.prev.clamp_min(0)
    fwd = (values[nxt] - values) / (k.t_next - k.t).clamp_min(1e-12)[:, None]
    bwd = (values - values[prv]) / (k.t - k.t_prev).clamp_min(1e-12)[:, None]
    return fwd, bwd


def _angular_chords(k: _Knots) -> tuple[Tensor, Tensor]:
    """Body-frame angular velocities [M, 3] to the next and from the previous knot (shortest)."""
    q = k.quat
    inv = quat_conjugate(q)
    nxt, prv = k.next.clamp_min(0), k.prev.clamp_min(0)
    fwd = quat_log(quat_multiply(inv, q[nxt])) / (k.t_next - k.t).clamp_min(1e-12)[:, None]
    bwd = -quat_log(quat_multiply(inv, q[prv])) / (k.t - k.t_prev).clamp_min(1e-12)[:, None]
    return fwd, bwd


def _hermite(p0: Tensor, m0: Tensor, p1: Tensor, m1: Tensor, h: Tensor, s: Tensor) -> Tensor:
    """Cubic Hermite at s [T] in [0, 1] of segments [T, D] lasting h [T] seconds."""
    s, h = s[:, None], h[:, None]
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * h * m0 + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * h * m1
    )


def interpolate(path: CameraPath, times: Tensor) -> PathPoses:
    """Poses and fields of view at ``times`` [T] seconds (float64). Open paths hold the first
    / last keyframe outside [t0, t_last]; loops repeat with period ``duration_s``."""
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    k = _knots(path)
    T = times.shape[0]
    if len(k.t) == 1:
        c2w = _c2w_from(k.quat[:1], k.pos[:1]).expand(T, 4, 4).clone()
        return PathPoses(c2w, k.fov[:1].expand(T).clone())
    if path.loop:
        t = k.t[0] + torch.remainder(times - k.t[0], path.duration_s)
    else:
        t = times.clamp(k.t[0], k.t[-1])
    i = (torch.searchsorted(k.t, t, right=True) - 1).clamp(0, len(k.t) - 2)  # [T] segment
    h = k.t[i + 1] - k.t[i]
    s = ((t - k.t[i]) / h).clamp(0, 1)

    m_pos = _tangents(k, *_chords(k, k.pos))
    m_fov = _tangents(k, *_chords(k, k.fov[:, None]))
    w = _tangents(k, *_angular_chords(k))  # [M, 3] body-frame angular velocity
    pos = _hermite(k.pos[i], m_pos[i], k.pos[i + 1], m_pos[i + 1], h, s)
    fov = _hermite(k.fov[i, None], m_fov[i], k.fov[i + 1, None], m_fov[i + 1], h, s)[:, 0]

    q0, q3 = k.quat[i], k.quat[i + 1]
    q1 = quat_multiply(q0, quat_exp(w[i] * (h / 3)[:, None]))
    q2 = quat_multiply(q3, quat_exp(-w[i + 1] * (h / 3)[:, None]))
    a, b, c = quat_slerp(q0, q1, s), quat_slerp(q1, q2, s), quat_slerp(q2, q3, s)
    quat = quat_slerp(quat_slerp(a, b, s), quat_slerp(b, c, s), s)
    return PathPoses(_c2w_from(quat, pos), fov.clamp(MIN_FOV_DEG, MAX_FOV_DEG))


def _c2w_from(quat: Tensor, pos: Tensor) -> Tensor:
    """Rigid c2w [T, 4, 4] from quats [T, 4] wxyz and positions [T, 3]."""
    c2w = torch.eye(4, dtype=pos.dtype).repeat(pos.shape[0], 1, 1)
    c2w[:, :3, :3] = quat_to_rotmat(quat)
    c2w[:, :3, 3] = pos
    return c2w


def pose_at(path: CameraPath, t: float) -> tuple[Tensor, float]:
    """(c2w [4, 4] float64, vertical fov in degrees) at time ``t`` seconds."""
    p = interpolate(path, torch.tensor([float(t)]))
    return p.c2w[0], float(p.fov_y_deg[0])


def sample_cameras(
    path: CameraPath, width: int | None = None, height: int | None = None, times: Tensor | None = None
) -> Cameras:
    """Pinhole cameras (float32, square pixels, centred principal point) at ``times`` [F]
    (default: :meth:`CameraPath.frame_times`), ``width`` x ``height`` (default: the path's)."""
    width = path.width if width is None else int(width)
    height = path.height if height is None else int(height)
    poses = interpolate(path, path.frame_times() if times is None else times)
    f = fov_to_focal(poses.fov_y_deg, height)
    K = make_K(f, f, torch.full_like(f, width / 2), torch.full_like(f, height / 2))
    return Cameras(poses.c2w.float(), K.float(), width, height)
