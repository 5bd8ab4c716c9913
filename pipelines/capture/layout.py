"""Is a capture object-centric? GeoLRM (and other object models) assume cameras around one object,
all looking at it from outside, with the object inside a box at the centre; a walk through a
room or a capture whose content surrounds the cameras breaks that assumption.

:func:`object_centric` decides from the cameras (and, when given, the sparse points):

1. the optical axes converge (``pipelines.paths.auto.axes_convergence``: a point in front of
   the cameras closest to every axis; a forward walk's near-parallel axes have none);
2. most cameras (``min_fraction``) look at that centre: the angle between the optical axis and
   the direction to the centre is below ``max_angle_deg``;
3. with sparse points: most of them (``min_fraction``) lie closer to the centre than the cameras
   do (a room's walls and furniture lie beyond an orbit inside it).

Examples:
    >>> verdict = object_centric(capture.cameras, points)   # doctest: +SKIP
    >>> verdict.ok, verdict.reason                          # doctest: +SKIP
    (False, 'the cameras do not look at a common centre (a walk or a sweep)')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras


@dataclass(frozen=True)
class ObjectCentric:
    """ok: the capture suits object-centric models; reason: why not (empty when ok); centre: the
    point the cameras look at ([3] world) when they converge."""

    ok: bool
    reason: str
    centre: tuple[float, float, float] | None = None


def object_centric(
    cameras: Cameras,
    points: Tensor | np.ndarray | None = None,
    *,
    max_angle_deg: float = 20.0,
    min_fraction: float = 0.8,
) -> ObjectCentric:
    """Decide whether ``cameras`` (and the sparse ``points`` [P, 3] world, optional) form an
    object-centric capture (module doc)."""
    from pipelines.paths.auto import axes_convergence

    if len(cameras) < 2:
        return ObjectCentric(False, "a single camera does not surround an object")
    centre = axes_convergence(cameras)
    if centre is None:
        return ObjectCentric(False, "the cameras do not look at a common centre (a walk or a sweep)")
    c = cameras.centers().double().cpu()  # [N, 3]
    d = torch.nn.functional.normalize(cameras.forward_dirs().double().cpu(), dim=-1)  # [N, 3]
    to_centre = torch.nn.functional.normalize(centre[None] - c, dim=-1)  # [N, 3]
    angle = torch.rad2deg(torch.arccos((d * to_centre).sum(-1).clamp(-1, 1)))  # [N]
    looking = float((angle < max_angle_deg).double().mean())
    xyz = tuple(float(v) for v in centre)
    if looking < min_fraction:
        return ObjectCentric(
            False,
            f"only {looking:.0%} of the cameras look at a common centre (within {max_angle_deg:g} degrees)",
            xyz,
        )
    if points is not None and len(points):
        p = torch.as_tensor(np.asarray(points, dtype=np.float64))
        radius = float((c - centre[None]).norm(dim=-1).median())
        inside = float(((p - centre[None]).norm(dim=-1) < radius).double().mean())
        if inside < min_fraction:
            return ObjectCentric(
                False,
                f"{1 - inside:.0%} of the scene lies beyond the cameras (a room or a landscape around them, "
                "not an object in front of them)",
                xyz,
            )
    return ObjectCentric(True, "", xyz)
