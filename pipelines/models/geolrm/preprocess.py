"""From a capture to GeoLRM's inputs, and back.

GeoLRM works on one object inside the cube [-0.5, 0.5]^3 (z up, as its training renders and
SV3D cameras), seen by OpenGL cameras with intrinsics normalised by the image size, on a white
background, in square images. A capture is in its own SfM world. This module:

1. judges whether the capture is object-centric (``judge_object_centric``: cameras around a
   common look-at point) so the studio can say when it is not;
2. finds the object's centre and size (``normalize_to_cube``): from the SfM points seen by most
   cameras and closer to the look-at point than the nearest camera when there are enough of
   them, else from the cameras' least-squares look-at point and field of view; rotates the
   cameras' mean up direction to +z; scales the object to ``fill`` of the cube;
3. crops each image to a square around the object's projection, resizes it, and paints white
   every pixel whose ray misses the cube (``prepare_inputs``; the object lies inside the cube,
   so those pixels are background);
4. picks N views spread in azimuth and elevation around the object (``select_views``).

The similarity ``CubeNormalization.to_cube`` maps capture world -> cube; its inverse brings the
Gaussians back to the capture's world frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.capture.images import resize
from pipelines.models.geolrm.model import GeoLRMInputs
from pipelines.transforms import Similarity

Background = Literal["white_outside_cube", "keep"]


def convergence_point(cameras: Cameras) -> Tensor:
    """The point [3] (float64) closest in the least-squares sense to every camera's optical axis:
    argmin_c sum_i |(I - d_i d_i^T)(c - o_i)|^2 (minimum-norm solution when degenerate)."""
    o = cameras.centers().double().cpu()
    d = torch.nn.functional.normalize(cameras.forward_dirs().double().cpu(), dim=-1)
    P = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]  # [N, 3, 3]
    A, b = P.sum(0), (P @ o[:, :, None]).sum(0)
    return torch.linalg.lstsq(A, b, rcond=1e-9).solution[:, 0]


@dataclass
class ObjectCentricity:
    """Whether cameras look at a common point from around it.

    center [3] the least-squares look-at point (world); in_front: fraction of cameras with it in
    front; axis_angle_deg: median angle between a camera's optical axis and the direction to the
    centre; spread_deg: largest angle between two cameras' optical axes; reason: why
    the capture is not object-centric ("" when it is)."""

    object_centric: bool
    center: Tensor
    in_front: float
    axis_angle_deg: float
    spread_deg: float
    reason: str

    def to_dict(self) -> dict:
        return {
            "object_centric": self.object_centric,
            "center": self.center.tolist(),
            "in_front": self.in_front,
            "axis_angle_deg": self.axis_angle_deg,
            "spread_deg": self.spread_deg,
            "reason": self.reason,
        }


def judge_object_centric(
    cameras: Cameras,
    *,
    min_in_front: float = 0.9,
    max_axis_angle_deg: float = 20.0,
    min_spread_deg: float = 30.0,
) -> ObjectCentricity:
    """Object-centric means: the look-at point is in front of (nearly) every camera, each optical
    axis points at it within ``max_axis_angle_deg`` (median), and the optical axes differ by at
    least ``min_spread_deg`` (forward-facing captures, with nearly parallel axes, fail this)."""
    c = convergence_point(cameras)
    o = cameras.centers().double().cpu()
    d = torch.nn.functional.normalize(cameras.forward_dirs().double().cpu(), dim=-1)
    to_c = c[None] - o  # [N, 3]
    dist = to_c.norm(dim=-1).clamp_min(1e-12)
    cos_axis = (to_c * d).sum(-1) / dist
    in_front = float((cos_axis > 0).double().mean())
    axis_angle = float(torch.rad2deg(torch.acos(cos_axis.clamp(-1, 1))).median())
    spread = float(torch.rad2deg(torch.acos((d @ d.T).clamp(-1, 1)).max())) if len(cameras) > 1 else 0.0
    reasons = []
    if not torch.isfinite(c).all():
        reasons.append("the optical axes have no common point")
    if in_front < min_in_front:
        reasons.append(f"the common look-at point is in front of only {in_front:.0%} of the cameras")
    if axis_angle > max_axis_angle_deg:
        reasons.append(f"the cameras point {axis_angle:.0f} deg (median) away from a common point")
    if spread < min_spread_deg:
        reasons.append(f"the optical axes are at most {spread:.0f} deg apart (a forward-facing capture)")
    reason = "; ".join(reasons)
    return ObjectCentricity(not reasons, c, in_front, axis_angle, spread, reason)


@dataclass
class CubeNormalization:
    """to_cube: capture world -> cube frame (object centred, up = +z, object within ``fill`` of
    the cube). center [3] and radius (object half-extent) in world units; source: what the
    bounds came from; judgement: the object-centricity check."""

    to_cube: Similarity
    center: Tensor
    radius: float
    source: Literal["points", "cameras"]
    judgement: ObjectCentricity

    @property
    def to_world(self) -> Similarity:
        return self.to_cube.inverse()


def _visible_fraction(cameras: Cameras, points: Tensor) -> Tensor:
    """points [P, 3] -> fraction [P] of cameras that see each point inside their image."""
    uv, z = cameras.to(dtype=torch.float64).project(points.double())  # [N, P, 2], [N, P]
    inside = (
        (z > 0)
        & (uv[..., 0] >= 0)
        & (uv[..., 0] < cameras.width)
        & (uv[..., 1] >= 0)
        & (uv[..., 1] < cameras.height)
    )
    return inside.double().mean(0)


def normalize_to_cube(
    cameras: Cameras,
    points: Tensor | None = None,
    *,
    cube_half: float = 0.5,
    fill: float = 0.9,
    min_points: int = 20,
    min_visible: float = 0.5,
    assumed_view_fill: float = 0.7,
    max_points: int = 20000,
) -> CubeNormalization:
    """Similarity from the capture world to GeoLRM's cube (see the module docstring).

    points [P, 3] sparse SfM points (world) or None. With points: those seen by at least
    ``min_visible`` of the cameras and closer to the look-at point than the nearest camera give
    robust bounds (2nd..98th percentiles per axis of the up-aligned frame). Without (or too few):
    the object is assumed to fill ``assumed_view_fill`` of the narrower field of view at the
    median camera distance. The object's half-extent maps to ``fill * cube_half``."""
    judgement = judge_object_centric(cameras)
    c0 = (
        judgement.center
        if torch.isfinite(judgement.center).all()
        else cameras.centers().double().cpu().mean(0)
    )
    o = cameras.centers().double().cpu()
    up = torch.nn.functional.normalize(-cameras.c2w[:, :3, 1].double().cpu().mean(0), dim=0)  # camera up = -y
    # rotation world -> cube: +z = up, +x = horizontal direction from the centre to the first camera
    h = o[0] - c0
    h = h - (h @ up) * up
    if h.norm() < 1e-9:
        h = torch.linalg.cross(up, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        if h.norm() < 1e-9:
            h = torch.linalg.cross(up, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    x = torch.nn.functional.normalize(h, dim=0)
    y = torch.linalg.cross(up, x)
    R = torch.stack([x, y, up])  # rows: cube axes in world coordinates

    center, radius, source = c0, None, "cameras"
    if points is not None and len(points) >= min_points:
        p = points.detach().double().cpu()
        if len(p) > max_points:  # an even, deterministic subset bounds the N x P visibility test
            p = p[torch.linspace(0, len(p) - 1, max_points).long()]
        keep = (_visible_fraction(cameras.to("cpu"), p) >= min_visible) & (
            (p - c0).norm(dim=-1) < (o - c0).norm(dim=-1).min()
        )
        if int(keep.sum()) >= min_points:
            q = (p[keep] - c0) @ R.T  # [P', 3] up-aligned frame
            lo, hi = torch.quantile(q, 0.02, dim=0), torch.quantile(q, 0.98, dim=0)
            center = c0 + ((lo + hi) / 2) @ R
            radius = float(((hi - lo) / 2).max())
            source = "points"
    if radius is None or radius <= 0:
        half_fov = 0.5 * min(
            float(cameras.fov_y_rad().median()),
            2 * math.atan(0.5 * cameras.width / float(cameras.fx.median())),
        )
        radius = float((o - c0).norm(dim=-1).median()) * math.sin(half_fov) * assumed_view_fill
        center, source = c0, "cameras"
    s = fill * cube_half / radius
    to_cube = Similarity(s, R, -s * (R @ center))
    return CubeNormalization(to_cube, center, radius, source, judgement)


def _ray_misses_cube(cameras: Cameras, half: float) -> Tensor:
    """[N, H, W] True where the pixel's ray misses the cube [-half, half]^3 (slab test)."""
    o, d = cameras.pixel_rays()
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0, t1 = (-half - o) * inv, (half - o) * inv
    t_near = torch.minimum(t0, t1).amax(-1)
    t_far = torch.maximum(t0, t1).amin(-1)
    return (t_far < t_near) | (t_far < 0)


def prepare_inputs(
    images: Tensor,
    cameras: Cameras,
    norm: CubeNormalization,
    *,
    image_size: int,
    cube_half: float = 0.5,
    background: Background = "white_outside_cube",
) -> tuple[GeoLRMInputs, Cameras]:
    """images [V, 3, H, W] in [0, 1] and their cameras (capture world) -> GeoLRM inputs
    (batch of one) and the cameras actually used (cube frame, cropped and resized).

    Each view is cropped to the largest square centred as close as possible on the projection
    of the object's centre, then resized to ``image_size``."""
    v = len(cameras)
    assert images.shape[:2] == (v, 3), f"images must be [V={v}, 3, H, W], got {tuple(images.shape)}"
    cams = cameras.transform(norm.to_cube)
    side = min(cams.width, cams.height)
    uv, _ = cams.to(dtype=torch.float64).project(
        torch.zeros(1, 3, dtype=torch.float64, device=cams.device)
    )  # [V, 1, 2]
    crops, cam_list = [], []
    for i in range(v):
        x0 = int(min(max(round(float(uv[i, 0, 0]) - side / 2), 0), cams.width - side))
        y0 = int(min(max(round(float(uv[i, 0, 1]) - side / 2), 0), cams.height - side))
        crops.append(images[i, :, y0 : y0 + side, x0 : x0 + side])
        cam_list.append(cams[i].crop(x0, y0, side, side))
    cams = Cameras.cat(cam_list).resize(image_size, image_size)
    out = resize(torch.stack(crops), image_size, image_size).clamp(0, 1)
    if background == "white_outside_cube":
        miss = _ray_misses_cube(cams.to(dtype=torch.float32), cube_half).to(out.device)  # [V, S, S]
        out = torch.where(miss[:, None], torch.ones_like(out), out)
    return GeoLRMInputs.from_cameras(out, cams), cams


def select_views(
    cameras: Cameras, n: int, center: Tensor | None = None, candidates: list[int] | None = None
) -> list[int]:
    """N views spread in azimuth and elevation around ``center`` (default: the cameras'
    look-at point): greedy farthest-point sampling of the directions centre -> camera on the
    sphere, starting from the first candidate. Returns sorted indices into ``cameras``."""
    cand = list(range(len(cameras))) if candidates is None else list(candidates)
    assert cand, "no candidate views"
    if n >= len(cand):
        return sorted(cand)
    c = convergence_point(cameras) if center is None else center.double().cpu()
    u = torch.nn.functional.normalize(cameras.centers().double().cpu()[cand] - c, dim=-1)  # [C, 3]
    chosen = [0]
    min_angle = torch.acos((u @ u[0]).clamp(-1, 1))  # [C]
    for _ in range(n - 1):
        j = int(torch.argmax(min_angle))
        chosen.append(j)
        min_angle = torch.minimum(min_angle, torch.acos((u @ u[j]).clamp(-1, 1)))
    return sorted(cand[j] for j in chosen)
