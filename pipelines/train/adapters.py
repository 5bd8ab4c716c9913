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
- ``geolrm``: the cube frame (the procedural object stream is in it already; other data goes
  through ``normalize_to_cube`` as at inference), square inputs at the preset's size. Two stages
  as officially: ``occupancy`` trains the proposal network on ground-truth occupancy unprojected
  from the depth maps (BCE + MonoScene's geo-scal loss); ``reconstruction`` trains the
  reconstruction network with the proposal frozen (its anchors, as at inference).

Examples:
    >>> ad = make_adapter("long-lrm", "tiny")                        # doctest: +SKIP
    >>> batch = [ad.prepare(src[i]) for i in range(2)]                # doctest: +SKIP
    >>> pred = ad.forward(batch, generator=torch.Generator())        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.train.data import DepthKind, Sample
from pipelines.transforms import Similarity

GeoStage = Literal["occupancy", "reconstruction"]


@dataclass
class Prepared:
    """One sample in the model's frame and size.

    images [Vi,3,H,W] in [0,1] and cameras [Vi] (model frame); target_images [Vt,3,Ht,Wt] and
    target_cameras [Vt] (model frame); input_depth [Vi,H,W] / target_depth [Vt,Ht,Wt] camera
    z-depth in model units, 0 = unknown (None: no depth); to_model: world -> model frame;
    extra: model-specific tensors (GeoLRM: ``occupancy`` [G,G,G] bool)."""

    images: Tensor
    cameras: Cameras
    target_images: Tensor
    target_cameras: Cameras
    input_depth: Tensor | None
    target_depth: Tensor | None
    depth_kind: DepthKind
    to_model: Similarity
    extra: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """gaussians: one per sample, in the model's frame (None when the stage renders nothing);
    pixel_depth [B,Vi,H,W]: camera z of the pixel-aligned Gaussians in their input views (None
    for models whose Gaussians are not pixel-aligned); aux: extra unweighted loss terms by name
    (their weights are in the loss config under the same name)."""

    gaussians: list[Gaussians] | None
    pixel_depth: Tensor | None = None
    aux: dict[str, Tensor] = field(default_factory=dict)
    info: dict[str, float] = field(default_factory=dict)


class Adapter(Protocol):
    name: str
    preset: str
    model: nn.Module
    renders: bool  # whether forward returns Gaussians to render into the targets

    def prepare(self, sample: Sample) -> Prepared: ...

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction: ...

    def trainable_parameters(self) -> list[nn.Parameter]: ...

    def export_metadata(self) -> dict[str, str]: ...


def _targets_in(sample: Sample, to_model: Similarity, width: int, height: int, resize) -> tuple[Tensor, Cameras]:
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
    renders = True
    prune_ratio: float = 0.0
    random_ratio: float = 0.0

    def _network(self, images: Tensor, c2w: Tensor, K: Tensor):
        raise NotImplementedError

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction:
        from pipelines.models.blocks.gaussian_head import prune

        sizes = {(tuple(p.images.shape), p.cameras.width, p.cameras.height) for p in batch}
        assert len(sizes) == 1, f"a batch needs one number of views and one size, got {sorted(sizes)}"
        dev = next(self.model.parameters()).device
        images = torch.stack([p.images for p in batch]).to(dev)  # [B, V, 3, H, W]
        c2w = torch.stack([p.cameras.c2w for p in batch]).to(dev)  # [B, V, 4, 4]
        K = torch.stack([p.cameras.K for p in batch]).to(dev)  # [B, V, 3, 3]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = self._network(images, c2w, K)
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
        prep = prepare(sample.inputs, resize_h=cams.height, multiple=c.patch_size_out, scene_scale=c.scene_scale)
        to_model = prep.to_world.inverse()
        w, h = prep.cameras.width, prep.cameras.height
        t_img, t_cams = _targets_in(sample, to_model, w, h, resize_views)
        s = to_model.scale
        return Prepared(
            prep.images, prep.cameras, t_img, t_cams,
            None if sample.input_depth is None else _resize_depth(sample.input_depth, w, h) * s,
            None if sample.target_depth is None else _resize_depth(sample.target_depth, w, h) * s,
            sample.depth_kind, to_model,
        )  # fmt: skip

    def _network(self, images: Tensor, c2w: Tensor, K: Tensor):
        return self.model(images, c2w, K)


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
        to_model = prep.to_world.inverse()
        t_img, t_cams = _targets_in(sample, to_model, w, h, resize_views)
        s = to_model.scale
        return Prepared(
            prep.images, prep.cameras, t_img, t_cams,
            None if sample.input_depth is None else _resize_depth(sample.input_depth, w, h) * s,
            None if sample.target_depth is None else _resize_depth(sample.target_depth, w, h) * s,
            sample.depth_kind, to_model,
        )  # fmt: skip

    def _network(self, images: Tensor, c2w: Tensor, K: Tensor):
        return self.model(images, c2w, K)


# ------------------------------------------------------------------------------ GeoLRM
def occupancy_from_depth(cameras: Cameras, depth: Tensor, grid: int, half: float) -> Tensor:
    """Ground-truth occupancy [G,G,G] bool: every pixel with depth > 0 unprojected (cameras in the
    cube frame, depth [V,H,W] camera z) into the voxel whose centre (``linspace(-1, 1, G) * half``
    per axis, the proposal grid) is nearest; points outside the cube are dropped."""
    o, d = cameras.pixel_rays()  # [V, H, W, 3], unit directions
    cos = torch.einsum("vhwk,vk->vhw", d, cameras.c2w[:, :3, 2])  # z per unit distance
    valid = depth > 0
    pts = (o + d * (depth / cos.clamp_min(1e-6))[..., None])[valid]  # [P, 3]
    idx = torch.round((pts / half + 1) * (grid - 1) / 2).long()
    inside = ((idx >= 0) & (idx < grid)).all(-1)
    idx = idx[inside]
    occ = torch.zeros(grid, grid, grid, dtype=torch.bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return occ


def geo_scal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """MonoScene's geometry scale loss: BCE of the soft precision, recall and specificity of the
    occupancy probabilities toward 1 (logits, target [B, ...] with target in {0, 1})."""
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    eps = 1e-6
    tp = (p * t).sum(1)
    precision = tp / (p.sum(1) + eps)
    recall = tp / (t.sum(1) + eps)
    specificity = ((1 - p) * (1 - t)).sum(1) / ((1 - t).sum(1) + eps)
    terms = torch.stack([precision, recall, specificity], 1).clamp(eps, 1 - eps)
    return F.binary_cross_entropy(terms, torch.ones_like(terms))


class GeoLRMAdapter:
    name = "geolrm"

    def __init__(self, model: nn.Module, preset: str, *, stage: GeoStage = "reconstruction") -> None:
        self.model, self.preset, self.stage = model, preset, stage
        self.renders = stage == "reconstruction"
        frozen = model.reconstruction if stage == "occupancy" else model.proposal  # type: ignore[union-attr]
        frozen.requires_grad_(False)

    def prepare(self, sample: Sample) -> Prepared:
        from pipelines.models.geolrm.preprocess import normalize_to_cube, prepare_inputs

        cfg = self.model.cfg  # type: ignore[union-attr]
        cams = sample.inputs.cameras
        if sample.name.startswith("procedural"):
            to_cube = Similarity.identity()  # the object stream is built in the cube
        else:
            to_cube = normalize_to_cube(cams, None, cube_half=cfg.cube_half).to_cube
        norm = _FixedCube(to_cube)
        inputs, in_cams = prepare_inputs(
            sample.inputs.images, cams, norm, image_size=cfg.image_size, cube_half=cfg.cube_half  # type: ignore[arg-type]
        )
        t_cams = sample.targets.cameras.to(dtype=torch.float64).transform(to_cube).to(dtype=torch.float32)
        s = to_cube.scale
        extra: dict[str, Tensor] = {}
        if sample.input_depth is not None or sample.target_depth is not None:
            parts = []
            if sample.input_depth is not None:
                parts.append((cams.to(dtype=torch.float64).transform(to_cube), sample.input_depth * s))
            if sample.target_depth is not None:
                parts.append((t_cams.to(dtype=torch.float64), sample.target_depth * s))
            occ = torch.zeros(cfg.grid_size, cfg.grid_size, cfg.grid_size, dtype=torch.bool)
            for c, d in parts:
                occ |= occupancy_from_depth(c, d.double(), cfg.grid_size, cfg.cube_half)
            extra["occupancy"] = occ
        return Prepared(
            inputs.images[0], in_cams, sample.targets.images, t_cams,
            None, None if sample.target_depth is None else sample.target_depth * s,
            sample.depth_kind, to_cube, extra,
        )  # fmt: skip

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction:
        from pipelines.models.geolrm.model import GeoLRMInputs, GeoLRMOutput

        dev = next(self.model.parameters()).device
        x = GeoLRMInputs(
            torch.stack([p.images for p in batch]),
            torch.stack([p.cameras.c2w_opengl() for p in batch]),
            torch.stack([p.cameras.K_normalized() for p in batch]),
        ).to(dev)
        m = self.model
        if self.stage == "occupancy":
            if any("occupancy" not in p.extra for p in batch):
                raise ValueError("GeoLRM's occupancy stage needs depth maps (procedural data or depth_file_path)")
            logits = m.proposal(x.images, x.c2w_gl, x.K_norm)  # type: ignore[union-attr]
            target = torch.stack([p.extra["occupancy"] for p in batch]).to(dev)
            bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
            with torch.no_grad():
                acc = ((logits > 0) == target).float().mean()
            return Prediction(
                None, aux={"occupancy_bce": bce, "geo_scal": geo_scal_loss(logits, target)},
                info={"occupancy_acc": float(acc), "occupied": float(target.float().mean())},
            )  # fmt: skip
        with torch.no_grad():
            logits = m.proposal(x.images, x.c2w_gl, x.K_norm)  # type: ignore[union-attr]
        anchors = m.select(logits, generator)  # type: ignore[union-attr]
        raw = m.reconstruction(x, anchors.xyz)  # type: ignore[union-attr]
        out = GeoLRMOutput(logits, anchors, raw)
        decoder = m.reconstruction.decoder  # type: ignore[union-attr]
        gs = [out.gaussians(decoder, i) for i in range(len(batch))]
        return Prediction(gs, info={"anchors": float(anchors.valid.sum()) / len(batch)})

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def export_metadata(self) -> dict[str, str]:
        return {"model": self.name, "preset": self.preset}


@dataclass
class _FixedCube:
    """A CubeNormalization stand-in holding only the similarity (prepare_inputs reads to_cube)."""

    to_cube: Similarity


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
        if name == "geolrm":
            from pipelines.models.geolrm.config import PRESETS as GP
            from pipelines.models.geolrm.model import GeoLRM

            return GeoLRM(_preset(GP, name, preset))
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
    geolrm_stage: GeoStage = "reconstruction",
) -> Adapter:
    """The adapter of model ``name`` around ``model`` (default: a fresh seeded network)."""
    model = model if model is not None else build_model(name, preset, seed=seed)
    if name == "long-lrm":
        return LongLRMAdapter(model, preset, prune_in_training=prune_in_training)
    if name == "ttt-lrm":
        return TTTLRMAdapter(model, preset)
    if name == "geolrm":
        return GeoLRMAdapter(model, preset, stage=geolrm_stage)
    raise ValueError(f"no trainer adapter for model {name!r}")


def set_grad_checkpointing(model: nn.Module, enabled: bool) -> bool:
    """Turn per-block activation checkpointing on where the model supports it; returns whether
    it did."""
    if hasattr(model, "grad_checkpointing"):
        model.grad_checkpointing = enabled  # type: ignore[assignment]
        return True
    return False
