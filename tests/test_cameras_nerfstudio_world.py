"""The nerfstudio world change (applied_transform) for points agrees with the one for cameras."""

import torch

from pipelines.cameras import (
    NERFSTUDIO_APPLIED_TRANSFORM,
    Cameras,
    points_from_nerfstudio,
    points_to_nerfstudio,
)
from pipelines.transforms import random_rotations


def test_constant_maps_x_y_z_to_x_z_minus_y():
    p = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    assert points_to_nerfstudio(p, NERFSTUDIO_APPLIED_TRANSFORM).tolist() == [[1.0, 3.0, -2.0]]


def test_points_follow_cameras(gen):
    n = 5
    cams = Cameras.look_at(
        torch.randn(n, 3, generator=gen) * 2, torch.zeros(n, 3), fov_y_deg=50, width=32, height=24
    )
    A = torch.cat(
        [random_rotations(1, gen, torch.float64)[0], torch.randn(3, 1, generator=gen, dtype=torch.float64)], 1
    )
    tm = cams.to_nerfstudio(A)
    # camera centres are points: the transform_matrix translation is the points' transform
    torch.testing.assert_close(
        tm[:, :3, 3].double(), points_to_nerfstudio(cams.centers(), A), atol=1e-5, rtol=0
    )
    pts = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        points_from_nerfstudio(points_to_nerfstudio(pts, A), A), pts, atol=1e-12, rtol=0
    )
    # a point in front of a camera stays at the same camera-space position in the new world
    ns = Cameras.from_opengl(tm, cams.K, cams.width, cams.height)
    uv0, z0 = cams.project(pts.float())
    uv1, z1 = ns.project(points_to_nerfstudio(pts, A).float())
    torch.testing.assert_close(z1, z0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(uv1, uv0, atol=1e-2, rtol=1e-4)
