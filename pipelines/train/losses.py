"""Training losses of the official recipes, computed the same way for every model.

Terms (weights in :class:`LossWeights`; a term with weight 0 is not computed):

- ``mse``: mean squared error of the renders of the target views (not clamped) and the targets.
- ``perceptual``: VGG-19 feature distance (``perceptual.py``), only when a weights file is given.
- ``opacity``: mean opacity (sigmoid) of the rendered Gaussians, a sparsity prior.
- ``depth``: the camera z of each input pixel's Gaussian (pixel-aligned models) against that
  pixel's depth (synth ground truth, or supplied depth maps). Pixels with depth 0 (unknown) are
  left out. Two forms:
  ``"disparity"`` (Long-LRM's): disparities 1 / max(z, 1e-2), each view normalised to
  (d - median) / mean |d - median| over its known pixels, smooth-L1; scale- and shift-invariant,
  so it also takes relative depth (monocular estimates). ``"log"``: mean |log z - log z_gt|, for
  metric depth in the model's units (the procedural data's).

Examples:
    >>> w = LossWeights(mse=1.0, opacity=0.1, depth=0.01)
    >>> terms = compute_losses(pred, batch, w, background=torch.ones(3))   # doctest: +SKIP
    >>> terms["total"].backward()                                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.gaussians.render import render
from pipelines.train.adapters import Prediction, Prepared
from pipelines.train.perceptual import PerceptualLoss

DepthForm = Literal["disparity", "log"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (module docstring). Long-LRM's recipe: mse 1, perceptual 1,
    opacity 0.1, depth 0.01 (disparity)."""

    mse: float = 1.0
    perceptual: float = 1.0
    opacity: float = 0.1
    depth: float = 0.01
    depth_form: DepthForm = "disparity"


def normalized_disparity(z: Tensor, valid: Tensor) -> Tensor:
    """z [V, ...] camera depth -> per-view (d - median) / mean |d - median| of d = 1 / max(z, 1e-2)
    over the ``valid`` pixels (others come out 0)."""
    d = 1.0 / z.clamp_min(1e-2)
    out = torch.zeros_like(d)
    for v in range(d.shape[0]):
        m = valid[v]
        if int(m.sum()) < 2:
            continue
        x = d[v][m]
        med = x.median()
        out[v][m] = (x - med) / (x - med).abs().mean().clamp_min(1e-6)
    return out


def depth_loss(pred: Tensor, gt: Tensor, form: DepthForm, *, relative: bool = False) -> Tensor:
    """pred, gt [V, H, W] camera z (gt 0 = unknown); ``relative`` depths only allow the
    disparity form."""
    valid = (gt > 0) & torch.isfinite(gt)
    if not bool(valid.any()):
        return pred.sum() * 0.0
    if form == "disparity" or relative:
        a, b = normalized_disparity(pred, valid), normalized_disparity(gt, valid)
        return F.smooth_l1_loss(a[valid], b[valid])
    return (pred[valid].clamp_min(1e-4).log() - gt[valid].log()).abs().mean()


def psnr_from_mse(mse: Tensor | float) -> float:
    return float(-10 * torch.log10(torch.as_tensor(mse, dtype=torch.float64).clamp_min(1e-12)))


def compute_losses(
    pred: Prediction,
    batch: list[Prepared],
    weights: LossWeights,
    *,
    background: Tensor,
    perceptual: PerceptualLoss | None = None,
) -> dict[str, Tensor]:
    """Every weighted term (each the mean over the batch's samples), their sum under ``"total"``
    and ``"psnr"`` (of the unclamped renders, for the log). background [3] or [B, 3]: the colour
    behind the Gaussians (white in the official recipe)."""
    terms: dict[str, Tensor] = {}
    bg = background.expand(len(batch), 3) if background.ndim == 1 else background
    mse, perc, opac, depth = [], [], [], []
    for i, (g, p) in enumerate(zip(pred.gaussians, batch, strict=True)):
        r = render(g, p.target_cameras.to(g.device), background=bg[i].to(g.device))
        rgb = r.rgb.permute(0, 3, 1, 2)  # [Vt, 3, H, W]
        target = p.target_images.to(rgb.device)
        mse.append(F.mse_loss(rgb, target))
        if perceptual is not None and weights.perceptual > 0:
            perc.append(perceptual(rgb, target))
        if weights.opacity > 0:
            opac.append(g.opacities().mean())
        if weights.depth > 0 and p.input_depth is not None:
            gt = p.input_depth.to(pred.pixel_depth.device)
            depth.append(
                depth_loss(pred.pixel_depth[i], gt, weights.depth_form, relative=p.depth_kind == "relative")
            )
    terms["mse"] = weights.mse * torch.stack(mse).mean()
    if perc:
        terms["perceptual"] = weights.perceptual * torch.stack(perc).mean()
    if opac:
        terms["opacity"] = weights.opacity * torch.stack(opac).mean()
    if depth:
        terms["depth"] = weights.depth * torch.stack(depth).mean()
    terms["total"] = torch.stack(list(terms.values())).sum()
    terms["psnr"] = torch.tensor(psnr_from_mse(torch.stack(mse).mean().detach()))
    return terms
