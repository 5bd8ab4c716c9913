"""Import cameras made elsewhere into a capture folder: a COLMAP model (binary or text), a
nerfstudio / Instant-NGP ``transforms.json`` (distortion included: images are undistorted), or a
Long-LRM ``opencv_cameras.json``. Every frame goes through the same writer as SfM
(``pipelines.sfm.write``): undistorted pinhole images, cameras.json, points.ply, capture.json.

Conventions (conversions in pipelines/cameras.py):
- COLMAP: world-to-camera in OpenCV axes (``cam_from_world``).
- nerfstudio: ``transform_matrix`` camera-to-world with OpenGL camera axes; a top-level
  ``applied_transform`` [3, 4] (ns-process-data's world change) is undone, so a capture made from
  a COLMAP model and exported again comes back in the COLMAP world. Intrinsics at the top level or
  per frame (``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` or ``camera_angle_x``), distortion
  ``k1..k4, p1, p2`` for ``camera_model`` OPENCV (k4 unsupported) or OPENCV_FISHEYE. A split
  given as ``test_filenames`` (else ``val_filenames``, else the frames ``train_filenames``
  leaves out), entries relative to the file's folder as nerfstudio reads them, is kept: those
  frames are test frames, all others train frames.
- Long-LRM: per-frame ``w2c`` in OpenCV axes with ``fx fy cx cy w h``; images are pinhole.
Intrinsics given for another image size than the file's are scaled to the file.

Frame order: COLMAP and nerfstudio frames by image name, Long-LRM frames as listed (its
``fold_8_kmeans_*`` indices refer to that order and are kept in capture.json).

Examples:
    >>> cap = import_capture("scene/sparse/0", workspace / "scene")        # doctest: +SKIP
    >>> cap = import_capture("scene/transforms.json", workspace / "scene2")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from pipelines.cameras import Cameras, camera_problem, make_K, points_from_nerfstudio
from pipelines.capture.folder import Capture, Split
from pipelines.capture.staging import check_destination, staged_folder
from pipelines.errors import InputError
from pipelines.fileio import read_json
from pipelines.progress import CancelToken, Progress, no_progress
from pipelines.sfm.model import is_model_dir, model_points, read_model
from pipelines.sfm.undistort import colmap_camera
from pipelines.sfm.write import SourceFrame, write_capture

log = logging.getLogger(__name__)

ImportFormat = Literal["colmap", "nerfstudio", "long-lrm"]
_KEEP_SUFFIXES = (".jpg", ".jpeg", ".png")


# ------------------------------------------------------------------------------ detection
def detect_format(path: str | os.PathLike) -> tuple[ImportFormat, Path]:
    """(format, the model folder or JSON file) for a COLMAP model folder (or a scene folder with
    sparse/0, sparse/, colmap/sparse/0), a transforms.json, an opencv_cameras.json, or a folder
    holding one of those JSON files."""
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{p} does not exist; pass a COLMAP model folder, a transforms.json or an opencv_cameras.json"
        )
    if p.is_file():
        if p.suffix.lower() != ".json":
            raise InputError(
                f"{p.name} is not a camera file; pass a COLMAP model folder or a .json camera file"
            )
        return _json_format(p), p
    for name in ("transforms.json", "opencv_cameras.json"):
        if (p / name).is_file():
            return _json_format(p / name), p / name
    model = _find_model_dir(p)
    if model is not None:
        return "colmap", model
    raise InputError(
        f"no cameras found in {p}: expected a COLMAP model (cameras/images/points3D .bin or .txt, or "
        f"sparse/0/ inside), a transforms.json or an opencv_cameras.json"
    )


def _json_format(path: Path) -> ImportFormat:
    try:
        d = read_json(path)
    except Exception as e:
        raise InputError(f"cannot parse {path} as JSON ({e})") from e
    frames = d.get("frames") if isinstance(d, dict) else None
    if not frames:
        raise InputError(
            f"{path} has no frames list; expected a nerfstudio transforms.json or a Long-LRM json"
        )
    if "transform_matrix" in frames[0]:
        return "nerfstudio"
    if "w2c" in frames[0]:
        return "long-lrm"
    raise InputError(f"{path}: frames have neither transform_matrix (nerfstudio) nor w2c (Long-LRM)")


def _find_model_dir(p: Path) -> Path | None:
    if is_model_dir(p):
        return p
    for parent in (p / "sparse", p / "colmap" / "sparse"):
        if is_model_dir(parent):
            return parent
        if parent.is_dir():
            subs = sorted(d for d in parent.iterdir() if is_model_dir(d))
            if len(subs) == 1:
                return subs[0]
            if subs:  # several models: the one with the most registered images
                return max(subs, key=lambda d: read_model(d).num_reg_images())
    return None


# ------------------------------------------------------------------------------ helpers
def _capture_name(rel: str) -> str:
    """images/<relative path> for a source image path relative to its root."""
    norm = os.path.normpath(rel)
    parts = Path(norm).parts
    if Path(norm).is_absolute() or not parts or parts[0] == "..":
        parts = (Path(norm).name,)
    if len(parts) > 1 and parts[0] in (".", "images"):
        parts = parts[1:]
    name = Path(*parts)
    if name.suffix.lower() not in _KEEP_SUFFIXES:
        name = name.with_suffix(name.suffix + ".png") if name.suffix else name.with_suffix(".png")
    return f"images/{name.as_posix()}"


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:
        raise InputError(f"cannot read image {path} ({e})") from e


def _resolve_image(base: Path, file_path: str) -> Path:
    p = (base / file_path) if not os.path.isabs(file_path) else Path(file_path)
    if p.is_file():
        return p
    for suffix in (".png", ".jpg", ".jpeg"):  # Blender-style paths without an extension
        if Path(str(p) + suffix).is_file():
            return Path(str(p) + suffix)
    raise InputError(f"image {file_path} listed in the cameras file is missing (looked for {p})")


def _check_camera(c2w: np.ndarray, K: np.ndarray, what: str) -> None:
    """InputError naming the frame when its pose or intrinsics are unusable (:func:`camera_problem`)."""
    problem = camera_problem(c2w, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    if problem is not None:
        raise InputError(f"{what}: {problem}; fix or drop this frame in the cameras file")


def _K_of(camera: Any) -> np.ndarray:
    """The pinhole part [3, 3] of a pycolmap camera."""
    return np.asarray(camera.calibration_matrix(), dtype=np.float64)


# ------------------------------------------------------------------------------ COLMAP
def _colmap_frames(model_dir: Path, images: Path | None) -> tuple[list[SourceFrame], Any, dict]:
    rec = read_model(model_dir)
    ims = sorted(rec.images.values(), key=lambda im: im.name)
    if not ims:
        raise InputError(f"the COLMAP model in {model_dir} has no images")
    candidates = (
        [images]
        if images is not None
        else [
            model_dir / "images",
            model_dir.parent / "images",
            model_dir.parent.parent / "images",
            model_dir.parent.parent.parent / "images",
            model_dir.parent,
            model_dir.parent.parent,
        ]
    )
    probe = [im.name for im in ims[:3]]
    root = next((c for c in candidates if c is not None and all((c / nm).is_file() for nm in probe)), None)
    if root is None:
        where = images if images is not None else "images/ beside the model or its parent folders"
        raise InputError(f"cannot find the model's images (e.g. {probe[0]}) in {where}; pass --images DIR")
    frames = []
    from pipelines.sfm.model import image_w2c

    for im in ims:
        src = root / im.name
        if not src.is_file():
            log.warning("skipping %s: not found in %s", im.name, root)
            continue
        c2w = np.linalg.inv(image_w2c(im)) if im.has_pose else None
        cam = rec.cameras[im.camera_id]
        if c2w is not None:
            _check_camera(c2w, _K_of(cam), f"{model_dir.name}: {im.name}")
        frames.append(SourceFrame(src, _capture_name(im.name), cam, c2w, {"source": im.name}))
    source = {"type": "colmap", "path": str(model_dir.resolve()), "images": str(root.resolve())}
    return frames, rec, source


# ------------------------------------------------------------------------------ nerfstudio
def _nerfstudio_camera(d: dict, w: int, h: int, what: str) -> Any:
    """pycolmap camera for nerfstudio intrinsics ``d`` at size (w, h)."""
    model = d.get("camera_model", "OPENCV")
    if "fl_x" in d:
        fx = float(d["fl_x"])
    elif "camera_angle_x" in d:
        fx = 0.5 * w / np.tan(0.5 * float(d["camera_angle_x"]))
    else:
        raise InputError(f"{what}: no focal length (fl_x or camera_angle_x)")
    if "fl_y" in d:
        fy = float(d["fl_y"])
    elif "camera_angle_y" in d:
        fy = 0.5 * h / np.tan(0.5 * float(d["camera_angle_y"]))
    else:
        fy = fx
    cx, cy = float(d.get("cx", w / 2)), float(d.get("cy", h / 2))
    k1, k2, k3, k4, p1, p2 = (float(d.get(k, 0.0)) for k in ("k1", "k2", "k3", "k4", "p1", "p2"))
    if model in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        if k4 != 0.0:
            raise InputError(
                f"{what}: OPENCV with k4 (an r^8 term) has no COLMAP model; undistort the images first"
            )
        if k3 != 0.0:
            return colmap_camera("FULL_OPENCV", w, h, [fx, fy, cx, cy, k1, k2, p1, p2, k3, 0, 0, 0])
        return colmap_camera("OPENCV", w, h, [fx, fy, cx, cy, k1, k2, p1, p2])
    if model == "OPENCV_FISHEYE":
        return colmap_camera("OPENCV_FISHEYE", w, h, [fx, fy, cx, cy, k1, k2, k3, k4])
    raise InputError(f"{what}: camera_model {model} is not supported (use OPENCV, OPENCV_FISHEYE or PINHOLE)")


def _scaled(camera: Any, width: int, height: int) -> Any:
    """The camera for the image resized to (width, height) (distortion is size-independent)."""
    if (camera.width, camera.height) != (width, height):
        camera.rescale(int(width), int(height))
    return camera


def _nerfstudio_splits(d: dict, base: Path, path: Path, file_paths: list[str]) -> list[Split | None]:
    """Each frame's split (frames named by their ``file_path``) from ``test_filenames`` (else
    ``val_filenames``; with ``train_filenames`` alone, the frames it leaves out); all None when
    the file gives no split lists. Every listed name must be a frame, as nerfstudio requires."""
    lists = {k: d[f"{k}_filenames"] for k in ("train", "val", "test") if f"{k}_filenames" in d}
    if not lists:
        return [None] * len(file_paths)
    keys = [os.path.normpath(base / fp) for fp in file_paths]
    for k, names in lists.items():
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise InputError(f"{path.name}: {k}_filenames must be a list of image paths")
        if unknown := sorted({os.path.normpath(base / x) for x in names} - set(keys)):
            raise InputError(f"{path.name}: {k}_filenames names images that no frame has: {unknown[:3]}")
    if "test" in lists or "val" in lists:
        test = {os.path.normpath(base / x) for x in lists.get("test", lists.get("val"))}
    else:
        test = set(keys) - {os.path.normpath(base / x) for x in lists["train"]}
    return ["test" if key in test else "train" for key in keys]


def _nerfstudio_frames(path: Path) -> tuple[list[SourceFrame], tuple[np.ndarray, np.ndarray] | None, dict]:
    d = read_json(path)
    base = path.parent
    applied = d.get("applied_transform")
    applied_t = torch.tensor(applied, dtype=torch.float64) if applied is not None else None
    rows = []
    for i, f in enumerate(_frames_of(d, path)):
        if not isinstance(f, dict) or not isinstance(f.get("file_path"), str):
            raise InputError(f"{path.name}: frame {i} has no file_path")
        src = _resolve_image(base, f["file_path"])
        rows.append((src, f))
    rows.sort(key=lambda r: str(r[0]))
    splits = _nerfstudio_splits(d, base, path, [f["file_path"] for _, f in rows])
    frames = []
    for (src, f), split in zip(rows, splits, strict=True):
        what = f"{path.name}: {f['file_path']}"
        merged = {**{k: v for k, v in d.items() if k != "frames"}, **f}
        w_img, h_img = _image_size(src)
        try:
            w, h = int(merged.get("w", w_img)), int(merged.get("h", h_img))
            cam = _scaled(_nerfstudio_camera(merged, w, h, what), w_img, h_img)
            tm = torch.tensor(f["transform_matrix"], dtype=torch.float64).reshape(4, 4)
        except KeyError as e:
            raise InputError(f"{what}: missing key {e} (a nerfstudio frame needs transform_matrix)") from e
        except (TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{what}: transform_matrix must be 4x4 numbers, intrinsics numbers ({e})") from e
        _check_camera(tm.numpy(), _K_of(cam), what)  # before any conversion
        c2w = Cameras.from_nerfstudio(tm[None], torch.eye(3)[None], w_img, h_img, applied_t).c2w[0]
        c2w = c2w.double().numpy()
        _check_camera(c2w, _K_of(cam), what)
        rel = os.path.relpath(src, base)
        frames.append(SourceFrame(src, _capture_name(rel), cam, c2w, {"source": f["file_path"]}, split))
    points = None
    ply = d.get("ply_file_path")
    if ply and (base / ply).is_file():
        from pipelines.gaussians.ply import read_points_ply

        xyz, rgb = read_points_ply(base / ply)
        if applied_t is not None:
            xyz = points_from_nerfstudio(torch.from_numpy(xyz), applied_t).numpy()
        points = (xyz, rgb)
    source = {"type": "nerfstudio", "path": str(path.resolve()), "applied_transform": applied}
    return frames, points, source


# ------------------------------------------------------------------------------ Long-LRM
def _frames_of(d: Any, path: Path) -> list:
    """The ``frames`` list of a cameras file, or InputError."""
    frames = d.get("frames") if isinstance(d, dict) else None
    if not isinstance(frames, list):
        raise InputError(f'{path}: no "frames" list')
    return frames


def _long_lrm_frames(path: Path) -> tuple[list[SourceFrame], dict]:
    d = read_json(path)
    base = path.parent
    frames = []
    for i, f in enumerate(_frames_of(d, path)):
        if not isinstance(f, dict) or not isinstance(f.get("file_path"), str):
            raise InputError(f"{path.name}: frame {i} has no file_path")
        what = f"{path.name}: {f.get('file_path')}"
        try:
            w2c = torch.tensor(f["w2c"], dtype=torch.float64).reshape(4, 4)
            K = make_K(*(torch.tensor(float(f[k]), dtype=torch.float64) for k in ("fx", "fy", "cx", "cy")))
            w, h = int(f["w"]), int(f["h"])
        except KeyError as e:
            raise InputError(f"{what}: missing key {e} (need w2c, fx, fy, cx, cy, w, h)") from e
        except (TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{what}: w2c must be 4x4 numbers and fx, fy, cx, cy, w, h numbers ({e})") from e
        _check_camera(w2c.numpy(), K.numpy(), what)  # before inverting it
        if w <= 0 or h <= 0:
            raise InputError(f"{what}: the image size must be positive (w {w}, h {h})")
        src = _resolve_image(base, f["file_path"])
        w_img, h_img = _image_size(src)
        cams = Cameras.from_w2c(w2c[None], K[None], w, h).resize(w_img, h_img)
        c2w = cams.c2w[0].numpy()
        _check_camera(c2w, cams.K[0].numpy(), what)
        Kr = cams.K[0].numpy()
        cam = colmap_camera("PINHOLE", w_img, h_img, [Kr[0, 0], Kr[1, 1], Kr[0, 2], Kr[1, 2]])
        frames.append(SourceFrame(src, _capture_name(f["file_path"]), cam, c2w, {"source": f["file_path"]}))
    extra = {k: v for k, v in d.items() if k.startswith("fold_") or k == "scene_name"}
    source = {"type": "long-lrm", "path": str(path.resolve()), **extra}
    return frames, source


# ------------------------------------------------------------------------------ entry point
def import_capture(
    input: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    max_side: int | None = None,
    overwrite: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """Import ``input`` (see :func:`detect_format`) into the capture folder ``dest``.

    images: the COLMAP model's image folder when it is not found beside the model.
    max_side: resize the (undistorted) images so the long side is at most this.
    """
    dest = check_destination(dest, overwrite)
    fmt, path = detect_format(input)
    t0 = time.perf_counter()
    points = None
    if fmt == "colmap":
        frames, rec, source = _colmap_frames(path, Path(images) if images is not None else None)
        points = model_points(rec)
    elif fmt == "nerfstudio":
        frames, points, source = _nerfstudio_frames(path)
    else:
        frames, source = _long_lrm_frames(path)
    if sum(f.c2w is not None for f in frames) == 0:
        raise InputError(f"{path} has no posed frames to import")
    with staged_folder(dest, overwrite) as tmp:
        cap = write_capture(tmp, frames, points=points, max_side=max_side, progress=progress, cancel=cancel)
        cap.meta = {
            "source": source,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": {"import": fmt, "max_side": max_side},
            **cap.meta,
            "timings": {"total_s": round(time.perf_counter() - t0, 3)},
        }
        cap.save()
    log.info("imported %s (%s): %d frames", path, fmt, len(cap))
    return Capture.load(dest)
