"""``lrm-studio render RUN --path PATH.json --out VIDEO.mp4 [--compare RUN2] [--height H] [--width W]``.

Renders a run's Gaussians along a camera path into an H.264 MP4 on the server (gsplat on CUDA,
our numba renderer on the CPU), or two runs of the same capture side by side (A | B) with their
labels, with a progress bar; Ctrl-C cancels and leaves any earlier file at --out untouched.

PATH is a camera_path.json: one saved from the studio (CAPTURE/paths/<name>.json) or one written
by nerfstudio's viewer. Like ``ns-render camera-path``, each run is rendered at the file's
``render_width`` x ``render_height`` (rounded down to even for H.264) unless ``--height`` /
``--width`` are given; with only one of them the other keeps the file's aspect ratio.
Paths made in nerfstudio live in its world: ``--nerfstudio-world`` (a dataset written by
``lrm-studio export``) or ``--transforms-json`` (another dataset's), and
``--dataparser-transforms`` (outputs/.../dataparser_transforms.json) for a trained model's
normalized world; files written by ``lrm-studio paths export`` say their world themselves.
``--auto orbit`` / ``--auto inputs`` render an automatic path of the run's capture instead (at
the capture's image size unless told otherwise): orbit follows the captured range (a circle for
a capture all around, an arc otherwise, the input cameras for a walk-through).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import tyro

from pipelines.capture.folder import Capture
from pipelines.paths import CameraPath, PathWorld, auto_path, input_cameras_path, read_camera_path
from pipelines.paths.video import Panel, VideoResult, render_video
from pipelines.progress import Cancelled, CancelToken, Progress, no_progress
from studio.console import default_is
from studio.workspace import Run

log = logging.getLogger(__name__)

AutoPath = Literal["orbit", "inputs"]


def run_label(run: Run, other: Run | None = None) -> str:
    """The label drawn over a run: its method, plus its id when both runs share the method."""
    method = str(run.info.get("method", "?"))
    if other is not None and str(other.info.get("method", "?")) == method:
        return f"{method} {run.id}"
    return method


def load_path(
    capture: Capture,
    *,
    path_file: Path | None = None,
    auto: AutoPath | None = None,
    world: PathWorld = PathWorld(),  # noqa: B008 (frozen)
    duration_s: float | None = None,
    fps: float | None = None,
) -> CameraPath:
    """The camera path to render: a file (in the world ``world`` says) or an automatic path
    of ``capture``; ``duration_s`` / ``fps`` override the path's."""
    from dataclasses import replace

    if (path_file is None) == (auto is None):
        raise ValueError("give exactly one of --path PATH.json and --auto orbit|inputs")
    if path_file is not None:
        path = read_camera_path(path_file, world=world.similarity())
    else:
        pts = capture.load_points()
        points = None if pts is None else pts[0]
        if auto == "orbit":
            path, _ = auto_path(capture.cameras, points)
        else:
            path = input_cameras_path(capture.cameras, points=points)
    if duration_s is not None:
        path = path.with_duration(duration_s)
    if fps is not None:
        path = replace(path, fps=fps)
    return path


def render_runs(
    run_dir: Path,
    path: CameraPath,
    out: Path,
    *,
    compare: Path | None = None,
    height: int | None = None,
    width: int | None = None,
    device: str = "auto",
    background: tuple[float, float, float] | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> VideoResult:
    """A video of one run, or of two runs of one capture side by side, along ``path``, each
    run ``width`` x ``height`` (:func:`pipelines.paths.video_size`: the path's size by default)
    on its run's background (:attr:`Run.background`) unless ``background`` is given."""
    a = Run.load(run_dir)
    runs = [a]
    if compare is not None:
        b = Run.load(compare)
        if b.capture_root.resolve() != a.capture_root.resolve():
            raise ValueError(
                f"{b.path} belongs to capture {b.capture_root.name!r}, {a.path} to {a.capture_root.name!r}: "
                "a camera path lives in one capture's world, so compare runs of the same capture"
            )
        runs.append(b)
    panels = []
    for i, r in enumerate(runs):
        other = runs[1 - i] if len(runs) == 2 else None
        panels.append(Panel(r.gaussians(), run_label(r, other), background or r.background))
    return render_video(
        panels, path, out, height=height, width=width, device=device, progress=progress, cancel=cancel
    )


def main(
    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")],
    out: Path,
    path: Path | None = None,
    auto: AutoPath | None = None,
    compare: Path | None = None,
    height: Annotated[int | None, default_is("the path's render_height")] = None,
    width: Annotated[int | None, default_is("the path's render_width")] = None,
    device: str = "auto",
    duration: Annotated[float | None, default_is("the path's")] = None,
    fps: Annotated[float | None, default_is("the path's")] = None,
    background: Annotated[tuple[float, float, float] | None, default_is("each run's own")] = None,
    world: Annotated[PathWorld, tyro.conf.arg(name="")] = PathWorld(),  # noqa: B008 (frozen)
) -> int:
    """Render a run (or two runs side by side) along a camera path into an MP4, at the path's
    render_width x render_height as ns-render does; with only one of --height / --width the
    other follows the path's aspect ratio.

    Args:
        run: a run folder (CAPTURE/runs/<run-id>).
        out: the MP4 to write (replaced atomically when the render finishes).
        path: a camera_path.json (the studio's or nerfstudio's).
        auto: an automatic path of the run's capture instead: orbit or inputs.
        compare: a second run of the same capture, shown on the right (A | B).
        height: pixels per run, rounded down to even.
        width: pixels per run, rounded down to even.
        device: auto (CUDA when available), cpu, cuda, cuda:1, ...
        duration: seconds.
        fps: frames per second.
        background: RGB in [0, 1] behind the Gaussians (each run's own is what it was trained on).
        world: the world of --path (see PathWorld): --nerfstudio-world, --transforms-json,
            --dataparser-transforms.
    """
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging()
    try:
        capture = Capture.load(Run.load(run).capture_root)
        camera_path = load_path(
            capture,
            path_file=path,
            auto=auto,
            world=world,
            duration_s=duration,
            fps=fps,
        )
        with ctrl_c_cancels() as token, progress_bar("render") as report:
            result = render_runs(
                run,
                camera_path,
                out,
                compare=compare,
                height=height,
                width=width,
                device=device,
                background=background,
                progress=report,
                cancel=token,
            )
    except Cancelled:
        console.print(f"[yellow]cancelled; {out} not written")
        return 130
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    fps_render = result.frames / result.render_s if result.render_s > 0 else float("inf")
    console.print(
        f"{result.path}: {result.frames} frames, {result.width}x{result.height}, {result.fps:g} fps; "
        f"rendered on {result.device} at {fps_render:.2f} frames/s "
        f"({result.encode_s:.1f} s composing + encoding)"
    )
    return 0
