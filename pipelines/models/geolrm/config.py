"""GeoLRM configuration: one frozen dataclass, named presets.

``official`` is the released model (configs/geolrm.yaml of alibaba-yuanjing-aigclab/GeoLRM):
two networks, each with its own DINOv2 ViT-B/14 encoder (feature width 384),

- proposal ("serializer"): 16^3 anchor tokens, transformer width 384, 6 layers, 16 heads,
  a Linear(384 -> 8^3) per token giving 128^3 occupancy logits;
- reconstruction ("lrm_generator"): up to ``max_anchors`` occupied voxels as tokens, width 768,
  16 layers, 16 heads, and an MLP decoding 32 Gaussians per anchor.

``tiny`` keeps every mechanism at toy sizes for CPU tests.

Self-attention mode (``TransformerConfig.attention``), an explicit choice:

- ``"official"``: what the released code computes on its default fp32 path (every shipped
  config sets ``use_bf16: false``; geo_transformer.py ``SelfAttention.forward``'s non-flash
  branch). Queries, keys and values are laid out [B, N, heads, Dh] and multiplied as such, so each
  token attends over its own *heads* (an H x H softmax per token), and the result is reshaped
  head-major (``[B, H, N, Dh] -> [B, N, H*Dh]``), which regroups H consecutive tokens' outputs
  of one head into one token. RoPE rotates q and k of one token by the same angles, so it
  cancels in this path. The released checkpoint was trained and is run this way (training and
  inference configs are fp32), so this is the mode that reproduces it.
- ``"global"``: attention over all anchors with 3D RoPE (the paper's description; what the
  official flash-attention branch computes under bf16). Not what the released weights expect.

``rope_xyz_scale``: RoPE voxel indices are ``long((xyz / s + 1) * (grid - 1) / 2)``. The official
training wrapper passes s = 0.5 (indices 0..127 over the cube) to the reconstruction network,
the inference scripts leave the default 1.0 (indices ~31..95). In ``"official"`` attention the
indices have no effect at all (RoPE cancels; tested), so the mismatch does not matter for the
released weights. For ``"global"`` we take 0.5, the training value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from pipelines.models.blocks.dinov2 import VIT_B14, DinoV2Config

AttentionMode = Literal["official", "global"]
AnchorSelection = Literal["random", "top"]


@dataclass(frozen=True)
class TransformerConfig:
    dim: int
    layers: int
    heads: int
    dropout: float = 0.0  # official: 0.1 for the proposal net (ModelArgs default), 0.0 for reconstruction
    ffn_multiple_of: int = 256  # SwiGLU hidden = multiple_of * ceil(int(2 * 4 * dim / 3) / multiple_of)
    norm_eps: float = 1e-5  # RMSNorm
    rope_theta: float = 10000.0
    points: int = 8  # deformable sampling points per head and level
    levels: int = 2  # feature levels (stride-4 conv, DINOv2 upsampled to stride 7)
    attention: AttentionMode = "official"

    def __post_init__(self) -> None:
        assert self.dim % self.heads == 0, f"dim {self.dim} not divisible by heads {self.heads}"
        assert (self.dim // self.heads) % 6 == 0, (
            f"3D RoPE needs head width % 6 == 0, got {self.dim // self.heads}"
        )
        assert self.levels == 2, "the hierarchical encoder yields exactly two levels"
        assert self.attention in ("official", "global"), self.attention

    @property
    def ffn_hidden(self) -> int:
        h = int(2 * (4 * self.dim) / 3)
        m = self.ffn_multiple_of
        return m * ((h + m - 1) // m)


@dataclass(frozen=True)
class GeoLRMConfig:
    dino: DinoV2Config = VIT_B14
    feat_dim: int = 384  # both encoders' output width (encoder_feat_dim)
    proposal: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(dim=384, layers=6, heads=16, dropout=0.1)
    )
    reconstruction: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(dim=768, layers=16, heads=16)
    )
    grid_size: int = 128  # occupancy grid side
    token_res: int = 8  # each proposal token owns token_res^3 voxels -> (128 / 8)^3 = 16^3 tokens
    cube_half: float = 0.5  # the object lives in [-cube_half, cube_half]^3 (the serializer's xyz_scale)
    occupancy_threshold: float = 0.0  # occupied = logit > threshold (p > 0.5)
    max_anchors: int = 8192  # official inference default; the official app allows up to 16384
    anchor_selection: AnchorSelection = "random"  # official: a random subset when over the cap
    pad_anchors: bool = True  # official: pad with anchors at the origin up to max_anchors
    gaussians_per_anchor: int = 32
    offset_max: float = 0.2  # mean = anchor + sigmoid(raw) * offset_max (one-sided, as official)
    scale_max: float = 0.02  # scale = sigmoid(raw) * scale_max
    rope_xyz_scale: float = 0.5  # see the module docstring
    image_size: int = 448  # square input side (training: 448; the SV3D inference path: 560)
    # execution settings (no effect on results): views per cross-attention chunk, queries per
    # grid_sample call
    view_chunk: int = 4
    query_chunk: int = 4096

    def __post_init__(self) -> None:
        assert self.grid_size % self.token_res == 0, (self.grid_size, self.token_res)
        assert 1 <= self.max_anchors <= self.grid_size**3, self.max_anchors
        assert self.image_size % 28 == 0, (
            f"image_size must be a multiple of 28 (14 and 4), got {self.image_size}"
        )
        assert self.anchor_selection in ("random", "top"), self.anchor_selection

    @property
    def tokens_per_side(self) -> int:
        return self.grid_size // self.token_res

    @property
    def gaussian_channels(self) -> int:
        """Raw channels per Gaussian: xyz 3, opacity 1, scale 3, rotation 4, rgb 3."""
        return 14

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> GeoLRMConfig:
        d = json.loads(text)
        return GeoLRMConfig(
            **d | {"dino": DinoV2Config(**d["dino"]), "proposal": TransformerConfig(**d["proposal"]),
                   "reconstruction": TransformerConfig(**d["reconstruction"])}
        )  # fmt: skip


PRESETS: dict[str, GeoLRMConfig] = {
    "official": GeoLRMConfig(),
    "tiny": GeoLRMConfig(
        dino=DinoV2Config(dim=48, depth=2, heads=2, pos_grid=4),
        feat_dim=24,
        proposal=TransformerConfig(dim=24, layers=1, heads=2, dropout=0.0, ffn_multiple_of=32, points=2),
        reconstruction=TransformerConfig(dim=48, layers=2, heads=4, ffn_multiple_of=32, points=2),
        grid_size=16,
        token_res=4,
        max_anchors=64,
        gaussians_per_anchor=4,
        image_size=56,
        query_chunk=64,
        view_chunk=2,
    ),
}
# the architecture trained on the CPU (assets/models/geolrm-tiny-demo.md): a 32^3 occupancy grid
# from 8^3 proposal tokens, up to 2048 anchors x 8 Gaussians, 112 px inputs, the paper's global
# attention (trained from scratch, so the released weights' head-mixing mode has no reason to be
# kept) and no origin padding (padding anchors only cost time when the weights are our own)
PRESETS["tiny-demo"] = GeoLRMConfig(
    dino=DinoV2Config(dim=96, depth=3, heads=4, pos_grid=8),
    feat_dim=48,
    proposal=TransformerConfig(dim=48, layers=2, heads=2, dropout=0.0, ffn_multiple_of=32, points=4),
    reconstruction=TransformerConfig(
        dim=96, layers=4, heads=4, ffn_multiple_of=32, points=4, attention="global"
    ),
    grid_size=32,
    token_res=4,
    max_anchors=2048,
    pad_anchors=False,
    gaussians_per_anchor=8,
    image_size=112,
    query_chunk=2048,
    view_chunk=4,
)
