"""Studio operations on captures: SfM from a video or photos, import, export.

Each function is what both the CLI (studio/commands/capture.py) and the viewer call: it resolves
the capture folder in the workspace and runs the pipeline with progress and cancel.

Examples:
    >>> cap = sfm_to_workspace("walk.mp4", "workspace")                   # doctest: +SKIP
    >>> cap.root
    PosixPath('workspace/walk')
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines.capture.folder import Capture
from pipelines.capture.ingest import IngestConfig
from pipelines.errors import InputError
from pipelines.progress import CancelToken, Progress, no_progress
from pipelines.sfm.config import SfMConfig
from pipelines.sfm.exports import ImageMode

_GENERIC = {"sparse", "0", "colmap", "images", "distorted", "nerfstudio", ""}


def capture_name_for(input: str | os.PathLike) -> str:
    """A capture name from the input: the video's stem, the photo folder's name, or for a camera
    file / model folder the nearest folder whose name is not generic (sparse, 0, colmap, ...)."""
    p = Path(os.path.abspath(input))
    if p.is_file() and p.suffix.lower() != ".json":
        name = p.stem
    else:
        cur = p.parent if p.is_file() else p
        while cur.name in _GENERIC and cur != cur.parent:
            cur = cur.parent
        name = cur.name or "capture"
    return clean_name(name)


def clean_name(name: str) -> str:
    """Letters, digits, '-', '_' and '.' only (others become '_'); no leading dot."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "capture"
    return name


def capture_dest(workspace: str | os.PathLike, name: str | None, input: str | os.PathLike) -> Path:
    return Path(workspace) / (clean_name(name) if name else capture_name_for(input))


def sfm_to_workspace(
    input: str | os.PathLike,
    workspace: str | os.PathLike,
    *,
    name: str | None = None,
    ingest_config: IngestConfig | None = None,
    sfm_config: SfMConfig | None = None,
    overwrite: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """A new capture ``workspace/name`` from a video file or a folder of photos."""
    from pipelines.sfm.build import sfm_capture

    dest = capture_dest(workspace, name, input)
    return sfm_capture(
        input,
        dest,
        ingest_config=ingest_config,
        sfm_config=sfm_config,
        overwrite=overwrite,
        progress=progress,
        cancel=cancel,
    )


def import_to_workspace(
    input: str | os.PathLike,
    workspace: str | os.PathLike,
    *,
    name: str | None = None,
    images: str | os.PathLike | None = None,
    max_side: int | None = None,
    overwrite: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """A new capture ``workspace/name`` from a COLMAP model, transforms.json or opencv_cameras.json."""
    from pipelines.sfm.imports import import_capture

    dest = capture_dest(workspace, name, input)
    return import_capture(
        input, dest, images=images, max_side=max_side, overwrite=overwrite, progress=progress, cancel=cancel
    )


def export_from_workspace(
    capture: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    *,
    images: ImageMode = "reference",
) -> Path:
    """Write the capture's cameras as nerfstudio transforms.json (with the capture's train/test
    split) or Long-LRM opencv_cameras.json; returns the file. ``images``: "reference" (paths
    into the capture), "copy" or "link" (the images beside the file: a folder that moves as a
    whole; see :mod:`pipelines.sfm.exports`)."""
    from pipelines.sfm.exports import export_capture

    try:
        cap = Capture.load(capture)
    except FileNotFoundError as e:
        raise InputError(str(e)) from e
    return export_capture(cap, fmt, out, images=images)  # type: ignore[arg-type]
