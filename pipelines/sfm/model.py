"""Reading COLMAP models (pycolmap.Reconstruction) into plain arrays.

Poses: ``image.cam_from_world()`` (a method in pycolmap 4.x) is COLMAP's world-to-camera in
OpenCV axes; ``Rigid3d.matrix()`` gives it as [3, 4]. Intrinsics: ``camera.calibration_matrix()``.

Examples:
    >>> rec = read_model("scene/sparse/0")                  # doctest: +SKIP
    >>> w2c = image_w2c(rec.images[1])                      # [4, 4] float64
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import InputError

MODEL_FILES = ("cameras.bin", "cameras.txt")


def is_model_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in MODEL_FILES)


def read_model(path: str | os.PathLike) -> Any:
    """pycolmap.Reconstruction from a folder of cameras/images/points3D .bin or .txt files."""
    import pycolmap

    path = Path(path)
    if not is_model_dir(path):
        raise InputError(f"{path} is not a COLMAP model folder (no cameras.bin or cameras.txt)")
    try:
        return pycolmap.Reconstruction(path)
    except Exception as e:
        raise InputError(
            f"cannot read the COLMAP model in {path} ({e}); is it complete (cameras, images, points3D)?"
        ) from e


def image_w2c(image: Any) -> np.ndarray:
    """World-to-camera [4, 4] float64, OpenCV axes, of a posed pycolmap.Image."""
    w2c = np.eye(4)
    w2c[:3] = np.asarray(image.cam_from_world().matrix(), dtype=np.float64)
    return w2c


def model_points(rec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sparse points: xyz [P, 3] float64 (world), rgb [P, 3] uint8."""
    pts = list(rec.points3D.values())
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    xyz = np.stack([np.asarray(p.xyz, dtype=np.float64) for p in pts])
    rgb = np.stack([np.asarray(p.color, dtype=np.uint8) for p in pts])
    return xyz, rgb
