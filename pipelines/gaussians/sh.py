"""Real spherical harmonics in the 3DGS / gsplat convention, degree 0..3, and their rotation.

Coefficients are stored ``sh [..., K, 3]`` with K = (degree + 1)^2, DC first, RGB last. The colour
seen along unit direction ``d`` (from the camera towards the Gaussian) is
``clamp_min(eval_sh(sh, d) + 0.5, 0)``; the +0.5 and the clamp belong to the renderer.
The basis constants and signs are those of Inria's rasterizer, which gsplat follows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)  # fmt: skip


def num_sh_bases(degree: int) -> int:
    """K = (degree + 1)^2."""
    assert 0 <= degree <= 3, f"SH degree must be 0..3, got {degree}"
    return (degree + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    degree = math.isqrt(k) - 1
    assert (degree + 1) ** 2 == k and 0 <= degree <= 3, f"{k} coefficients is not a full SH degree 0..3"
    return degree


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """Basis values [..., K] at unit directions dirs [..., 3]."""
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(sh: Tensor, dirs: Tensor, degree: int | None = None) -> Tensor:
    """sh [..., K, 3], unit dirs [..., 3] -> raw colour [..., 3] (before +0.5 and clamp).

    ``degree`` (default: all of sh) uses only the first (degree + 1)^2 coefficients.
    """
    degree = sh_degree_from_bases(sh.shape[-2]) if degree is None else degree
    k = num_sh_bases(degree)
    assert sh.shape[-2] >= k, f"sh has {sh.shape[-2]} coefficients, degree {degree} needs {k}"
    basis = sh_basis(dirs, degree)  # [..., k]
    return (basis[..., None] * sh[..., :k, :]).sum(dim=-2)


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Colour in [0, 1] -> DC coefficient (inverse of 0.5 + C0 * sh0)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """DC coefficient -> view-independent colour (not clamped)."""
    return 0.5 + SH_C0 * sh0


def _fibonacci_sphere(n: int) -> Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    r = torch.sqrt(1 - z * z)
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)


def sh_rotation_matrices(R: Tensor, degree: int) -> list[Tensor]:
    """Per band l = 1..degree, M_l [2l+1, 2l+1] float64 such that rotating the scene by R maps the
    band's coefficients c_l [2l+1, 3] to M_l @ c_l.

    A band is closed under rotation, so Y_l(R^T d) = A_l Y_l(d) for some A_l, and the rotated
    coefficients are A_l^T c_l. A_l^T is solved exactly (up to rounding) from 64 directions.
    """
    R = R.detach().to("cpu", torch.float64)
    dirs = _fibonacci_sphere(64)  # [64, 3]
    Y = sh_basis(dirs, degree)  # [64, K]
    Y_rot = sh_basis(dirs @ R, degree)  # rows are R^T d
    out = []
    for l in range(1, degree + 1):
        band = slice(l * l, (l + 1) * (l + 1))
        out.append(torch.linalg.lstsq(Y[:, band], Y_rot[:, band]).solution)  # A_l^T
    return out


def rotate_sh(sh: Tensor, R: Tensor) -> Tensor:
    """sh [N, K, 3] of Gaussians in a scene rotated by R [3, 3] -> coefficients that give every
    rotated Gaussian the colour the original had along the correspondingly rotated direction."""
    degree = sh_degree_from_bases(sh.shape[-2])
    out = sh.clone()
    for l, M in enumerate(sh_rotation_matrices(R, degree), start=1):
        band = slice(l * l, (l + 1) * (l + 1))
        out[:, band] = torch.einsum("ij,njc->nic", M.to(sh), sh[:, band])
    return out
