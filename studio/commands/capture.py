"""``lrm-studio sfm``, ``lrm-studio import`` and ``lrm-studio export``.

Errors the user can act on print as one line and exit 1; Ctrl-C cancels cleanly (exit 130) and
leaves the workspace as it was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import tyro

from pipelines.capture.ingest import IngestConfig
from pipelines.errors import InputError
from pipelines.progress import Cancelled
from pipelines.sfm.config import PRESETS, SfMConfig
from pipelines.sfm.exports import ImageMode
from studio.console import default_is

Input = Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="INPUT")]
_DEFAULT_INGEST = IngestConfig()
_DEFAULT_SFM = SfMConfig()


@contextlib.contextmanager
def _cli_errors() -> Iterator[dict]:
    """Turn InputError / Cancelled into one printed line and an exit code in ``status['code']``."""
    from studio.console import console

    status = {"code": 0}
    try:
        yield status
    except InputError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        status["code"] = 1
    except Cancelled:
        console.print("[yellow]cancelled[/yellow]; the workspace is unchanged", highlight=False)
        status["code"] = 130


def sfm(
    input: Input,
    workspace: Path = Path("workspace"),
    name: Annotated[str | None, default_is("the video's or folder's name")] = None,
    max_frames: int = _DEFAULT_INGEST.max_frames,
    max_side: int = _DEFAULT_INGEST.max_side or 0,
    matcher: Literal["auto", "sequential", "exhaustive"] = _DEFAULT_SFM.matcher,
    mapper: Literal["incremental", "global"] = _DEFAULT_SFM.mapper,
    preset: Annotated[Literal["default", "fast"], default_is("the standard settings")] = "default",
    seed: int = _DEFAULT_SFM.seed,
    overwrite: bool = False,
) -> int:
    """Cameras from a video file or a folder of photos (pycolmap on the CPU) into a new capture.

    Args:
        input: A video file (phone rotation applied) or a folder of JPEG/PNG photos.
        workspace: Workspace folder; the capture is WORKSPACE/NAME.
        name: Capture name.
        max_frames: Video: frames kept (the sharpest of each window). Photos: at most this many.
        max_side: Longest image side in pixels (0 keeps the original size).
        matcher: auto: sequential for video, exhaustive for up to 100 photos.
        mapper: incremental (COLMAP) or global (GLOMAP-style).
        preset: SfM preset: fast has fewer features and neighbours.
        seed: Random seed of COLMAP's sampling (repeatable results).
        overwrite: Replace an existing capture of that name.
    """
    from pipelines.capture.ingest import check_input
    from pipelines.capture.staging import check_destination
    from studio.captures import capture_dest, sfm_to_workspace
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging(logging.WARNING)
    with _cli_errors() as status:
        check_input(input)  # clear errors before the progress bar appears
        check_destination(capture_dest(workspace, name, input), overwrite)
        ingest_config = IngestConfig(max_frames=max_frames, max_side=max_side or None)
        sfm_config = PRESETS[preset].with_(matcher=matcher, mapper=mapper, seed=seed)
        with ctrl_c_cancels() as token, progress_bar("sfm") as report:
            cap = sfm_to_workspace(
                input,
                workspace,
                name=name,
                ingest_config=ingest_config,
                sfm_config=sfm_config,
                overwrite=overwrite,
                progress=report,
                cancel=token,
            )
        t = cap.meta.get("timings", {})
        console.print(
            f"[green]capture[/green] {cap.root}: {len(cap)} frames registered, {len(cap.unregistered)} not "
            f"({len(cap.indices('test'))} test frames); {t.get('total_s', 0):.1f} s",
            highlight=False,
        )
        for s in cap.meta.get("skipped", []):
            console.print(f"[yellow]skipped[/yellow] {s['source']}: {s['reason']}", highlight=False)
    return status["code"]


def import_capture(
    input: Input,
    workspace: Path = Path("workspace"),
    name: Annotated[str | None, default_is("the input's folder name")] = None,
    images: Path | None = None,
    max_side: int = 0,
    overwrite: bool = False,
) -> int:
    """Import cameras from a COLMAP model (binary or text), a nerfstudio transforms.json or a Long-LRM
    opencv_cameras.json, with their images, into a new capture (distorted images are undistorted).

    Args:
        input: A COLMAP model folder (or a scene folder with sparse/0), a transforms.json, an
            opencv_cameras.json, or a folder holding one of them.
        workspace: Workspace folder; the capture is WORKSPACE/NAME.
        name: Capture name.
        images: The COLMAP model's image folder, when it is not images/ beside the model.
        max_side: Longest image side in pixels (0 keeps the size).
        overwrite: Replace an existing capture of that name.
    """
    from pipelines.capture.staging import check_destination
    from pipelines.sfm.imports import detect_format
    from studio.captures import capture_dest, import_to_workspace
    from studio.console import console, ctrl_c_cancels, progress_bar, setup_logging

    setup_logging(logging.WARNING)
    with _cli_errors() as status:
        detect_format(input)  # clear errors before the progress bar appears
        check_destination(capture_dest(workspace, name, input), overwrite)
        with ctrl_c_cancels() as token, progress_bar("import") as report:
            cap = import_to_workspace(
                input,
                workspace,
                name=name,
                images=images,
                max_side=max_side or None,
                overwrite=overwrite,
                progress=report,
                cancel=token,
            )
        console.print(
            f"[green]capture[/green] {cap.root}: {len(cap)} frames ({cap.meta['source']['type']}), "
            f"{len(cap.unregistered)} without pose",
            highlight=False,
        )
    return status["code"]


def export(
    capture: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CAPTURE")],
    format: Annotated[Literal["nerfstudio", "long-lrm"], tyro.conf.arg(name="format")] = "nerfstudio",
    out: Annotated[Path | None, default_is("inside the capture folder")] = None,
    images: ImageMode = "reference",
) -> int:
    """Export a capture's cameras as nerfstudio transforms.json or Long-LRM opencv_cameras.json.

    Args:
        capture: A capture folder (WORKSPACE/NAME).
        format: nerfstudio (transforms.json with the train/test split, + sparse_pc.ply) or
            long-lrm (opencv_cameras.json).
        out: Output file or folder.
        images: reference: image paths point into the capture; copy / link: the images go to
            images/ beside the file (hard links, copies across devices), so the folder moves as a
            whole.
    """
    from studio.captures import export_from_workspace
    from studio.console import console

    with _cli_errors() as status:
        path = export_from_workspace(capture, format, out, images=images)
        console.print(f"[green]wrote[/green] {path}", highlight=False)
    return status["code"]
