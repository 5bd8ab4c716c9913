"""Training configuration: one frozen dataclass, named recipes.

Recipes (shared/reference notes):

- ``long-lrm``: Long-LRM stage 1 (``dl3dv_i256_32input_8target.yaml`` with ``7m1t_tm.yaml``):
  AdamW lr 4e-4, betas (0.9, 0.95), weight decay 0.05 (none on biases, 1-D tensors and Mamba's
  A_log / D / dt_bias), 2000 warm-up steps then cosine decay, gradient clip 10, steps skipped when
  the gradient norm exceeds 5 x the clip, losses mse 1 + perceptual 1 + opacity 0.1 + depth 0.01
  (disparity), white background, bf16 autocast, activation checkpointing, 32 inputs and 8 targets
  at 256^2.
- ``ttt-lrm``: tttLRM's DL3DV config (ttt_lrm.md §8): lr 5e-5, betas (0.9, 0.95), wd 0.05, clip 1,
  mse 1 + perceptual 0.5 + opacity 0.01 + depth 0.01 (disparity).
- ``geolrm-proposal`` / ``geolrm``: GeoLRM's two stages (geolrm.md §4). Stage 1, the proposal
  network: occupancy BCE + geo_scal (weight 1), AdamW lr 2e-4, betas (0.9, 0.95), wd 0.05, 500
  warm-up steps, cosine to 0.001 x lr at 50,000, clip 10, batch 2. Stage 2, the reconstruction
  network with the proposal frozen: mse 4 (the official MSE of images mapped to [-1, 1], i.e. 4x
  ours) + perceptual 2 + mask 1 + depth 0.2 (log), lr 1e-4, 12,000 warm-up steps, cosine to
  0.001 x lr at 100,000, clip 4, fp32, activation checkpointing. Ours differ in two places: the
  background is white (the official recipe re-composites targets on a random colour per batch)
  and the depth term is a plain log-L1 (official: edge-aware) without the depth-TV term.
- ``*-tiny``: the CPU versions (tiny presets, 64 px procedural rooms, 8 inputs; GeoLRM: objects).
- ``geolrm-tiny-demo-proposal`` / ``geolrm-tiny-demo``: the shipped GeoLRM demo model
  (assets/models/geolrm-tiny-demo.md), the two stages on procedural objects at 64 px.
- ``long-lrm-tiny-demo``: the shipped demo model (assets/models/long-lrm-tiny-demo.md): the
  ``tiny-demo`` preset on the demo capture's domain (procedural rooms with a centre table,
  orbits, 50 deg field of view, 112 x 64), a pool of rooms rendered once, log-depth supervision
  with the synth's metric depth, no perceptual term (no VGG weights on the CPU box).

Examples:
    >>> cfg = RECIPES["long-lrm"]
    >>> cfg.lr, cfg.warmup_steps, cfg.losses.opacity
    (0.0004, 2000, 0.1)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from pipelines.train.losses import LossWeights

Background = Literal["white", "black", "random"]


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    model / preset: registered model and its architecture preset; data: "procedural" or a path
    (pipelines.train.data); stream: synth StreamConfig preset (procedural data, and the view
    selection rules for scene files); pool: procedural data from a fixed pool of that many rooms
    rendered once (0: a new room every sample), cached under cache_dir when given;
    scene_height / square_crop: size of scene-file images.
    steps: optimizer iterations (skipped ones included); batch_size: samples per process per step;
    max_minutes: stop (with a checkpoint) after this much training time (None: no limit).
    lr, betas, weight_decay; warmup_steps then cosine decay to ``min_lr_ratio * lr`` at ``steps``.
    grad_clip: global norm clip; skip_grad_factor: skip the update when the norm exceeds this
    times the clip (0: never). losses: weights of the terms. background: colour behind the
    Gaussians in the renders ("random": one per sample and step). bf16: autocast on CUDA;
    dtype: of the parameters, activations and Gaussians ("float64": the reference precision for
    comparing runs that compute the same step in another order, as the DDP test does; it turns
    bf16 off; long-lrm and ttt-lrm only). grad_checkpointing: per-block activation
    checkpointing; prune_in_training: Long-LRM's stage-3 pruning; stage: GeoLRM's training stage
    ("proposal": the occupancy network; "reconstruction": the Gaussian network, the proposal
    frozen). init: weights (safetensors) to start from. seed: network init and per-step
    randomness; data_seed: the stream. checkpoint_every / keep_checkpoints / log_every: in steps;
    eval_every: held-out PSNR on eval_examples procedural examples of stream seed eval_seed (0:
    never). num_workers: data loader processes; threads: torch threads per process (None: leave
    as is).
    """

    model: str = "long-lrm"
    preset: str = "tiny"
    data: str = "procedural"
    stream: str = "long-lrm-tiny"
    pool: int = 0
    cache_dir: str | None = None
    scene_height: int = 256
    square_crop: bool = False
    steps: int = 1000
    batch_size: int = 1
    max_minutes: float | None = None
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.0
    grad_clip: float = 10.0
    skip_grad_factor: float = 5.0
    losses: LossWeights = field(default_factory=LossWeights)
    background: Background = "white"
    bf16: bool = True
    dtype: Literal["float32", "float64"] = "float32"
    grad_checkpointing: bool = True
    prune_in_training: bool = False
    stage: Literal["proposal", "reconstruction"] = "reconstruction"
    init: str | None = None
    perceptual_weights: str | None = None
    seed: int = 0
    data_seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    eval_every: int = 0
    eval_examples: int = 8
    eval_seed: int = 1_000_000
    num_workers: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        assert self.steps >= 0 and self.batch_size >= 1, (self.steps, self.batch_size)
        assert 0 <= self.min_lr_ratio <= 1 and self.warmup_steps >= 0, (self.min_lr_ratio, self.warmup_steps)
        assert self.background in ("white", "black", "random"), self.background
        pixel_aligned = self.model in ("long-lrm", "ttt-lrm")
        assert self.dtype == "float32" or (self.dtype == "float64" and pixel_aligned), (
            f"dtype {self.dtype!r} with model {self.model!r}: float64 runs long-lrm and ttt-lrm only"
        )

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> TrainConfig:
        d = json.loads(text)
        d["losses"] = LossWeights(**d["losses"])
        d["betas"] = tuple(d["betas"])
        return TrainConfig(**d)


