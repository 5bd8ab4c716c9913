"""Rotations, quaternions and similarity transforms (torch, batched).

Quaternions are ``wxyz`` (scalar first) everywhere in the project, as in gsplat and the 3DGS PLY
layout; they need not be unit length on input. Rotation matrices act on column vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """quats [..., 4] wxyz, any norm > 0 -> rotation matrices [..., 3, 3]."""
    assert quats.shape[-1] == 4, quats.shape
    w, x, y, z = torch.unbind(quats / quats.norm(dim=-1, keepdim=True), dim=-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )  # fmt: skip
    return R.reshape(quats.shape[:-1] + (3, 3))


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] -> unit quats [..., 4] wxyz with w >= 0.

    Uses the largest of the four squared components (Shepperd), so it is stable for any angle.
    """
    assert R.shape[-2:] == (3, 3), R.shape
    m = R.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # 4 * squares of (w, x, y, z)
    sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    best = sq.argmax(dim=-1)  # [M]
    q_from = torch.stack(
        [
            # from w
            torch.stack([sq[:, 0], m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
            # from x
            torch.stack([m[:, 2, 1] - m[:, 1, 2], sq[:, 1], m[:, 1, 0] + m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0]], -1),
            # from y
            torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] + m[:, 0, 1], sq[:, 2], m[:, 2, 1] + m[:, 1, 2]], -1),
            # from z
            torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 2, 1] + m[:, 1, 2], sq[:, 3]], -1),
        ],
        dim=1,
    )  # [M, 4 candidates, 4]
    q = q_from[torch.arange(m.shape[0]), best]  # [M, 4]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape(R.shape[:-2] + (4,))


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of wxyz quats [..., 4] (broadcasting): rotate by b, then by a."""
    aw, ax, ay, az = torch.unbind(a, dim=-1)
    bw, bx, by, bz = torch.unbind(b, dim=-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_conjugate(q: Tensor) -> Tensor:
    """Conjugate of wxyz quats [..., 4]; the inverse rotation for unit quats."""
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


def quat_exp(rotvec: Tensor) -> Tensor:
    """Rotation vectors [..., 3] (unit axis times angle, radians) -> unit quats [..., 4] wxyz."""
    assert rotvec.shape[-1] == 3, rotvec.shape
    theta = rotvec.norm(dim=-1, keepdim=True)  # [..., 1]
    half = 0.5 * theta
    # sin(theta/2)/theta -> 1/2 - theta^2/48 as theta -> 0
    k = torch.where(theta > 1e-8, torch.sin(half) / theta.clamp_min(1e-12), 0.5 - theta**2 / 48)
    return torch.cat([torch.cos(half), rotvec * k], dim=-1)


def quat_log(q: Tensor) -> Tensor:
    """Unit quats [..., 4] wxyz -> rotation vectors [..., 3] of the *shortest* rotation they
    represent (angle in [0, pi]): q and -q give the same vector, so sign flips never add a turn."""
    assert q.shape[-1] == 4, q.shape
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, w)  # [..., 1] in [0, pi]
    # angle / n -> 2 / w as n -> 0 (w -> 1)
    k = torch.where(n > 1e-8, angle / n.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return v * k


def quat_slerp(a: Tensor, b: Tensor, s: Tensor | float) -> Tensor:
    """Spherical interpolation of unit wxyz quats a, b [..., 4] at s [...] (0 -> a, 1 -> b) along
    the shorter arc between the rotations, whatever the signs of a and b."""
    s = torch.as_tensor(s, dtype=a.dtype, device=a.device)
    rel = quat_log(quat_multiply(quat_conjugate(a), b))  # [..., 3] body-frame step a -> b
    return quat_multiply(a, quat_exp(s[..., None] * rel))


def axis_angle_to_rotmat(axis_angle: Tensor) -> Tensor:
    """Rodrigues: axis_angle [..., 3] (unit axis times angle in radians) -> [..., 3, 3]."""
    return quat_to_rotmat(quat_exp(axis_angle))


def random_rotations(n: int, generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """n rotations [n, 3, 3] drawn uniformly (normalized Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quat_to_rotmat(q).to(dtype)


@dataclass(frozen=True)
class Similarity:
    """x -> scale * R @ x + t. Maps points of one frame into another.

    rotation [3, 3] proper rotation; translation [3]; scale > 0. Kept in float64 on the CPU:
    the transforms are small and precision matters when they are chained.
    """

    scale: float
    rotation: Tensor  # [3, 3]
    translation: Tensor  # [3]

    def __post_init__(self) -> None:
        assert self.rotation.shape == (3, 3), self.rotation.shape
        assert self.translation.shape == (3,), self.translation.shape
        assert self.scale > 0, self.scale
        object.__setattr__(self, "rotation", self.rotation.detach().to("cpu", torch.float64))
        object.__setattr__(self, "translation", self.translation.detach().to("cpu", torch.float64))

    @staticmethod
    def identity() -> Similarity:
        return Similarity(1.0, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))

    @staticmethod
    def from_matrix(m: Tensor) -> Similarity:
        """m [4, 4] = [[s R, t], [0, 1]] -> Similarity."""
        m = torch.as_tensor(m, dtype=torch.float64)
        sR = m[:3, :3]
        s = float(torch.linalg.det(sR).abs() ** (1.0 / 3.0))
        return Similarity(s, sR / s, m[:3, 3])

    def matrix(self) -> Tensor:
        """[4, 4] float64."""
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def apply(self, points: Tensor) -> Tensor:
        """points [..., 3] -> [..., 3] in the points' dtype and device."""
        R = self.rotation.to(points)
        t = self.translation.to(points)
        return self.scale * points @ R.T + t

    def inverse(self) -> Similarity:
        Rt = self.rotation.T
        return Similarity(1.0 / self.scale, Rt, -(Rt @ self.translation) / self.scale)

    def compose(self, inner: Similarity) -> Similarity:
        """(self o inner)(x) = self(inner(x))."""
        return Similarity(
            self.scale * inner.scale,
            self.rotation @ inner.rotation,
            self.scale * self.rotation @ inner.translation + self.translation,
        )

    def to_dict(self) -> dict:
        return {"scale": self.scale, "rotation": self.rotation.tolist(), "translation": self.translation.tolist()}

    @staticmethod
    def from_dict(d: dict) -> Similarity:
        return Similarity(
            float(d["scale"]),
            torch.tensor(d["rotation"], dtype=torch.float64),
            torch.tensor(d["translation"], dtype=torch.float64),
        )


def umeyama(src: Tensor, dst: Tensor, with_scale: bool = True) -> Similarity:
    """Least-squares similarity with dst ~= S(src) (Umeyama 1991).

    src, dst [N, 3] corresponding points, N >= 3 and not collinear.
    """
    assert src.shape == dst.shape and src.shape[-1] == 3 and src.shape[0] >= 3, (src.shape, dst.shape)
    x = src.detach().to("cpu", torch.float64)
    y = dst.detach().to("cpu", torch.float64)
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    cov = yc.T @ xc / x.shape[0]  # [3, 3]
    U, D, Vt = torch.linalg.svd(cov)
    S = torch.eye(3, dtype=torch.float64)
    if torch.det(U) * torch.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var_x = (xc**2).sum() / x.shape[0]
    s = float((D * S.diagonal()).sum() / var_x) if with_scale else 1.0
    t = my - s * R @ mx
    return Similarity(s, R, t)
