"""A capture rendered from known Gaussians: the optimizer's test and benchmark scene.

A random ground-truth scene (colourful Gaussians filling a ball, SH degree 1, mostly opaque)
is rendered by our renderer into cameras on a sphere looking at its centre, and written as a
capture folder (PNG frames, cameras.json with every 8th frame held out, and "SfM" points:
samples of random GT Gaussians, with a little jitter, in their DC colours). Cameras and images
are exact, so a 3DGS run on it can reach a high test PSNR; the GT Gaussians come back for comparisons.

Examples:
    >>> capture, gt = write_gaussian_capture(tmp / "scene", seed=0, width=64, height=64)  # doctest: +SKIP
    >>> len(capture), capture.indices("test")[:2]                                          # doctest: +SKIP
    (24, [0, 8])
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import write_image
from pipelines.gaussians import Gaussians, render, write_points_ply
from pipelines.gaussians.sh import num_sh_bases
from pipelines.transforms import quat_to_rotmat


def sphere_cameras(
    n: int,
    *,
    width: int,
    height: int,
    radius: float = 4.0,
    fov_y_deg: float = 45.0,
    generator: torch.Generator | None = None,
) -> Cameras:
    """n cameras spread over a sphere (golden-angle spiral, elevations -50..60 deg, a little
    random jitter) looking at the origin, world up +z."""
    i = torch.arange(n, dtype=torch.float64)
    elev = torch.deg2rad(-50 + 110 * (i + 0.5) / n)
    azim = i * math.pi * (3 - math.sqrt(5))
    if generator is not None:
        azim = azim + 0.1 * torch.randn(n, generator=generator, dtype=torch.float64)
    eye = radius * torch.stack([elev.cos() * azim.cos(), elev.cos() * azim.sin(), elev.sin()], -1)
    cams = Cameras.look_at(
        eye.float(),
        torch.zeros(n, 3),
        fov_y_deg=fov_y_deg,
        width=width,
        height=height,
        up=torch.tensor([0.0, 0.0, 1.0]),
    )
    return cams


def random_scene(
    num: int,
    generator: torch.Generator,
    *,
    radius: float = 1.0,
    sh_degree: int = 1,
    scale_range: tuple[float, float] = (0.03, 0.15),
) -> Gaussians:
    """``num`` Gaussians in a ball of ``radius``: anisotropic (scales log-uniform in
    ``scale_range`` x radius), opacities 0.6..0.99, saturated DC colours, small view-dependent
    terms."""
    g = generator
    d = torch.nn.functional.normalize(torch.randn(num, 3, generator=g), dim=-1)
    means = d * radius * torch.rand(num, 1, generator=g).pow(1 / 3)
    lo, hi = math.log(scale_range[0] * radius), math.log(scale_range[1] * radius)
    log_scales = lo + (hi - lo) * torch.rand(num, 3, generator=g)
    opacity = 0.6 + 0.39 * torch.rand(num, generator=g)
    sh = 0.15 * torch.randn(num, num_sh_bases(sh_degree), 3, generator=g)
    sh[:, 0] = 1.2 * torch.randn(num, 3, generator=g)
    return Gaussians(means, torch.randn(num, 4, generator=g), log_scales, torch.logit(opacity), sh)


def write_gaussian_capture(
    root: str | Path,
    *,
    seed: int = 0,
    num_gaussians: int = 1500,
    views: int = 24,
    width: int = 64,
    height: int = 64,
    points: int = 2000,
    point_jitter: float = 0.02,
    scale_range: tuple[float, float] = (0.03, 0.15),
) -> tuple[Capture, Gaussians]:
    """Write the capture folder ``root`` (see the module docstring); returns it and the GT."""
    root = Path(root)
    gen = torch.Generator().manual_seed(seed)
    gt = random_scene(num_gaussians, gen, scale_range=scale_range)
    cams = sphere_cameras(views, width=width, height=height, generator=gen)
    file_paths = []
    with torch.no_grad():
        for i in range(views):
            img = render(gt, cams[i], backend="torch").rgb[0].clamp(0, 1)  # [H, W, 3]
            fp = f"images/{i:05d}.png"
            write_image(root / fp, img.permute(2, 0, 1))
            file_paths.append(fp)
    pick = torch.randint(0, num_gaussians, (points,), generator=gen)
    # A sample of each picked Gaussian (mean + R S z, z ~ N(0, I)) plus a little jitter.
    R = quat_to_rotmat(gt.quats[pick])  # [P, 3, 3]
    z = torch.randn(points, 3, generator=gen) * gt.scales()[pick]
    xyz = gt.means[pick] + (R @ z[:, :, None])[:, :, 0] + point_jitter * torch.randn(points, 3, generator=gen)
    rgb = (gt.colors_dc()[pick] * 255).round().to(torch.uint8)
    write_points_ply(root / "points.ply", xyz.numpy(), rgb.numpy())
    capture = Capture(
        root,
        file_paths,
        cams,
        default_splits(views),
        points="points.ply",
        meta={"source": "gaussian-scene", "seed": seed, "num_gaussians": num_gaussians},
    )
    capture.save()
    return capture, gt
