"""Captures of the shapes people bring, made with the project's own procedural renderer (nothing
downloaded): portrait 9:16, square and landscape frames, sizes that divide by nothing useful
(530x946, 641x359), a frontal arc of about 90 degrees in front of an object standing against a
wall, a 360-degree orbit, a walk-through of a room. Cameras are the ground truth (no SfM: the
tests of SfM build their own); sparse points are the scene's surface seen by the cameras.

Examples:
    >>> shape = make_shape_capture(tmp / "ws" / "arc", "portrait", "frontal-arc", seed=3)   # doctest: +SKIP
    >>> shape.capture.cameras.width, shape.capture.cameras.height                             # doctest: +SKIP
    (288, 512)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import write_image
from pipelines.gaussians import write_points_ply
from pipelines.synth.capture import scene_points
from pipelines.synth.primitives import Kind
from pipelines.synth.raycast import render
from pipelines.synth.scene import Scene, object_scene, primitive_scene, room_scene
from pipelines.synth.trajectories import orbit, walk_through

SIZES: dict[str, tuple[int, int]] = {
    "portrait": (288, 512),  # 9:16
    "square": (320, 320),
    "landscape": (512, 288),  # 16:9
    "odd-portrait": (530, 946),  # after undistortion: divides by nothing useful
    "odd-landscape": (641, 359),
}
TRAJECTORIES = ("frontal-arc", "orbit-360", "walk-through")
# each size and each trajectory at least once (not the full product: CI time)
CASES: tuple[tuple[str, str], ...] = (
    ("portrait", "frontal-arc"),
    ("square", "orbit-360"),
    ("landscape", "walk-through"),
    ("odd-portrait", "frontal-arc"),
    ("odd-landscape", "orbit-360"),
)
WALL_Y = -0.9  # the wall behind the object of a frontal arc: the plane y = WALL_Y, facing +y
ARC_DEG = 90.0


@dataclass
class ShapeCapture:
    """A capture folder with the scene it shows. object_center [3]: the object's centre (the
    room's centre for a walk-through); wall_y: the wall plane of a frontal arc (None otherwise)."""

    capture: Capture
    scene: Scene
    trajectory: str
    object_center: torch.Tensor
    wall_y: float | None


def _with_backdrop(obj: Scene, gen: torch.Generator, wall: bool) -> Scene:
    """``obj`` standing on a floor (z = -0.5), with a wall behind it (y = WALL_Y) when asked."""
    kinds, rots, centres, scales = [int(Kind.QUAD)], [torch.eye(3)], [[0.0, 0.0, -0.5]], [[3.0, 3.0, 1.0]]
    if wall:  # a quad's normal is its local z: turn it to +y
        r = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
        kinds.append(int(Kind.QUAD))
        rots.append(r)
        centres.append([0.0, WALL_Y, 0.5])
        scales.append([3.0, 1.5, 1.0])
    back = primitive_scene(
        kinds, torch.stack(rots), torch.tensor(centres), torch.tensor(scales), gen=gen, background=(1, 1, 1)
    )
    parts = Scene.cat_primitives(
        [
            {k: getattr(s, k) for k in ("kind", "rotation", "translation", "scale", "param", "object_id")}
            | {"textures": s.textures}
            for s in (obj, back)
        ]
    )
    parts["object_id"] = torch.cat([obj.object_id, obj.object_id.max() + 1 + torch.arange(len(kinds))])
    return Scene(**parts, light_dir=obj.light_dir, background=obj.background, family="object", info=obj.info)


def make_shape_capture(
    root: Path, size: str, trajectory: str, *, seed: int, frames: int = 17, fov_y_deg: float = 50.0
) -> ShapeCapture:
    """Render a capture of ``size`` (a key of :data:`SIZES`) along ``trajectory`` into ``root``
    (images/, cameras.json with every 8th frame held out, points.ply)."""
    width, height = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    if trajectory == "walk-through":
        scene = room_scene(seed)
        cams = walk_through(frames, radius=0.8, fov_y_deg=fov_y_deg, width=width, height=height, gen=gen)
        center, wall = torch.zeros(3), None
    elif trajectory in ("frontal-arc", "orbit-360"):
        arc = trajectory == "frontal-arc"
        scene = _with_backdrop(object_scene(seed), gen, wall=arc)
        azimuth = (90.0 - ARC_DEG / 2, 90.0 + ARC_DEG / 2) if arc else (0.0, 360.0)  # arc: on the +y side
        cams = orbit(
            frames, radius=2.4, elevation_deg=15.0, azimuth_deg=azimuth, fov_y_deg=fov_y_deg,
            width=width, height=height, gen=gen,
        )  # fmt: skip
        center, wall = torch.zeros(3), (WALL_Y if arc else None)
    else:
        raise ValueError(f"unknown trajectory {trajectory!r}; {TRAJECTORIES}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    file_paths = [f"images/{i:04d}.png" for i in range(frames)]
    for b in range(0, frames, 4):
        out = render(scene, cams[b : b + 4], supersample=1)
        for j, img in enumerate(out.rgb):
            write_image(root / file_paths[b + j], img)
    small = cams.resize(64, max(1, round(64 * height / width)))
    xyz, rgb = scene_points(scene, small, max_points=4000, seed=seed)
    write_points_ply(root / "points.ply", xyz.numpy(), rgb.numpy())
    meta = {
        "source": {"type": "procedural", "trajectory": trajectory, "size": size},
        "cameras": "ground truth",
    }
    cap = Capture(root, file_paths, cams.to("cpu"), default_splits(frames), points="points.ply", meta=meta)
    cap.save()
    return ShapeCapture(Capture.load(root), scene, trajectory, center, wall)


def frontal_angle_deg(cameras) -> float:
    """The angular range (degrees) the cameras cover around the world z axis through the origin."""
    c = cameras.centers().double()
    az = torch.atan2(c[:, 1], c[:, 0])
    return math.degrees(float(az.max() - az.min()))
