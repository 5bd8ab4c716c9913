"""``render``: Gaussians seen by cameras, with one signature and two backends.

- ``"gsplat"``: gsplat 1.5.3 ``rasterization`` in classic mode (CUDA tensors; gsplat JIT-compiles
  its kernels on first use).
- ``"torch"``: ours, on the CPU and differentiable: EWA projection in PyTorch
  (:mod:`pipelines.gaussians.projection`), SH colours in PyTorch, and a numba compositor with a
  hand-written backward (:mod:`pipelines.gaussians.raster_cpu`). It follows gsplat's classic
  semantics and returns the metadata ``gsplat.strategy.DefaultStrategy`` reads, so densification
  code is shared between the backends.
- ``"auto"`` picks gsplat when the Gaussians are on CUDA and gsplat can run there, else ours.

Colour: SH evaluated along (mean - camera centre), then clamp_min(. + 0.5, 0) (Inria's and
gsplat's convention). Depth: expected camera z, sum z_i w_i / clamp_min(alpha, 1e-10) (gsplat's
"RGB+ED").

Examples:
    >>> g = Gaussians.random(2000, generator=torch.Generator().manual_seed(0))
    >>> cams = Cameras.look_at(torch.tensor([[0., 0., -4.]]), torch.zeros(1, 3), fov_y_deg=50,
    ...                        width=64, height=48)
    >>> out = render(g, cams, background=torch.ones(3))
    >>> out.rgb.shape, out.depth.shape, out.meta["means2d"].shape
    (torch.Size([1, 48, 64, 3]), torch.Size([1, 48, 64, 1]), torch.Size([1, 2000, 2]))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.project_cpu import project_sh
from pipelines.gaussians.projection import project
from pipelines.gaussians.raster_cpu import rasterize
from pipelines.gaussians.sh import eval_sh

Backend = Literal["auto", "gsplat", "torch"]
Background = tuple[float, float, float]  # RGB in [0, 1] behind the Gaussians
BLACK: Background = (0.0, 0.0, 0.0)
WHITE: Background = (1.0, 1.0, 1.0)


@dataclass
class Render:
    """Images of C cameras and the per-(camera, Gaussian) metadata of the pass.

    meta holds what gsplat's DefaultStrategy reads: "means2d" [C, N, 2] (the tensor used in the
    graph; its .grad after backward; retain_grad already called when it requires grad),
    "radii" int32 [C, N, 2] (0 = culled), "width", "height", "n_cameras", "gaussian_ids" (None:
    dense layout); plus "depths" [C, N], "conics" [C, N, 3], "opacities" [C, N], "backend".
    """

    rgb: Tensor  # [C, H, W, 3]
    alpha: Tensor  # [C, H, W, 1]
    depth: Tensor | None  # [C, H, W, 1] expected camera z (0 where nothing was drawn); None if not asked
    meta: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _gsplat_importable() -> bool:
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def gsplat_available(device: torch.device | str) -> bool:
    """Whether gsplat's CUDA rasterizer can be used for tensors on ``device`` (a CUDA device,
    CUDA visible to torch, gsplat importable). Used by ``render(backend="auto")`` and test skips.
    Building gsplat's kernels happens on first use and is not checked here."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available() and _gsplat_importable()


def render(
    g: Gaussians,
    cams: Cameras,
    *,
    sh_degree: int | None = None,
    background: Tensor | None = None,  # [3] or [C, 3]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
    absgrad: bool = False,
    depth: bool = True,
) -> Render:
    """Render Gaussians into every camera.

    g.means [N,3] world; g.quats [N,4] wxyz, need not be unit; g.log_scales [N,3]; g.opacity_logits
    [N]; g.sh [N,K,3], DC first. cams.c2w [C,4,4] OpenCV; cams.K [C,3,3] pixels; one image size.
    sh_degree: degree used (default: all of g.sh; at most g.sh_degree; the optimizer raises it).
    background: [3] or [C,3] colour behind the Gaussians (default black), may require grad.
    near_plane / far_plane: camera-z culling; eps2d: low-pass dilation in pixels^2.
    absgrad: also accumulate |dL/dmeans2d| into meta["means2d"].absgrad (AbsGS densification).
    depth: also render the expected depth (gsplat then rasterizes 4 channels instead of 3; the
    optimizer's steps leave it out).

    Returns rgb [C,H,W,3] (not clamped above: SH colours may exceed 1), alpha [C,H,W,1] in [0,1],
    depth [C,H,W,1] expected camera z, and meta (see :class:`Render`). Differentiable w.r.t. every
    Gaussian parameter and the background; not w.r.t. the cameras.
    """
    degree = g.sh_degree if sh_degree is None else int(sh_degree)
    assert 0 <= degree <= g.sh_degree, f"sh_degree {degree} > the Gaussians' SH degree {g.sh_degree}"
    assert cams.device == g.device or (cams.device.type == g.device.type == "cuda"), (
        f"cameras on {cams.device}, Gaussians on {g.device}"
    )
    C = len(cams)
    dt = g.means.dtype
    if background is None:
        bg = torch.zeros(C, 3, dtype=dt, device=g.device)
    else:
        assert background.shape in ((3,), (C, 3)), (
            f"background must be [3] or [C,3], got {tuple(background.shape)}"
        )
        bg = background.to(device=g.device, dtype=dt).expand(C, 3)
    if backend == "auto":
        backend = "gsplat" if gsplat_available(g.device) else "torch"
    if backend == "gsplat":
        assert gsplat_available(g.device), (
            f"gsplat needs CUDA tensors and a CUDA device; Gaussians are on {g.device}"
        )
        return _render_gsplat(g, cams, degree, bg, near_plane, far_plane, eps2d, absgrad, depth)
    if backend == "torch":
        assert g.device.type == "cpu", f"the torch backend runs on the CPU; Gaussians are on {g.device}"
        out = _render_torch(g, cams, degree, bg, near_plane, far_plane, eps2d, absgrad)
        return out if depth else replace(out, depth=None)
    raise ValueError(f"unknown backend {backend!r} (auto, gsplat, torch)")


