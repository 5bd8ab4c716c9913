"""GeoLRM's Gaussian decoder: 32 Gaussians per anchor, and the one place its activations live.

``mlp = Linear(D -> 14 k) -> SiLU -> Linear(14 k -> 14 k)`` (official ``renderer.latent_decoder``),
k = Gaussians per anchor; each Gaussian's 14 raw channels are [xyz 3, opacity 1, scale 3,
rotation 4, rgb 3] (``use_sh: false``). Official activations, and how they map onto our
``Gaussians`` (pre-activation parameters) exactly:

    official                                   ours
    mean  = anchor + sigmoid(r[0:3]) * 0.2     means = the same (one-sided offset, as official)
    opac  = sigmoid(r[3])                      opacity_logits = r[3]
    scale = sigmoid(r[4:7]) * 0.02             log_scales = logsigmoid(r[4:7]) + log(0.02)
    rot   = normalize(r[7:11]) (w, x, y, z)    quats = normalize(r[7:11]), wxyz
    rgb   = clamp(r[11:14], -0.5, 0.5) + 0.5   sh [N, 1, 3] (degree 0) = rgb_to_sh0(rgb)
                                               = clamp(r, -0.5, 0.5) / C0

The official renderer passes rgb as ``colors_precomp`` at SH degree 0; our renderers compute
colour = C0 * sh0 + 0.5 = rgb, so both render the same colour. Gaussians are ordered anchor-major
(anchor n, then its k Gaussians).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import rgb_to_sh0

RAW_CHANNELS = 14


class GaussianDecoder(nn.Module):
    def __init__(self, dim: int, per_anchor: int, offset_max: float, scale_max: float) -> None:
        super().__init__()
        self.per_anchor, self.offset_max, self.scale_max = per_anchor, offset_max, scale_max
        out = RAW_CHANNELS * per_anchor
        self.mlp = nn.Sequential(nn.Linear(dim, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, latents: Tensor) -> Tensor:
        """latents [B, M, D] -> raw Gaussian channels [B, M, k, 14] (before activations)."""
        b, m, _ = latents.shape
        return self.mlp(latents).view(b, m, self.per_anchor, RAW_CHANNELS)

    def to_gaussians(self, anchors: Tensor, raw: Tensor) -> Gaussians:
        """anchors [M, 3] (cube frame); raw [M, k, 14] -> Gaussians [M * k] in the cube frame."""
        m, k, c = raw.shape
        assert c == RAW_CHANNELS and anchors.shape == (m, 3), (tuple(anchors.shape), tuple(raw.shape))
        raw = raw.float()
        means = anchors[:, None, :].float() + torch.sigmoid(raw[..., 0:3]) * self.offset_max
        rgb = raw[..., 11:14].clamp(-0.5, 0.5) + 0.5
        return Gaussians(
            means=means.reshape(m * k, 3),
            quats=F.normalize(raw[..., 7:11], dim=-1).reshape(m * k, 4),
            log_scales=(F.logsigmoid(raw[..., 4:7]) + math.log(self.scale_max)).reshape(m * k, 3),
            opacity_logits=raw[..., 3].reshape(m * k),
            sh=rgb_to_sh0(rgb).reshape(m * k, 1, 3),
        )
