"""Export a capture's cameras for other tools: nerfstudio ``transforms.json`` and Long-LRM
``opencv_cameras.json``.

Images (``images=``): "reference" (default) writes each ``file_path`` relative to the output
file's folder and copies nothing, so the file works wherever it sits as long as the capture stays
where it is; "copy" and "link" put the images into ``images/`` beside the file (hard links where
the filesystem allows, copies across devices), so the output folder is a self-contained dataset
that can be moved as a whole.

nerfstudio: OpenGL-axes ``transform_matrix`` in the world ns-process-data uses for COLMAP data
(``applied_transform`` = world (x, y, z) -> (x, z, -y), stored so the import undoes it), shared
pinhole intrinsics (``camera_model`` OPENCV, distortion 0) when all frames share K, else per
frame; the sparse points go to ``sparse_pc.ply`` beside the file, in the same world. The
capture's split is written as ``train_filenames``, ``val_filenames`` and ``test_filenames``,
each entry spelled exactly as that frame's ``file_path`` (nerfstudio's dataparser resolves both
against the file's folder and matches them). val repeats test: ``ns-train`` evaluates on the "val"
split and refuses a file that lists some splits but not that one.
Long-LRM: per frame ``w2c`` (OpenCV), ``fx fy cx cy w h``.

Examples:
    >>> export_capture(Capture.load("ws/garden"), "nerfstudio", "out/transforms.json")   # doctest: +SKIP
    >>> export_capture(Capture.load("ws/garden"), "nerfstudio", "dataset/", images="link")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pipelines.cameras import NERFSTUDIO_APPLIED_TRANSFORM, points_to_nerfstudio
from pipelines.capture.folder import Capture
from pipelines.errors import InputError
from pipelines.fileio import write_json
from pipelines.gaussians.ply import write_points_ply

ExportFormat = Literal["nerfstudio", "long-lrm"]
ImageMode = Literal["reference", "copy", "link"]
DEFAULT_NAMES: dict[str, str] = {"nerfstudio": "transforms.json", "long-lrm": "opencv_cameras.json"}
# link() failures that mean "no hard link here" (another device, a filesystem without links)
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def _rel(cap: Capture, file_path: str, out_dir: Path) -> str:
    return Path(os.path.relpath((cap.root / file_path).resolve(), out_dir.resolve())).as_posix()


def _place(src: Path, dst: Path, mode: ImageMode) -> None:
    """dst as a hard link to src ("link"; a copy where linking is impossible) or a copy; an
    existing dst is replaced atomically, and left alone when it already is src."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")
    try:
        if mode == "link":
            try:
                os.link(src, tmp)
            except OSError as e:
                if e.errno not in _NO_LINK:
                    raise
                shutil.copy2(src, tmp)
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def image_paths(cap: Capture, out_dir: Path, images: ImageMode = "reference") -> list[str]:
    """Each frame's ``file_path`` for a cameras file in ``out_dir``: relative to the capture
    ("reference"), or ``images/...`` after copying or linking the image there."""
    if images == "reference":
        return [_rel(cap, fp, out_dir) for fp in cap.file_paths]
    if images not in ("copy", "link"):
        raise InputError(f"unknown image mode {images!r}; use reference, copy or link")
    for fp in cap.file_paths:
        _place(cap.root / fp, out_dir / fp, images)
    return list(cap.file_paths)  # "images/<name>", the same place relative to out_dir


def _intrinsics(K: torch.Tensor) -> dict:
    """nerfstudio intrinsics keys of one K [3, 3]."""
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}


def to_nerfstudio_json(cap: Capture, file_paths: list[str]) -> dict:
    """transforms.json contents for ``cap``; ``file_paths[i]`` is frame i's path as written."""
    cams = cap.cameras.to("cpu", torch.float64)
    tm = cams.to_nerfstudio(NERFSTUDIO_APPLIED_TRANSFORM)  # [N, 4, 4]
    K = cams.K
    shared = bool(torch.all(K == K[:1]))
    d: dict = {"camera_model": "OPENCV"}
    zero = {"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    if shared:
        d.update(_intrinsics(K[0]))
    d.update({"w": cams.width, "h": cams.height, **zero})
    frames = []
    for i, fp in enumerate(file_paths):
        f = {"file_path": fp, "transform_matrix": tm[i].tolist(), "colmap_im_id": i + 1}
        if not shared:
            f.update(_intrinsics(K[i]))
        frames.append(f)
    d["frames"] = frames
    d["applied_transform"] = NERFSTUDIO_APPLIED_TRANSFORM.tolist()
    test = [file_paths[i] for i in cap.indices("test")]
    d["train_filenames"] = [file_paths[i] for i in cap.indices("train")]
    d["val_filenames"] = test
    d["test_filenames"] = test
    return d


def to_long_lrm_json(cap: Capture, file_paths: list[str]) -> dict:
    """opencv_cameras.json contents for ``cap``; ``file_paths[i]`` is frame i's path as written."""
    cams = cap.cameras.to("cpu", torch.float64)
    w2c = cams.w2c()
    frames = [
        {
            "file_path": fp,
            "w2c": w2c[i].tolist(),
            "h": cams.height,
            "w": cams.width,
            "fx": float(cams.fx[i]),
            "fy": float(cams.fy[i]),
            "cx": float(cams.cx[i]),
            "cy": float(cams.cy[i]),
        }
        for i, fp in enumerate(file_paths)
    ]
    return {"scene_name": cap.name, "frames": frames}


def export_capture(
    cap: Capture, fmt: ExportFormat, out: str | os.PathLike | None = None, *, images: ImageMode = "reference"
) -> Path:
    """Write ``cap``'s cameras as ``fmt``; ``out`` is a file path, a folder (the default file
    name inside), or None (the capture folder). ``images``: see the module doc. Returns the
    written file."""
    if fmt not in DEFAULT_NAMES:
        raise InputError(f"unknown export format {fmt!r}; use nerfstudio or long-lrm")
    out = Path(out) if out is not None else cap.root
    if out.is_dir() or out.suffix.lower() != ".json":
        out = out / DEFAULT_NAMES[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = image_paths(cap, out.parent, images)
    if fmt == "nerfstudio":
        d = to_nerfstudio_json(cap, paths)
        pts = cap.load_points()
        if pts is not None and len(pts[0]):
            xyz = points_to_nerfstudio(torch.from_numpy(pts[0]), NERFSTUDIO_APPLIED_TRANSFORM).numpy()
            write_points_ply(out.parent / "sparse_pc.ply", xyz.astype(np.float32), pts[1])
            d["ply_file_path"] = "sparse_pc.ply"
    else:
        d = to_long_lrm_json(cap, paths)
    write_json(out, d)
    return out
