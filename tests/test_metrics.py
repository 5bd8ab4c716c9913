import math

import torch

from pipelines.metrics import gaussian_window, psnr, ssim


def ssim_brute_force(x: torch.Tensor, y: torch.Tensor, size=11, sigma=1.5) -> float:
    """Wang et al. 2004 SSIM, one window at a time, float64."""
    x, y = x.double(), y.double()
    w1 = gaussian_window(size, sigma, torch.float64)
    w = torch.outer(w1, w1)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(3):
        for i in range(x.shape[1] - size + 1):
            for j in range(x.shape[2] - size + 1):
                a, b = x[ch, i : i + size, j : j + size], y[ch, i : i + size, j : j + size]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(torch.stack(vals).mean())


def test_ssim_against_brute_force(gen):
    x = torch.rand(3, 18, 15, generator=gen)
    y = (x + 0.2 * torch.randn(3, 18, 15, generator=gen)).clamp(0, 1)
    assert math.isclose(float(ssim(x, y)), ssim_brute_force(x, y), rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(float(ssim(x, x)), 1.0, rel_tol=1e-6)


def test_psnr_formula(gen):
    x = torch.rand(2, 3, 8, 8, generator=gen)
    y = x + 0.1
    torch.testing.assert_close(psnr(y, x), torch.full((2,), 20.0), atol=1e-3, rtol=0)
