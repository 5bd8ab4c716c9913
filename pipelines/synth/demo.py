"""The bundled demo capture: a hand-held video orbiting a table in a procedural room.

``python -m pipelines.synth.demo --out assets/demo`` regenerates ``assets/demo/demo.mp4`` and
``assets/demo/gt_cameras.json`` (format: pipelines.synth.capture) bit-for-bit from the settings
below (the video bytes can differ across FFmpeg builds; the frames' content and the cameras do
not). The scene is ``room_scene(seed, RoomConfig(centerpiece=True, ...))``: a textured room with
furniture, posters and floor objects around a table holding a Zeroverse-style composition; the
camera walks most of a circle around the table at standing height, looking at the table, with
hand-held shake. It is made for SfM (texture everywhere, ~1.25 degrees of turn per frame), for
feed-forward models (object-centric and room-scale content at once) and for 3DGS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pipelines.progress import CancelToken, Progress, no_progress
from pipelines.synth.capture import CaptureFiles, render_capture
from pipelines.synth.scene import RoomConfig, room_scene
from pipelines.synth.trajectories import HandHeld, orbit


@dataclass(frozen=True)
class DemoConfig:
    """seed: scene and shake seed; seconds x fps frames at width x height; orbit: azimuth span
    (degrees) and eye height (m); supersample: k x k antialiasing; crf: x264 quality (lower is
    better and bigger)."""

    seed: int = 11
    seconds: float = 10.0
    fps: int = 24
    width: int = 640
    height: int = 360
    fov_y_deg: float = 50.0
    azimuth_span_deg: float = 300.0
    eye_height: float = 1.45
    supersample: int = 2
    crf: int = 25
    orbit_radius: float = 1.5
    room: RoomConfig = RoomConfig(
        size_xy=(5.0, 7.0),
        centerpiece=True,
        table_radius=0.4,
        free_radius=0.75,
        objects=(5, 8),
        posters=(6, 9),
    )
    shake: HandHeld = HandHeld(position=0.008, rotation_deg=0.35)


def demo_scene_and_cameras(config: DemoConfig = DemoConfig()):
    """(scene, cameras [seconds * fps]) of the demo capture."""
    scene = room_scene(config.seed, config.room)
    zone = scene.info["camera_zone"]
    target = torch.tensor(zone["target"])
    radius = min(config.orbit_radius, zone["outer"] - 0.2)
    elevation = math.degrees(math.atan2(config.eye_height - float(target[2]), radius))
    n = round(config.seconds * config.fps)
    cams = orbit(
        n,
        center=target,
        radius=radius,
        elevation_deg=elevation,
        azimuth_deg=(-60.0, -60.0 + config.azimuth_span_deg),
        elevation_wobble_deg=4.0,
        radius_wobble=0.08,
        fov_y_deg=config.fov_y_deg,
        width=config.width,
        height=config.height,
        fps=config.fps,
        shake=config.shake,
        gen=torch.Generator().manual_seed(config.seed + 1),
    )
    return scene, cams


def make_demo(
    out: Path = Path("assets/demo"),
    config: DemoConfig = DemoConfig(),
    *,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> CaptureFiles:
    """Render the demo capture into ``out`` (demo.mp4 + gt_cameras.json)."""
    scene, cams = demo_scene_and_cameras(config)
    meta = {
        "generator": "pipelines.synth.demo",
        "config": _jsonable(asdict(config)),
        "objects": scene.info["objects"],
    }
    return render_capture(
        scene,
        cams,
        out,
        video="demo.mp4",
        fps=config.fps,
        supersample=config.supersample,
        crf=config.crf,
        meta=meta,
        progress=progress,
        cancel=cancel,
    )


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def main(
    out: Path = Path("assets/demo"), seed: int = DemoConfig.seed, supersample: int = DemoConfig.supersample
) -> None:
    """Regenerate the demo capture (demo.mp4 + gt_cameras.json) into OUT."""
    files = make_demo(out, DemoConfig(seed=seed, supersample=supersample))
    size = files.video.stat().st_size / 2**20 if files.video else 0
    print(f"wrote {files.num_frames} frames: {files.video} ({size:.2f} MiB), {files.gt_cameras}")


if __name__ == "__main__":
    import tyro

    tyro.cli(main)


def demo_scene_of(gt_meta: dict, config: DemoConfig = DemoConfig()):
    """The demo's scene when ``gt_meta`` (a gt_cameras.json's contents) records that it was made
    by :func:`make_demo` with ``config``; else None (the scene of another video is unknown)."""
    scene_meta = gt_meta.get("scene") or {}
    if scene_meta.get("generator") != "pipelines.synth.demo":
        return None
    if scene_meta.get("config") != _jsonable(asdict(config)):
        return None
    return room_scene(config.seed, config.room)
