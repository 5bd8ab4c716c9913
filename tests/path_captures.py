"""Procedural captures of the shapes people bring, for the automatic-path tests: a frontal arc in
front of a poster on a room's wall (the wall-mounted object of a real phone capture), a 360
degree orbit around an object, and a walk-through of a room; hand-held shake, one stray
(mis-registered) camera in the arc, and the image sizes of phones and of undistorted frames.

Scenes and trajectories come from pipelines.synth (room_scene, orbit, walk_through); the
sparse points are ray-cast from the scene at a few small views, as SfM's would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.synth.capture import scene_points
from pipelines.synth.primitives import Kind
from pipelines.synth.scene import Scene, room_scene
from pipelines.synth.trajectories import HandHeld, orbit, walk_through

# (width, height): portrait 9:16, square, landscape, and undistorted sizes that divide by nothing.
SIZES = {
    "portrait": (540, 960),
    "square": (512, 512),
    "landscape": (960, 540),
    "odd-portrait": (530, 946),
    "odd-landscape": (641, 359),
}
LONG_SIDE_FOV_DEG = 65.0  # a phone's field of view across the long side of the image


@dataclass(frozen=True)
class ShapeCapture:
    """cameras [N] in the scene's z-up world; points [P, 3] sparse points; target [3]: what the
    capture looks at; scene: the procedural scene; target_id: the target's object id (index
    into scene.info["objects"]), None when it is no single object; wall_point, wall_normal [3]:
    the plane of the wall behind the target, the normal towards the room (the side the cameras
    are on), None without a wall; room_lo, room_hi [3]: the room's inside."""

    cameras: Cameras
    points: Tensor
    target: Tensor
    scene: Scene
    target_id: int | None = None
    wall_point: Tensor | None = None
    wall_normal: Tensor | None = None
    room_lo: Tensor | None = None
    room_hi: Tensor | None = None


def fov_y_deg(width: int, height: int) -> float:
    """Vertical fov giving :data:`LONG_SIDE_FOV_DEG` across the image's long side."""
    t = math.tan(math.radians(LONG_SIDE_FOV_DEG) / 2) * min(1.0, height / width)
    return math.degrees(2 * math.atan(t))


def _points(scene: Scene, cams: Cameras) -> Tensor:
    pick = torch.linspace(0, len(cams) - 1, 4).round().long()
    small = cams[pick.tolist()].resize(24, max(2, round(24 * cams.height / cams.width)))
    return scene_points(scene, small, max_points=2000)[0].double()


def _room_box(scene: Scene) -> tuple[Tensor, Tensor]:
    room = scene.info["room"]
    half = torch.tensor([room["width"] / 2, room["depth"] / 2], dtype=torch.float64)
    lo = torch.tensor([-half[0], -half[1], 0.0], dtype=torch.float64)
    hi = torch.tensor([half[0], half[1], room["height"]], dtype=torch.float64)
    return lo, hi


def _posters(scene: Scene) -> list[tuple[Tensor, Tensor, float, int]]:
    """(centre [3], inward normal [3], room for an arc: metres from the centre to the nearer
    wall end along the wall, object id) of every poster."""
    lo, hi = _room_box(scene)
    out = []
    for i in torch.nonzero(scene.kind == int(Kind.QUAD)).flatten().tolist():
        name = scene.info["objects"][int(scene.object_id[i])]
        if not name.startswith("poster"):
            continue
        c, n = scene.translation[i].double(), scene.rotation[i, :, 2].double()
        along = torch.tensor([-n[1], n[0], 0.0], dtype=torch.float64)  # horizontal, in the wall
        ends = [float((hi - c) @ along.abs()), float((c - lo) @ along.abs())]
        out.append((c, n, min(ends), int(scene.object_id[i])))
    return out


def frontal_arc(
    gen: torch.Generator, arc_deg: float, width: int, height: int, *, n: int = 40, stray: bool = True
) -> ShapeCapture:
    """A hand-held arc of ``arc_deg`` degrees at eye level in front of a poster on a room's
    wall (the poster with the most room either side), looking at it, its middle on the wall's
    normal, in a random direction, the distance varying by 15 % and the height by 5 degrees
    over the arc; with ``stray``, one camera (not the first) is replaced by a
    mis-registered one behind the wall, looking at the poster from the wrong side."""
    scene = room_scene(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    target, normal, side, poster = max(_posters(scene), key=lambda p: p[2])
    lo, hi = _room_box(scene)
    depth = float(((hi - lo)[:2] * normal[:2].abs()).sum())  # the room, across from the wall
    radius = min(1.4, 0.8 * side / math.sin(math.radians(arc_deg / 2)), 0.6 * depth)
    facing = math.degrees(math.atan2(float(normal[1]), float(normal[0])))
    ends = (facing - arc_deg / 2, facing + arc_deg / 2)
    if torch.rand(1, generator=gen) < 0.5:
        ends = ends[::-1]
    cams = orbit(
        n, center=target, radius=radius, elevation_deg=float(torch.empty(1).uniform_(-10, 10, generator=gen)),
        azimuth_deg=ends, elevation_wobble_deg=5.0, radius_wobble=0.15, fov_y_deg=fov_y_deg(width, height),
        width=width, height=height, shake=HandHeld(), gen=gen,
    )  # fmt: skip
    points = _points(scene, cams)
    if stray:
        i = int(torch.randint(1, n, (1,), generator=gen))
        behind = Cameras.look_at(
            (target - radius * normal)[None], target[None], fov_y_deg=fov_y_deg(width, height),
            width=width, height=height, up=torch.tensor([0.0, 0.0, 1.0]),
        )  # fmt: skip
        c2w = cams.c2w.clone()
        c2w[i] = behind.c2w[0]
        cams = Cameras(c2w, cams.K, width, height)
    return ShapeCapture(cams, points, target, scene, poster, target - 0.005 * normal, normal, lo, hi)


def full_orbit(gen: torch.Generator, width: int, height: int, *, n: int = 36) -> ShapeCapture:
    """A hand-held 360 degree orbit around the centre of a room (radius 1.2 to 1.8 m, 10 to 30
    degrees above it), starting at a random azimuth and turning either way."""
    scene = room_scene(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    target = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    a0 = float(torch.rand(1, generator=gen)) * 360
    a1 = a0 + (360.0 if torch.rand(1, generator=gen) < 0.5 else -360.0)
    cams = orbit(
        n, center=target, radius=1.2 + 0.6 * float(torch.rand(1, generator=gen)),
        elevation_deg=10 + 20 * float(torch.rand(1, generator=gen)), azimuth_deg=(a0, a1),
        fov_y_deg=fov_y_deg(width, height), width=width, height=height, shake=HandHeld(), gen=gen,
    )  # fmt: skip
    lo, hi = _room_box(scene)
    return ShapeCapture(cams, _points(scene, cams), target, scene, room_lo=lo, room_hi=hi)


def walk(gen: torch.Generator, width: int, height: int, *, n: int = 40) -> ShapeCapture:
    """A hand-held walk through a room's free zone at eye height, looking ahead (target: the
    room's centre at eye height)."""
    scene = room_scene(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    zone = scene.info["camera_zone"]
    cams = walk_through(
        n, center=tuple(zone["center"]), radius=zone["outer"], fov_y_deg=fov_y_deg(width, height),
        width=width, height=height, shake=HandHeld(), gen=gen,
    )  # fmt: skip
    lo, hi = _room_box(scene)
    target = torch.tensor([*zone["center"], 1.5], dtype=torch.float64)
    return ShapeCapture(cams, _points(scene, cams), target, scene, room_lo=lo, room_hi=hi)
