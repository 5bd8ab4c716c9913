"""3D rotary position embedding (RoPE) for tokens at integer 3D positions.

Layout (as the cuRoPE3D kernel used by GeoLRM, adapted from CroCo's 2D cuRoPE): a head of width
D (D % 6 == 0) is split into three equal thirds for the x, y and z position components (the
first third uses ``pos[..., 0]``). Inside a third of width D/3 the first and second halves
``(u, v)`` are rotated together ("rotate-half" layout, not interleaved) by the angles
``pos_axis * theta ** (-k / Q)``, k = 0..Q-1, Q = D / 6:

    u' = u cos(a) - v sin(a),    v' = v cos(a) + u sin(a).

Angles are computed in float32 (the kernel's precision) whatever the token dtype. Rotations are
orthogonal, so ``<rope(q, p), rope(k, r)>`` depends on the positions only through ``r - p``.

Examples:
    >>> q = torch.randn(1, 5, 2, 12)                   # [B, N, heads, D]
    >>> pos = torch.randint(0, 128, (1, 5, 3))         # [B, N, 3] voxel indices
    >>> rope3d(q, pos).shape
    torch.Size([1, 5, 2, 12])
"""

from __future__ import annotations

import torch
from torch import Tensor


def _angles(pos: Tensor, head_dim: int, theta: float) -> Tensor:
    """pos [B, N, 3] -> angles [B, N, 3, Q] float32 (Q = head_dim / 6)."""
    q = head_dim // 6
    inv_freq = theta ** (-torch.arange(q, device=pos.device, dtype=torch.float32) / q)  # [Q]
    return pos.to(torch.float32)[..., None] * inv_freq  # [B, N, 3, Q]


def rope3d(x: Tensor, pos: Tensor, theta: float = 10000.0) -> Tensor:
    """Rotate x [B, N, H, D] (D % 6 == 0) by positions pos [B, N, 3] (voxel indices, any
    numeric dtype). Returns a new tensor [B, N, H, D] in x's dtype."""
    b, n, h, d = x.shape
    assert d % 6 == 0, f"RoPE-3D needs a head width divisible by 6, got {d}"
    assert pos.shape == (b, n, 3), f"pos must be [B, N, 3] = {(b, n, 3)}, got {tuple(pos.shape)}"
    q = d // 6
    ang = _angles(pos, d, theta)  # [B, N, 3, Q]
    cos, sin = ang.cos()[:, :, None], ang.sin()[:, :, None]  # [B, N, 1, 3, Q]
    xs = x.float().reshape(b, n, h, 3, 2, q)  # [B, N, H, axis, (u, v), Q]
    u, v = xs[..., 0, :], xs[..., 1, :]
    out = torch.stack([u * cos - v * sin, v * cos + u * sin], dim=-2)  # [B, N, H, 3, 2, Q]
    return out.reshape(b, n, h, d).to(x.dtype)


def _rope3d_reference(x: Tensor, pos: Tensor, theta: float = 10000.0) -> Tensor:
    """Reference path with the same signature: builds each token's D x D rotation matrix in
    float64 (one 2x2 block per (axis, frequency) pair acting on channels (u_k, v_k)) and
    multiplies. Slow; for tests."""
    b, n, h, d = x.shape
    assert d % 6 == 0 and pos.shape == (b, n, 3), (tuple(x.shape), tuple(pos.shape))
    q = d // 6
    R = torch.zeros(b, n, d, d, dtype=torch.float64, device=x.device)
    for axis in range(3):
        for k in range(q):
            a = pos[..., axis].double() * float(theta) ** (-k / q)  # [B, N]
            iu, iv = axis * (d // 3) + k, axis * (d // 3) + q + k
            R[..., iu, iu], R[..., iu, iv] = a.cos(), -a.sin()
            R[..., iv, iu], R[..., iv, iv] = a.sin(), a.cos()
    return torch.einsum("bnij,bnhj->bnhi", R, x.double()).to(x.dtype)
