"""Settings of the 3DGS optimizer: one frozen dataclass, named presets by hardware.

Defaults are gsplat 1.5.3 ``examples/simple_trainer.py`` (the ``default`` config): 30k steps,
loss 0.8 L1 + 0.2 (1 - SSIM), SH degree raised every 1000 steps up to 3, Adam (eps 1e-15) with
per-parameter learning rates, the means' rate times the scene scale decaying exponentially to
0.01x over the run, densification by ``DefaultStrategy`` (opacity reset fixed, see strategy.py),
SfM init with opacity 0.1 and log-scales from the 3 nearest neighbours.

Presets:

- ``"cuda-30k"``: the standard schedule above, full capture resolution (CUDA, gsplat kernels).
- ``"cpu-fast"``: a reduced schedule that finishes in minutes on 2 CPU cores: images at most
  128 px on the longer side, 3000 steps, at most 20k Gaussians, densification and SH schedule
  compressed accordingly. Runs made with it say so (``OptimizeConfig.reduced_note``).

Examples:
    >>> cfg = preset("cpu-fast")
    >>> cfg.steps, cfg.max_side, cfg.densify.cap_max
    (3000, 128, 20000)
    >>> replace(cfg, steps=500).steps
    500
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import torch

StrategyKind = Literal["default", "mcmc"]
PresetName = Literal["cuda-30k", "cpu-fast"]


@dataclass(frozen=True)
class LearningRates:
    """Adam learning rates per parameter group (gsplat simple_trainer's defaults)."""

    means: float = 1.6e-4  # times the scene scale; the only scheduled rate
    means_final_ratio: float = 0.01  # the means' rate decays exponentially to this fraction at the last step
    scales: float = 5e-3  # log-scales
    opacities: float = 5e-2  # opacity logits
    quats: float = 1e-3
    sh0: float = 2.5e-3  # DC colour
    shN: float = 2.5e-3 / 20  # SH bands 1..3
    eps: float = 1e-15  # Adam epsilon


@dataclass(frozen=True)
class DensifyConfig:
    """gsplat ``DefaultStrategy`` settings (3D scales relative to the scene scale, 2D ones to the
    image size, steps in optimizer steps) plus ``cap_max``: growth stops at this many Gaussians
    (the candidates with the largest image-plane gradients are grown first; None: no cap)."""

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop_iter: int = 0
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    refine_every: int = 100
    pause_refine_after_reset: int = 0
    absgrad: bool = False
    revised_opacity: bool = False
    cap_max: int | None = None


@dataclass(frozen=True)
class MCMCConfig:
    """gsplat ``MCMCStrategy`` settings (CUDA only) and simple_trainer's ``mcmc`` extras."""

    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start_iter: int = 500
    refine_stop_iter: int = 25_000
    refine_every: int = 100
    min_opacity: float = 0.005
    init_opacity: float = 0.5
    init_scale: float = 0.1
    opacity_reg: float = 0.01
    scale_reg: float = 0.01


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything a 3DGS optimization run depends on (recorded in run.json and checkpoints)."""

    preset: str = "cuda-30k"  # the preset this config came from (informational)
    steps: int = 30_000
    downscale: float = 1.0  # images (and intrinsics) are shrunk by this factor per side
    max_side: int | None = None  # ... and further so that the longer side is at most this (None: no limit)
    sh_degree: int = 3
    sh_degree_interval: int = 1000  # SH degree in use = min(max(step // interval, start), sh_degree)
    sh_degree_start: int = 0  # ... from step 0: a refined run's own degree (its bands are trained)
    ssim_lambda: float = 0.2  # loss = (1 - l) L1 + l (1 - SSIM)
    init_opacity: float = 0.1  # SfM init (the strategy "mcmc" uses MCMCConfig.init_opacity)
    init_scale: float = 1.0  # SfM init: log-scale = log(init_scale * mean 3-NN distance)
    lr: LearningRates = field(default_factory=LearningRates)
    strategy: StrategyKind = "default"
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    mcmc: MCMCConfig = field(default_factory=MCMCConfig)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # behind the Gaussians (training and eval)
    near_plane: float = 0.01
    far_plane: float = 1e10
    seed: int = 42  # view order, init rotations, densification noise
    # live reporting, evaluation and checkpoints (in steps; 0 turns one off)
    live_every: int = 100  # callback with the loss and step time
    snapshot_every: int = 1000  # ... carrying a copy of the current Gaussians (a multiple of live_every)
    eval_every: int = 1000  # PSNR / SSIM (/ LPIPS) on the test split
    checkpoint_every: int = 1000
    # divergence guard: a step whose loss is not finite or above max_loss, or whose gradients
    # are not finite, is skipped (no update); this many skipped in a row abort the run
    max_loss: float = 5.0
    max_skips_in_a_row: int = 20

    def __post_init__(self) -> None:
        assert self.steps > 0, f"steps must be positive, got {self.steps}"
        assert self.downscale >= 1.0, f"downscale must be >= 1 (1: full resolution), got {self.downscale}"
        assert self.max_side is None or self.max_side >= 16, f"max_side must be >= 16, got {self.max_side}"
        assert 0 <= self.sh_degree <= 3, f"sh_degree must be 0..3, got {self.sh_degree}"
        assert self.sh_degree_interval > 0, (
            f"sh_degree_interval must be positive, got {self.sh_degree_interval}"
        )
        assert self.strategy in ("default", "mcmc"), f"unknown strategy {self.strategy!r} (default, mcmc)"
        assert len(self.background) == 3, f"background must be 3 values, got {self.background}"
        assert not (self.live_every and self.snapshot_every) or self.snapshot_every % self.live_every == 0, (
            f"snapshot_every ({self.snapshot_every}) must be a multiple of live_every ({self.live_every})"
        )

    @property
    def reduced(self) -> bool:
        """True for a schedule shorter than the standard 30k steps or at reduced resolution."""
        return self.steps < 30_000 or self.max_side is not None

    @property
    def reduced_note(self) -> str | None:
        """A sentence saying how this run differs from the standard 30k-step schedule (None when
        it does not)."""
        if not self.reduced:
            return None
        parts = [f"{self.steps:,} steps"]
        if self.max_side is not None:
            parts.append(f"images at most {self.max_side} px")
        cap = self.densify.cap_max if self.strategy == "default" else self.mcmc.cap_max
        if cap is not None:
            parts.append(f"at most {cap:,} Gaussians")
        return (
            f"reduced preset {self.preset!r} ({', '.join(parts)}): quicker than the standard 30k-step "
            "schedule (preset 'cuda-30k') and not comparable to published 3DGS figures"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> OptimizeConfig:
        """Inverse of :meth:`to_dict` (unknown keys are refused: they mean a different version)."""
        nested = {"lr": LearningRates, "densify": DensifyConfig, "mcmc": MCMCConfig}
        names = {f.name for f in fields(OptimizeConfig)}
        if unknown := sorted(set(d) - names):
            raise ValueError(f"unknown optimizer settings {unknown}; written by another version?")
        kw = {k: (nested[k](**v) if k in nested else v) for k, v in d.items()}
        if "background" in kw:
            kw["background"] = tuple(kw["background"])
        return OptimizeConfig(**kw)


PRESETS: dict[str, OptimizeConfig] = {
    "cuda-30k": OptimizeConfig(),
    "cpu-fast": OptimizeConfig(
        preset="cpu-fast",
        steps=3000,
        max_side=128,
        sh_degree_interval=500,
        densify=DensifyConfig(
            refine_start_iter=200,
            refine_stop_iter=2000,
            reset_every=1000,
            refine_every=100,
            cap_max=20_000,
        ),
        live_every=50,
        snapshot_every=100,
        eval_every=250,
        checkpoint_every=500,
    ),
}


def preset(name: str) -> OptimizeConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def default_preset(device: torch.device | str) -> str:
    """``cuda-30k`` on a CUDA device, ``cpu-fast`` on the CPU."""
    return "cuda-30k" if torch.device(device).type == "cuda" else "cpu-fast"


__all__ = [
    "OptimizeConfig",
    "LearningRates",
    "DensifyConfig",
    "MCMCConfig",
    "PRESETS",
    "preset",
    "default_preset",
    "replace",
]
