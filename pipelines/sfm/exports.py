"""Export a capture's cameras for other tools: nerfstudio ``transforms.json`` and Long-LRM
``opencv_cameras.json``. Image paths are written relative to the output file's folder (no images
are copied), so the file can sit anywhere as long as the capture stays where it is.

nerfstudio: OpenGL-axes ``transform_matrix`` in the world ns-process-data uses for COLMAP data
(``applied_transform`` = world (x, y, z) -> (x, z, -y), stored so the import undoes it), shared
pinhole intrinsics (``camera_model`` OPENCV, distortion 0) when all frames share K, else per
frame; the sparse points go to ``sparse_pc.ply`` beside the file, in the same world.
Long-LRM: per frame ``w2c`` (OpenCV), ``fx fy cx cy w h``.

Examples:
    >>> export_capture(Capture.load("ws/garden"), "nerfstudio", "out/transforms.json")   # doctest: +SKIP
"""

from __future__ import annotations

import os
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
DEFAULT_NAMES: dict[str, str] = {"nerfstudio": "transforms.json", "long-lrm": "opencv_cameras.json"}


def _rel(cap: Capture, file_path: str, out_dir: Path) -> str:
    return Path(os.path.relpath((cap.root / file_path).resolve(), out_dir.resolve())).as_posix()


def _intrinsics(K: torch.Tensor) -> dict:
    """nerfstudio intrinsics keys of one K [3, 3]."""
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}


def to_nerfstudio_json(cap: Capture, out_dir: Path) -> dict:
    """transforms.json contents for ``cap`` with paths relative to ``out_dir``."""
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
    for i, fp in enumerate(cap.file_paths):
        f = {"file_path": _rel(cap, fp, out_dir), "transform_matrix": tm[i].tolist(), "colmap_im_id": i + 1}
        if not shared:
            f.update(_intrinsics(K[i]))
        frames.append(f)
    d["frames"] = frames
    d["applied_transform"] = NERFSTUDIO_APPLIED_TRANSFORM.tolist()
    return d


def to_long_lrm_json(cap: Capture, out_dir: Path) -> dict:
    """opencv_cameras.json contents for ``cap`` with paths relative to ``out_dir``."""
    cams = cap.cameras.to("cpu", torch.float64)
    w2c = cams.w2c()
    frames = [
        {
            "file_path": _rel(cap, fp, out_dir),
            "w2c": w2c[i].tolist(),
            "h": cams.height,
            "w": cams.width,
            "fx": float(cams.fx[i]),
            "fy": float(cams.fy[i]),
            "cx": float(cams.cx[i]),
            "cy": float(cams.cy[i]),
        }
        for i, fp in enumerate(cap.file_paths)
    ]
    return {"scene_name": cap.name, "frames": frames}


def export_capture(cap: Capture, fmt: ExportFormat, out: str | os.PathLike | None = None) -> Path:
    """Write ``cap``'s cameras as ``fmt``; ``out`` is a file path, a folder (the default file
    name inside), or None (the capture folder). Returns the written file."""
    if fmt not in DEFAULT_NAMES:
        raise InputError(f"unknown export format {fmt!r}; use nerfstudio or long-lrm")
    out = Path(out) if out is not None else cap.root
    if out.is_dir() or out.suffix.lower() != ".json":
        out = out / DEFAULT_NAMES[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "nerfstudio":
        d = to_nerfstudio_json(cap, out.parent)
        pts = cap.load_points()
        if pts is not None and len(pts[0]):
            xyz = points_to_nerfstudio(torch.from_numpy(pts[0]), NERFSTUDIO_APPLIED_TRANSFORM).numpy()
            write_points_ply(out.parent / "sparse_pc.ply", xyz.astype(np.float32), pts[1])
            d["ply_file_path"] = "sparse_pc.ply"
    else:
        d = to_long_lrm_json(cap, out.parent)
    write_json(out, d)
    return out
