import math

import torch

from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import eval_sh
from pipelines.transforms import Similarity, random_rotations


def test_shapes_are_checked():
    g = Gaussians.random(10)
    try:
        Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, g.sh[:, :5])
    except AssertionError as e:
        assert "SH degree" in str(e) or "coefficients" in str(e)
    else:
        raise AssertionError("5 SH coefficients must be rejected")


def test_cat_subset_prune_topk(gen):
    a = Gaussians.random(50, sh_degree=1, generator=gen)
    b = Gaussians.random(30, sh_degree=3, generator=gen)
    c = Gaussians.cat([a, b])
    assert c.num == 80 and c.sh_degree == 3
    torch.testing.assert_close(c.sh[:50, 4:], torch.zeros(50, 12, 3))  # padded
    torch.testing.assert_close(c[50:].means, b.means)
    kept = c.prune_opacity(0.5)
    assert kept.num == int((c.opacities() >= 0.5).sum())
    top = c.top_k(10)
    assert top.num == 10
    assert top.importance().min() >= c.importance().topk(10).values.min() - 1e-7


def test_similarity_transform_of_covariance_and_colour(gen):
    g = Gaussians.random(40, sh_degree=3, generator=gen).to(dtype=torch.float64)
    R = random_rotations(1, gen, torch.float64)[0]
    sim = Similarity(2.0, R, torch.randn(3, generator=gen, dtype=torch.float64))
    h = g.transform(sim)
    torch.testing.assert_close(h.means, sim.apply(g.means))
    torch.testing.assert_close(h.covariances(), 4.0 * R @ g.covariances() @ R.T)
    torch.testing.assert_close(h.opacities(), g.opacities())
    d = torch.nn.functional.normalize(torch.randn(40, 3, generator=gen, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(eval_sh(h.sh, d @ R.T), eval_sh(g.sh, d))
    back = h.transform(sim.inverse())
    torch.testing.assert_close(back.covariances(), g.covariances())


def test_from_points_activations():
    pts = torch.zeros(3, 3)
    rgb = torch.tensor([[1.0, 0.0, 0.5]] * 3)
    g = Gaussians.from_points(pts, rgb, log_scales=torch.full((3,), math.log(0.02)), opacity=0.1)
    torch.testing.assert_close(g.colors_dc(), rgb)
    torch.testing.assert_close(g.opacities(), torch.full((3,), 0.1))
    torch.testing.assert_close(g.scales(), torch.full((3, 3), 0.02))
