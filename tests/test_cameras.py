import math

import torch

from pipelines.cameras import Cameras, make_K
from pipelines.transforms import Similarity, random_rotations


def random_cameras(gen, n=6, width=64, height=48) -> Cameras:
    # eyes 2..4 units from the origin, so every test point (|p| < ~1) is well in front
    eye = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * (2 + 2 * torch.rand(n, 1, generator=gen))
    target = torch.randn(n, 3, generator=gen) * 0.2
    cams = Cameras.look_at(eye, target, fov_y_deg=50.0, width=width, height=height)
    K = cams.K.clone()
    K[:, 0, 0] *= 1 + 0.1 * torch.rand(n, generator=gen)  # fx != fy, off-centre principal point
    K[:, :2, 2] += torch.rand(n, 2, generator=gen) * 4 - 2
    return Cameras(cams.c2w, K, width, height)


def test_look_at_puts_target_at_principal_point(gen):
    cams = random_cameras(gen)
    target = torch.zeros(1, 3)
    c = Cameras.look_at(cams.centers(), target.expand(len(cams), 3), fov_y_deg=40, width=80, height=60)
    uv, z = c.project(target)
    torch.testing.assert_close(uv[:, 0], torch.tensor([40.0, 30.0]).expand(len(cams), 2), atol=1e-4, rtol=0)
    assert (z > 0).all()
    # image up (camera -y) points to world -y (OpenCV default up) as much as possible
    assert (c.c2w[:, 1, 1] >= -1e-6).all()


def test_rigid_and_w2c(gen):
    cams = random_cameras(gen)
    R = cams.c2w[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(len(cams), 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(cams.w2c() @ cams.c2w, torch.eye(4).expand(len(cams), 4, 4), atol=1e-5, rtol=0)
    back = Cameras.from_w2c(cams.w2c(), cams.K, cams.width, cams.height)
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-5, rtol=0)


def test_opengl_round_trip_and_axes(gen):
    cams = random_cameras(gen)
    gl = cams.c2w_opengl()
    # OpenGL camera looks down -z: its -z axis is the OpenCV +z axis
    torch.testing.assert_close(-gl[:, :3, 2], cams.forward_dirs())
    torch.testing.assert_close(Cameras.from_opengl(gl, cams.K, 64, 48).c2w, cams.c2w)


def test_colmap_round_trip(gen):
    cams = random_cameras(gen)
    q, t = cams.to_colmap()
    assert (q[:, 0] >= 0).all()
    back = Cameras.from_colmap(q, t, cams.K, cams.width, cams.height)
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-5, rtol=0)


def test_nerfstudio_round_trip_with_applied_transform(gen):
    cams = random_cameras(gen)
    applied = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]])  # nerfstudio's COLMAP world permutation
    tm = cams.to_nerfstudio(applied)
    back = Cameras.from_nerfstudio(tm, cams.K, cams.width, cams.height, applied)
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-5, rtol=0)
    # the camera centre in nerfstudio's frame is the applied transform of ours
    torch.testing.assert_close(tm[:, :3, 3], cams.centers() @ applied[:, :3].T, atol=1e-5, rtol=0)


def test_resize_and_crop_follow_pixels(gen):
    cams = random_cameras(gen)
    pts = torch.randn(20, 3, generator=gen) * 0.3
    uv, _ = cams.project(pts)
    uv2, _ = cams.resize(128, 24).project(pts)
    torch.testing.assert_close(uv2, uv * torch.tensor([2.0, 0.5]), atol=1e-3, rtol=0)
    uv3, _ = cams.crop(5, 7, 30, 20).project(pts)
    torch.testing.assert_close(uv3, uv - torch.tensor([5.0, 7.0]), atol=1e-3, rtol=0)


def test_pixel_rays_hit_their_pixel_centres(gen):
    cams = random_cameras(gen, n=2, width=7, height=5)
    o, d = cams.pixel_rays()
    assert o.shape == d.shape == (2, 5, 7, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2, 5, 7))
    depth = torch.rand(2, 5, 7, 1, generator=gen) * 3 + 0.5
    pts = o + depth * d
    for i in range(2):
        uv, _ = cams[i].project(pts[i].reshape(-1, 3))
        jj, ii = torch.meshgrid(torch.arange(5) + 0.5, torch.arange(7) + 0.5, indexing="ij")
        torch.testing.assert_close(uv[0], torch.stack([ii, jj], -1).reshape(-1, 2), atol=1e-3, rtol=0)


def test_unproject_inverts_project(gen):
    cams = random_cameras(gen, n=3, width=9, height=6).to(dtype=torch.float64)
    z = torch.rand(3, 6, 9, generator=gen, dtype=torch.float64) * 4 + 0.3
    pts = cams.unproject(z)  # [3, 6, 9, 3]; the rotations are orthonormal to float32 precision
    jj, ii = torch.meshgrid(torch.arange(6) + 0.5, torch.arange(9) + 0.5, indexing="ij")
    for i in range(3):
        uv, depth = cams[i].project(pts[i].reshape(-1, 3))
        torch.testing.assert_close(uv[0], torch.stack([ii, jj], -1).reshape(-1, 2).double(), atol=1e-5, rtol=0)
        torch.testing.assert_close(depth[0], z[i].reshape(-1), atol=1e-5, rtol=0)


def test_plucker_moment_is_invariant_along_ray(gen):
    cams = random_cameras(gen, n=2, width=8, height=6)
    pl = cams.plucker()
    m, d = pl[..., :3], pl[..., 3:]
    o, _ = cams.pixel_rays()
    p = o + 2.7 * d  # any point on the ray has the same moment p x d
    torch.testing.assert_close(torch.linalg.cross(p, d, dim=-1), m, atol=1e-5, rtol=0)


def test_similarity_transform_keeps_images(gen):
    cams = random_cameras(gen)
    sim = Similarity(0.4, random_rotations(1, gen, torch.float64)[0], torch.randn(3, generator=gen, dtype=torch.float64))
    pts = torch.randn(30, 3, generator=gen) * 0.3
    uv, z = cams.project(pts)
    uv2, z2 = cams.transform(sim).project(sim.apply(pts))
    torch.testing.assert_close(uv2, uv, atol=1e-3, rtol=0)
    torch.testing.assert_close(z2, z * 0.4, atol=1e-5, rtol=1e-4)


def test_make_K_and_fov():
    K = make_K(torch.tensor(100.0), torch.tensor(100.0), torch.tensor(50.0), torch.tensor(40.0))
    cams = Cameras(torch.eye(4)[None], K[None], 100, 80)
    assert math.isclose(float(cams.fov_y_rad()[0]), 2 * math.atan(0.4), rel_tol=1e-6)
