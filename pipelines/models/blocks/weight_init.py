"""The weight initialisation of the official Long-LRM and tttLRM code (``_init_weights``).

Examples:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
    >>> _ = net.apply(init_normal)
    >>> bool((net[0].bias == 0).all())
    True
"""

from __future__ import annotations

from torch import nn


def init_normal(m: nn.Module) -> None:
    """Linear weights N(0, 0.02), biases 0; every other module keeps its own initialisation.
    Use with ``module.apply``."""
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
