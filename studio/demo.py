"""The bundled demo: ``assets/demo`` holds a video (``demo.mp4``, 640x360, 240 frames) and its
ground-truth cameras (``gt_cameras.json``, pipelines.synth.capture). On first start the studio
turns it into a capture folder ``WORKSPACE/demo`` in a few seconds, without SfM: ``DEMO_FRAMES``
frames are ingested as ``lrm-studio sfm`` would, each with its ground-truth camera, and the
procedural scene's surface points become ``points.ply`` (capture.json says ``"cameras": "ground
truth"``). Ingest + SfM on ``assets/demo/demo.mp4`` recovers the cameras with pycolmap instead.

An ``assets/demo`` that is a capture folder itself (``cameras.json``) is copied as it is.
Either way the capture is built beside its destination and moved into place when complete, so
a crash never leaves a half-made demo the studio would list; a second start reuses it.

Examples:
    >>> install_demo(workspace)          # doctest: +SKIP
    PosixPath('.../lrm-studio-workspace/demo')
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from pipelines.progress import CancelToken, Progress, no_progress

log = logging.getLogger(__name__)

DEMO_NAME = "demo"
DEMO_ASSET = Path(__file__).resolve().parents[1] / "assets" / "demo"
DEMO_VIDEO_NAME = "demo.mp4"
DEMO_FRAMES = 48  # frames of the demo capture: 42 train, 6 held-out test frames


def demo_video(source: Path = DEMO_ASSET) -> Path | None:
    """The demo video when it ships with its gt_cameras.json, else None."""
    video = source / DEMO_VIDEO_NAME
    return video if video.is_file() and (source / "gt_cameras.json").is_file() else None


def demo_available(source: Path = DEMO_ASSET) -> bool:
    """True when ``source`` is a capture folder or a video with its ground-truth cameras."""
    return (source / "cameras.json").is_file() or demo_video(source) is not None


def install_demo(
    workspace: str | os.PathLike,
    *,
    source: Path = DEMO_ASSET,
    name: str = DEMO_NAME,
    frames: int = DEMO_FRAMES,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Path | None:
    """Make the demo capture ``workspace/name`` unless it is there already (see module doc).

    Returns the capture folder, or None when this build ships no demo (logged). An earlier
    incomplete folder (no cameras.json) is replaced."""
    target = Path(workspace) / name
    if (target / "cameras.json").is_file():
        return target
    if not demo_available(source):
        log.info("no demo in %s; open a capture of the workspace or upload one", source)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    if (source / "cameras.json").is_file():
        _copy_capture(source, target)
    else:
        from pipelines.fileio import read_json
        from pipelines.synth.capture import GT_CAMERAS, gt_capture
        from pipelines.synth.demo import demo_scene_of

        video = demo_video(source)
        assert video is not None
        scene = demo_scene_of(read_json(source / GT_CAMERAS))
        gt_capture(
            video,
            target,
            max_frames=frames,
            scene=scene,
            overwrite=target.exists(),
            progress=progress,
            cancel=cancel,
        )
    log.info("made the demo capture %s", target)
    return target


def _copy_capture(source: Path, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", "__pycache__"))
        if target.exists():  # an earlier copy without cameras.json: incomplete, replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
