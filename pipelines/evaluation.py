"""Held-out evaluation: render Gaussians into test cameras and score them against the photos.

Renders are clamped to [0, 1] before scoring (as gsplat's simple_trainer evaluates). PSNR and
SSIM are means over the views of the per-view values; LPIPS is included when an
:class:`pipelines.metrics.LPIPS` is given (its weights are local files), else null.

Examples:
    >>> result = evaluate(g, cams, images, names)                 # doctest: +SKIP
    >>> result.summary()                                           # doctest: +SKIP
    {'psnr': 27.1, 'ssim': 0.86, 'lpips': None}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians, render
from pipelines.metrics import LPIPS, psnr, ssim
from pipelines.progress import CancelToken, Progress, check, no_progress


@dataclass(frozen=True)
class ViewScore:
    name: str  # the frame's file path (or a label)
    psnr: float
    ssim: float
    lpips: float | None = None


@dataclass
class EvalResult:
    views: list[ViewScore] = field(default_factory=list)
    width: int = 0
    height: int = 0

    def summary(self) -> dict[str, float | None]:
        """{"psnr", "ssim", "lpips"}: means over the views (None when there are no views / no LPIPS)."""
        if not self.views:
            return {"psnr": None, "ssim": None, "lpips": None}

        def mean(xs: list[float]) -> float:
            return float(sum(xs) / len(xs))

        lp = [v.lpips for v in self.views]
        return {
            "psnr": mean([v.psnr for v in self.views]),
            "ssim": mean([v.ssim for v in self.views]),
            "lpips": mean(lp) if all(x is not None for x in lp) else None,  # type: ignore[arg-type]
        }

    def to_metrics(self) -> dict:
        """run.json's "metrics" value: {"test": summary, "per_view": [...], "resolution": [W, H],
        "views": n}."""
        return {
            "test": self.summary(),
            "per_view": [
                {"file_path": v.name, "psnr": _json_num(v.psnr), "ssim": _json_num(v.ssim), "lpips": v.lpips}
                for v in self.views
            ],
            "resolution": [self.width, self.height],
            "views": len(self.views),
        }


def _json_num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@torch.no_grad()
def evaluate(
    g: Gaussians,
    cameras: Cameras,
    images: Tensor,  # [V, H, W, 3] or [V, 3, H, W] in [0, 1]
    names: list[str] | None = None,
    *,
    sh_degree: int | None = None,
    background: Tensor | None = None,  # [3]
    lpips: LPIPS | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> EvalResult:
    """Score ``g`` on each camera against its image, one view at a time."""
    V = len(cameras)
    if images.shape[-1] != 3:
        images = images.permute(0, 2, 3, 1)
    assert images.shape == (V, cameras.height, cameras.width, 3), (
        f"images must be [{V},{cameras.height},{cameras.width},3], got {tuple(images.shape)}"
    )
    names = names if names is not None else [f"view_{i:03d}" for i in range(V)]
    assert len(names) == V, (len(names), V)
    g = g.detach()
    cams = cameras.to(g.device)
    scores = []
    for i in range(V):
        check(cancel)
        progress(i / max(V, 1), f"evaluating view {i + 1}/{V}")
        out = render(
            g, cams[i], sh_degree=sh_degree, background=background, near_plane=near_plane, far_plane=far_plane
        )
        pred = out.rgb[0].clamp(0, 1).permute(2, 0, 1)  # [3, H, W]
        gt = images[i].to(pred).permute(2, 0, 1)
        lp = float(lpips(pred, gt)) if lpips is not None else None
        scores.append(ViewScore(names[i], float(psnr(pred, gt)), float(ssim(pred, gt)), lp))
    progress(1.0, f"evaluated {V} views")
    return EvalResult(scores, cameras.width, cameras.height)