_LONG = TrainConfig(
    model="long-lrm", preset="official-540p", stream="long-lrm", steps=100_000, scene_height=256,
    square_crop=True,
)  # fmt: skip
_TTT = TrainConfig(
    model="ttt-lrm", preset="official-full", stream="long-lrm", steps=100_000, lr=5e-5, grad_clip=1.0,
    losses=LossWeights(mse=1.0, perceptual=0.5, opacity=0.01, depth=0.01),
)  # fmt: skip
_GEO = TrainConfig(
    model="geolrm", preset="official", stream="geolrm", steps=100_000, lr=1e-4, warmup_steps=12_000,
    min_lr_ratio=0.001, grad_clip=4.0, skip_grad_factor=0.0, bf16=False,
    losses=LossWeights(mse=4.0, perceptual=2.0, opacity=0.0, depth=0.2, depth_form="log", mask=1.0),
)  # fmt: skip
_GEO_PROPOSAL = _GEO.with_(
    stage="proposal", steps=50_000, lr=2e-4, warmup_steps=500, grad_clip=10.0, batch_size=2,
    losses=LossWeights(mse=0.0, perceptual=0.0, opacity=0.0, depth=0.0, occupancy=1.0),
)  # fmt: skip
_TINY = dict(steps=2000, warmup_steps=100, grad_checkpointing=False, checkpoint_every=100, log_every=10)

RECIPES: dict[str, TrainConfig] = {
    "long-lrm": _LONG,
    "long-lrm-tiny": _LONG.with_(preset="tiny", stream="long-lrm-tiny", **_TINY),
    "long-lrm-tiny-demo": _LONG.with_(
        preset="tiny-demo",
        stream="demo-tiny",
        pool=256,
        steps=4_500,
        warmup_steps=200,
        lr=4e-4,
        min_lr_ratio=0.05,
        losses=LossWeights(mse=1.0, perceptual=1.0, opacity=0.01, depth=0.1, depth_form="log"),
        grad_checkpointing=False,
        checkpoint_every=200,
        keep_checkpoints=3,
        log_every=10,
        eval_every=500,
        eval_examples=8,
        num_workers=0,
        threads=1,
    ),  # fmt: skip
    "ttt-lrm": _TTT,
    "geolrm-proposal": _GEO_PROPOSAL,
    "geolrm": _GEO,
    "geolrm-tiny": _GEO.with_(preset="tiny", stream="geolrm-tiny", lr=4e-4, **_TINY),
    "geolrm-tiny-demo-proposal": _GEO_PROPOSAL.with_(
        preset="tiny-demo",
        stream="geolrm-tiny",
        steps=6000,
        warmup_steps=200,
        lr=1e-3,
        min_lr_ratio=0.05,
        batch_size=1,
        checkpoint_every=200,
        log_every=20,
        threads=1,
    ),
    "geolrm-tiny-demo": _GEO.with_(
        preset="tiny-demo",
        stream="geolrm-tiny",
        steps=4000,
        warmup_steps=200,
        lr=4e-4,
        min_lr_ratio=0.05,
        losses=LossWeights(mse=4.0, perceptual=2.0, opacity=0.0, depth=0.2, depth_form="log", mask=1.0),
        grad_checkpointing=False,
        checkpoint_every=200,
        log_every=10,
        eval_every=500,
        eval_examples=8,
        threads=1,
    ),
    # ``tiny``, not ``tiny-demo``: this stream's model-frame depths (median 7.3) exceed tiny-demo's 5
    "ttt-lrm-tiny": _TTT.with_(preset="tiny", stream="long-lrm-tiny", lr=4e-4, grad_clip=10.0, **_TINY),
}


def default_recipe(model: str, preset: str) -> str:
    """The recipe a (model, preset) pair starts from when none is named."""
    for name in (f"{model}-{preset}", f"{model}-tiny" if "tiny" in preset else model):
        if name in RECIPES:
            return name
    return model if model in RECIPES else "long-lrm"
