"""Automatic camera paths from a capture's cameras: an orbit around the scene's centre of
interest, and a smoothed path through the input cameras in capture order (what Long-LRM's
input-trajectory videos show).

World frame: the cameras' (cameras.json); OpenCV camera axes. The up direction is the mean of
the cameras' up vectors (camera -y), which is how people hold a phone or a camera.

Examples:
    >>> cams = Cameras.look_at(torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [-3.0, 0, 0]]),
    ...                        torch.zeros(3, 3), fov_y_deg=50, width=64, height=48,
    ...                        up=torch.tensor([0.0, 0, 1]))
    >>> center_of_interest(cams).abs().max() < 1e-5
    tensor(True)
    >>> len(orbit_path(cams, n_keyframes=8))
    8
"""

from __future__ import annotations

import math
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
) -> CameraPath:
    """A closed orbit around :func:`center_of_interest`, in the plane perpendicular to
    :func:`world_up`, looking at the centre with the image's up towards world up.

    Radius: the cameras' median horizontal distance from the centre times ``radius_scale``;
    height: the cameras' median height above the centre (or ``elevation_deg`` above the
    horizon). It starts at the first camera's azimuth and turns the way the capture did.
    ``n_keyframes`` keyframes evenly spaced in angle and time; fov: the cameras' median.
    """
    assert n_keyframes >= 3, f"an orbit needs at least 3 keyframes, got {n_keyframes}"
    centre = center_of_interest(cameras, points)
    up = world_up(cameras)
    rel = cameras.centers().double().cpu() - centre  # [N, 3]
    height = rel @ up  # [N]
    flat = rel - height[:, None] * up
    r = flat.norm(dim=-1)
    radius = float(r.median()) if float(r.median()) > 1e-6 else float(rel.norm(dim=-1).median())
    radius = max(radius, 1e-3) * radius_scale
    h = float(height.median()) if elevation_deg is None else radius * math.tan(math.radians(elevation_deg))
    e1 = flat[0] / r[0] if float(r[0]) > 1e-6 else _any_perpendicular(up)
    e2 = torch.linalg.cross(up, e1)
    az = torch.atan2(flat @ e2, flat @ e1).numpy()  # [N] capture azimuths, first = 0
    turn = float(np.sum(np.diff(np.unwrap(az)))) if len(az) > 1 else 0.0
    direction = -1.0 if turn < 0 else 1.0
    theta = direction * torch.arange(n_keyframes, dtype=torch.float64) * (2 * math.pi / n_keyframes)
    eye = centre + radius * (torch.cos(theta)[:, None] * e1 + torch.sin(theta)[:, None] * e2) + h * up
    look = Cameras.look_at(
        eye, centre.expand(n_keyframes, 3), fov_y_deg=60.0, width=cameras.width, height=cameras.height, up=up
    )
    return CameraPath(
        tuple(Keyframe(c.double()) for c in look.c2w),
        duration_s=duration_s,
        fps=fps,
        loop=True,
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
    """x [N, D] smoothed along N by a Gaussian of ``sigma`` samples, renormalized at the ends."""
    if sigma <= 0 or len(x) < 3:
        return x.clone()
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-0.5 * (offsets / sigma) ** 2)  # [2r+1]
    idx = torch.arange(len(x))[:, None] + torch.arange(-radius, radius + 1)[None]  # [N, 2r+1]
    valid = (idx >= 0) & (idx < len(x))
    wv = w[None] * valid  # [N, 2r+1]
    vals = x[idx.clamp(0, len(x) - 1)]  # [N, 2r+1, D]
    return (wv[..., None] * vals).sum(1) / wv.sum(1, keepdim=True)


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
    over positions and over hemisphere-aligned quaternions) to remove hand shake, then at most
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
