"""Videos along a camera path: Gaussians rendered on the server through
``pipelines.gaussians.render`` (gsplat on CUDA, our numba backend on the CPU), one result or
several side by side (A | B) with their labels drawn in, encoded as H.264 MP4 (imageio's PyAV
plugin, libx264, yuv420p, so both sides must be even), written atomically: the file appears
complete or not at all (a cancelled or failed render leaves an earlier file untouched).

Frames: uint8 [H, P * W, 3]; panel p occupies columns [p W, (p + 1) W); a 2-pixel light
divider is drawn over the seams; labels sit in the top-left corner of their panel on a
darkened box, fitted to the panel whatever its width (portrait panels are narrow): the font
shrinks from ~H / 22 px down to 8 px, then the text is cut with an ellipsis; a label never
draws into the next panel. Text uses Pillow's bundled font (Pillow comes with imageio).

Examples:
    >>> result = render_video([Panel(g_a, "Long-LRM"), Panel(g_b, "3DGS")], path,
    ...                       "out.mp4", height=480)                      # doctest: +SKIP
    >>> result.frames, result.width, result.height                       # doctest: +SKIP
    (241, 1708, 480)
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.fileio import atomic_path
from pipelines.gaussians import BLACK, Background, Gaussians, render
from pipelines.paths.interpolate import sample_cameras
from pipelines.paths.path import CameraPath, video_size
from pipelines.progress import CancelToken, Progress, check, no_progress

DIVIDER_PX = 2
DIVIDER_RGB = (235, 235, 235)


@dataclass(frozen=True)
class Panel:
    """One column of the video: Gaussians (any device; moved to the render device), the label
    drawn over it ("" for none) and the RGB in [0, 1] it is rendered on (its run's)."""

    gaussians: Gaussians
    label: str = ""
    background: Background = BLACK


@dataclass(frozen=True)
class VideoResult:
    """What was written: the file, frame count, frame size (all panels), fps, and seconds spent
    rendering (synchronized) and composing + encoding."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float
    render_s: float
    encode_s: float
    device: str


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when CUDA is available, else "cpu"; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@functools.lru_cache(maxsize=64)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


MIN_LABEL_PX = 8  # smallest font size before a label is elided
ELLIPSIS = "\u2026"


def _label_pad(size: int) -> int:
    """Margin in pixels around a label's box and inside it, for a font of ``size`` px."""
    return max(2, size // 3)


def _text_width(text: str, size: int) -> int:
    left, _, right, _ = _font(size).getbbox(text)
    return right - left


@functools.lru_cache(maxsize=256)
def fit_label(text: str, panel_width: int, size: int) -> tuple[str, int]:
    """(text to draw, font size) for a label in a panel ``panel_width`` pixels wide, asked at
    ``size`` px: the text whole at the largest size from ``size`` down to :data:`MIN_LABEL_PX`
    at which its box (text + 2 pads, a pad from the panel's left and right edges, pads from
    :func:`_label_pad`) fits; else, at :data:`MIN_LABEL_PX`, its longest prefix that fits with
    an ellipsis appended; ("", MIN_LABEL_PX) when not even the ellipsis fits."""
    for s in range(max(size, MIN_LABEL_PX), MIN_LABEL_PX - 1, -1):
        if _text_width(text, s) <= panel_width - 4 * _label_pad(s):
            return text, s
    s = MIN_LABEL_PX
    room = panel_width - 4 * _label_pad(s)
    lo, hi = 0, len(text)  # the longest prefix that fits: lo fits (or is 0), hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width(text[:mid].rstrip() + ELLIPSIS, s) <= room:
            lo = mid
        else:
            hi = mid - 1
    shown = text[:lo].rstrip() + ELLIPSIS
    return (shown, s) if _text_width(shown, s) <= room else ("", s)


def draw_label(image: np.ndarray, text: str, *, x: int = 0, width: int | None = None) -> np.ndarray:
    """Draw ``text`` into uint8 [H, W, 3] ``image`` (in place; returned) in the top-left corner
    of the panel of columns [x, x + width) (default: to the image's right edge): white text on a
    darkened box, font ~ H / 22 px, shrunk and then elided (:func:`fit_label`) so that nothing
    is drawn outside the panel."""
    if not text:
        return image
    from PIL import Image, ImageDraw

    width = image.shape[1] - x if width is None else width
    h = image.shape[0]
    shown, size = fit_label(text, width, max(10, round(h / 22)))
    if not shown:
        return image
    pad = _label_pad(size)
    font = _font(size)
    left, top, right, bottom = font.getbbox(shown)
    x0, y0 = pad, pad  # panel coordinates
    x1, y1 = x0 + (right - left) + 2 * pad, min(h, y0 + (bottom - top) + 2 * pad)
    panel = image[:, x : x + width]  # [H, width, 3] view
    box = panel[y0:y1, x0:x1].astype(np.float32)
    panel[y0:y1, x0:x1] = (0.35 * box).astype(np.uint8)
    pil = Image.fromarray(np.ascontiguousarray(panel))
    ImageDraw.Draw(pil).text((x0 + pad - left, y0 + pad - top), shown, fill=(255, 255, 255), font=font)
    panel[:] = np.asarray(pil)
    return image


def compose(panels: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Panels uint8 [H, W, 3] (same size) side by side with labels and dividers -> [H, P W, 3]."""
    assert len(panels) == len(labels) and panels, (len(panels), len(labels))
    w = panels[0].shape[1]
    frame = np.concatenate(panels, axis=1)
    for p in range(1, len(panels)):
        frame[:, p * w - DIVIDER_PX // 2 : p * w + DIVIDER_PX - DIVIDER_PX // 2] = DIVIDER_RGB
    for p, text in enumerate(labels):
        draw_label(frame, text, x=p * w, width=w)
    return frame


def to_uint8(rgb: Tensor) -> np.ndarray:
    """rgb [..., 3] float in [0, 1] (values above 1 clipped) -> uint8 numpy, rounded."""
    return (rgb.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def render_frames(
    panels: Sequence[Panel],
    cams: Cameras,
    *,
    device: str = "auto",
    batch: int | None = None,
    cancel: CancelToken | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the composed uint8 frames [H, P W, 3] of ``cams`` one by one (rendered ``batch``
    cameras at a time: 1 on the CPU, 8 on CUDA by default). ``timings["render_s"]`` accumulates
    the synchronized render time when given."""
    device = resolve_device(device)
    batch = batch or (8 if torch.device(device).type == "cuda" else 1)
    gs = [p.gaussians.detach().to(device, torch.float32) for p in panels]
    cams = cams.to(device, torch.float32)
    bgs = [torch.tensor(p.background, dtype=torch.float32, device=device) for p in panels]
    labels = [p.label for p in panels]
    for start in range(0, len(cams), batch):
        check(cancel)
        sub = cams[start : start + batch]
        t0 = time.perf_counter()
        with torch.no_grad():
            images = [to_uint8(render(g, sub, background=bg).rgb) for g, bg in zip(gs, bgs, strict=True)]
        if timings is not None:
            timings["render_s"] = timings.get("render_s", 0.0) + time.perf_counter() - t0
        for j in range(len(sub)):
            yield compose([im[j] for im in images], labels)


def write_mp4(
    frames: Iterator[np.ndarray],
    out: str | os.PathLike,
    *,
    fps: float,
    total: int | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> int:
    """Encode uint8 frames [H, W, 3] (even H and W, all one size) to H.264 MP4 (yuv420p) at
    ``out``, atomically. Returns the number of frames; raises ValueError for odd sizes or no
    frames, Cancelled when ``cancel`` is set (nothing is written)."""
    import imageio.v3 as iio

    count = 0
    with atomic_path(out) as tmp:
        with iio.imopen(tmp, "w", plugin="pyav") as video:
            video.init_video_stream("libx264", fps=fps, pixel_format="yuv420p")
            for frame in frames:
                check(cancel)
                if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                    raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
                if frame.shape[0] % 2 or frame.shape[1] % 2:
                    raise ValueError(
                        f"H.264 (yuv420p) needs even sides; frame is {frame.shape[1]}x{frame.shape[0]}"
                    )
                video.write_frame(np.ascontiguousarray(frame))
                count += 1
                if total:
                    progress(count / total, f"frame {count} of {total}")
            if count == 0:
                raise ValueError("no frames to write")
    return count


def render_video(
    panels: Sequence[Panel],
    path: CameraPath,
    out: str | os.PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    device: str = "auto",
    batch: int | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> VideoResult:
    """Render ``panels`` side by side along ``path`` at its frame times and fps, each panel
    :func:`~pipelines.paths.path.video_size` (the path's render size unless ``width`` /
    ``height`` say otherwise; a missing one follows the path's aspect ratio; both even), each
    panel on its own background, and write the MP4 to ``out`` atomically."""
    if not panels:
        raise ValueError("nothing to render: give at least one result")
    if len(path) == 0:
        raise ValueError("the camera path has no keyframes; add keyframes or use an automatic path")
    width, height = video_size(path, width, height)
    device = resolve_device(device)
    cams = sample_cameras(path, width, height)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    frames = render_frames(panels, cams, device=device, batch=batch, cancel=cancel, timings=timings)
    progress(0.0, f"rendering {len(cams)} frames of {width}x{height} on {device}")
    n = write_mp4(frames, out, fps=path.fps, total=len(cams), progress=progress, cancel=cancel)
    total_s = time.perf_counter() - t0
    render_s = timings.get("render_s", 0.0)
    return VideoResult(
        Path(out), n, width * len(panels), height, path.fps, render_s, total_s - render_s, device
    )
