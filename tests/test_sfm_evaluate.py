import math

import torch

from pipelines.cameras import Cameras
from pipelines.sfm.evaluate import pose_errors
from pipelines.transforms import Similarity, axis_angle_to_rotmat, random_rotations


def test_rotation_angle_matches_axis_angle(gen):
    from pipelines.sfm.evaluate import rotation_angle

    angles = torch.cat(
        [torch.tensor([0.0, 1e-6, 3.0]), torch.rand(20, generator=gen, dtype=torch.float64) * 3.1]
    )
    axes = torch.nn.functional.normalize(
        torch.randn(len(angles), 3, generator=gen, dtype=torch.float64), dim=-1
    )
    R = axis_angle_to_rotmat(axes * angles[:, None])
    torch.testing.assert_close(rotation_angle(R), angles, atol=1e-9, rtol=0)


def test_errors_are_invariant_to_a_similarity_and_measure_perturbations(gen):
    n = 12
    a = torch.linspace(0, 2 * math.pi, n + 1)[:n]
    eye = torch.stack([3 * torch.cos(a), 0.3 * torch.sin(3 * a), 3 * torch.sin(a)], -1).double()
    truth = Cameras.look_at(eye, torch.zeros(n, 3), fov_y_deg=50, width=64, height=48).to(dtype=torch.float64)
    sim = Similarity(
        2.5, random_rotations(1, gen, torch.float64)[0], torch.randn(3, generator=gen, dtype=torch.float64)
    )
    est = truth.transform(sim)  # the same cameras in another world frame
    e = pose_errors(est, truth)
    assert e.rotation_deg_median < 1e-5 and e.center_rel_median < 1e-7
    # perturb one camera by a known rotation about its centre: only its rotation error changes
    c2w = est.c2w.clone()
    angle = 2.0
    c2w[3, :3, :3] = (
        axis_angle_to_rotmat(torch.tensor([0, 0, math.radians(angle)], dtype=torch.float64)) @ c2w[3, :3, :3]
    )
    e = pose_errors(Cameras(c2w, est.K, est.width, est.height), truth)
    assert abs(e.rotation_deg[3] - angle) < 1e-4 and max(e.rotation_deg[:3] + e.rotation_deg[4:]) < 1e-4
    extent = (eye.amax(0) - eye.amin(0)).norm()
    assert abs(e.extent - float(extent)) < 1e-9
