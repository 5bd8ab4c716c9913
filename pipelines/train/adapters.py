"""Per-model training adapters: what differs between models, behind one small interface.

An adapter builds the network of a registered model from a preset, maps a :class:`Sample`
(world frame) into the model's frame and size exactly as the model's reconstructor does
(:meth:`prepare`, run in data workers), and runs the network on a batch of prepared samples
(:meth:`forward`) returning Gaussians in the model's frame plus what the model-specific losses
need. Rendering and the losses themselves are generic (``losses.py``).

- ``long-lrm``: official preprocessing (pose normalisation from the inputs, ``scene_scale``);
  pixel-aligned Gaussians; pruning during training only when ``prune`` (official stage 3);
  pixel depth = camera z of each pixel's Gaussian in its input view (the official depth loss).
- ``ttt-lrm``: tttLRM's preprocessing (mean / first camera, positions in [-1, 1]) and the
  offline schedule; pixel-aligned like Long-LRM.

GeoLRM has no adapter yet: its batches mix input-view counts (1-7 per sample) and its two-stage
recipe (occupancy proposal, then reconstruction) needs its own losses; not in this trainer.

Examples:
    >>> ad = make_adapter("long-lrm", "tiny")                        # doctest: +SKIP
    >>> batch = [ad.prepare(src[i]) for i in range(2)]                # doctest: +SKIP
    >>> pred = ad.forward(batch, generator=torch.Generator())        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.train.data import DepthKind, Sample
from pipelines.transforms import Similarity


@dataclass
class Prepared:
    """One sample in the model's frame and size.

    images [Vi,3,H,W] in [0,1] and cameras [Vi] (model frame); target_images [Vt,3,Ht,Wt] and
    target_cameras [Vt] (model frame); input_depth [Vi,H,W] / target_depth [Vt,Ht,Wt] camera
    z-depth in model units, 0 = unknown (None: no depth); to_model: world -> model frame."""

    images: Tensor
    cameras: Cameras
    target_images: Tensor
    target_cameras: Cameras
    input_depth: Tensor | None
    target_depth: Tensor | None
    depth_kind: DepthKind
    to_model: Similarity


@dataclass
class Prediction:
    """gaussians: one per sample, in the model's frame; pixel_depth [B,Vi,H,W]: camera z of the
    pixel-aligned Gaussians in their input views; info: scalars for the log."""

    gaussians: list[Gaussians]
    pixel_depth: Tensor
    info: dict[str, float] = field(default_factory=dict)


class Adapter(Protocol):
    name: str
    preset: str
    model: nn.Module

    def prepare(self, sample: Sample) -> Prepared: ...

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction: ...

    def trainable_parameters(self) -> list[nn.Parameter]: ...

    def export_metadata(self) -> dict[str, str]: ...


def _targets_in(
    sample: Sample, to_model: Similarity, width: int, height: int, resize
) -> tuple[Tensor, Cameras]:
    """Target images resized like the inputs and target cameras in the model frame."""
    t = resize(sample.targets, width, height)
    cams = t.cameras.to(dtype=torch.float64).transform(to_model).to(dtype=torch.float32)
    return t.images, cams


def _resize_depth(depth: Tensor | None, width: int, height: int) -> Tensor | None:
    if depth is None or depth.shape[-2:] == (height, width):
        return depth
    return F.interpolate(depth[:, None], size=(height, width), mode="nearest")[:, 0]


def pixel_z(gaussians: Gaussians, cameras: Cameras) -> Tensor:
    """Camera z [V,H,W] of pixel-aligned Gaussians (means [V*H*W,3], views then rows then
    columns) in their own input cameras [V] (same frame)."""
    v, h, w = len(cameras), cameras.height, cameras.width
    means = gaussians.means.reshape(v, h * w, 3)
    c2w = cameras.c2w.to(means)
    return torch.einsum("vpk,vk->vp", means - c2w[:, None, :3, 3], c2w[:, :3, 2]).reshape(v, h, w)


class _PixelAligned:
    """Shared by Long-LRM and tttLRM: stacked batch in, pixel-aligned Gaussians out."""

    name: str
    preset: str
    model: nn.Module
    prune_ratio: float = 0.0
    random_ratio: float = 0.0
    bf16: bool = True  # autocast the network on CUDA (the Gaussians and rendering stay float32)

    def _prepared(self, sample: Sample, prep, w: int, h: int, resize_views) -> Prepared:
        """The :class:`Prepared` of ``sample`` from the model's preprocessing ``prep`` (inputs at
        w x h in the model frame): targets and depths mapped into that frame."""
        to_model = prep.to_world.inverse()
        t_img, t_cams = _targets_in(sample, to_model, w, h, resize_views)
        s = to_model.scale
        return Prepared(
            prep.images, prep.cameras, t_img, t_cams,
            None if sample.input_depth is None else _resize_depth(sample.input_depth, w, h) * s,
            None if sample.target_depth is None else _resize_depth(sample.target_depth, w, h) * s,
            sample.depth_kind, to_model,
        )  # fmt: skip

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction:
        from pipelines.models.blocks.gaussian_head import prune

        sizes = {(tuple(p.images.shape), p.cameras.width, p.cameras.height) for p in batch}
        assert len(sizes) == 1, f"a batch needs one number of views and one size, got {sorted(sizes)}"
        dev = next(self.model.parameters()).device
        images = torch.stack([p.images for p in batch]).to(dev)  # [B, V, 3, H, W]
        c2w = torch.stack([p.cameras.c2w for p in batch]).to(dev)  # [B, V, 4, 4]
        K = torch.stack([p.cameras.K for p in batch]).to(dev)  # [B, V, 3, 3]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16 and dev.type == "cuda"):
            out = self.model(images, c2w, K)
        gs = out.to_gaussians()  # float32, every activation
        depth = torch.stack([pixel_z(g, p.cameras.to(dev)) for g, p in zip(gs, batch, strict=True)])
        if self.prune_ratio > 0:
            gs = [prune(g, self.prune_ratio, self.random_ratio, generator) for g in gs]
        return Prediction(gs, pixel_depth=depth)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def export_metadata(self) -> dict[str, str]:
        return {"model": self.name, "preset": self.preset, "config": self.model.config.to_json()}  # type: ignore[union-attr]


class LongLRMAdapter(_PixelAligned):
    name = "long-lrm"

    def __init__(self, model: nn.Module, preset: str, *, prune_in_training: bool = False) -> None:
        self.model, self.preset = model, preset
        c = model.config  # type: ignore[union-attr]
        if prune_in_training:
            self.prune_ratio, self.random_ratio = c.prune_ratio, c.random_ratio

    def prepare(self, sample: Sample) -> Prepared:
        from pipelines.models.long_lrm.preprocess import prepare, resize_views

        c = self.model.config  # type: ignore[union-attr]
        cams = sample.inputs.cameras
        prep = prepare(
            sample.inputs, resize_h=cams.height, multiple=c.patch_size_out, scene_scale=c.scene_scale
        )
        return self._prepared(sample, prep, prep.cameras.width, prep.cameras.height, resize_views)


class TTTLRMAdapter(_PixelAligned):
    name = "ttt-lrm"

    def __init__(self, model: nn.Module, preset: str) -> None:
        self.model, self.preset = model, preset

    def prepare(self, sample: Sample) -> Prepared:
        from pipelines.models.ttt_lrm.preprocess import prepare, resize_views

        c = self.model.config  # type: ignore[union-attr]
        cams = sample.inputs.cameras
        p = c.patch_size
        w, h = cams.width // p * p, cams.height // p * p
        prep = prepare(sample.inputs, width=w, height=h, frame=c.frame)
        return self._prepared(sample, prep, w, h, resize_views)


# ------------------------------------------------------------------------------ factory
def build_model(name: str, preset: str, *, seed: int = 0) -> nn.Module:
    """A freshly initialised network of a registered model (seeded, global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "long-lrm":
            from pipelines.models.long_lrm.config import PRESETS
            from pipelines.models.long_lrm.model import LongLRM

            return LongLRM(_preset(PRESETS, name, preset))
        if name == "ttt-lrm":
            from pipelines.models.ttt_lrm.config import PRESETS as TP
            from pipelines.models.ttt_lrm.model import TTTLRM

            return TTTLRM(_preset(TP, name, preset))
    from pipelines.models.base import MODELS

    raise ValueError(f"no trainer adapter for model {name!r}; registered models: {', '.join(sorted(MODELS))}")


def _preset(presets: dict, name: str, preset: str):
    if preset not in presets:
        raise ValueError(f"unknown {name} preset {preset!r}; available: {', '.join(presets)}")
    return presets[preset]


def make_adapter(
    name: str,
    preset: str,
    *,
    seed: int = 0,
    model: nn.Module | None = None,
    prune_in_training: bool = False,
) -> Adapter:
    """The adapter of model ``name`` around ``model`` (default: a fresh seeded network)."""
    model = model if model is not None else build_model(name, preset, seed=seed)
    if name == "long-lrm":
        return LongLRMAdapter(model, preset, prune_in_training=prune_in_training)
    if name == "ttt-lrm":
        return TTTLRMAdapter(model, preset)
    raise ValueError(f"no trainer adapter for model {name!r}")


def set_grad_checkpointing(model: nn.Module, enabled: bool) -> bool:
    """Turn per-block activation checkpointing on where the model supports it; returns whether
    it did."""
    if hasattr(model, "grad_checkpointing"):
        model.grad_checkpointing = enabled  # type: ignore[assignment]
        return True
    return False
