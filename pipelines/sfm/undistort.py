"""Undistortion to pinhole images with pycolmap (no OpenCV): ``undistort_camera`` picks the
pinhole camera, ``undistort_image`` resamples (bilinear, no blank border pixels).

Zero-distortion cameras (PINHOLE, SIMPLE_PINHOLE, or any model whose distortion parameters are
all zero, e.g. the OPENCV camera COLMAP leaves as OPENCV) pass through unchanged: the image is
copied and K is ``calibration_matrix()``. Resampling them would only shift the principal point
by half a pixel and crop a border.

All frames of a capture share one image size. Frames whose cameras undistort to different
sizes (per-frame intrinsics in an import) are centre-cropped to the smallest common size, K
following the crop.

Examples:
    >>> jobs = [UndistortJob(src, dst, camera) for ...]                 # doctest: +SKIP
    >>> K, (w, h) = undistort_frames(jobs, max_side=960)                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.capture.images import fit_max_side, read_image, resize_uint8, write_image
from pipelines.errors import InputError
from pipelines.progress import CancelToken, Progress, check, no_progress

log = logging.getLogger(__name__)

_PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


@dataclass
class UndistortJob:
    """Undistort ``src`` (taken by ``camera``, a pycolmap.Camera at src's size) to ``dst``."""

    src: Path
    dst: Path
    camera: Any


def model_name(camera: Any) -> str:
    return camera.model.name if hasattr(camera.model, "name") else str(camera.model)


def is_pinhole(camera: Any) -> bool:
    """True when the camera has no distortion: a pinhole model, or all extra parameters zero."""
    name = model_name(camera)
    if name in _PINHOLE_MODELS:
        return True
    params = np.asarray(camera.params, dtype=np.float64)
    return bool(np.all(params[list(camera.extra_params_idxs())] == 0.0))


def _target_camera(camera: Any, options: Any) -> tuple[Any, np.ndarray, int, int]:
    """(pinhole camera or the camera itself, K [3,3] float64, width, height) after undistortion."""
    import pycolmap

    if is_pinhole(camera):
        return camera, np.asarray(camera.calibration_matrix(), dtype=np.float64), camera.width, camera.height
    und = pycolmap.undistort_camera(options, camera)
    return und, np.asarray(und.calibration_matrix(), dtype=np.float64), und.width, und.height


def undistort_frames(
    jobs: list[UndistortJob],
    *,
    max_side: int | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Write undistorted pinhole images; returns (K [N, 3, 3] float64 pixels, (width, height)).

    Images are read without EXIF orientation (camera models refer to the stored pixels). With
    ``max_side`` the undistorted images are resized so the long side is at most that (K scaled).
    """
    import pycolmap

    if not jobs:
        return np.zeros((0, 3, 3)), (0, 0)
    options = pycolmap.UndistortCameraOptions()
    targets = {}
    for job in jobs:
        key = (
            model_name(job.camera),
            job.camera.width,
            job.camera.height,
            tuple(np.asarray(job.camera.params)),
        )
        if key not in targets:
            targets[key] = _target_camera(job.camera, options)
    keys = [
        (model_name(j.camera), j.camera.width, j.camera.height, tuple(np.asarray(j.camera.params)))
        for j in jobs
    ]
    w_c = min(t[2] for t in targets.values())
    h_c = min(t[3] for t in targets.values())
    if w_c < 8 or h_c < 8:
        raise InputError(f"undistortion leaves only {w_c}x{h_c} pixels; check the distortion parameters")
    if len({(t[2], t[3]) for t in targets.values()}) > 1:
        log.warning("cameras undistort to different sizes; centre-cropping every frame to %dx%d", w_c, h_c)
    w_out, h_out = fit_max_side(w_c, h_c, max_side)
    sx, sy = w_out / w_c, h_out / h_c

    Ks = np.zeros((len(jobs), 3, 3))
    for i, (job, key) in enumerate(zip(jobs, keys, strict=True)):
        check(cancel)
        progress(i / len(jobs), f"undistorting {i + 1}/{len(jobs)}")
        target, K, w, h = targets[key]
        x0, y0 = (w - w_c) // 2, (h - h_c) // 2
        K = K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        K = np.diag([sx, sy, 1.0]) @ K
        Ks[i] = K
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        same_format = job.src.suffix.lower() == job.dst.suffix.lower()
        if is_pinhole(job.camera) and (w, h) == (w_out, h_out) and same_format:
            shutil.copyfile(job.src, job.dst)
            continue
        try:
            img = read_image(job.src, apply_exif=False)
        except Exception as e:
            raise InputError(
                f"cannot read {job.src} ({e}); check the file or remove it from the input"
            ) from e
        if img.shape[:2] != (job.camera.height, job.camera.width):
            raise InputError(
                f"{job.src.name} is {img.shape[1]}x{img.shape[0]} but its camera says "
                f"{job.camera.width}x{job.camera.height}; the images do not match the cameras"
            )
        if not is_pinhole(job.camera):
            bitmap, _ = pycolmap.undistort_image(options, pycolmap.Bitmap.from_array(img), job.camera)
            img = bitmap.to_array()
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, axis=2)
        img = img[y0 : y0 + h_c, x0 : x0 + w_c]
        write_image(job.dst, resize_uint8(np.ascontiguousarray(img), w_out, h_out))
    progress(1.0, f"{len(jobs)} images")
    return Ks, (w_out, h_out)


def colmap_camera(model: str, width: int, height: int, params: list[float] | np.ndarray) -> Any:
    """A pycolmap.Camera of a COLMAP model name (e.g. "OPENCV") with the given parameters."""
    import pycolmap

    cam = pycolmap.Camera.create_from_model_name(1, model, 1.0, int(width), int(height))
    params = np.asarray(params, dtype=np.float64)
    if params.shape != np.asarray(cam.params).shape:
        raise InputError(f"camera model {model} takes {len(cam.params)} parameters, got {len(params)}")
    cam.params = params
    return cam
