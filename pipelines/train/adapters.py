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
- ``geolrm``: the reconstructor's cube normalisation and square crops (the sample's depth,
  back-projected, stands in for the SfM points); the official two stages, one network trained in
  each while the other is frozen: ``"proposal"`` (occupancy logits against the voxels that the
  depth of every view of the sample marks, :func:`occupancy_grid`; no rendering) and
  ``"reconstruction"`` (anchors from the frozen proposal, as the official stage 2, Gaussians
  rendered into the targets). Samples may differ in their number of input views (1-7 in the
  official recipe): the network runs on each sample alone.

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
from pipelines.train.data import DepthKind, Sample, sparse_points, surface_points
from pipelines.transforms import Similarity


@dataclass
class Prepared:
    """One sample in the model's frame and size.

    images [Vi,3,H,W] in [0,1] and cameras [Vi] (model frame); target_images [Vt,3,Ht,Wt] and
    target_cameras [Vt] (model frame); input_depth [Vi,H,W] / target_depth [Vt,Ht,Wt] camera
    z-depth in model units, 0 = unknown (None: no depth); to_model: world -> model frame;
    occupancy [G,G,G] bool: voxels holding a surface point of the sample (GeoLRM only)."""

    images: Tensor
    cameras: Cameras
    target_images: Tensor
    target_cameras: Cameras
    input_depth: Tensor | None
    target_depth: Tensor | None
    depth_kind: DepthKind
    to_model: Similarity
    occupancy: Tensor | None = None


@dataclass
class Prediction:
    """gaussians: one per sample, in the model's frame (empty when the step renders nothing, as
    GeoLRM's proposal stage); pixel_depth [B,Vi,H,W]: camera z of the pixel-aligned Gaussians in
    their input views (None: not pixel-aligned; the depth term then compares rendered target
    depth); terms: model-specific loss terms, unweighted, named as their ``LossWeights`` field;
    info: scalars for the log."""

    gaussians: list[Gaussians]
    pixel_depth: Tensor | None
    terms: dict[str, Tensor] = field(default_factory=dict)
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


GeoLRMStage = Literal["proposal", "reconstruction"]


def occupancy_grid(points: Tensor, grid: int, half: float) -> Tensor:
    """points [P, 3] in the cube frame -> occupancy [G, G, G] bool, index order (x, y, z): the
    voxel whose centre (``linspace(-1, 1, G) * half`` per axis, as the proposal's grid) is nearest
    to a point, ``round((p / half + 1) * (G - 1) / 2)``; points farther out than half a voxel
    beyond the cube mark nothing (the official tool clamps them onto the border instead)."""
    idx = torch.round((points.double() / half + 1) * (grid - 1) / 2).long()
    i = idx[((idx >= 0) & (idx < grid)).all(-1)]
    occ = torch.zeros(grid**3, dtype=torch.bool, device=points.device)
    occ[(i[:, 0] * grid + i[:, 1]) * grid + i[:, 2]] = True
    return occ.view(grid, grid, grid)


