"""``lrm-studio bench synth``: ray-casting speed of the procedural-scene renderer.

Renders V views of W x W pixels of a fixed object scene (orbit) and a fixed room scene
(look-around), CPU and, when present, CUDA; reports the median wall time of a whole batch, views
per second and rays per second. The issue's target: 32 views at 256 x 256 in at most 2 s on 2
CPU cores (object scene, no supersampling).
"""

from __future__ import annotations

from pathlib import Path

import torch

from studio.bench.common import Timing, device_description, print_table, save_results, time_calls

OBJECT_SEED = 10  # 6 primitives: box, sphere, 2 cylinders, cone, torus
ROOM_SEED = 1


def _cases(views: int, size: int):
    from pipelines.synth.scene import object_scene, room_scene
    from pipelines.synth.trajectories import look_around, orbit

    obj = object_scene(OBJECT_SEED)
    obj_cams = orbit(views, radius=2.0, elevation_deg=20.0, fov_y_deg=39.6, width=size, height=size)
    room = room_scene(ROOM_SEED)
    room_cams = look_around(views, drift_radius=0.3, eye_height=1.5, fov_y_deg=60.0, width=size, height=size)
    return {"object": (obj, obj_cams), "room": (room, room_cams)}


def main(
    *,
    views: int = 32,
    size: int = 256,
    supersample: tuple[int, ...] = (1, 2),
    device: str = "auto",
    repeats: int = 5,
    threads: int | None = None,
    json: Path | None = None,
) -> None:
    """Time render(scene, cameras) for VIEWS views of SIZE x SIZE pixels.

    device: cpu, cuda or auto (cpu, plus cuda when available); threads: torch CPU threads."""
    from pipelines.synth.raycast import render

    if threads is not None:
        torch.set_num_threads(threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "auto" else [device]
    rows, results = [], []
    for dev in devices:
        for name, (scene, cams) in _cases(views, size).items():
            cams_d, scene_d = cams.to(dev), scene.to(dev)
            for k in supersample:

                def call(scene_d=scene_d, cams_d=cams_d, k=k):
                    return render(scene_d, cams_d, supersample=k)

                times = time_calls(call, device=dev, warmup=1, repeats=repeats)
                t = Timing.of(times)
                rays = views * size * size * (k * k + (1 if k % 2 == 0 else 0))
                rows.append(
                    [
                        device_description(dev),
                        name,
                        scene.num_primitives,
                        f"{k}x{k}",
                        t.median_s,
                        t.min_s,
                        views / t.median_s,
                        rays / t.median_s / 1e6,
                    ]
                )
                results.append(
                    {
                        "device": device_description(dev),
                        "scene": name,
                        "primitives": scene.num_primitives,
                        "supersample": k,
                        "views": views,
                        "size": size,
                        "median_s": t.median_s,
                        "min_s": t.min_s,
                        "max_s": t.max_s,
                        "views_per_s": views / t.median_s,
                    }
                )
    print_table(
        f"synth: render {views} views at {size}x{size}",
        ["device", "scene", "prims", "AA", "median s", "min s", "views/s", "Mrays/s"],
        rows,
    )
    save_results(json, {"benchmark": "synth", "results": results})
