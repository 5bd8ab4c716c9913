"""Long-LRM configuration: one frozen dataclass, named presets.

``official-540p`` is the architecture of the released checkpoint
(``dl3dv_i540_32input_8target/checkpoint_000010000.pt``, configs ``7m1t_tm.yaml`` +
``dl3dv_i540_32input_8target.yaml`` at upstream ``edc74bf``): {7 Mamba2 + 1 Transformer} x 3,
widths 256 -> 1024 with a 2x2 token merge before block 8, d_state 256, 2 global tokens, patch 8,
SH degree 3, pruning 0.5 + 10 % random, inputs 540 rows (-> 544) and ``scene_scale`` 1.35
(the value the released weights appear to need: arthurhero/Long-LRM issue #10).

``tiny`` has the same structure at small widths, for CPU tests and the demo.

Examples:
    >>> cfg = PRESETS["official-540p"]
    >>> cfg.block_dims[7], cfg.block_dims[8], cfg.patch_size_out
    (256, 1024, 16)
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, replace

from pipelines.models.blocks.gaussian_head import GaussianActivation

BLOCK_TYPES = {"m": "Mamba2 (bidirectional)", "t": "Transformer"}


@dataclass(frozen=True)
class LongLRMConfig:
    # network (configs/7m1t_tm.yaml)
    dims: tuple[int, ...] = (256, 1024)  # token width before / after each merge
    layout: str = "mmmmmmmt" * 3  # one letter per block: m Mamba2, t Transformer
    merge_at: tuple[int, ...] = (8,)  # block indices preceded by a 2x2 token merge
    patch_size: int = 8  # pixels per token side before merging
    num_global_tokens: int = 2  # learned tokens prepended to the sequence
    attn_head_dim: int = 64  # transformer head width
    mlp_ratio: float = 4.0
    d_state: int = 256  # Mamba2 state size N
    ssm_head_dim: int = 64  # Mamba2 head width P
    expand: int = 2  # Mamba2 d_inner = expand * width
    d_conv: int = 4  # Mamba2 causal conv kernel
    chunk_size: int = 256  # SSD chunk length
    # per-pixel Gaussians (7m1t_tm.yaml model.gaussians)
    sh_degree: int = 3
    scale_bias: float = -6.9
    scale_max: float = -1.2
    opacity_bias: float = -2.0
    max_dist: float = 500.0
    prune_ratio: float = 0.5  # dl3dv_i540 config at edc74bf
    random_ratio: float = 0.1
    # inputs (data section)
    resize_h: int = 540  # rows before rounding to patch_size_out; columns keep the aspect ratio
    scene_scale: float = 1.35  # camera positions scaled into [-1/scene_scale, 1/scene_scale]
    num_views: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        object.__setattr__(self, "merge_at", tuple(int(i) for i in self.merge_at))
        bad = set(self.layout) - set(BLOCK_TYPES)
        assert not bad, f"layout letters must be in {sorted(BLOCK_TYPES)}, got {sorted(bad)}"
        assert len(self.dims) == len(self.merge_at) + 1, (
            f"{len(self.dims)} dims need {len(self.dims) - 1} merges, got {self.merge_at}"
        )
        assert list(self.merge_at) == sorted(set(self.merge_at)), f"merge_at must increase: {self.merge_at}"
        assert all(0 < i < len(self.layout) for i in self.merge_at), (
            f"merge_at {self.merge_at} outside 1..{len(self.layout) - 1}"
        )
        for d in self.dims:
            assert d % self.attn_head_dim == 0, (
                f"width {d} is not a multiple of attn_head_dim {self.attn_head_dim}"
            )
            assert (self.expand * d) % self.ssm_head_dim == 0, (
                f"d_inner {self.expand * d} vs ssm_head_dim {self.ssm_head_dim}"
            )
        for a, b in itertools.pairwise(self.dims):
            assert b % a == 0, f"merged width {b} must be a multiple of {a} (channel-wise merge)"
        assert 0 <= self.prune_ratio < 1 and 0 <= self.random_ratio <= 1, (
            self.prune_ratio,
            self.random_ratio,
        )

    # ------------------------------------------------------------------ derived
    @property
    def num_blocks(self) -> int:
        return len(self.layout)

    @property
    def patch_size_out(self) -> int:
        """Pixels per token side after all merges; image sides must be multiples of it."""
        return self.patch_size * 2 ** len(self.merge_at)

    @property
    def block_dims(self) -> tuple[int, ...]:
        """Token width at each block."""
        out, k = [], 0
        for i in range(self.num_blocks):
            if i in self.merge_at:
                k += 1
            out.append(self.dims[k])
        return tuple(out)

    @property
    def activation(self) -> GaussianActivation:
        return GaussianActivation(
            self.sh_degree, self.scale_bias, self.scale_max, self.opacity_bias, self.max_dist
        )

    # ------------------------------------------------------------------ (de)serialisation
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> LongLRMConfig:
        d = json.loads(text)
        return LongLRMConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def with_(self, **changes) -> LongLRMConfig:
        return replace(self, **changes)


PRESETS: dict[str, LongLRMConfig] = {
    "official-540p": LongLRMConfig(),
    "tiny": LongLRMConfig(
        dims=(32, 64), d_state=16, ssm_head_dim=16, attn_head_dim=16, chunk_size=32, resize_h=64, num_views=8
    ),
}
# the tiny architecture trained on the CPU (assets/models/long-lrm-tiny-demo.md): 8 inputs, 64 rows
# (112 x 64 for a 16:9 capture), trained and run without pruning (57k Gaussians). A one-hour run
# cannot move the official activation constants far (depth starts at max_dist / 2 = 250 scene
# units, scales at e^-6.9), so this preset starts depth at 2.5 units (max_dist 5; the normalised
# rooms lie within ~3.5) and scales near a pixel's footprint (e^-4.6). Its weights ship as
# assets/models/long-lrm-tiny-demo.safetensors.
PRESETS["tiny-demo"] = PRESETS["tiny"].with_(
    resize_h=64, num_views=8, prune_ratio=0.0, max_dist=5.0, scale_bias=-4.6
)
OFFICIAL_PRESET = "official-540p"


def transformer_baseline(config: LongLRMConfig) -> LongLRMConfig:
    """The same widths, merges and head with every block a Transformer (a GS-LRM-style model)."""
    return replace(config, layout="t" * config.num_blocks)
