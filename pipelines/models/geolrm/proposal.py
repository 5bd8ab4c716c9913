"""The proposal network (official "serializer"): dense anchor tokens -> 128^3 occupancy, and
the rule that turns occupancy into the reconstruction network's anchors.

Tokens: a (G/t)^3 grid (16^3 for G = 128, t = 8) at ``linspace(-1, 1, G/t) * cube_half`` per axis
(``meshgrid(..., indexing="ij")``, flattened x-major). Each token's latent goes through
``occupancy_head = Linear(D -> t^3)`` and owns a t^3 block: token (i, j, k), sub-voxel (a, b, c)
is voxel (i t + a, j t + b, k t + c). Voxel (i, j, k) has centre
``linspace(-1, 1, G)[(i, j, k)] * cube_half``.

Anchor rule (official ``TransformerSerializer.forward``): occupied = logit > 0. If at least
``max_anchors`` voxels are occupied, a random subset of ``max_anchors`` in the order drawn
(``randperm``); otherwise every occupied voxel in x-major order, padded with anchors at the
origin up to ``max_anchors`` (the padding takes part in attention, as in training; its
Gaussians are dropped from our output). The order matters for the "official" attention mode
(it regroups consecutive tokens), so it is kept. ``"top"`` selection (the highest logits,
x-major order) is a deterministic alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipelines.models.geolrm.config import AnchorSelection, GeoLRMConfig
from pipelines.models.geolrm.encoder import HierarchicalEncoder
from pipelines.models.geolrm.transformer import GeoTransformer, project_points, voxel_index


def grid_points(n: int, half: float, device: torch.device | str | None = None) -> Tensor:
    """Centres [n^3, 3] of ``linspace(-1, 1, n) * half`` per axis, x-major (z fastest)."""
    t = torch.linspace(-1, 1, n, device=device)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1).reshape(-1, 3) * half


def tokens_to_grid(logits: Tensor, n: int, t: int) -> Tensor:
    """Per-token sub-block logits [B, n^3, t^3] (token x-major, sub-voxel x-major) -> the grid
    [B, n t, n t, n t]: token (i, j, k), sub-voxel (a, b, c) -> voxel (i t + a, j t + b, k t + c)."""
    b = logits.shape[0]
    assert logits.shape == (b, n**3, t**3), f"logits must be [B, {n**3}, {t**3}], got {tuple(logits.shape)}"
    grid = logits.reshape(b, n, n, n, t, t, t).permute(0, 1, 4, 2, 5, 3, 6)  # [B, i, a, j, b, k, c]
    return grid.reshape(b, n * t, n * t, n * t)


@dataclass
class Anchors:
    """xyz [B, M, 3] anchor centres in the cube; valid [B, M] bool (False: origin padding);
    occupied [B] number of voxels over the threshold before the cap."""

    xyz: Tensor
    valid: Tensor
    occupied: Tensor


def select_anchors(
    logits: Tensor,
    *,
    max_anchors: int,
    cube_half: float,
    threshold: float = 0.0,
    selection: AnchorSelection = "random",
    pad: bool = True,
    generator: torch.Generator | None = None,
) -> Anchors:
    """logits [B, G, G, G] occupancy logits -> Anchors (see the module docstring).

    Without ``pad`` the anchors of a batch are padded only up to the largest count in it (M = the
    count itself for B = 1)."""
    b, g = logits.shape[0], logits.shape[1]
    assert logits.shape == (b, g, g, g), f"logits must be [B, G, G, G], got {tuple(logits.shape)}"
    centres = grid_points(g, cube_half, logits.device)  # [G^3, 3]
    flat = logits.reshape(b, -1)
    picks, counts = [], []
    for i in range(b):
        occ = torch.nonzero(flat[i] > threshold).squeeze(1)  # x-major order
        counts.append(occ.numel())
        if occ.numel() > max_anchors or (occ.numel() == max_anchors and selection == "random"):
            if selection == "random":
                perm = torch.randperm(occ.numel(), generator=generator)[:max_anchors].to(occ.device)
                occ = occ[perm]
            else:
                top = torch.topk(flat[i, occ], max_anchors).indices
                occ = occ[top].sort().values
        picks.append(occ)
    m = max_anchors if pad else max(p.numel() for p in picks)
    xyz = logits.new_zeros(b, m, 3, dtype=torch.float32)
    valid = torch.zeros(b, m, dtype=torch.bool, device=logits.device)
    for i, occ in enumerate(picks):
        xyz[i, : occ.numel()] = centres[occ]
        valid[i, : occ.numel()] = True
    return Anchors(xyz, valid, torch.tensor(counts))


class ProposalNetwork(nn.Module):
    """images -> occupancy logits [B, G, G, G]. Parameter names: ``encoder``, ``transformer``
    as official; ``occupancy_head`` is the official ``upsample``."""

    def __init__(self, cfg: GeoLRMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = HierarchicalEncoder(cfg.dino, cfg.feat_dim)
        self.transformer = GeoTransformer(cfg.proposal, cfg.feat_dim)
        self.occupancy_head = nn.Linear(cfg.proposal.dim, cfg.token_res**3)

    def forward(
        self,
        images: Tensor,
        c2w_gl: Tensor,
        K_norm: Tensor,
        *,
        after_layer: Callable[[int], None] | None = None,
    ) -> Tensor:
        """images [B, V, 3, H, W] in [0, 1]; c2w_gl [B, V, 4, 4]; K_norm [B, V, 3, 3] (cube frame).
        Returns occupancy logits [B, G, G, G], index order (x, y, z)."""
        cfg = self.cfg
        b, n, t = images.shape[0], cfg.tokens_per_side, cfg.token_res
        feats = self.encoder(images, c2w_gl, K_norm)
        xyz = grid_points(n, cfg.cube_half, images.device)[None].expand(b, -1, -1)  # [B, n^3, 3]
        pos = voxel_index(xyz, cfg.cube_half, cfg.grid_size)
        ref = project_points(xyz, c2w_gl, K_norm)  # [B, V, n^3, 2]
        h = self.transformer(
            xyz,
            pos,
            feats,
            ref,
            view_chunk=cfg.view_chunk,
            query_chunk=cfg.query_chunk,
            after_layer=after_layer,
        )
        return tokens_to_grid(self.occupancy_head(h), n, t)  # [B, G, G, G]
