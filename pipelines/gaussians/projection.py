"""EWA projection of 3D Gaussians to pinhole images, in differentiable PyTorch (any device, float32
or float64). Written from the EWA splatting formulas; the culling rules and constants follow
gsplat 1.5.3's CUDA kernel (ProjectionEWA3DGSFused.cu, Utils.cuh ``persp_proj``) so both backends
of :func:`pipelines.gaussians.render` agree.

For a Gaussian with mean mu, unit quaternion q (wxyz), standard deviations s:

- Sigma = R(q) diag(s)^2 R(q)^T (world); camera frame t = W mu + w, Sigma_c = W Sigma W^T with
  the world-to-camera rotation W.
- Pinhole Jacobian at t, J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]], where tx/z and ty/z
  are clamped to the image frustum widened by 0.3 tan(fov/2) on each side (only inside J: the
  projected mean uses the unclamped t). Sigma_2d = J Sigma_c J^T + eps2d I (the low-pass dilation).
- conic = Sigma_2d^-1 stored as (a, b, c): sigma(d) = 1/2 (a dx^2 + c dy^2) + b dx dy.
- radius per axis = ceil(k sqrt(Sigma_2d[i, i])) with k = min(3.33, sqrt(2 ln(255 o))) when the
  opacity o is given (the opacity-aware box: outside it o exp(-sigma) < 1/255), else k = 3.33.
- Culled (radius 0): z < near or z > far, det(Sigma_2d) <= 0, o < 1/255, both radii <= radius_clip,
  or the box entirely off-screen (x + r <= 0, x - r >= width, same for y).

Examples:
    >>> g = Gaussians.random(100); cams = Cameras.look_at(torch.tensor([[0., 0., -4.]]),
    ...     torch.zeros(1, 3), fov_y_deg=50, width=64, height=48)
    >>> p = project(g.means, g.quats, g.scales(), g.opacities(), cams.w2c(), cams.K, 64, 48)
    >>> p.means2d.shape, p.radii.dtype
    (torch.Size([1, 100, 2]), torch.int32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.transforms import quat_to_rotmat

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD: smaller alphas are skipped
FRUSTUM_MARGIN = 0.3  # tan(fov/2) multiples added on each side before clamping tx/tz, ty/tz
MAX_EXTENT = 3.33  # sigmas; the box extent without opacity (gsplat's `extend`)
_MAX_RADIUS = 1 << 24  # radii are clamped here before the int32 cast (far beyond any image)


@dataclass
class Projection:
    """Per camera and Gaussian (C cameras, N Gaussians); culled entries have radii == 0 and
    finite (meaningless) values elsewhere."""

    means2d: Tensor  # [C, N, 2] pixels (x right, y down; pixel centres at i + 0.5)
    conics: Tensor  # [C, N, 3] (a, b, c) of the inverse dilated 2D covariance
    depths: Tensor  # [C, N] camera z
    radii: Tensor  # [C, N, 2] int32 box half-sizes in pixels; 0 = culled
    covars2d: Tensor  # [C, N, 3] dilated 2D covariance (xx, xy, yy)


def project(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor | None,  # [N]
    w2c: Tensor,  # [C, 4, 4]
    K: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
) -> Projection:
    """Project N Gaussians into C pinhole cameras (see the module docstring for the rules).

    means [N, 3] world; quats [N, 4] wxyz, need not be unit; scales [N, 3] standard deviations
    (activated); opacities [N] in (0, 1) (activated) or None for the 3.33-sigma box without
    opacity culling; w2c [C, 4, 4] world-to-camera, OpenCV axes; K [C, 3, 3] pixels.
    Differentiable w.r.t. means, quats, scales (not K; radii carry no gradient).
    """
    N, C = means.shape[0], w2c.shape[0]
    assert means.shape == (N, 3), f"means must be [N,3], got {tuple(means.shape)}"
    assert quats.shape == (N, 4), f"quats must be [N,4], got {tuple(quats.shape)}"
    assert scales.shape == (N, 3), f"scales must be [N,3], got {tuple(scales.shape)}"
    assert opacities is None or opacities.shape == (N,), (
        f"opacities must be [N], got {tuple(opacities.shape)}"
    )
    assert w2c.shape == (C, 4, 4), f"w2c must be [C,4,4], got {tuple(w2c.shape)}"
    assert K.shape == (C, 3, 3), f"K must be [C,3,3], got {tuple(K.shape)}"
    w2c, K = w2c.to(means), K.to(means)

    W, w = w2c[:, :3, :3], w2c[:, :3, 3]  # [C, 3, 3], [C, 3]
    t = torch.einsum("cij,nj->cni", W, means) + w[:, None, :]  # [C, N, 3] camera frame
    x, y, z = t.unbind(-1)  # [C, N] each
    in_depth = (z >= near_plane) & (z <= far_plane)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))  # keeps culled entries finite
    rz = 1.0 / z_safe

    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]  # [C, 1]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C, N, 2]

    # Jacobian with the view direction clamped to the widened frustum (bounds J off-screen).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    ux = torch.clamp(
        x * rz, min=-(cx / fx + FRUSTUM_MARGIN * tan_x), max=(width - cx) / fx + FRUSTUM_MARGIN * tan_x
    )
    uy = torch.clamp(
        y * rz, min=-(cy / fy + FRUSTUM_MARGIN * tan_y), max=(height - cy) / fy + FRUSTUM_MARGIN * tan_y
    )

    # A = W R diag(s): Sigma_c = A A^T, and J Sigma_c J^T = (J A)(J A)^T with 2x3 rows of J A.
    M = quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3] R diag(s)
    A = torch.einsum("cij,njk->cnik", W, M)  # [C, N, 3, 3]
    a0, a1, a2 = A.unbind(-2)  # rows [C, N, 3]
    r0 = (fx * rz)[..., None] * (a0 - ux[..., None] * a2)  # [C, N, 3] first row of J A
    r1 = (fy * rz)[..., None] * (a1 - uy[..., None] * a2)  # [C, N, 3] second row
    sxx = (r0 * r0).sum(-1) + eps2d  # [C, N]
    sxy = (r0 * r1).sum(-1)
    syy = (r1 * r1).sum(-1) + eps2d
    det = sxx * syy - sxy * sxy
    ok_det = det > 0
    det_safe = torch.where(ok_det, det, torch.ones_like(det))
    conics = torch.stack([syy / det_safe, -sxy / det_safe, sxx / det_safe], dim=-1)  # [C, N, 3]

    with torch.no_grad():
        valid = in_depth & ok_det
        if opacities is None:
            extent = torch.full_like(z, MAX_EXTENT)
        else:
            o = opacities.detach().to(means)[None, :].expand(C, N)
            valid &= o >= ALPHA_THRESHOLD
            extent = torch.sqrt(2.0 * torch.log(o.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp(
                max=MAX_EXTENT
            )
        rx = torch.ceil(extent * sxx.detach().clamp_min(0).sqrt()).clamp(max=_MAX_RADIUS)
        ry = torch.ceil(extent * syy.detach().clamp_min(0).sqrt()).clamp(max=_MAX_RADIUS)
        valid &= (rx > radius_clip) | (ry > radius_clip)
        mx, my = means2d.detach().unbind(-1)
        valid &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        radii = torch.stack([rx, ry], dim=-1).where(valid[..., None], torch.zeros_like(rx)[..., None])
        radii = radii.to(torch.int32)  # [C, N, 2]

    return Projection(
        means2d=means2d,
        conics=conics,
        depths=z,
        radii=radii,
        covars2d=torch.stack([sxx, sxy, syy], dim=-1),
    )


def opacity_extent(opacity: float) -> float:
    """The box half-size in sigmas for opacity o: min(3.33, sqrt(2 ln(255 o))) (o >= 1/255)."""
    return min(MAX_EXTENT, math.sqrt(2.0 * math.log(opacity / ALPHA_THRESHOLD)))
