import math

import torch

from pipelines.transforms import (
    Similarity,
    axis_angle_to_rotmat,
    quat_conjugate,
    quat_exp,
    quat_log,
    quat_multiply,
    quat_slerp,
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


def rodrigues(v: torch.Tensor) -> torch.Tensor:
    """float64 reference: R = I + sin(a) K + (1 - cos(a)) K^2 for v = a * unit axis."""
    a = v.norm(dim=-1)[..., None, None]
    k = v / v.norm(dim=-1, keepdim=True)
    K = torch.zeros(v.shape[:-1] + (3, 3), dtype=v.dtype)
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - K.transpose(-1, -2)
    return torch.eye(3, dtype=v.dtype) + torch.sin(a) * K + (1 - torch.cos(a)) * K @ K


def test_quat_exp_log_are_the_shortest_rotation(gen):
    axis = torch.nn.functional.normalize(torch.randn(200, 3, generator=gen, dtype=torch.float64), dim=-1)
    angle = torch.rand(200, 1, generator=gen, dtype=torch.float64) * math.pi * 0.999
    v = axis * angle
    q = quat_exp(v)
    torch.testing.assert_close(quat_to_rotmat(q), rodrigues(v))
    torch.testing.assert_close(quat_log(q), v)
    torch.testing.assert_close(quat_log(-q), v)  # the sign of q never adds a turn
    zero = torch.zeros(1, 3, dtype=torch.float64)
    torch.testing.assert_close(quat_log(quat_exp(zero)), zero)
    # angles beyond pi come back as the equivalent shorter rotation the other way
    long = axis * (2 * math.pi - angle)
    torch.testing.assert_close(quat_log(quat_exp(long)), -v)


def test_quat_slerp_moves_along_the_short_arc(gen):
    a, b = torch.randn(2, 50, 4, generator=gen, dtype=torch.float64)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    s = torch.rand(50, generator=gen, dtype=torch.float64)
    Ra, Rb = quat_to_rotmat(a), quat_to_rotmat(b)
    rel = quat_log(quat_multiply(quat_conjugate(a), b))  # [50, 3], |rel| <= pi
    for sign in (1.0, -1.0):
        got = quat_to_rotmat(quat_slerp(a, sign * b, s))
        torch.testing.assert_close(got, Ra @ rodrigues(s[:, None] * rel))
    torch.testing.assert_close(quat_to_rotmat(quat_slerp(a, b, torch.ones(50, dtype=torch.float64))), Rb)