def _render_torch(
    g: Gaussians,
    cams: Cameras,
    degree: int,
    bg: Tensor,
    near: float,
    far: float,
    eps2d: float,
    absgrad: bool,
    fused: bool = True,
) -> Render:
    """Our CPU backend (float32 or float64): projection and SH colours by the fused numba kernels
    (``fused``, the fast path) or by the PyTorch reference (projection.py, sh.py), then numba
    compositing. Both paths give the same values and gradients (tests compare them)."""
    dt = g.means.dtype
    cams = cams.to(dtype=dt)
    C, N = len(cams), g.num
    W, H = cams.width, cams.height
    opac = g.opacities()  # [N]
    if fused:
        means2d, conics, depths, colors, radii = project_sh(
            g.means, g.quats, g.scales(), opac, g.sh, cams.w2c(), cams.K, W, H, sh_degree=degree, eps2d=eps2d,
            near_plane=near, far_plane=far,
        )  # fmt: skip
    else:
        proj = project(g.means, g.quats, g.scales(), opac, cams.w2c(), cams.K, W, H, eps2d=eps2d,
                       near_plane=near, far_plane=far)  # fmt: skip
        means2d, conics, depths, radii = proj.means2d, proj.conics, proj.depths, proj.radii
        dirs = g.means[None, :, :] - cams.centers()[:, None, :]  # [C, N, 3]
        dirs = torch.nn.functional.normalize(dirs, dim=-1)
        colors = torch.clamp_min(eval_sh(g.sh, dirs, degree) + 0.5, 0.0)  # [C, N, 3]
    opacities = opac[None, :].expand(C, N)  # [C, N]
    if means2d.requires_grad:
        means2d.retain_grad()
    out = rasterize(means2d, conics, colors, opacities, depths, radii, bg, width=W, height=H, absgrad=absgrad)
    depth = out.depth / out.alpha.clamp_min(1e-10)
    meta = dict(
        means2d=means2d, radii=radii, width=W, height=H, n_cameras=C, gaussian_ids=None,
        depths=depths, conics=conics, opacities=opacities, backend="torch",
    )  # fmt: skip
    return Render(rgb=out.rgb, alpha=out.alpha, depth=depth, meta=meta)


def _render_gsplat(
    g: Gaussians,
    cams: Cameras,
    degree: int,
    bg: Tensor,
    near: float,
    far: float,
    eps2d: float,
    absgrad: bool,
    depth: bool = True,
) -> Render:
    """gsplat's CUDA rasterizer, classic mode, dense (packed=False) metadata, RGB+ED (RGB without
    ``depth``)."""
    import gsplat

    cams = cams.to(device=g.device, dtype=torch.float32)
    k = (degree + 1) ** 2
    colors, alphas, meta = gsplat.rasterization(
        means=g.means.float(), quats=g.quats.float(), scales=g.scales().float(),
        opacities=g.opacities().float(), colors=g.sh[:, :k].float(), viewmats=cams.w2c(), Ks=cams.K,
        width=cams.width, height=cams.height,
        near_plane=near, far_plane=far, eps2d=eps2d, sh_degree=degree, packed=False, backgrounds=bg.float(),
        render_mode="RGB+ED" if depth else "RGB", absgrad=absgrad, rasterize_mode="classic",
    )  # fmt: skip
    means2d = meta["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    meta = dict(meta)
    meta["backend"] = "gsplat"
    return Render(rgb=colors[..., :3], alpha=alphas, depth=colors[..., 3:4] if depth else None, meta=meta)
