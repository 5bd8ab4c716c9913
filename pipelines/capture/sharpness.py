"""Frame sharpness (variance of the Laplacian) and picking the sharpest frame of each window.

The score is the variance of the 4-neighbour Laplacian of the luma (0..255 scale) on the
interior pixels: blur lowers it, detail raises it. Its absolute value depends on the scene, so
frames are ranked within a window of neighbours rather than thresholded.

Examples:
    >>> windows = window_bounds(10, 3)
    >>> windows
    [(0, 3), (3, 6), (6, 10)]
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights, as JPEG uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luma(img: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float32 [H, W] luma in 0..255."""
    assert img.ndim == 3 and img.shape[2] == 3, f"expected [H,W,3], got {img.shape}"
    return img.astype(np.float32) @ _LUMA


def block_downsample(grey: np.ndarray, factor: int) -> np.ndarray:
    """[H, W] -> [H // factor, W // factor], mean over factor x factor blocks (edge rows dropped)."""
    if factor <= 1:
        return grey
    h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
    return grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of grey [H, W] (H, W >= 3) over interior pixels."""
    assert grey.ndim == 2 and min(grey.shape) >= 3, f"expected [H,W] with H,W >= 3, got {grey.shape}"
    g = grey.astype(np.float32, copy=False)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.astype(np.float64).var())


def sharpness(img: np.ndarray, max_side: int | None = None) -> float:
    """Sharpness of uint8 [H, W, 3] measured at about ``max_side`` pixels on the long side
    (block-averaged down by an integer factor, so the score reflects the size frames are kept at)."""
    grey = luma(img)
    if max_side is not None:
        grey = block_downsample(grey, max(1, max(grey.shape) // max_side))
    return laplacian_variance(grey)


def window_bounds(n: int, windows: int) -> list[tuple[int, int]]:
    """Split range(n) into ``min(windows, n)`` contiguous windows [start, end) of near-equal size."""
    k = max(1, min(windows, n))
    edges = [(i * n) // k for i in range(k + 1)]
    return [(edges[i], edges[i + 1]) for i in range(k)]


def sharpest_per_window(scores: np.ndarray | list[float], windows: int) -> list[int]:
    """Index of the highest score in each of ``windows`` equal windows over the scores [N]."""
    s = np.asarray(scores, dtype=np.float64)
    return [a + int(np.argmax(s[a:b])) for a, b in window_bounds(len(s), windows)]


def evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when k >= n), first and last included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n // 2]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})
