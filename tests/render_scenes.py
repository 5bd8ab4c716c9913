"""Random scenes and an independent float64 brute-force compositor for the renderer tests.

The brute force uses gsplat's pure-PyTorch projection and SH (gsplat.cuda._torch_impl) and a
per-pixel compositor written here: every pixel against every Gaussian, in depth order, with
gsplat's classic rules (alpha = min(0.999, o exp(-sigma)), skip below 1/255 or sigma < 0,
exclusive stop at T <= 1e-4). It shares no code with pipelines.gaussians.render.
"""

from __future__ import annotations

import math

import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import num_sh_bases


def random_cameras(
    gen: torch.Generator, n: int, width: int, height: int, dtype=torch.float32, dist=4.0
) -> Cameras:
    """n cameras on a sphere of radius ~dist looking near the origin, random fov and principal
    point offsets (asymmetric frusta)."""
    eye = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * (
        dist + torch.rand(n, 1, generator=gen)
    )
    target = 0.2 * torch.randn(n, 3, generator=gen)
    fov = 40 + 20 * float(torch.rand(1, generator=gen))
    cams = Cameras.look_at(eye, target, fov_y_deg=fov, width=width, height=height)
    K = cams.K.clone()
    K[:, 0, 2] += (torch.rand(n, generator=gen) - 0.5) * 0.2 * width
    K[:, 1, 2] += (torch.rand(n, generator=gen) - 0.5) * 0.2 * height
    K[:, 0, 0] *= 1 + 0.1 * (torch.rand(n, generator=gen) - 0.5)
    return Cameras(cams.c2w, K, width, height).to(dtype=dtype)


def random_gaussians(
    gen: torch.Generator,
    n: int,
    *,
    sh_degree: int = 3,
    extent: float = 1.0,
    log_scale_range: tuple[float, float] = (math.log(0.03), math.log(0.3)),
    opacity_range: tuple[float, float] = (0.05, 0.95),
    dtype=torch.float32,
) -> Gaussians:
    lo, hi = log_scale_range
    o = opacity_range[0] + (opacity_range[1] - opacity_range[0]) * torch.rand(
        n, generator=gen, dtype=torch.float64
    )
    sh = 0.3 * torch.randn(n, num_sh_bases(sh_degree), 3, generator=gen)
    sh[:, 0] = torch.randn(n, 3, generator=gen)
    g = Gaussians(
        means=(torch.rand(n, 3, generator=gen) * 2 - 1) * extent,
        quats=torch.randn(n, 4, generator=gen),
        log_scales=lo + (hi - lo) * torch.rand(n, 3, generator=gen),
        opacity_logits=torch.log(o / (1 - o)).float(),
        sh=sh,
    )
    return g.to(dtype=dtype)


def threshold_scene(gen: torch.Generator, dtype=torch.float32) -> Gaussians:
    """Generic Gaussians plus two groups aimed at gsplat's decision rules: faint large ones with
    opacity within a few times 1/255 (the skip threshold crosses them) and nearly opaque ones
    stacked in depth (pixels reach the early stop, alphas reach the 0.999 clamp)."""
    generic = random_gaussians(gen, 120, dtype=dtype)
    faint = random_gaussians(gen, 40, opacity_range=(1.0 / 255, 3.0 / 255),
                             log_scale_range=(math.log(0.2), math.log(0.5)), dtype=dtype)  # fmt: skip
    opaque = random_gaussians(gen, 60, opacity_range=(0.97, 0.9999),
                              log_scale_range=(math.log(0.15), math.log(0.5)), dtype=dtype)  # fmt: skip
    return Gaussians.cat([generic, faint, opaque])


def brute_force(
    g: Gaussians,
    cams: Cameras,
    *,
    sh_degree: int,
    background: torch.Tensor,  # [C, 3]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    ambiguity: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """float64 reference: rgb [C,H,W,3], alpha [C,H,W,1], depth [C,H,W,1] (expected z), and
    ambiguous [C,H,W]: pixels where some decision (skip at 1/255, stop at 1e-4) was within a
    relative ``ambiguity`` of its threshold, so a float32 renderer may legitimately decide the
    other way. Also counts of early stops and near-threshold skips (to check the scene tests them)."""
    f64 = torch.float64
    means, quats = g.means.to(f64), g.quats.to(f64)
    scales, opac = g.log_scales.to(f64).exp(), torch.sigmoid(g.opacity_logits.to(f64))
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    w2c = torch.linalg.inv(cams.c2w.to(f64))
    K = cams.K.to(f64)
    W, H, C = cams.width, cams.height, len(cams)
    _, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, w2c, K, W, H, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane
    )
    campos = cams.c2w[:, :3, 3].to(f64)
    dirs = means[None] - campos[:, None]  # [C, N, 3]
    colors = _spherical_harmonics(sh_degree, dirs, g.sh.to(f64)[None].expand(C, -1, -1, -1))
    colors = torch.clamp_min(colors + 0.5, 0.0)  # [C, N, 3]

    ys, xs = torch.meshgrid(torch.arange(H, dtype=f64) + 0.5, torch.arange(W, dtype=f64) + 0.5, indexing="ij")
    rgb = torch.zeros(C, H, W, 3, dtype=f64)
    acc_z = torch.zeros(C, H, W, dtype=f64)
    T_out = torch.ones(C, H, W, dtype=f64)
    amb = torch.zeros(C, H, W, dtype=torch.bool)
    n_stops, n_near_skip = 0, 0
    for c in range(C):
        T = torch.ones(H, W, dtype=f64)
        done = torch.zeros(H, W, dtype=torch.bool)
        for i in torch.argsort(depths[c], stable=True).tolist():
            z = float(depths[c, i])
            if not (near_plane <= z <= far_plane):
                continue
            a, b, cc = conics[c, i].tolist()
            dx, dy = means2d[c, i, 0] - xs, means2d[c, i, 1] - ys
            sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
            raw = opac[i] * torch.exp(-sigma)
            alpha = raw.clamp(max=0.999)
            near_skip = ~done & ((raw - 1 / 255).abs() < ambiguity / 255)
            use = ~done & (sigma >= 0) & (alpha >= 1 / 255)
            next_T = T * (1 - alpha)
            stop = use & (next_T <= 1e-4)
            near_stop = use & ((next_T - 1e-4).abs() < ambiguity * 1e-4)
            amb[c] |= near_skip | near_stop
            n_near_skip += int((~done & (raw > 0.5 / 255) & (raw < 2 / 255)).sum())
            n_stops += int(stop.sum())
            comp = use & ~stop
            w = torch.where(comp, alpha * T, torch.zeros_like(T))
            rgb[c] += w[..., None] * colors[c, i]
            acc_z[c] += w * z
            T = torch.where(comp, next_T, T)
            done |= stop
        T_out[c] = T
    rgb = rgb + T_out[..., None] * background.to(f64)[:, None, None, :]
    alpha = (1 - T_out)[..., None]
    depth = acc_z[..., None] / alpha.clamp_min(1e-10)
    return dict(rgb=rgb, alpha=alpha, depth=depth, ambiguous=amb, n_stops=n_stops, n_near_skip=n_near_skip)
