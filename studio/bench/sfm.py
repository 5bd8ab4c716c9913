"""``lrm-studio bench sfm``: stage times and accuracy of video -> capture on the synth demo.

Runs the whole ``lrm-studio sfm`` pipeline (ingest, SIFT features, matching, mapping,
undistortion) on the bundled demo video (pipelines.synth: 640x360, ground-truth cameras in
gt_cameras.json), keeping FRAMES frames, and reports each stage's wall time (median, min, max
over REPEATS runs) and process CPU time (steadier on a shared machine), the frames registered
and, after a similarity alignment by frame index, the median rotation and camera-centre errors.
The issue's target: 60 frames at 640x360 in at most 60 s in total on 2 CPU cores.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Literal

from studio.bench.common import Timing, print_table, save_results

DEMO = Path("assets/demo/demo.mp4")
STAGES = ("ingest_s", "features_s", "matching_s", "mapping_s", "undistort_s", "total_s")


def _cpu() -> str:
    return f"cpu ({os.cpu_count()} cores, {platform.machine()})"


def main(
    *,
    video: Path = DEMO,
    frames: int = 60,
    max_side: int = 640,
    matcher: Literal["auto", "sequential", "exhaustive"] = "auto",
    mapper: Literal["incremental", "global"] = "incremental",
    camera_model: str = "RADIAL",
    threads: int = -1,
    repeats: int = 1,
    json: Path | None = None,
) -> int:
    """Time the SfM pipeline on VIDEO (default: the synth demo) keeping FRAMES frames.

    Args:
        video: A video with gt_cameras.json beside it (pipelines.synth.capture format).
        frames: Frames kept from the video (the sharpest of each window).
        max_side: Longest image side in pixels.
        matcher: auto is sequential for a video.
        mapper: incremental or global.
        camera_model: COLMAP model of the shared camera (RADIAL, SIMPLE_RADIAL, OPENCV, ...).
        threads: pycolmap threads (-1: all cores).
        repeats: Whole-pipeline runs; each stage's median, min and max are reported.
        json: Write the results here.
    """
    from pipelines.capture.ingest import IngestConfig
    from pipelines.errors import InputError
    from pipelines.sfm.build import sfm_capture
    from pipelines.sfm.config import SfMConfig
    from pipelines.sfm.evaluate import pose_errors
    from studio.console import console

    gt_path = video.parent / "gt_cameras.json"
    if not video.is_file() or not gt_path.is_file():
        console.print(
            f"[red]error:[/red] {video} or its gt_cameras.json is missing; regenerate the demo with "
            f"`lrm-studio synth demo` or pass --video with gt_cameras.json beside it",
            highlight=False,
        )
        return 1
    from pipelines.synth.capture import read_gt_cameras

    gt_index, gt_cams, _ = read_gt_cameras(gt_path)
    row_of = {f: i for i, f in enumerate(gt_index)}
    ingest = IngestConfig(max_frames=frames, max_side=max_side)
    sfm = SfMConfig(matcher=matcher, mapper=mapper, camera_model=camera_model, num_threads=threads)
    runs = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as ws:
            try:
                cap = sfm_capture(video, Path(ws) / "bench", ingest_config=ingest, sfm_config=sfm)
            except InputError as e:
                console.print(f"[red]error:[/red] {e}", highlight=False)
                return 1
            idx = [f["index"] for f in cap.meta["frames"] if f["registered"]]
            err = pose_errors(cap.cameras, gt_cams[[row_of[i] for i in idx]])
            runs.append(
                {
                    "timings": cap.meta["timings"],
                    "frames": len(cap.meta["frames"]),
                    "registered": len(cap),
                    "size": [cap.cameras.width, cap.cameras.height],
                    "rotation_deg_median": err.rotation_deg_median,
                    "center_rel_median": err.center_rel_median,
                    "points": cap.meta["sfm"]["num_points3D"],
                    "reprojection_px": cap.meta["sfm"]["mean_reprojection_error_px"],
                    "matcher": cap.meta["settings"]["matcher"],
                }
            )
        console.print(f"run {r + 1}/{repeats}: {runs[-1]['timings']['total_s']:.1f} s", highlight=False)

    device = _cpu()
    last = runs[-1]
    w, h = last["size"]
    rows = []
    stages = {}
    for s in STAGES:
        t = Timing.of([run["timings"][s] for run in runs])
        cpu = Timing.of([run["timings"][s.removesuffix("_s") + "_cpu_s"] for run in runs])
        stages[s] = {"median_s": t.median_s, "min_s": t.min_s, "max_s": t.max_s, "cpu_median_s": cpu.median_s}
        rows.append([s.removesuffix("_s"), t.median_s, t.min_s, t.max_s, cpu.median_s])
    print_table(
        f"sfm: {last['frames']} frames at {w}x{h}, {last['matcher']} matching, {mapper} mapping; {device}",
        ["stage", "median s", "min s", "max s", "CPU s (all threads)"],
        rows,
    )
    print_table(
        "sfm accuracy (last run; aligned to ground truth by frame index)",
        ["registered", "rotation err deg (median)", "centre err / extent (median)", "points", "reproj px"],
        [
            [
                f"{last['registered']}/{last['frames']}",
                last["rotation_deg_median"],
                last["center_rel_median"],
                last["points"],
                last["reprojection_px"],
            ]
        ],
    )
    save_results(
        json,
        {
            "benchmark": "sfm",
            "device": device,
            "video": str(video),
            "settings": {"frames": frames, "max_side": max_side, "matcher": matcher, "mapper": mapper},
            "stages": stages,
            "runs": runs,
        },
    )
    return 0
