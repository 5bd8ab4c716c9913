"""Video ingest: decode through imageio's pyav plugin, apply the phone's rotation metadata, keep a
target number of frames spread over the video, the sharpest of each window of neighbours.

Rotation: phones store portrait video as landscape pixels plus a display matrix. PyAV reports it
as ``VideoFrame.rotation``, the angle in degrees by which the frame is turned counter-clockwise
for display; ``np.rot90(frame, rotation // 90)`` gives what the ffmpeg command line (which
autorotates) shows. imageio's pyav plugin does not apply it, so it is applied here.

Selection: the frames are split into ``target`` windows of consecutive frames of near-equal
length (from the container's frame count), and from each window the frame with the highest
variance of the Laplacian is kept (``pipelines.capture.sharpness``). A video with at most
``target`` frames keeps every frame.

Examples:
    >>> info = probe_video("walk.mp4")                                   # doctest: +SKIP
    >>> info.display_size                                                # doctest: +SKIP
    (1080, 1920)
    >>> frames = extract_video_frames("walk.mp4", out_dir, target=120, max_side=960)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipelines.capture.images import fit_max_side, resize_uint8, write_image
from pipelines.capture.sharpness import evenly_spaced, sharpness, window_bounds
from pipelines.errors import InputError
from pipelines.progress import Cancelled, CancelToken, Progress, check, no_progress

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (
    ".mp4",
    ".mov",
    ".m4v",
    ".avi",
    ".mkv",
    ".webm",
    ".mts",
    ".m2ts",
    ".3gp",
    ".mpg",
    ".mpeg",
    ".wmv",
)


@dataclass
class VideoInfo:
    """What the container says. width/height: stored pixels (before rotation)."""

    path: str
    num_frames: int  # from the container (or duration x fps, or a packet count)
    fps: float
    duration_s: float
    width: int
    height: int
    rotation_deg: int  # counter-clockwise display rotation, a multiple of 90
    codec: str

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation."""
        return (self.height, self.width) if self.rotation_deg % 180 else (self.width, self.height)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VideoFrame:
    """A kept frame: its file name in the output folder, its index and time in the video."""

    name: str
    index: int
    time_s: float
    sharpness: float


def _undecodable(path: Path, why: object) -> InputError:
    return InputError(
        f"cannot decode video {path.name} ({why}); check that it plays, or convert it to H.264 MP4 "
        f"(ffmpeg -i {path.name} -c:v libx264 out.mp4), or pass a folder of photos instead"
    )


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open the video, decode its first frame and read frame count, fps and rotation."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path.name} has no video stream; pass a video file or a folder of photos")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            if not duration and container.duration:
                duration = container.duration / 1_000_000  # AV_TIME_BASE
            first = next(container.decode(stream), None)
            if first is None:
                raise _undecodable(path, "no frame could be decoded")
            rotation = int(getattr(first, "rotation", 0) or 0)
            n = int(stream.frames or 0)
            codec = stream.codec_context.name
            width, height = first.width, first.height
        if n <= 0:
            n = round(duration * fps) if duration and fps else _count_packets(path)
    except InputError:
        raise
    except Exception as e:  # av.error.FFmpegError and friends: not a video we can read
        raise _undecodable(path, e) from e
    snapped = int(round(rotation / 90.0)) * 90 % 360
    if snapped != rotation % 360:
        log.warning("%s: rotation %d degrees is not a multiple of 90; using %d", path.name, rotation, snapped)
    return VideoInfo(str(path), n, fps, duration, width, height, snapped, codec)


def _count_packets(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def rotate_frame(frame: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation (multiple of 90) to uint8 [H, W, 3]."""
    k = (rotation_deg // 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k)) if k else frame


def extract_video_frames(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    target: int,
    max_side: int | None = None,
    suffix: str = ".jpg",
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[VideoInfo, list[VideoFrame]]:
    """Keep up to ``target`` frames (sharpest per window), rotated upright and resized to
    ``max_side``, written to ``out_dir`` as 000000.jpg, 000001.jpg, ... in video order.

    Decoding errors part-way keep the frames read so far (with a warning); a video that yields
    no frame raises InputError.
    """
    import imageio.v3 as iio

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = probe_video(path)
    n_est = max(1, info.num_frames)
    bounds = window_bounds(n_est, target)
    ends = [b for _, b in bounds]
    last_len = max(1, ends[-1] - bounds[-1][0])
    w_out, h_out = fit_max_side(*info.display_size, max_side)
    score_side = max(w_out, h_out)

    kept: list[VideoFrame] = []
    best: tuple[float, int, np.ndarray] | None = None  # (score, index, frame) of the open window
    window = 0

    def window_of(i: int) -> int:
        if i < n_est:
            return int(np.searchsorted(ends, i, side="right"))
        return len(bounds) + (i - n_est) // last_len  # the container under-counted: more windows

    def flush() -> None:
        nonlocal best
        if best is None:
            return
        score, index, frame = best
        frame = resize_uint8(rotate_frame(frame, info.rotation_deg), w_out, h_out)
        name = f"frame{index:07d}{suffix}"
        write_image(out_dir / name, frame)
        kept.append(VideoFrame(name, index, index / info.fps if info.fps else 0.0, score))
        best = None

    count = 0
    try:
        for i, frame in enumerate(iio.imiter(path, plugin="pyav", thread_type="AUTO")):
            if i % 8 == 0:
                check(cancel)
                progress(min(i / n_est, 0.99), f"frame {i}/{n_est}")
            w = window_of(i)
            if w != window:
                flush()
                window = w
            frame = np.asarray(frame)
            score = sharpness(frame, score_side)  # a 90-degree rotation does not change the score
            if best is None or score > best[0]:
                best = (score, i, frame.copy())
            count = i + 1
    except (InputError, Cancelled):
        raise
    except Exception as e:
        if count == 0:
            raise _undecodable(path, e) from e
        log.warning(
            "%s: decoding stopped at frame %d (%s); keeping the frames read so far", path.name, count, e
        )
    flush()
    if not kept:
        raise _undecodable(path, "no frame could be decoded")

    if len(kept) > target:  # the container under-counted its frames
        keep = set(evenly_spaced(len(kept), target))
        for j, f in enumerate(kept):
            if j not in keep:
                (out_dir / f.name).unlink()
        kept = [f for j, f in enumerate(kept) if j in keep]
    final = []
    for j, f in enumerate(kept):  # contiguous names in video order
        name = f"{j:06d}{suffix}"
        os.replace(out_dir / f.name, out_dir / name)
        final.append(VideoFrame(name, f.index, f.time_s, f.sharpness))
    info.num_frames = count
    progress(1.0, f"kept {len(final)} of {count} frames")
    return info, final
