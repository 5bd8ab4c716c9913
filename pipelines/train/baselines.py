"""Two trivial novel-view baselines, to put a model's held-out PSNR in context.

- :func:`mean_colour`: every target pixel gets the mean colour of all input pixels.
- :func:`reproject_nearest`: each target view copies its nearest input view, reprojected as if
  the scene were a plane of constant camera depth ``depth`` in front of the target camera: every
  target pixel centre is unprojected to camera z = ``depth`` along its ray, projected into the
  nearest input view and sampled bilinearly there; pixels that land behind that camera or outside
  its image get the mean input colour. Nearest: the smallest ``|c_t - c_i| / depth + (1 - cos
  angle(f_t, f_i))`` (camera centres c, forward axes f).
- :func:`constant_depth`: the depth used: the median camera z of the point nearest to all input
  optical axes (the capture's look-at point) when it lies in front of every input camera, else
  twice the median distance of the input cameras from their mean centre.

Examples:
    >>> out = reproject_nearest(inputs, targets_cameras, depth=1.5)   # [Vt, 3, H, W]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.models.base import Views


def mean_colour(inputs: Views, targets: Cameras) -> Tensor:
    """[Vt, 3, H, W] images of the inputs' mean colour at the targets' size."""
    c = inputs.images.float().mean(dim=(0, 2, 3))  # [3]
    return c[None, :, None, None].expand(len(targets), 3, targets.height, targets.width).clone()


def constant_depth(cameras: Cameras) -> float:
    """The constant camera depth of :func:`reproject_nearest` (module docstring)."""
    from pipelines.models.geolrm.preprocess import convergence_point

    cams = cameras.to("cpu", torch.float64)
    p = convergence_point(cams)
    z = ((p[None] - cams.centers()) * cams.forward_dirs()).sum(-1)  # [V]
    if bool(torch.isfinite(z).all()) and bool((z > 0).all()):
        return float(z.median())
    c = cams.centers()
    spread = (c - c.mean(0)).norm(dim=-1).median()
    return float(2 * spread) if float(spread) > 0 else 1.0


def nearest_views(inputs: Cameras, targets: Cameras, depth: float) -> list[int]:
    """Index of the nearest input camera for each target (module docstring)."""
    ci, ct = inputs.centers().double(), targets.centers().double()
    fi, ft = inputs.forward_dirs().double(), targets.forward_dirs().double()
    cost = torch.cdist(ct, ci) / depth + (1 - ft @ fi.T)  # [Vt, Vi]
    return cost.argmin(dim=1).tolist()


def reproject_nearest(inputs: Views, targets: Cameras, depth: float) -> Tensor:
    """[Vt, 3, H, W] the nearest input view reprojected through a plane of camera depth
    ``depth`` (module docstring). Inputs and targets may differ in size."""
    assert depth > 0, f"depth must be positive, got {depth}"
    fill = inputs.images.float().mean(dim=(0, 2, 3))  # [3]
    src = inputs.cameras.to(dtype=torch.float64)
    tgt = targets.to(dtype=torch.float64)
    H, W = tgt.height, tgt.width
    out = []
    for t, i in enumerate(nearest_views(src, tgt, depth)):
        v, u = torch.meshgrid(
            torch.arange(H, dtype=torch.float64) + 0.5,
            torch.arange(W, dtype=torch.float64) + 0.5,
            indexing="ij",
        )
        K = tgt.K[t]
        x_cam = (
            torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1) * depth
        )
        x_world = x_cam.reshape(-1, 3) @ tgt.c2w[t, :3, :3].T + tgt.c2w[t, :3, 3]  # [H*W, 3]
        uv, z = src[i : i + 1].project(x_world)  # [1, H*W, 2], [1, H*W]
        uv, z = uv[0], z[0]
        w_i, h_i = src.width, src.height
        grid = torch.stack([2 * uv[:, 0] / w_i - 1, 2 * uv[:, 1] / h_i - 1], -1)  # pixel centres at +0.5
        inside = (z > 0) & (grid.abs() <= 1).all(-1)
        img = inputs.images[i : i + 1].double()
        sampled = F.grid_sample(
            img, grid.view(1, H, W, 2), mode="bilinear", padding_mode="border", align_corners=False
        )[0]  # [3, H, W]
        sampled = torch.where(inside.view(1, H, W), sampled, fill.double()[:, None, None])
        out.append(sampled.float())
    return torch.stack(out)
