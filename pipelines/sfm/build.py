"""Video or photos -> a capture folder: ingest, pycolmap SfM, undistortion, cameras.json.

Stages and their share of the progress bar: ingest (0-15 %), SfM features / matching / mapping
(15-92 %), undistortion and writing (92-100 %). The capture is built in a temporary folder beside
``dest`` and moved into place at the end; a failure or a cancel leaves the workspace as it was.

Layout (ARCHITECTURE.md):

    dest/images/           undistorted pinhole frames (cameras.json lists the registered ones)
    dest/sfm/frames/       the ingested (distorted) frames SfM ran on
    dest/sfm/database.db   COLMAP database; dest/sfm/sparse/ the kept model (binary)
    dest/cameras.json      cameras (OpenCV c2w, K), every 8th frame a test frame, unregistered
    dest/points.ply        sparse points with colours
    dest/capture.json      source, settings, frame list, registered/unregistered, timings

Examples:
    >>> cap = sfm_capture("walk.mp4", workspace / "walk", progress=report)   # doctest: +SKIP
    >>> len(cap), cap.unregistered                                           # doctest: +SKIP
    (148, ['images/000071.jpg', 'images/000072.jpg'])
"""

from __future__ import annotations

import datetime
import logging
import os
import time

from pipelines.capture.folder import Capture
from pipelines.capture.ingest import IngestConfig, ingest
from pipelines.capture.staging import check_destination, staged_folder
from pipelines.progress import CancelToken, Progress, no_progress, sub_progress
from pipelines.sfm.colmap import run_sfm, timed
from pipelines.sfm.config import SfMConfig
from pipelines.sfm.model import image_w2c, model_points
from pipelines.sfm.write import SourceFrame, write_capture

log = logging.getLogger(__name__)


def sfm_capture(
    input: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    ingest_config: IngestConfig | None = None,
    sfm_config: SfMConfig | None = None,
    overwrite: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """Build the capture folder ``dest`` from a video file or a folder of photos (default
    settings: ``IngestConfig()``, ``SfMConfig()``)."""
    import numpy as np

    ingest_config = ingest_config or IngestConfig()
    sfm_config = sfm_config or SfMConfig()

    dest = check_destination(dest, overwrite)
    timings: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    with staged_folder(dest, overwrite) as tmp:
        frames_dir = tmp / "sfm" / "frames"
        with timed(timings, "ingest"):
            got = ingest(
                input,
                frames_dir,
                ingest_config,
                progress=sub_progress(progress, 0.0, 0.15, "ingest: "),
                cancel=cancel,
            )

        sfm = run_sfm(
            frames_dir,
            tmp / "sfm",
            got.names,
            sfm_config,
            is_video=got.kind == "video",
            progress=sub_progress(progress, 0.15, 0.92, "SfM "),
            cancel=cancel,
        )
        timings.update(sfm.timings)

        rec = sfm.reconstruction
        by_name = {im.name: im for im in rec.images.values()}
        shared = next(iter(rec.cameras.values()))  # one shared camera (CameraMode.SINGLE)
        frames = []
        for f in got.frames:
            im = by_name.get(f["name"])
            posed = im is not None and im.has_pose
            camera = rec.cameras[im.camera_id] if im is not None else shared
            c2w = np.linalg.inv(image_w2c(im)) if posed else None
            info = {k: v for k, v in f.items() if k != "name"}
            frames.append(SourceFrame(frames_dir / f["name"], f"images/{f['name']}", camera, c2w, info))
        with timed(timings, "undistort"):
            cap = write_capture(
                tmp,
                frames,
                points=model_points(rec),
                progress=sub_progress(progress, 0.92, 1.0, "undistort: "),
                cancel=cancel,
            )
        timings["total_s"] = time.perf_counter() - wall
        timings["total_cpu_s"] = time.process_time() - cpu
        cam = shared
        cap.meta = {
            "source": got.source,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": {
                "ingest": _asdict(ingest_config),
                "sfm": sfm_config.to_dict(),
                "matcher": sfm.matcher,
            },
            **cap.meta,
            "skipped": got.skipped,
            "sfm": {
                "camera": {
                    "model": cam.model.name,
                    "width": cam.width,
                    "height": cam.height,
                    "params": [float(x) for x in cam.params],
                },
                "num_models": sfm.num_models,
                **sfm.stats,
            },
            "timings": {k: round(v, 3) for k, v in timings.items()},
        }
        cap.save()
    log.info("capture %s: %d frames registered, %d unregistered", dest.name, len(cap), len(cap.unregistered))
    return Capture.load(dest)


def _asdict(config: IngestConfig) -> dict:
    from dataclasses import asdict

    return asdict(config)
