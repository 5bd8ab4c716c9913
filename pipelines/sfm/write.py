"""Write a capture folder from source frames with cameras (shared by SfM and the importers).

A source frame is an image file, the (possibly distorted) pycolmap camera that took it, and its
camera-to-world pose (OpenCV) or None when it has no pose. ``write_capture`` undistorts every
frame into ``images/``, lists posed frames in ``cameras.json`` (every 8th a test frame) and the
others under ``unregistered`` (a source may give each frame's split instead, as a
transforms.json with ``train_filenames`` / ``test_filenames`` does), and writes the sparse
points to ``points.ply``. The caller adds ``meta`` (capture.json) and saves, inside a staged
folder (``pipelines.capture.staging``).

Examples:
    >>> cap = write_capture(tmp, frames, points=(xyz, rgb))     # doctest: +SKIP
    >>> cap.meta.update(source=..., timings=...); cap.save()    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture, Split, default_splits
from pipelines.errors import InputError
from pipelines.gaussians.ply import write_points_ply
from pipelines.progress import CancelToken, Progress, no_progress
from pipelines.sfm.undistort import UndistortJob, undistort_frames

POINTS_PLY = "points.ply"


@dataclass
class SourceFrame:
    """src: image file; name: its path in the capture (e.g. "images/000001.jpg"); camera: the
    pycolmap.Camera at src's size; c2w: [4, 4] float64 OpenCV camera-to-world, None if unposed;
    info: extra fields for capture.json's frame list; split: the source's own train/test split
    of this frame, None to use the default (every 8th frame a test frame)."""

    src: Path
    name: str
    camera: Any
    c2w: np.ndarray | None
    info: dict = field(default_factory=dict)
    split: Split | None = None


def write_capture(
    root: str | Path,
    frames: list[SourceFrame],
    *,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    max_side: int | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """Undistort frames into ``root``, build the Capture (not saved yet: add meta, then save)."""
    root = Path(root)
    posed = [i for i, f in enumerate(frames) if f.c2w is not None]
    if not posed:
        raise InputError("none of the frames has a camera pose; nothing to write")
    names = [f.name for f in frames]
    if len(set(names)) != len(names):
        raise InputError("two frames map to the same image name; rename the input images")
    jobs = [UndistortJob(Path(f.src), root / f.name, f.camera) for f in frames]
    Ks, (w, h) = undistort_frames(jobs, max_side=max_side, progress=progress, cancel=cancel)

    c2w = torch.from_numpy(np.stack([frames[i].c2w for i in posed])).float()
    K = torch.from_numpy(Ks[posed]).float()
    cams = Cameras(c2w, K, w, h)
    point_file = None
    if points is not None and len(points[0]):
        write_points_ply(root / POINTS_PLY, points[0], points[1])
        point_file = POINTS_PLY
    frame_list = [{"file_path": f.name, "registered": f.c2w is not None, **f.info} for f in frames]
    meta = {
        "frames": frame_list,
        "registered": len(posed),
        "unregistered": len(frames) - len(posed),
        "image_size": [w, h],
    }
    given = [frames[i].split for i in posed]
    splits = [s or "train" for s in given] if any(given) else default_splits(len(posed))
    return Capture(
        root=root,
        file_paths=[names[i] for i in posed],
        cameras=cams,
        splits=splits,
        unregistered=[f.name for f in frames if f.c2w is None],
        points=point_file,
        meta=meta,
    )
