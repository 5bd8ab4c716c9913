"""Schedules of the optimizer: small frozen dataclasses; their state is the step (and, for the
view order, an explicit value the trainer checkpoints).

- :class:`ShDegreeSchedule`: SH degree in use = min(step // interval, max_degree) (gsplat
  simple_trainer's ``sh_degree_interval``).
- :class:`ExponentialDecay`: lr(step) = lr0 * final_ratio ** (step / steps), what
  ``torch.optim.lr_scheduler.ExponentialLR(gamma=final_ratio ** (1 / steps))`` gives when stepped
  once after every optimizer step (simple_trainer's means schedule), but as a function of the
  step, so resuming needs no scheduler state.
- :class:`ViewOrder`: training views in a fresh random permutation each epoch (what a shuffling
  DataLoader gives), from its own generator; :meth:`ViewOrder.init_state` / :meth:`next` take
  and return the state.

Examples:
    >>> ShDegreeSchedule(interval=1000, max_degree=3).degree(2500)
    2
    >>> round(ExponentialDecay(1.0, 0.01, steps=100).at(50), 6)
    0.1
    >>> order = ViewOrder(num_views=3, seed=0); s = order.init_state()
    >>> sorted(order.next(s)[0] for _ in range(3)) == [0, 1, 2]   # one epoch visits each once
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ShDegreeSchedule:
    """SH degree in use at a step: one more band every ``interval`` steps up to ``max_degree``,
    from ``start`` on (a refined run starts with the bands its Gaussians already have)."""

    interval: int = 1000
    max_degree: int = 3
    start: int = 0

    def degree(self, step: int) -> int:
        return min(max(step // self.interval, self.start), self.max_degree)


@dataclass(frozen=True)
class ExponentialDecay:
    start: float
    final_ratio: float
    steps: int

    def at(self, step: int) -> float:
        """The rate used by the optimizer step number ``step`` (0-based)."""
        return self.start * self.final_ratio ** (step / self.steps)


@dataclass(frozen=True)
class ViewOrder:
    """Random view order, one permutation of ``num_views`` per epoch."""

    num_views: int
    seed: int = 42

    def init_state(self) -> dict[str, Any]:
        """{"generator": generator state (uint8 tensor), "perm": [indices of this epoch], "pos": int}."""
        g = torch.Generator().manual_seed(self.seed)
        return {"generator": g.get_state(), "perm": [], "pos": 0}

    def next(self, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The next view index and the new state (the given state is not modified)."""
        perm, pos, gen_state = list(state["perm"]), int(state["pos"]), state["generator"]
        if pos >= len(perm):
            g = torch.Generator()
            g.set_state(gen_state)
            perm = torch.randperm(self.num_views, generator=g).tolist()
            gen_state, pos = g.get_state(), 0
        return perm[pos], {"generator": gen_state, "perm": perm, "pos": pos + 1}
