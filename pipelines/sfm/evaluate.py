"""How close SfM cameras are to ground truth, up to the similarity SfM cannot observe.

SfM recovers cameras up to scale, rotation and translation of the world. The estimated camera
centres are aligned to the ground-truth centres by the least-squares similarity (Umeyama); then
the rotation error of camera i is the angle of R_gt_i^T R_aligned_i and its centre error is the
distance between aligned and true centres, reported relative to the trajectory's extent (the
diagonal of the ground-truth centres' bounding box).

Examples:
    >>> err = pose_errors(cap.cameras, gt_cameras[frame_indices])     # doctest: +SKIP
    >>> err.rotation_deg_median, err.center_rel_median                # doctest: +SKIP
    (0.08, 0.0012)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.transforms import Similarity, umeyama


@dataclass
class PoseErrors:
    rotation_deg: list[float]  # per camera
    center_rel: list[float]  # per camera, centre error / trajectory extent
    rotation_deg_median: float
    center_rel_median: float
    extent: float  # ground-truth trajectory extent (world units of the ground truth)
    alignment: Similarity  # estimate -> ground truth

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("rotation_deg"), d.pop("center_rel")
        d["alignment"] = self.alignment.to_dict()
        return d


def rotation_angle(R: Tensor) -> Tensor:
    """Angle [...] in radians of rotations R [..., 3, 3]: atan2(sin, cos), accurate for small
    angles (acos of the trace loses them: a 1e-7 non-orthonormality reads as 0.03 degrees)."""
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    skew = torch.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    return torch.atan2(skew.norm(dim=-1) / 2, cos)


def pose_errors(estimate: Cameras, truth: Cameras) -> PoseErrors:
    """Errors of ``estimate`` [N] against ``truth`` [N] (same order, N >= 3, centres not collinear)."""
    assert len(estimate) == len(truth) >= 3, (len(estimate), len(truth))
    est, gt = estimate.to("cpu", torch.float64), truth.to("cpu", torch.float64)
    sim = umeyama(est.centers(), gt.centers())
    aligned = est.transform(sim)
    R = gt.c2w[:, :3, :3].transpose(1, 2) @ aligned.c2w[:, :3, :3]  # [N, 3, 3]
    rot = torch.rad2deg(rotation_angle(R))
    extent = float((gt.centers().amax(0) - gt.centers().amin(0)).norm())
    center = (aligned.centers() - gt.centers()).norm(dim=-1) / extent
    return PoseErrors(
        rotation_deg=rot.tolist(),
        center_rel=center.tolist(),
        rotation_deg_median=float(rot.median()),
        center_rel_median=float(center.median()),
        extent=extent,
        alignment=sim,
    )
