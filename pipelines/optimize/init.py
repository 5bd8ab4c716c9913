"""Initial Gaussians, the scene scale, and the Gaussians <-> trainable parameters mapping.

Parameters are a ``torch.nn.ParameterDict`` with gsplat's names (what its strategies edit):
means [N,3] world, scales [N,3] log standard deviations, quats [N,4] wxyz (unnormalized),
opacities [N] logits, sh0 [N,1,3] DC SH, shN [N,K-1,3] SH bands 1..degree.

Examples:
    >>> xyz = torch.rand(100, 3); rgb = torch.rand(100, 3)
    >>> g = init_from_points(xyz, rgb, generator=torch.Generator().manual_seed(0))
    >>> g.num, g.sh_degree, round(float(g.opacities()[0]), 3)
    (100, 3, 0.1)
    >>> params = to_params(g); sorted(params)
    ['means', 'opacities', 'quats', 'scales', 'sh0', 'shN']
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import num_sh_bases, rgb_to_sh0

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


def scene_scale(cameras: Cameras, factor: float = 1.1) -> float:
    """gsplat's scene scale: ``factor`` (simple_trainer: 1.1) times the largest distance of a
    camera centre from the centres' mean (1.0 when the cameras coincide)."""
    c = cameras.centers().double()
    r = float((c - c.mean(0)).norm(dim=-1).max()) if len(c) > 1 else 0.0
    return factor * (r if r > 1e-9 else 1.0)


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 512) -> Tensor:
    """[P] root mean square distance of each point [P, 3] to its k nearest other points (gsplat
    init: sqrt(mean of squared 3-NN distances)); brute force in chunks of rows."""
    assert points.ndim == 2 and points.shape[1] == 3, f"points must be [P,3], got {tuple(points.shape)}"
    p = points.float()
    n = p.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return torch.ones(n, dtype=p.dtype)
    out = torch.empty(n, dtype=p.dtype)
    for i in range(0, n, chunk):
        d2 = torch.cdist(p[i : i + chunk], p).square_()  # [c, P]
        d2[torch.arange(d2.shape[0]), torch.arange(i, i + d2.shape[0])] = float("inf")  # not itself
        out[i : i + chunk] = d2.topk(k, dim=1, largest=False).values.mean(dim=1).sqrt()
    return out


def init_from_points(
    xyz: Tensor,
    rgb: Tensor,
    *,
    sh_degree: int = 3,
    opacity: float = 0.1,
    init_scale: float = 1.0,
    min_scale: float = 1e-7,
    generator: torch.Generator | None = None,
) -> Gaussians:
    """gsplat's SfM init: a Gaussian per point xyz [P,3] with colour rgb [P,3] in [0,1] (DC SH),
    isotropic scale init_scale x the RMS distance to its 3 nearest neighbours (at least
    ``min_scale``, so duplicate points stay finite), opacity ``opacity``, random quaternions
    (uniform in [0,1)^4, as simple_trainer's ``torch.rand``), higher SH bands zero."""
    assert xyz.shape == rgb.shape and xyz.ndim == 2 and xyz.shape[1] == 3, (
        f"xyz and rgb must both be [P,3], got {tuple(xyz.shape)} and {tuple(rgb.shape)}"
    )
    n = xyz.shape[0]
    xyz = xyz.float()
    dist = knn_mean_distance(xyz).clamp_min(min_scale)
    log_scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)
    sh = torch.zeros(n, num_sh_bases(sh_degree), 3)
    sh[:, 0] = rgb_to_sh0(rgb.float())
    logit = math.log(opacity / (1 - opacity))
    return Gaussians(
        xyz.clone(), torch.rand(n, 4, generator=generator), log_scales, torch.full((n,), logit), sh
    )


def to_params(g: Gaussians) -> torch.nn.ParameterDict:
    """Trainable parameters (copies) with gsplat's names."""
    g = g.detach()
    tensors = {
        "means": g.means,
        "scales": g.log_scales,
        "quats": g.quats,
        "opacities": g.opacity_logits,
        "sh0": g.sh[:, :1],
        "shN": g.sh[:, 1:],
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone().contiguous()) for k, v in tensors.items()})


def from_params(
    params: torch.nn.ParameterDict | dict[str, Tensor], sh_degree: int | None = None
) -> Gaussians:
    """Gaussians built from the parameters (differentiable: the tensors are the parameters), with
    SH bands up to ``sh_degree`` (default: all; fewer bands skip copying the rest)."""
    shN = params["shN"]
    if sh_degree is not None:
        shN = shN[:, : num_sh_bases(sh_degree) - 1]
    return Gaussians(
        means=params["means"],
        quats=params["quats"],
        log_scales=params["scales"],
        opacity_logits=params["opacities"],
        sh=torch.cat([params["sh0"], shN], dim=1),
    )