class GeoLRMAdapter:
    """GeoLRM's two training stages (module docstring); ``stage`` picks the trained network."""

    name = "geolrm"
    bf16: bool = True

    def __init__(self, model: nn.Module, preset: str, *, stage: GeoLRMStage = "reconstruction") -> None:
        assert stage in ("proposal", "reconstruction"), (
            f"GeoLRM stage must be proposal or reconstruction, got {stage!r}"
        )
        self.model, self.preset, self.stage = model, preset, stage
        self.frozen: nn.Module = model.reconstruction if stage == "proposal" else model.proposal  # type: ignore[assignment]
        self.frozen.requires_grad_(False)

    def prepare(self, sample: Sample) -> Prepared:
        from pipelines.models.geolrm.preprocess import normalize_to_cube, prepare_inputs

        c = self.model.cfg  # type: ignore[union-attr]
        cams = sample.inputs.cameras.to("cpu")
        t = sample.targets
        depths = [(cams, sample.input_depth), (t.cameras, sample.target_depth)]
        surface = [None if d is None else surface_points(cm, d) for cm, d in depths]  # inputs, targets
        points = None if surface[0] is None else sparse_points(surface[0])
        norm = normalize_to_cube(cams, points, cube_half=c.cube_half)
        inputs, cube_cams = prepare_inputs(
            sample.inputs.images.float(), cams, norm, image_size=c.image_size, cube_half=c.cube_half
        )
        to_model, s = norm.to_cube, norm.to_cube.scale
        t_cams = t.cameras.to("cpu", dtype=torch.float64).transform(to_model).to(dtype=torch.float32)
        occupancy = None
        pts = [p for p in surface if p is not None]
        if pts:
            occupancy = occupancy_grid(to_model.apply(torch.cat(pts)), c.grid_size, c.cube_half)
        return Prepared(
            inputs.images[0], cube_cams, t.images.float(), t_cams, None,
            None if sample.target_depth is None else sample.target_depth * s,
            sample.depth_kind, to_model, occupancy,
        )  # fmt: skip

    def forward(self, batch: list[Prepared], *, generator: torch.Generator | None = None) -> Prediction:
        from pipelines.models.geolrm.model import GeoLRMInputs
        from pipelines.train.losses import occupancy_loss

        model = self.model
        self.frozen.eval()  # frozen means its batch-norm statistics too (the trainer sets train mode)
        dev = next(model.parameters()).device
        gs: list[Gaussians] = []
        occ_terms: list[Tensor] = []
        info = (
            {"precision": 0.0, "recall": 0.0}
            if self.stage == "proposal"
            else {"anchors": 0.0, "anchors_from_truth": 0.0}
        )
        for p in batch:
            x = GeoLRMInputs.from_cameras(p.images, p.cameras).to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16 and dev.type == "cuda"):
                if self.stage == "proposal":
                    assert p.occupancy is not None, "the proposal stage needs depth for its occupancy targets"
                    logits = model.proposal(x.images, x.c2w_gl, x.K_norm).float()  # type: ignore[operator]
                    occ = p.occupancy.to(dev)
                    occ_terms.append(occupancy_loss(logits[0], occ))
                    hit = logits[0].detach() > model.cfg.occupancy_threshold  # type: ignore[union-attr]
                    info["precision"] += float((hit & occ).sum() / hit.sum().clamp_min(1)) / len(batch)
                    info["recall"] += float((hit & occ).sum() / occ.sum().clamp_min(1)) / len(batch)
                    continue
                with torch.no_grad():
                    logits = model.proposal(x.images, x.c2w_gl, x.K_norm)  # type: ignore[operator]
                anchors = model.select(logits.float(), generator)  # type: ignore[operator]
                xyz = anchors.xyz[0][anchors.valid[0]]
                if xyz.shape[0] == 0 and p.occupancy is not None:  # an untrained proposal: truth instead
                    truth = model.select(p.occupancy.to(dev)[None].float() * 2 - 1, generator)  # type: ignore[operator]
                    xyz = truth.xyz[0][truth.valid[0]]
                    info["anchors_from_truth"] += 1.0
                raw = model.reconstruction(x, xyz[None])  # type: ignore[operator]
            gs.append(model.reconstruction.decoder.to_gaussians(xyz, raw[0]))  # type: ignore[union-attr]
            info["anchors"] += xyz.shape[0] / len(batch)
        terms = {"occupancy": torch.stack(occ_terms).mean()} if occ_terms else {}
        return Prediction(gs, pixel_depth=None, terms=terms, info=info)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def export_metadata(self) -> dict[str, str]:
        return {"model": self.name, "preset": self.preset, "config": self.model.cfg.to_json()}  # type: ignore[union-attr]


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
    stage: GeoLRMStage = "reconstruction",
) -> Adapter:
    """The adapter of model ``name`` around ``model`` (default: a fresh seeded network);
    ``stage``: GeoLRM's training stage."""
    model = model if model is not None else build_model(name, preset, seed=seed)
    if name == "long-lrm":
        return LongLRMAdapter(model, preset, prune_in_training=prune_in_training)
    if name == "ttt-lrm":
        return TTTLRMAdapter(model, preset)
    if name == "geolrm":
        return GeoLRMAdapter(model, preset, stage=stage)
    raise ValueError(f"no trainer adapter for model {name!r}")


def set_grad_checkpointing(model: nn.Module, enabled: bool) -> bool:
    """Turn per-block activation checkpointing on where the model supports it; returns whether
    it did."""
    if hasattr(model, "grad_checkpointing"):
        model.grad_checkpointing = enabled  # type: ignore[assignment]
        return True
    return False
