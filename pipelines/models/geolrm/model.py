"""The GeoLRM network: proposal (occupancy) -> anchors -> reconstruction -> Gaussians.

Inputs follow GeoLRM's conventions (``GeoLRMInputs``): the object in the cube
[-0.5, 0.5]^3, OpenGL camera-to-world, intrinsics normalised by the image size, white
background. ``preprocess.py`` produces them from a capture; the output Gaussians are in the cube
frame (the reconstructor maps them back to the capture's world).

Module tree (official names in brackets; ``weights.py`` maps them):
``proposal`` [serializer]: encoder, transformer, occupancy_head [upsample];
``reconstruction`` [lrm_generator]: encoder, transformer, decoder.mlp [renderer.latent_decoder].

Examples:
    >>> from pipelines.models.geolrm.config import PRESETS
    >>> net = GeoLRM(PRESETS["tiny"]).eval()
    >>> x = GeoLRMInputs.orbit(views=3, image_size=56)
    >>> out = net(x, generator=torch.Generator().manual_seed(0))
    >>> out.occupancy_logits.shape, out.raw.shape[-2:]
    (torch.Size([1, 16, 16, 16]), torch.Size([4, 14]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.models.geolrm.config import GeoLRMConfig
from pipelines.models.geolrm.decoder import GaussianDecoder
from pipelines.models.geolrm.encoder import HierarchicalEncoder
from pipelines.models.geolrm.proposal import Anchors, ProposalNetwork, select_anchors
from pipelines.models.geolrm.transformer import GeoTransformer, project_points, voxel_index


@dataclass
class GeoLRMInputs:
    """images [B, V, 3, H, W] in [0, 1], background white; c2w_gl [B, V, 4, 4] OpenGL
    camera-to-world in the cube frame; K_norm [B, V, 3, 3] intrinsics with row 0 divided by W
    and row 1 by H."""

    images: Tensor
    c2w_gl: Tensor
    K_norm: Tensor

    def __post_init__(self) -> None:
        b, v = self.images.shape[:2]
        assert self.images.ndim == 5 and self.images.shape[2] == 3, (
            f"images must be [B,V,3,H,W], got {tuple(self.images.shape)}"
        )
        assert self.c2w_gl.shape == (b, v, 4, 4), (
            f"c2w_gl must be {(b, v, 4, 4)}, got {tuple(self.c2w_gl.shape)}"
        )
        assert self.K_norm.shape == (b, v, 3, 3), (
            f"K_norm must be {(b, v, 3, 3)}, got {tuple(self.K_norm.shape)}"
        )

    def to(self, device: torch.device | str) -> GeoLRMInputs:
        return GeoLRMInputs(self.images.to(device), self.c2w_gl.to(device), self.K_norm.to(device))

    @staticmethod
    def from_cameras(images: Tensor, cameras: Cameras) -> GeoLRMInputs:
        """images [V, 3, H, W]; cameras [V] (OpenCV, already in the cube frame) -> batch of one."""
        return GeoLRMInputs(images[None], cameras.c2w_opengl()[None], cameras.K_normalized()[None])

    @staticmethod
    def orbit(
        views: int,
        image_size: int,
        *,
        radius: float = 1.5,
        elevation_deg: float = 10.0,
        fov_deg: float = 39.6,
        generator: torch.Generator | None = None,
    ) -> GeoLRMInputs:
        """Random images seen from an SV3D-like orbit (azimuths uniform, z up) looking at the
        origin: synthetic inputs for tests and benchmarks."""
        az = torch.arange(views, dtype=torch.float32) * (2 * math.pi / views)
        el = torch.full_like(az, math.radians(elevation_deg))
        eye = radius * torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], dim=-1)
        cams = Cameras.look_at(
            eye,
            torch.zeros_like(eye),
            fov_y_deg=fov_deg,
            width=image_size,
            height=image_size,
            up=torch.tensor([0.0, 0.0, 1.0]),
        )
        images = torch.rand(views, 3, image_size, image_size, generator=generator)
        return GeoLRMInputs.from_cameras(images, cams)


@dataclass
class GeoLRMOutput:
    """occupancy_logits [B, G, G, G]; anchors (xyz [B, M, 3], valid [B, M]); raw [B, M, k, 14]."""

    occupancy_logits: Tensor
    anchors: Anchors
    raw: Tensor

    def gaussians(self, decoder: GaussianDecoder, index: int = 0) -> Gaussians:
        """Gaussians of batch element ``index`` in the cube frame, padding anchors dropped."""
        keep = self.anchors.valid[index]
        return decoder.to_gaussians(self.anchors.xyz[index][keep], self.raw[index][keep])


class ReconstructionNetwork(nn.Module):
    """anchors + images -> raw Gaussians [B, M, k, 14]."""

    def __init__(self, cfg: GeoLRMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = HierarchicalEncoder(cfg.dino, cfg.feat_dim)
        self.transformer = GeoTransformer(cfg.reconstruction, cfg.feat_dim)
        self.decoder = GaussianDecoder(
            cfg.reconstruction.dim, cfg.gaussians_per_anchor, cfg.offset_max, cfg.scale_max
        )

    def forward(
        self, x: GeoLRMInputs, anchors: Tensor, *, after_layer: Callable[[int], None] | None = None
    ) -> Tensor:
        """x: inputs; anchors [B, M, 3] cube frame. Returns raw [B, M, k, 14]."""
        cfg = self.cfg
        feats = self.encoder(x.images, x.c2w_gl, x.K_norm)
        pos = voxel_index(anchors, cfg.rope_xyz_scale, cfg.grid_size)
        ref = project_points(anchors, x.c2w_gl, x.K_norm)
        latents = self.transformer(
            anchors,
            pos,
            feats,
            ref,
            view_chunk=cfg.view_chunk,
            query_chunk=cfg.query_chunk,
            after_layer=after_layer,
        )
        return self.decoder(latents)


class GeoLRM(nn.Module):
    def __init__(self, cfg: GeoLRMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proposal = ProposalNetwork(cfg)
        self.reconstruction = ReconstructionNetwork(cfg)

    @property
    def grad_checkpointing(self) -> bool:
        """Per-block activation checkpointing of both transformers (training; the official stage 2
        checkpoints ``forward_latents``)."""
        return self.reconstruction.transformer.grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        self.proposal.transformer.grad_checkpointing = enabled
        self.reconstruction.transformer.grad_checkpointing = enabled

    def select(
        self, logits: Tensor, generator: torch.Generator | None = None, *, max_anchors: int | None = None
    ) -> Anchors:
        """Occupancy logits -> anchors by the configured rule (``max_anchors`` overrides the cap)."""
        cfg = self.cfg
        return select_anchors(
            logits.detach(),
            max_anchors=max_anchors or cfg.max_anchors,
            cube_half=cfg.cube_half,
            threshold=cfg.occupancy_threshold,
            selection=cfg.anchor_selection,
            pad=cfg.pad_anchors,
            generator=generator,
        )

    def forward(
        self, x: GeoLRMInputs, *, generator: torch.Generator | None = None, max_anchors: int | None = None
    ) -> GeoLRMOutput:
        logits = self.proposal(x.images, x.c2w_gl, x.K_norm)
        anchors = self.select(logits, generator, max_anchors=max_anchors)
        raw = self.reconstruction(x, anchors.xyz)
        return GeoLRMOutput(logits, anchors, raw)
