"""Ingest: a video file or a folder of photos -> frames in one folder, ready for SfM.

Examples:
    >>> result = ingest("walk.mp4", staging / "frames", IngestConfig(max_frames=120))   # doctest: +SKIP
    >>> result.kind, len(result.frames), (result.width, result.height)                  # doctest: +SKIP
    ('video', 120, (540, 960))
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.capture.photos import PHOTO_SUFFIXES, ingest_photos, list_photos, no_photos_error
from pipelines.capture.video import extract_video_frames, probe_video
from pipelines.errors import InputError
from pipelines.progress import CancelToken, Progress, no_progress

InputKind = Literal["video", "photos"]


@dataclass(frozen=True)
class IngestConfig:
    """max_frames: video: frames kept (the sharpest of each of max_frames windows); photos: at
    most this many, evenly spread by name. max_side: longest image side in pixels (None: keep).
    min_frames: fewer usable frames than this is an error."""

    max_frames: int = 150
    max_side: int | None = 960
    min_frames: int = 3

    def __post_init__(self) -> None:
        if self.max_frames < self.min_frames:
            raise InputError(
                f"--max-frames {self.max_frames} is below the minimum of {self.min_frames} frames"
            )
        if self.max_side is not None and self.max_side < 32:
            raise InputError(f"--max-side {self.max_side} is too small; use at least 32 pixels")


@dataclass
class IngestResult:
    kind: InputKind
    frames: list[dict]  # per kept frame: {"name", "source", ...}; name is a file in the output folder
    width: int
    height: int
    source: dict  # {"type", "path", ...}
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.frames]


def input_kind(path: str | os.PathLike) -> InputKind:
    """'photos' for a folder, 'video' for a video file; InputError otherwise."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist; pass a video file or a folder of photos")
    if p.is_dir():
        return "photos"
    if p.suffix.lower() in PHOTO_SUFFIXES:
        raise InputError(f"{p.name} is a single photo; pass the folder that holds all photos of the scene")
    # Any other file is tried as a video (VIDEO_SUFFIXES are the usual ones); the decoder raises a
    # clear InputError when it cannot read it.
    return "video"


def check_input(path: str | os.PathLike) -> InputKind:
    """Fail early (before any work) with the same InputError ``ingest`` would raise for an
    empty folder, a folder without JPEG/PNG files, or a video that cannot be opened."""
    kind = input_kind(path)
    if kind == "photos":
        photos, others = list_photos(path)
        if not photos:
            raise no_photos_error(Path(path), others)
    else:
        probe_video(path)
    return kind


def ingest(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: IngestConfig = IngestConfig(),
    *,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> IngestResult:
    """Frames of a video or a photo folder, written to ``out_dir`` (see video.py / photos.py)."""
    path = Path(path)
    kind = input_kind(path)
    if kind == "photos":
        r = ingest_photos(
            path,
            out_dir,
            max_side=config.max_side,
            max_frames=config.max_frames,
            min_frames=config.min_frames,
            progress=progress,
            cancel=cancel,
        )
        frames = [{"name": f.name, "source": f.source} for f in r.frames]
        source = {"type": "photos", "path": str(path.resolve())}
        return IngestResult("photos", frames, r.width, r.height, source, r.skipped)
    info, kept = extract_video_frames(
        path, out_dir, target=config.max_frames, max_side=config.max_side, progress=progress, cancel=cancel
    )
    if len(kept) < config.min_frames:
        raise InputError(
            f"{path.name} gave only {len(kept)} frame(s) ({info.num_frames} in the video); SfM needs at "
            f"least {config.min_frames} views: record a longer video that moves around the subject"
        )
    frames = [
        {
            "name": f.name,
            "source": f"frame {f.index}",
            "index": f.index,
            "time_s": round(f.time_s, 4),
            "sharpness": round(f.sharpness, 3),
        }
        for f in kept
    ]
    first = Path(out_dir) / kept[0].name
    from pipelines.capture.images import read_image

    h, w = read_image(first, apply_exif=False).shape[:2]
    source = {
        "type": "video",
        "path": str(path.resolve()),
        **{k: v for k, v in info.to_dict().items() if k != "path"},
    }
    return IngestResult("video", frames, w, h, source, [])


def config_dict(config: IngestConfig) -> dict:
    return asdict(config)
