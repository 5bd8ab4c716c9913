"""Densification: gsplat's strategies, with the opacity reset of gsplat 1.5.3 fixed and a cap.

gsplat 1.5.3 ``DefaultStrategy.step_post_backward`` guards the opacity reset with
``if step % self.reset_every == 0 & step > 0:``. ``&`` binds tighter than the comparisons, so
Python reads ``step % reset_every == (0 & step) > 0``, a chained comparison ending in ``0 > 0``:
always False, the reset never fires (introduced by gsplat PR #735, fixed on gsplat main by PR
#776, in no PyPI release). :class:`DefaultStrategy` below is the subclass we use: after the base
class's step it resets opacities (clamped to 2 x prune_opa, the opacity Adam moments zeroed) at
every ``reset_every`` step before ``refine_stop_iter``, as the fixed gsplat does. A reset is
idempotent (a clamp and zeroed moments), so a gsplat release with the fix would not double it.

It also adds ``cap_max``: when growing would exceed it, only the candidates with the largest
mean image-plane gradients grow (each duplicate or split adds exactly one Gaussian), so the
count never exceeds the cap through densification.

The strategy objects hold settings only; their state (gsplat's dict: running gradient sums and
counts, the scene scale; MCMC's binomial table) is a value the trainer checkpoints.

``MCMCStrategy`` relocates Gaussians with gsplat's CUDA kernel (``compute_relocation``), so
:func:`make_strategy` refuses it on the CPU with a message saying what to use instead.

Examples:
    >>> s = make_strategy(OptimizeConfig(), "cpu")
    >>> type(s).__name__, s.reset_every
    ('DefaultStrategy', 3000)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy as _GsplatDefaultStrategy
from gsplat.strategy import MCMCStrategy
from gsplat.strategy.ops import reset_opa

from pipelines.optimize.config import OptimizeConfig


@dataclass
class DefaultStrategy(_GsplatDefaultStrategy):
    """gsplat's DefaultStrategy with the opacity reset that fires, and an optional cap."""

    cap_max: int | None = None

    def __post_init__(self) -> None:
        assert self.cap_max is None or self.refine_scale2d_stop_iter == 0, (
            "cap_max counts gradient-based growth only; use it with refine_scale2d_stop_iter=0"
        )

    def step_post_backward(self, params, optimizers, state, step, info, packed=False) -> None:
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if 0 < step < self.refine_stop_iter and step % self.reset_every == 0:
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step) -> tuple[int, int]:
        if self.cap_max is not None:
            budget = max(self.cap_max - len(params["means"]), 0)
            mean_grad = state["grad2d"] / state["count"].clamp_min(1)
            candidates = mean_grad > self.grow_grad2d
            if int(candidates.sum()) > budget:
                keep = torch.zeros_like(candidates)
                if budget > 0:
                    keep[torch.topk(mean_grad, budget).indices] = True
                # The base class grows where grad2d / count > grow_grad2d; zero the rest (the
                # running sums are reset right after growing anyway).
                state["grad2d"] = torch.where(keep, state["grad2d"], torch.zeros_like(state["grad2d"]))
        return super()._grow_gs(params, optimizers, state, step)


Strategy = DefaultStrategy | MCMCStrategy


def make_strategy(config: OptimizeConfig, device: torch.device | str) -> Strategy:
    """The strategy ``config.strategy`` names, for Gaussians on ``device``."""
    if config.strategy == "mcmc":
        if torch.device(device).type != "cuda":
            raise ValueError(
                "strategy 'mcmc' needs CUDA: gsplat's MCMCStrategy relocates Gaussians with a CUDA "
                "kernel (gsplat.relocation.compute_relocation). On the CPU use strategy 'default' "
                "(DefaultStrategy with DensifyConfig.cap_max as the Gaussian cap; the cpu-fast preset does)."
            )
        m = config.mcmc
        return MCMCStrategy(
            cap_max=m.cap_max,
            noise_lr=m.noise_lr,
            refine_start_iter=m.refine_start_iter,
            refine_stop_iter=m.refine_stop_iter,
            refine_every=m.refine_every,
            min_opacity=m.min_opacity,
        )
    return DefaultStrategy(**asdict(config.densify))


def init_strategy_state(strategy: Strategy, scene_scale: float) -> dict[str, Any]:
    if isinstance(strategy, DefaultStrategy):
        return strategy.initialize_state(scene_scale=scene_scale)
    return strategy.initialize_state()
