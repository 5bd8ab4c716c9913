"""Gaussians -> the arrays viser's ``add_gaussian_splats`` takes, under a browser budget.

viser 1.1.1 draws splats from world covariances, activated colours and opacities, and keeps
only the DC colour (no view-dependent SH). The browser receives at most ``budget`` splats,
the most important by :meth:`Gaussians.importance` (opacity times area); the full set stays on
the server for export and server-side renders.

Examples:
    >>> g = Gaussians.random(10, generator=torch.Generator().manual_seed(0))
    >>> a = to_viser_arrays(g, budget=4)
    >>> a.centers.shape, a.covariances.shape, a.rgbs.shape, a.opacities.shape, a.num_total
    ((4, 3), (4, 3, 3), (4, 3), (4, 1), 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import viser

from pipelines.gaussians import Gaussians


@dataclass(frozen=True)
class SplatArrays:
    """centers [N, 3] world; covariances [N, 3, 3] world (R diag(s^2) R^T); rgbs [N, 3] in
    [0, 1] from the SH DC term; opacities [N, 1] in (0, 1); all float32. num_total: the
    Gaussians before the budget."""

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray
    num_total: int

    @property
    def num(self) -> int:
        return self.centers.shape[0]


def to_viser_arrays(g: Gaussians, *, budget: int) -> SplatArrays:
    """The ``budget`` most important of ``g`` (all when fewer, non-finite ones dropped) as viser
    arrays. Order among the kept Gaussians is preserved."""
    assert budget > 0, f"budget must be positive, got {budget}"
    total = g.num
    with torch.no_grad():
        # The browser shows the DC colour only: drop the higher SH bands first (a view), so the
        # finite check and the subset below never copy them.
        g = g.detach().to("cpu", torch.float32).with_sh_degree(0).finite().top_k(budget)
        return SplatArrays(
            centers=g.means.numpy().astype(np.float32, copy=True),
            covariances=g.covariances().numpy().astype(np.float32, copy=False),
            rgbs=g.colors_dc().numpy().astype(np.float32, copy=False),
            opacities=g.opacities()[:, None].numpy().astype(np.float32, copy=False),
            num_total=total,
        )


def put_splats(
    scene: viser.SceneApi, name: str, arrays: SplatArrays, handle: viser.GaussianSplatHandle | None = None
) -> viser.GaussianSplatHandle:
    """Show ``arrays`` at node ``name``: update ``handle`` (the caller's live handle of that
    node) in place with one atomic buffer update, count changes included; add the node when
    there is none. Returns the live handle."""
    if handle is not None:
        handle.set_gaussians(arrays.centers, arrays.covariances, arrays.rgbs, arrays.opacities)
        return handle
    return scene.add_gaussian_splats(name, arrays.centers, arrays.covariances, arrays.rgbs, arrays.opacities)
