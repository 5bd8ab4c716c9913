import numpy as np
import torch

from pipelines.capture.sharpness import (
    block_downsample,
    evenly_spaced,
    laplacian_variance,
    luma,
    sharpest_per_window,
    window_bounds,
)


def _brute_laplacian_variance(g: np.ndarray) -> float:
    h, w = g.shape
    vals = []
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            vals.append(g[y - 1, x] + g[y + 1, x] + g[y, x - 1] + g[y, x + 1] - 4 * g[y, x])
    v = np.array(vals, dtype=np.float64)
    return float(((v - v.mean()) ** 2).mean())


def test_laplacian_variance_matches_brute_force(gen):
    g = (torch.rand(13, 17, generator=gen, dtype=torch.float64) * 255).numpy()
    assert np.isclose(laplacian_variance(g), _brute_laplacian_variance(g), rtol=1e-5)


def test_laplacian_is_zero_on_linear_and_constant_on_quadratic(gen):
    a, b, c = (torch.rand(3, generator=gen, dtype=torch.float64) * 4).tolist()
    y, x = np.mgrid[0:20, 0:30].astype(np.float64)
    assert laplacian_variance(a * x + b * y + c) < 1e-6
    assert laplacian_variance(a * x**2 + b * y**2) < 1e-3  # Laplacian is the constant 2a + 2b


def test_blur_lowers_sharpness(gen):
    img = (torch.rand(64, 64, 3, generator=gen) * 255).to(torch.uint8).numpy()
    grey = luma(img)
    box = (grey[:-1, :-1] + grey[1:, :-1] + grey[:-1, 1:] + grey[1:, 1:]) / 4  # 2x2 box blur
    assert laplacian_variance(box) < 0.5 * laplacian_variance(grey)


def test_block_downsample_is_block_mean(gen):
    g = torch.rand(9, 14, generator=gen, dtype=torch.float64).numpy()
    d = block_downsample(g, 3)
    assert d.shape == (3, 4)
    assert np.isclose(d[1, 2], g[3:6, 6:9].mean())


def test_windows_partition_and_argmax(gen):
    n, k = int(torch.randint(5, 60, (1,), generator=gen)), int(torch.randint(1, 12, (1,), generator=gen))
    bounds = window_bounds(n, k)
    assert bounds[0][0] == 0 and bounds[-1][1] == n and len(bounds) == min(n, k)
    assert all(a < b for a, b in bounds) and all(
        bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1)
    )
    lengths = [b - a for a, b in bounds]
    assert max(lengths) - min(lengths) <= 1
    scores = torch.rand(n, generator=gen).numpy()
    picks = sharpest_per_window(scores, k)
    for (a, b), i in zip(bounds, picks, strict=True):
        assert a <= i < b and scores[i] == scores[a:b].max()


def test_evenly_spaced():
    assert evenly_spaced(10, 20) == list(range(10))
    assert evenly_spaced(10, 2) == [0, 9]
    s = evenly_spaced(101, 11)
    assert s == list(range(0, 101, 10))
