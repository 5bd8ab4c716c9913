"""tttLRM configuration: one frozen dataclass, named presets.

Presets (``cwchenwang/tttLRM`` at 855563e, ``configs/dl3dv_full.yaml`` / ``dl3dv_ar.yaml``; the
released checkpoints ``dl3dv_full.pt`` / ``dl3dv_ar.pt`` on HF ``chenwang/tttLRM``):

- ``official-full``: 24 blocks of width 768, each [per-view self-attention (12 heads x 64,
  QK-RMSNorm)] -> [fast-weight SwiGLU, one head of 768, hidden 3072, Muon 5 steps, base lr 0.01]
  -> [GELU MLP x4]; patch 8 on 536 x 960 images (8,040 tokens per view); one fast-weight update
  over all input views (``ttt_scan: full``); poses normalised to the mean camera.
- ``official-ar``: the same network (same key layout) fine-tuned for streaming
  (``ttt_scan: ar``): sequential updates every 4 views (``miniupdate_views``); poses normalised
  to the first camera (``frame_method: first_cam``).
- ``tiny`` / ``tiny-ar``: the same structure at width 64, 2 blocks, 64 x 112 images, for CPU
  tests and streaming demos.
- ``tiny-demo``: ``tiny`` with the activation constants of Long-LRM's ``tiny-demo`` for training
  on small procedural scenes: depth ``sigmoid(.) * 5`` and scales from ``e^-4.6``. With the
  official 500 a random-init network puts every Gaussian 175-280 units along its ray, where it
  can fall behind every target camera or off its image: the renderer culls all of them and the
  loss has no gradient at all. Depths up to 5 fit rooms whose input cameras span the scene, as
  in the ``demo-tiny`` stream's orbits (model-frame depth p99 4.2); not the ``long-lrm-tiny``
  stream (median 7.3, p99 19), which the ``ttt-lrm-tiny`` recipe trains with ``tiny``, nor a
  few inputs that lie almost at one point (positions normalised into [-1, 1] then blow the
  room up to hundreds of units).

Gaussians (both official configs): SH degree 3, ``scale - 2.3`` clamped at -1.2, ``opacity - 2``,
depth ``sigmoid(.) * 500`` along the pixel ray; pruning keeps the 40 % most opaque plus 10 % of
the rest at random, or 30 % + 5 % from 64 input views on (``prune_ratio_64``, ``random_ratio_64``
defaults in ``model/model.py``).

Examples:
    >>> cfg = PRESETS["official-full"]
    >>> cfg.tokens_per_view, cfg.activation.num_channels, cfg.state_numel
    (8040, 59, 169869312)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

from pipelines.models.blocks.gaussian_head import GaussianActivation

Schedule = Literal["full", "ar", "causal"]
Frame = Literal["mean_cam", "first_cam"]


@dataclass(frozen=True)
class TTTLRMConfig:
    # network (configs/dl3dv_*.yaml model.transformer, block_config)
    dim: int = 768  # token width
    num_layers: int = 24
    patch_size: int = 8  # pixels per token side
    attn_head_dim: int = 64  # per-view self-attention head width (QK-RMSNorm)
    mlp_ratio: float = 4.0  # GELU MLP hidden = ratio * dim
    ttt_head_dim: int = 768  # fast-weight head width (768: one head)
    ttt_inter_multi: float = 4.0  # fast-weight SwiGLU hidden = multi * ttt_head_dim
    base_lr: float = 0.01  # per-token lr = softplus(Linear(x) + inv_softplus(base_lr))
    muon_steps: int = 5  # Newton-Schulz iterations per update
    # schedule: "full" one update over all input views; "ar" updates every update_views views,
    # the final weights applied to all; "causal" update then apply per chunk (streaming)
    schedule: Schedule = "full"
    update_views: int = 4  # views per update for "ar" / "causal" (miniupdate_views)
    # per-pixel Gaussians (model/model.py, config model.gaussians)
    sh_degree: int = 3
    scale_bias: float = -2.3
    scale_max: float = -1.2
    opacity_bias: float = -2.0
    max_dist: float = 500.0
    keep_top: float = 0.4  # official prune_ratio: share kept as the most opaque
    keep_random: float = 0.1  # official random_ratio: share of the rest kept at random
    keep_top_many: float = 0.3  # from many_views input views on (prune_ratio_64)
    keep_random_many: float = 0.05  # (random_ratio_64)
    many_views: int = 64
    # inputs (model.image_size, image_size_x; training.frame_method)
    image_height: int = 536
    image_width: int = 960
    frame: Frame = "mean_cam"  # pose normalisation: mean camera, or the first camera (AR)
    num_views: int = 32  # default number of input views
    # memory: tokens per partial sum inside the fast-weight update/apply (None: all at once)
    token_block: int | None = 131072

    def __post_init__(self) -> None:
        assert self.dim % self.attn_head_dim == 0, (
            f"dim {self.dim} is not a multiple of attn_head_dim {self.attn_head_dim}"
        )
        assert self.dim % self.ttt_head_dim == 0, (
            f"dim {self.dim} is not a multiple of ttt_head_dim {self.ttt_head_dim}"
        )
        assert self.image_height % self.patch_size == 0 and self.image_width % self.patch_size == 0, (
            f"image {self.image_width}x{self.image_height} is not a multiple of patch {self.patch_size}"
        )
        assert self.schedule in ("full", "ar", "causal"), f"unknown schedule {self.schedule!r}"
        assert self.frame in ("mean_cam", "first_cam"), f"unknown frame {self.frame!r}"
        assert self.update_views > 0 and self.num_layers > 0, (self.update_views, self.num_layers)
        for top, rest in ((self.keep_top, self.keep_random), (self.keep_top_many, self.keep_random_many)):
            assert 0 < top <= 1 and 0 <= rest <= 1, f"keep ratios {top}, {rest} outside (0, 1]"

    # ------------------------------------------------------------------ derived
    @property
    def tokens_per_view(self) -> int:
        return (self.image_height // self.patch_size) * (self.image_width // self.patch_size)

    @property
    def ttt_heads(self) -> int:
        return self.dim // self.ttt_head_dim

    @property
    def ttt_hidden(self) -> int:
        return int(self.ttt_head_dim * self.ttt_inter_multi)

    @property
    def state_numel(self) -> int:
        """Numbers in the fast-weight state of one sequence (all layers): 3 hd dh per head."""
        return self.num_layers * self.ttt_heads * 3 * self.ttt_head_dim * self.ttt_hidden

    @property
    def activation(self) -> GaussianActivation:
        return GaussianActivation(
            self.sh_degree, self.scale_bias, self.scale_max, self.opacity_bias, self.max_dist
        )

    def keep_ratios(self, views: int) -> tuple[float, float]:
        """(top, rest) kept shares for ``views`` input views."""
        if views >= self.many_views:
            return self.keep_top_many, self.keep_random_many
        return self.keep_top, self.keep_random

    # ------------------------------------------------------------------ (de)serialisation
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> TTTLRMConfig:
        return TTTLRMConfig(**json.loads(text))

    def with_(self, **changes) -> TTTLRMConfig:
        return replace(self, **changes)


_TINY = TTTLRMConfig(
    dim=64, num_layers=2, attn_head_dim=16, ttt_head_dim=64, image_height=64, image_width=112,
    num_views=8, token_block=None,
)  # fmt: skip
PRESETS: dict[str, TTTLRMConfig] = {
    "official-full": TTTLRMConfig(),
    "official-ar": TTTLRMConfig(schedule="ar", frame="first_cam"),
    "tiny": _TINY,
    "tiny-ar": _TINY.with_(schedule="ar", frame="first_cam", update_views=2),
    "tiny-demo": _TINY.with_(max_dist=5.0, scale_bias=-4.6),
}
OFFICIAL_PRESET = "official-full"
OFFICIAL_PRESETS = ("official-full", "official-ar")  # the same key layout, two checkpoints
