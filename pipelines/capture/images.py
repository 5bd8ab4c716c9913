"""Image I/O at the edges: uint8 HWC RGB on disk, float32 [3, H, W] in [0, 1] inside.

Examples:
    >>> img = to_tensor(np.zeros((4, 6, 3), np.uint8))
    >>> img.shape
    torch.Size([3, 4, 6])
"""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.fileio import atomic_path


def read_image(path: str | os.PathLike, *, apply_exif: bool = True) -> np.ndarray:
    """-> uint8 [H, W, 3] RGB. Grey is expanded, alpha dropped, EXIF orientation applied."""
    try:
        img = iio.imread(path, rotate=apply_exif) if apply_exif else iio.imread(path)
    except TypeError:  # plugins without the rotate keyword (e.g. PNG through other plugins)
        img = iio.imread(path)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) / np.iinfo(img.dtype).max * 255).round().astype(np.uint8) if np.issubdtype(
            img.dtype, np.integer
        ) else (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{path}: unsupported image shape {img.shape}")
    return img


def write_image(path: str | os.PathLike, img: np.ndarray | Tensor, quality: int = 95) -> None:
    """Write uint8 [H, W, 3] (or float [3, H, W] in [0, 1]) atomically; format from the suffix."""
    arr = to_uint8(img) if isinstance(img, Tensor) else np.asarray(img)
    kwargs = {"quality": quality} if str(path).lower().endswith((".jpg", ".jpeg")) else {}
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, arr, **kwargs)


def to_tensor(img: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def to_uint8(img: Tensor) -> np.ndarray:
    """float [3, H, W] or [H, W, 3] in [0, 1] -> uint8 [H, W, 3]."""
    img = img.detach().float().cpu()
    if img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.permute(1, 2, 0)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def resize(img: Tensor, width: int, height: int) -> Tensor:
    """[..., 3, H, W] float -> [..., 3, height, width]; antialiased when shrinking."""
    if img.shape[-2:] == (height, width):
        return img
    lead = img.shape[:-3]
    x = img.reshape(-1, *img.shape[-3:])
    shrink = width < img.shape[-1] or height < img.shape[-2]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return x.reshape(*lead, *x.shape[-3:])


def fit_max_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most ``max_side`` (aspect kept, sides
    rounded, at least 1); unchanged when already small enough or ``max_side`` is None."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def resize_uint8(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [height, width, 3] (antialiased when shrinking); a no-op when
    the size already matches."""
    if img.shape[:2] == (height, width):
        return img
    return to_uint8(resize(to_tensor(img), width, height))
