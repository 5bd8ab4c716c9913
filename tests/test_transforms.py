import math

import torch

from pipelines.transforms import (
    Similarity,
    axis_angle_to_rotmat,
    quat_multiply,
    quat_to_rotmat,
    random_rotations,
    rotmat_to_quat,
    umeyama,
)


def test_quat_rotmat_round_trip(gen):
    q = torch.randn(500, 4, generator=gen, dtype=torch.float64)
    R = quat_to_rotmat(q)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(500, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(500, dtype=torch.float64))
    q2 = rotmat_to_quat(R)
    qn = q / q.norm(dim=-1, keepdim=True)
    qn = torch.where(qn[:, :1] < 0, -qn, qn)
    torch.testing.assert_close(q2, qn)


def test_rotmat_to_quat_near_pi():
    # 180-degree rotations, where the trace formula alone is unstable
    for axis in torch.eye(3, dtype=torch.float64):
        R = axis_angle_to_rotmat(axis * math.pi)
        torch.testing.assert_close(quat_to_rotmat(rotmat_to_quat(R)), R)


def test_quat_multiply_is_rotation_composition(gen):
    a, b = torch.randn(100, 4, generator=gen, dtype=torch.float64), torch.randn(100, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b))


def test_similarity_inverse_and_compose(gen):
    R1, R2 = random_rotations(2, gen, torch.float64)
    s1 = Similarity(2.5, R1, torch.randn(3, generator=gen, dtype=torch.float64))
    s2 = Similarity(0.3, R2, torch.randn(3, generator=gen, dtype=torch.float64))
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(s1.inverse().apply(s1.apply(x)), x)
    torch.testing.assert_close(s1.compose(s2).apply(x), s1.apply(s2.apply(x)))
    torch.testing.assert_close(Similarity.from_matrix(s1.matrix()).apply(x), s1.apply(x))
    torch.testing.assert_close(Similarity.from_dict(s1.to_dict()).apply(x), s1.apply(x))


def test_umeyama_recovers_similarity(gen):
    R = random_rotations(1, gen, torch.float64)[0]
    truth = Similarity(1.7, R, torch.randn(3, generator=gen, dtype=torch.float64))
    src = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    est = umeyama(src, truth.apply(src))
    assert abs(est.scale - truth.scale) < 1e-9
    torch.testing.assert_close(est.rotation, truth.rotation)
    torch.testing.assert_close(est.translation, truth.translation)
