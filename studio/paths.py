"""The camera path being edited in the studio (one, shared by every tab), its files and videos.

The path lives in the open capture's world. Files: ``CAPTURE/paths/<name>.json``, nerfstudio
camera_path.json files (:mod:`pipelines.paths.nerfstudio`); videos:
``CAPTURE/videos/<name>-<content>-<time>.mp4``. Every change announces ``studio.app.PATH`` to
the studio's subscribers; opening another capture (``CAPTURE``) starts an empty path, since a
path belongs to one capture's world.

Rendering a video is a studio job (progress, cancel): the path and the results shown in scene
slots A / B are taken when it is submitted; the file appears when the job is done.

Examples:
    >>> studio.paths.orbit()                                    # doctest: +SKIP
    >>> studio.paths.save("orbit")                              # doctest: +SKIP
    >>> job = studio.paths.submit_video("A|B", height=480)      # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from pipelines.errors import InputError
from pipelines.paths import (
    CameraPath,
    Keyframe,
    PathWorld,
    auto_path,
    from_nerfstudio,
    input_cameras_path,
    pose_at,
    read_camera_path,
    to_nerfstudio,
    write_camera_path,
)
from pipelines.paths.video import Panel, VideoResult, render_video
from pipelines.progress import CancelToken, Progress
from studio.app import CAPTURE, PATH
from studio.checks import check_choice, check_range
from studio.uploads import inside, sanitize_filename

if TYPE_CHECKING:
    from studio.app import Studio
    from studio.jobs import JobState

log = logging.getLogger(__name__)

PATHS_DIR = "paths"
VIDEOS_DIR = "videos"
VideoContent = Literal["A", "B", "A|B"]
VIDEO_CONTENTS: tuple[VideoContent, ...] = ("A|B", "A", "B")
VIDEO_DEVICES = ("auto", "cpu", "cuda")
MIN_VIDEO_HEIGHT, MAX_VIDEO_HEIGHT = 32, 2160  # pixels
DEFAULT_DURATION_S = 6.0
AUTO_PATH_NAMES = {"orbit": "orbit", "arc": "arc", "walk": "inputs"}  # CaptureShape.kind -> path name


def export_camera_path(
    source: str | os.PathLike,
    out: str | os.PathLike,
    world: PathWorld = PathWorld(),  # noqa: B008 (frozen)
) -> tuple[Path, int]:
    """Read the camera_path.json ``source`` (the capture's world, or the world it records) and
    write it to ``out`` in the world ``world`` says (recorded in the file). Returns the file
    and its number of dense frames. Raises InputError for a missing or unreadable file."""
    target = world.similarity()
    try:
        path = read_camera_path(source)
    except FileNotFoundError as e:
        raise InputError(f"no camera path {source}") from e
    except ValueError as e:
        raise InputError(str(e)) from e
    return write_camera_path(out, path, world=target), path.num_frames()


def path_name(name: str) -> str:
    """A file-safe path name (no folders, no .json suffix); "path" when nothing is left."""
    base = sanitize_filename(name.strip() or "path")
    if base.lower().endswith(".json"):
        base = base[:-5]
    return base.strip("._-") or "path"


class PathEditor:
    """The studio's camera path: edits, timing, automatic paths, files and videos."""

    def __init__(self, studio: Studio) -> None:
        self._studio = studio
        self._lock = threading.RLock()
        self._path = CameraPath(duration_s=DEFAULT_DURATION_S)
        self._name = "path"
        self._video: Path | None = None
        self._reset_for_capture()
        studio.subscribe(self._on_studio)

    # -------------------------------------------------------------- state
    @property
    def path(self) -> CameraPath:
        with self._lock:
            return self._path

    @property
    def name(self) -> str:
        with self._lock:
            return self._name

    @property
    def last_video(self) -> Path | None:
        """The last video rendered of this capture (None until one is done)."""
        with self._lock:
            return self._video if self._video is not None and self._video.is_file() else None

    def _announce(self) -> None:
        self._studio.announce(PATH)

    def _on_studio(self, topic: str) -> None:
        # A new capture: an empty path in its world. Not announced as PATH: whoever shows the
        # path hears CAPTURE (subscribed after this editor) and reads the fresh path then.
        if topic == CAPTURE:
            with self._lock:
                self._reset_for_capture()

    def _reset_for_capture(self) -> None:
        capture = self._studio.capture
        if capture is None:
            self._path = CameraPath(duration_s=DEFAULT_DURATION_S)
        else:
            cams = capture.cameras
            fov = float(torch.rad2deg(cams.fov_y_rad().double().median()))
            self._path = CameraPath(
                duration_s=DEFAULT_DURATION_S,
                default_fov_deg=min(max(fov, 1.0), 170.0),
                width=cams.width,
                height=cams.height,
            )
        self._name = "path"
        self._video = None

    def set_path(self, path: CameraPath, name: str | None = None) -> None:
        with self._lock:
            self._path = path
            if name is not None:
                self._name = path_name(name)
        self._announce()

    def _edit(self, fn) -> CameraPath:
        with self._lock:
            self._path = fn(self._path)
            path = self._path
        self._announce()
        return path

    # -------------------------------------------------------------- edits
    def add_keyframe(self, c2w: Tensor, fov_y_deg: float | None = None, index: int | None = None) -> int:
        """Add a keyframe (c2w [4, 4] OpenCV, world of the open capture) before ``index``
        (default: at the end); keyframes are re-spaced evenly. Returns its index."""
        k = Keyframe(c2w, fov_y_deg)
        path = self._edit(lambda p: p.added(k, index))
        return len(path) - 1 if index is None else index

    def add_input_camera(self, frame: int, index: int | None = None) -> int:
        """Add a keyframe at frame ``frame``'s camera of the open capture (with its fov when it
        differs from the path's default)."""
        capture = self._studio.require_capture()
        if not 0 <= frame < len(capture):
            raise IndexError(f"frame {frame} of {len(capture)}")
        cam = capture.cameras[frame]
        fov = float(torch.rad2deg(cam.fov_y_rad()[0]))
        own = fov if abs(fov - self.path.default_fov_deg) > 1e-3 else None
        return self.add_keyframe(cam.c2w[0], own, index)

    def move_keyframe(self, index: int, c2w: Tensor) -> None:
        self._edit(lambda p: p.moved(index, c2w))

    def set_keyframe_fov(self, index: int, fov_y_deg: float | None) -> None:
        self._edit(lambda p: p.with_fov(index, fov_y_deg))

    def reorder(self, index: int, step: int) -> int:
        """Move keyframe ``index`` ``step`` places (-1: earlier, +1: later), clamped to the
        path; returns its new index."""
        n = len(self.path)
        j = min(max(index + step, 0), n - 1)
        if j != index:
            self._edit(lambda p: p.swapped(index, j))
        return j

    def delete_keyframe(self, index: int) -> None:
        self._edit(lambda p: p.deleted(index))

    def clear(self) -> None:
        self._edit(lambda p: p.with_keyframes(()))

    def set_timing(
        self,
        *,
        duration_s: float | None = None,
        fps: float | None = None,
        loop: bool | None = None,
        default_fov_deg: float | None = None,
    ) -> None:
        from dataclasses import replace

        def fn(p: CameraPath) -> CameraPath:
            if duration_s is not None and duration_s != p.duration_s:
                p = p.with_duration(duration_s)
            if fps is not None:
                p = replace(p, fps=float(fps))
            if loop is not None:
                p = p.with_loop(loop)
            if default_fov_deg is not None:
                p = replace(p, default_fov_deg=float(default_fov_deg))
            return p

        self._edit(fn)

    def orbit(self, **kw) -> CameraPath:
        """Replace the path with the capture's automatic path (keyword arguments:
        :func:`pipelines.paths.auto_path`), keeping the duration and fps: a circle ("orbit")
        for a capture all around, an arc over the captured range ("arc") for a partial one, the
        input cameras ("inputs") for a walk-through; the path's name says which. It starts at
        the first camera."""
        capture = self._studio.require_capture()
        pts = capture.load_points()
        old = self.path
        kw = {"duration_s": old.duration_s, "fps": old.fps, **kw}
        path, shape = auto_path(capture.cameras, None if pts is None else pts[0], **kw)
        self.set_path(path, AUTO_PATH_NAMES[shape.kind])
        return path

    def through_inputs(self, **kw) -> CameraPath:
        """Replace the path with a smoothed path through the capture's cameras in capture
        order (keyword arguments: :func:`pipelines.paths.input_cameras_path`)."""
        capture = self._studio.require_capture()
        pts = capture.load_points()
        old = self.path
        kw = {"duration_s": old.duration_s, "fps": old.fps, **kw}
        path = input_cameras_path(capture.cameras, points=None if pts is None else pts[0], **kw)
        self.set_path(path, "inputs")
        return path

    def pose_at(self, t: float) -> tuple[Tensor, float] | None:
        """(c2w [4, 4] float64 OpenCV, vertical fov in degrees) at ``t`` seconds; None without
        keyframes."""
        path = self.path
        return None if len(path) == 0 else pose_at(path, t)

    # -------------------------------------------------------------- files
    def paths_dir(self) -> Path:
        return self._studio.require_capture().root / PATHS_DIR

    def saved(self) -> list[str]:
        """Names of the saved paths of the open capture (CAPTURE/paths/*.json), sorted."""
        capture = self._studio.capture
        if capture is None or not (capture.root / PATHS_DIR).is_dir():
            return []
        return sorted(p.stem for p in (capture.root / PATHS_DIR).glob("*.json"))

    def save(self, name: str | None = None) -> Path:
        """Write the path to CAPTURE/paths/<name>.json (atomically); it becomes the name."""
        path = self.path
        if len(path) == 0:
            raise ValueError("the path has no keyframes; add some before saving")
        name = path_name(name or self.name)
        file = write_camera_path(inside(self.paths_dir(), f"{name}.json"), path)
        with self._lock:
            self._name = name
        self._announce()
        return file

    def load(self, name: str) -> CameraPath:
        """Open CAPTURE/paths/<name>.json (ours or nerfstudio's) for editing."""
        file = inside(self.paths_dir(), f"{path_name(name)}.json")
        if not file.is_file():
            raise FileNotFoundError(f"no saved path {name!r} in {file.parent}")
        path = read_camera_path(file)
        self.set_path(path, file.stem)
        return path

    def import_json(self, filename: str, data: bytes) -> Path:
        """An uploaded camera_path.json (nerfstudio's or ours): checked, saved under
        CAPTURE/paths/ by its sanitized name, and opened. Raises ValueError saying what is wrong."""
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{filename}: not a JSON file ({e})") from e
        path = from_nerfstudio(d)
        name = path_name(Path(filename).stem)
        file = write_camera_path(inside(self.paths_dir(), f"{name}.json"), path)
        self.set_path(path, name)
        return file

    def export_json(self) -> bytes:
        """The path as camera_path.json bytes (for a download)."""
        return (json.dumps(to_nerfstudio(self.path), indent=1) + "\n").encode()

    # -------------------------------------------------------------- video
    def submit_video(
        self, content: VideoContent = "A|B", *, height: int = 480, device: str = "auto"
    ) -> JobState:
        """Queue a video of the path: slot A, slot B, or both side by side ("A|B"), each
        ``height`` pixels high at the path's aspect ratio, rendered on ``device`` (auto, cpu,
        cuda). Raises ValueError at once when the path or a slot is empty."""
        check_choice("video content", content, VIDEO_CONTENTS)
        check_range("video height", height, MIN_VIDEO_HEIGHT, MAX_VIDEO_HEIGHT)
        check_choice("device", device, VIDEO_DEVICES)
        path = self.path
        if len(path) == 0:
            raise ValueError("the path has no keyframes; add keyframes or make an automatic path")
        shown = self._studio.shown
        slots = ["A", "B"] if content == "A|B" else [content]
        missing = [s for s in slots if s not in shown]
        if missing:
            raise ValueError(f"nothing shown as {' and '.join(missing)}; show a run there in the Runs panel")
        panels = [Panel(shown[s].gaussians, shown[s].label, shown[s].background) for s in slots]
        capture = self._studio.require_capture()
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        tag = "A-vs-B" if content == "A|B" else content
        out = inside(capture.root / VIDEOS_DIR, f"{self.name}-{tag}-{stamp}.mp4")

        def run(progress: Progress, cancel: CancelToken) -> VideoResult:
            return render_video(
                panels, path, out, height=height, device=device, progress=progress, cancel=cancel
            )

        def done(result: VideoResult) -> None:
            with self._lock:
                self._video = result.path
            self._announce()

        where = json.dumps(to_nerfstudio(path), sort_keys=True)
        key = ("video", content, height, device, where, *(id(p.gaussians) for p in panels))
        return self._studio.jobs.submit(f"Video {out.name}", run, kind="video", on_done=done, key=key)
