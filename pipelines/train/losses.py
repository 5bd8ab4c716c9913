"""Training losses of the official recipes, computed the same way for every model.

Terms (weights in :class:`LossWeights`; a term with weight 0 is not computed):

- ``mse``: mean squared error of the renders of the target views (not clamped) and the targets.
- ``perceptual``: VGG-19 feature distance (``perceptual.py``), only when a weights file is given.
- ``opacity``: mean opacity (sigmoid) of the rendered Gaussians, a sparsity prior.
- ``depth``: the camera z of each input pixel's Gaussian (pixel-aligned models) against that
  pixel's depth (synth ground truth, or supplied depth maps); for other models (GeoLRM) the
  rendered depth of each target view against the target's depth, as GeoLRM's recipe. Pixels with
  depth 0 (unknown) are left out. Two forms:
  ``"disparity"`` (Long-LRM's): disparities 1 / max(z, 1e-2), each view normalised to
  (d - median) / mean |d - median| over its known pixels, smooth-L1; scale- and shift-invariant,
  so it also takes relative depth (monocular estimates). ``"log"``: mean |log z - log z_gt|, for
  metric depth in the model's units (the procedural data's).
- ``mask``: mean squared error of the rendered alpha of the target views against their surface
  mask (target depth > 0), GeoLRM's mask term; needs target depth.
- ``occupancy``: GeoLRM's proposal loss (:func:`occupancy_loss`), given by the adapter.

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
    mask: float = 0.0
    occupancy: float = 0.0


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


def occupancy_loss(logits: Tensor, occupied: Tensor) -> Tensor:
    """GeoLRM's proposal loss: binary cross-entropy of the occupancy logits [...] against the
    occupied voxels (bool, same shape) plus MonoScene's scene-class affinity term (geo_scal):
    -log precision - log recall - log specificity of the soft prediction p = sigmoid(logits),
    which keeps the few occupied voxels of a mostly empty grid from being ignored."""
    gt = occupied.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, gt)
    p = torch.sigmoid(logits)
    eps = 1e-6
    tp = (p * gt).sum()
    precision = tp / p.sum().clamp_min(eps)
    recall = tp / gt.sum().clamp_min(eps)
    specificity = ((1 - p) * (1 - gt)).sum() / (1 - gt).sum().clamp_min(eps)
    scal = -sum(torch.log(v.clamp_min(eps)) for v in (precision, recall, specificity))
    return bce + scal


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
    and ``"psnr"`` (of the unclamped renders, for the log; absent when nothing is rendered).
    background [3] or [B, 3]: the colour behind the Gaussians (white in the official recipe)."""
    terms: dict[str, Tensor] = {}
    bg = background.expand(len(batch), 3) if background.ndim == 1 else background
    mse, perc, opac, depth, mask = [], [], [], [], []
    for i, (g, p) in enumerate(zip(pred.gaussians, batch, strict=True) if pred.gaussians else ()):
        r = render(g, p.target_cameras.to(g.device), background=bg[i].to(g.device))
        rgb = r.rgb.permute(0, 3, 1, 2)  # [Vt, 3, H, W]
        target = p.target_images.to(rgb.device)
        mse.append(F.mse_loss(rgb, target))
        if perceptual is not None and weights.perceptual > 0:
            perc.append(perceptual(rgb, target))
        if weights.opacity > 0:
            opac.append(g.opacities().mean())
        relative = p.depth_kind == "relative"
        if weights.depth > 0 and pred.pixel_depth is not None and p.input_depth is not None:
            gt = p.input_depth.to(pred.pixel_depth.device)
            depth.append(depth_loss(pred.pixel_depth[i], gt, weights.depth_form, relative=relative))
        elif weights.depth > 0 and pred.pixel_depth is None and p.target_depth is not None:
            gt = p.target_depth.to(rgb.device)
            depth.append(depth_loss(r.depth[..., 0], gt, weights.depth_form, relative=relative))
        if weights.mask > 0 and p.target_depth is not None:
            mask.append(F.mse_loss(r.alpha[..., 0], (p.target_depth.to(rgb.device) > 0).to(rgb.dtype)))
    for name, values in (
        ("mse", mse),
        ("perceptual", perc),
        ("opacity", opac),
        ("depth", depth),
        ("mask", mask),
    ):
        if values:
            terms[name] = getattr(weights, name) * torch.stack(values).mean()
    for name, value in pred.terms.items():
        terms[name] = getattr(weights, name) * value
    terms["total"] = torch.stack(list(terms.values())).sum()
    if mse:
        terms["psnr"] = torch.tensor(psnr_from_mse(torch.stack(mse).mean().detach()))
    return terms
