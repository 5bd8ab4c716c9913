"""``lrm-studio synth``: write procedural captures; ``lrm-studio synth demo``: regenerate the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import tyro

from studio.console import console, ctrl_c_cancels, progress_bar


def main(
    out: tyro.conf.Positional[Path],
    *,
    family: Literal["room", "object"] = "room",
    trajectory: Literal["orbit", "walk-through", "look-around"] | None = None,
    seed: int = 0,
    frames: int = 120,
    width: int = 640,
    height: int = 360,
    fps: float = 30.0,
    fov_y_deg: float = 55.0,
    supersample: int = 2,
    video: bool = True,
    images: bool = False,
) -> None:
    """Render a procedural scene along a hand-held trajectory into OUT: OUT/video.mp4 +
    OUT/gt_cameras.json, and with --images OUT/images/*.png + OUT/cameras.json (a capture folder).

    Trajectory defaults: orbit for objects, walk-through for rooms."""
    from pipelines.synth.capture import render_capture
    from pipelines.synth.scene import object_scene, room_scene
    from pipelines.synth.trajectories import HandHeld, look_around, orbit, walk_through

    gen = torch.Generator().manual_seed(seed + 1)
    common = dict(fov_y_deg=fov_y_deg, width=width, height=height, fps=fps, gen=gen)
    if family == "object":
        scene = object_scene(seed)
        trajectory = trajectory or "orbit"
        if trajectory != "orbit":
            raise SystemExit("object scenes take --trajectory orbit")
        cams = orbit(
            frames,
            radius=2.0,
            elevation_deg=20.0,
            elevation_wobble_deg=8.0,
            shake=HandHeld(position=0.005, rotation_deg=0.3),
            **common,
        )
    else:
        scene = room_scene(seed)
        zone = scene.info["camera_zone"]
        trajectory = trajectory or "walk-through"
        if trajectory == "walk-through":
            cams = walk_through(frames, radius=0.8 * zone["outer"], shake=HandHeld(), **common)
        elif trajectory == "look-around":
            cams = look_around(frames, drift_radius=min(0.4, 0.5 * zone["outer"]), shake=HandHeld(), **common)
        else:
            cams = orbit(
                frames,
                center=(0.0, 0.0, 1.0),
                radius=0.8 * zone["outer"],
                elevation_deg=5.0,
                shake=HandHeld(),
                **common,
            )
    meta = {"family": family, "trajectory": trajectory, "seed": seed}
    with ctrl_c_cancels() as cancel, progress_bar(f"synth {family}") as report:
        files = render_capture(
            scene,
            cams,
            out,
            video="video.mp4" if video else None,
            images=images,
            fps=fps,
            supersample=supersample,
            meta=meta,
            progress=report,
            cancel=cancel,
        )
    console.print(f"wrote {files.num_frames} frames to {files.root}")


def demo(
    out: tyro.conf.Positional[Path] = Path("assets/demo"),
    seed: int | None = None,
    supersample: int | None = None,
) -> None:
    """Regenerate the bundled demo capture (demo.mp4 + gt_cameras.json) into OUT."""
    from dataclasses import replace

    from pipelines.synth.demo import DemoConfig, make_demo

    config = DemoConfig()
    config = replace(
        config, **{k: v for k, v in {"seed": seed, "supersample": supersample}.items() if v is not None}
    )
    with ctrl_c_cancels() as cancel, progress_bar("demo capture") as report:
        files = make_demo(out, config, progress=report, cancel=cancel)
    console.print(
        f"wrote {files.num_frames} frames: {files.video} ({files.video.stat().st_size / 2**20:.2f} MiB)"
    )
