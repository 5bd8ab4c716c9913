"""Image quality metrics: PSNR, SSIM (Wang et al. 2004), LPIPS when its weights are local.

Images are float [..., 3, H, W] in [0, 1]; every metric returns one value per image [...].

Examples:
    >>> a = torch.rand(2, 3, 32, 32); float(psnr(a, a.clamp(0.01, 0.99)).min()) > 30
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, gt: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for signals in [0, 1]; [...]. Inf for identical images."""
    assert pred.shape == gt.shape, (pred.shape, gt.shape)
    mse = ((pred.float() - gt.float()) ** 2).flatten(-3).mean(-1)
    return -10 * torch.log10(mse)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> Tensor:
    """Normalized 1D Gaussian [size]."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return (w / w.sum()).to(dtype)


def ssim(pred: Tensor, gt: Tensor, *, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean SSIM over valid windows (no padding), Gaussian-weighted, per channel; [...].

    Differentiable; used both as a metric and in the 0.2 (1 - SSIM) training loss.
    """
    assert pred.shape == gt.shape and pred.shape[-3] == 3, (pred.shape, gt.shape)
    lead = pred.shape[:-3]
    x = pred.reshape(-1, *pred.shape[-3:])
    y = gt.reshape(-1, *gt.shape[-3:]).to(x.dtype)
    w1 = gaussian_window(window, sigma, x.dtype).to(x.device)
    c = x.shape[1]
    wx = w1.view(1, 1, 1, -1).expand(c, 1, 1, window)
    wy = w1.view(1, 1, -1, 1).expand(c, 1, window, 1)

    def blur(t: Tensor) -> Tensor:  # separable, valid
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(-1).reshape(lead)
