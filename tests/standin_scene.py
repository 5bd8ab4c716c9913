"""Stand-in textured scene for SfM tests until pipelines.synth lands (then this file goes).

A textured cube inside a textured room, ray cast exactly: ``orbit`` gives the known cameras,
``render`` their images. Textures are multi-scale value noise, which gives SIFT plenty of blobs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipelines.cameras import Cameras

ROOM, CUBE = 4.0, 1.0


def textures(gen: torch.Generator, n: int = 12, size: int = 256) -> torch.Tensor:
    """[n, 3, size, size] in [0, 1]: sums of bilinearly upsampled noise at 4 scales."""
    t = torch.zeros(n, 3, size, size)
    for s in (4, 16, 64, 256):
        noise = torch.rand(n, 3, s, s, generator=gen)
        t += F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False) * s**-0.3
    lo, hi = t.amin((1, 2, 3), keepdim=True), t.amax((1, 2, 3), keepdim=True)
    return (t - lo) / (hi - lo)


def render(cams: Cameras, tex: torch.Tensor) -> torch.Tensor:
    """Images [N, 3, H, W] of the cube (faces 0-5) in the room (faces 6-11)."""
    o, d = cams.pixel_rays()  # [N, H, W, 3]
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (-CUBE - o) * inv, (CUBE - o) * inv
    tmin, tmax = torch.minimum(t0, t1), torch.maximum(t0, t1)
    t_in, t_out = tmin.amax(-1), tmax.amin(-1)
    hit_cube = (t_in <= t_out) & (t_in > 0)
    r_far = torch.maximum((-ROOM - o) * inv, (ROOM - o) * inv)
    t = torch.where(hit_cube, t_in, r_far.amin(-1))
    axis = torch.where(hit_cube, tmin.argmax(-1), r_far.argmin(-1))  # [N, H, W]
    p = o + t[..., None] * d
    positive = torch.gather(p, -1, axis[..., None])[..., 0] > 0
    face = axis * 2 + positive.long() + torch.where(hit_cube, 0, 6)
    q = p / torch.where(hit_cube, CUBE, ROOM)[..., None]
    uv_all = torch.stack([q[..., [1, 2]], q[..., [0, 2]], q[..., [0, 1]]], -2)  # [N, H, W, 3, 2]
    uv = torch.gather(uv_all, -2, axis[..., None, None].expand(*axis.shape, 1, 2))[..., 0, :]
    N, H, W = axis.shape
    out = torch.zeros(N, H, W, 3)
    for f in range(tex.shape[0]):
        m = face == f
        if m.any():
            g = uv[m].view(1, 1, -1, 2)
            out[m] = F.grid_sample(tex[f : f + 1], g, mode="bilinear", align_corners=False)[0, :, 0].T
    return out.permute(0, 3, 1, 2)


def orbit(
    n: int, width: int, height: int, *, radius: float = 3.0, fov_y_deg: float = 60.0, arc: float = math.pi
) -> Cameras:
    """n cameras on an arc around the cube, bobbing up and down, looking at its centre."""
    a = torch.linspace(0, arc, n)
    eye = torch.stack([radius * torch.cos(a), 0.5 + 0.4 * torch.sin(2 * a), radius * torch.sin(a)], -1)
    return Cameras.look_at(eye, torch.zeros(n, 3), fov_y_deg=fov_y_deg, width=width, height=height)
