"""A deterministic stream of procedural training examples for the feed-forward trainers.

Example ``i`` of a stream with seed ``s`` is a pure function of ``(config, s, i)``: it draws a
fresh scene, a camera set and the view selection from one generator seeded by (s, i), then
ray-casts only the selected views. Any worker or DDP rank can therefore produce any example
(``ProceduralDataset`` is a map-style dataset; ``stream`` iterates one rank's share).

View-selection rules (see shared/reference/long_lrm.md §2.6 and geolrm.md §2, §4):

- ``sampling="long-lrm"`` (room scenes, wide coverage): a hand-held walk-through, look-around
  or (rooms with a centre table) an orbit around the table like the demo capture, of
  ``trajectory_frames`` frames; a contiguous window of ``window`` frames; ``num_inputs``
  inputs spread uniformly over the window (``linspace``, rounded); ``num_targets`` targets drawn
  at random from the window (they may coincide with inputs when ``target_has_input``, otherwise
  they are drawn from the window's other frames); the input order is reversed with probability
  ``reverse_prob`` and then shuffled with probability ``shuffle_prob``.
- ``sampling="geolrm"`` (object scenes in [-0.5, 0.5]^3, white background): 40 views at one
  radius looking at the origin, ``orbit_views`` = 24 on an orbit at one elevation plus 16 at
  random directions (GObjaverse's layout); four orthogonal orbit views (indices offset + 0, 6, 12,
  18 with a random offset) plus ``extra_targets`` random other views are the targets; the inputs
  are a random subset of ``orthogonal_inputs`` of the orthogonal views followed by
  ``extra_inputs`` of the extra target views (so 1-7 inputs by default, as GeoLRM's stage 2).

Inputs and targets come with their z-depth (0 where no surface) and surface mask. Cameras are in the
scene's world frame (z up); models apply their own normalization.

Examples:
    >>> ex = make_example(PRESETS["long-lrm-tiny"], seed=0, index=3)
    >>> ex.inputs.images.shape, ex.target_depth.shape, ex.input_depth.shape
    (torch.Size([8, 3, 64, 64]), torch.Size([4, 64, 64]), torch.Size([8, 64, 64]))
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.models.base import Views
from pipelines.synth.raycast import render
from pipelines.synth.scene import ObjectConfig, RoomConfig, object_scene, room_scene
from pipelines.synth.trajectories import HandHeld, look_around, orbit, walk_through

Sampling = Literal["long-lrm", "geolrm"]


@dataclass(frozen=True)
class StreamConfig:
    """Settings of a procedural training stream (module docstring for the rules).

    width, height: image size; supersample: k x k antialiasing of the renders; fov_y_deg:
    vertical field of view. long-lrm: num_inputs, num_targets, trajectory_frames, window (min,
    max frames), target_has_input, reverse_prob, shuffle_prob, trajectories (walk-through,
    look-around and/or orbit; orbit needs ``room.centerpiece``), orbit_span_deg (range of the
    orbit's azimuth span), room. geolrm: orbit_views, extra_views, orthogonal_inputs and extra_inputs
    (min, max counts), extra_targets, orbit_radius, elevation_deg (orbit elevation range),
    object.
    """

    sampling: Sampling = "long-lrm"
    width: int = 64
    height: int = 64
    supersample: int = 1
    fov_y_deg: float = 60.0
    # long-lrm
    num_inputs: int = 8
    num_targets: int = 4
    trajectory_frames: int = 160
    window: tuple[int, int] = (64, 128)
    target_has_input: bool = True
    reverse_prob: float = 0.5
    shuffle_prob: float = 0.5
    trajectories: tuple[str, ...] = ("walk-through", "look-around")
    orbit_span_deg: tuple[float, float] = (200.0, 330.0)
    room: RoomConfig = field(default_factory=RoomConfig)
    # geolrm
    orbit_views: int = 24
    extra_views: int = 16
    orthogonal_inputs: tuple[int, int] = (1, 4)
    extra_inputs: tuple[int, int] = (0, 3)
    extra_targets: int = 4
    orbit_radius: float = 2.0
    elevation_deg: tuple[float, float] = (5.0, 30.0)
    object: ObjectConfig = field(default_factory=ObjectConfig)

    def __post_init__(self) -> None:
        assert self.sampling in ("long-lrm", "geolrm"), self.sampling
        assert 1 <= self.num_inputs <= self.window[0] <= self.window[1] <= self.trajectory_frames, (
            f"need 1 <= num_inputs <= window[0] <= window[1] <= trajectory_frames, got {self.num_inputs}, "
            f"{self.window}, {self.trajectory_frames}"
        )
        assert self.target_has_input or self.num_targets <= self.window[0] - self.num_inputs, (
            "window too small"
        )
        assert set(self.trajectories) <= {"walk-through", "look-around", "orbit"} and self.trajectories, (
            self.trajectories
        )
        assert "orbit" not in self.trajectories or self.room.centerpiece, (
            "orbit trajectories circle the centre table: set room=RoomConfig(centerpiece=True, ...)"
        )
        assert self.orbit_views % 4 == 0, (
            f"orbit_views must split into 4 orthogonal views, got {self.orbit_views}"
        )
        assert 1 <= self.orthogonal_inputs[0] <= self.orthogonal_inputs[1] <= 4, self.orthogonal_inputs
        assert 0 <= self.extra_inputs[0] <= self.extra_inputs[1] <= self.extra_targets, self.extra_inputs


PRESETS: dict[str, StreamConfig] = {
    # tiny: CPU training of small models at 64 px
    "long-lrm-tiny": StreamConfig(
        "long-lrm", 64, 64, num_inputs=8, num_targets=4, trajectory_frames=96, window=(48, 96)
    ),
    "geolrm-tiny": StreamConfig("geolrm", 64, 64, fov_y_deg=39.6),
    # the demo capture's domain (assets/demo): hand-held orbits around a table in a room, 50 deg
    # vertical field of view, 8 inputs spread over most of the orbit, at the 112 x 64 that
    # Long-LRM / tttLRM tiny presets feed the network for a 16:9 capture
    "demo-tiny": StreamConfig(
        "long-lrm", 112, 64, fov_y_deg=50.0, num_inputs=8, num_targets=6, trajectory_frames=48,
        window=(36, 48), trajectories=("orbit",),
        room=RoomConfig(size_xy=(4.5, 7.0), centerpiece=True, table_radius=0.4, free_radius=0.75,
                        objects=(5, 8), posters=(6, 9)),
    ),  # fmt: skip
    # the official models' training sizes (Long-LRM stage 1: 32 inputs, 8 targets at 256^2;
    # GeoLRM: 448^2)
    "long-lrm": StreamConfig("long-lrm", 256, 256, supersample=2, num_inputs=32, num_targets=8),
    "geolrm": StreamConfig("geolrm", 448, 448, supersample=2, fov_y_deg=39.6),
}


@dataclass
class Example:
    """One training example. inputs: Views [Vi] (images [Vi,3,H,W] in [0,1], cameras);
    targets: Views [Vt]; target_depth [Vt,H,W] camera z-depth, 0 where no surface;
    target_mask [Vt,H,W] bool, True on surfaces; input_depth [Vi,H,W] / input_mask [Vi,H,W]
    the same for the inputs; input_index / target_index: the views'
    indices in the example's camera sequence (trajectory frames, or the 40 object views)."""

    inputs: Views
    targets: Views
    target_depth: Tensor
    target_mask: Tensor
    input_index: list[int]
    target_index: list[int]
    seed: int
    index: int
    input_depth: Tensor | None = None
    input_mask: Tensor | None = None


def example_generator(seed: int, index: int) -> torch.Generator:
    """The generator of example ``index`` of stream ``seed`` (distinct streams for distinct pairs)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(index) * 7_919 + 12_345) % (2**63 - 1))


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def long_lrm_selection(
    frames: int, config: StreamConfig, gen: torch.Generator
) -> tuple[list[int], list[int]]:
    """(input frames, target frames) by Long-LRM's training rules, for a sequence of ``frames``."""
    win = _randint(gen, config.window[0], min(config.window[1], frames))
    start = _randint(gen, 0, frames - win)
    inputs = (
        torch.linspace(start, start + win - 1, config.num_inputs, dtype=torch.float64).round().long().tolist()
    )
    pool = list(range(start, start + win))
    if not config.target_has_input:
        pool = [f for f in pool if f not in set(inputs)]
    targets = [pool[i] for i in torch.randperm(len(pool), generator=gen)[: config.num_targets].tolist()]
    if float(torch.rand(1, generator=gen)) < config.reverse_prob:
        inputs = inputs[::-1]
    if float(torch.rand(1, generator=gen)) < config.shuffle_prob:
        inputs = [inputs[i] for i in torch.randperm(len(inputs), generator=gen).tolist()]
    return inputs, targets


def geolrm_selection(config: StreamConfig, gen: torch.Generator) -> tuple[list[int], list[int]]:
    """(input views, target views) among orbit_views + extra_views by GeoLRM's rules."""
    step = config.orbit_views // 4
    offset = _randint(gen, 0, step - 1)
    orth = [offset + k * step for k in range(4)]
    others = [v for v in range(config.orbit_views + config.extra_views) if v not in orth]
    extra = [others[i] for i in torch.randperm(len(others), generator=gen)[: config.extra_targets].tolist()]
    n_orth = _randint(gen, *config.orthogonal_inputs)
    n_extra = _randint(gen, *config.extra_inputs)
    chosen = [orth[i] for i in torch.randperm(4, generator=gen)[:n_orth].tolist()]
    return chosen + extra[:n_extra], orth + extra


def _room_cameras(config: StreamConfig, gen: torch.Generator):
    scene = room_scene(gen, config.room)
    zone = scene.info["camera_zone"]
    kind = config.trajectories[_randint(gen, 0, len(config.trajectories) - 1)]
    eye = 1.2 + 0.5 * float(torch.rand(1, generator=gen))
    common = dict(
        fov_y_deg=config.fov_y_deg,
        width=config.width,
        height=config.height,
        fps=30.0,
        shake=HandHeld(),
        gen=gen,
    )
    F = config.trajectory_frames
    if kind == "walk-through":
        cams = walk_through(F, radius=0.8 * zone["outer"], eye_height=eye, **common)
    elif kind == "orbit":  # around the centre table, looking at it (the demo capture's path)
        target = torch.tensor(zone["target"], dtype=torch.float64)
        lo, hi = max(zone["inner"] + 0.1, 0.6 * zone["outer"]), zone["outer"] - 0.15
        radius = lo + (hi - lo) * float(torch.rand(1, generator=gen))
        span = config.orbit_span_deg[0] + (config.orbit_span_deg[1] - config.orbit_span_deg[0]) * float(
            torch.rand(1, generator=gen)
        )
        az0 = 360 * float(torch.rand(1, generator=gen))
        elevation = math.degrees(math.atan2(eye + 0.1 - float(target[2]), radius))
        cams = orbit(
            F, center=target, radius=radius, elevation_deg=elevation, azimuth_deg=(az0, az0 + span),
            elevation_wobble_deg=4.0, radius_wobble=0.08, **common,
        )  # fmt: skip
    else:
        span = 180 + 180 * float(torch.rand(1, generator=gen))
        yaw0 = 360 * float(torch.rand(1, generator=gen))
        cams = look_around(
            F,
            drift_radius=min(0.4, 0.5 * zone["outer"]),
            eye_height=eye,
            yaw_deg=(yaw0, yaw0 + span),
            **common,
        )
    return scene, cams


def _object_cameras(config: StreamConfig, gen: torch.Generator):
    scene = object_scene(gen, config.object)
    el = config.elevation_deg[0] + (config.elevation_deg[1] - config.elevation_deg[0]) * float(
        torch.rand(1, generator=gen)
    )
    az0 = 360 * float(torch.rand(1, generator=gen))
    ring = orbit(
        config.orbit_views,
        radius=config.orbit_radius,
        elevation_deg=el,
        azimuth_deg=(az0, az0 + 360),
        fov_y_deg=config.fov_y_deg,
        width=config.width,
        height=config.height,
    )
    u = torch.rand(config.extra_views, 2, generator=gen, dtype=torch.float64)
    az = 2 * math.pi * u[:, 0]
    el_x = torch.asin(2 * u[:, 1] - 1).clamp(math.radians(-80), math.radians(80))  # uniform on the sphere
    eye = config.orbit_radius * torch.stack(
        [torch.cos(el_x) * torch.cos(az), torch.cos(el_x) * torch.sin(az), torch.sin(el_x)], -1
    )
    extra = Cameras.look_at(
        eye.float(),
        torch.zeros(config.extra_views, 3),
        fov_y_deg=config.fov_y_deg,
        width=config.width,
        height=config.height,
        up=torch.tensor([0.0, 0.0, 1.0]),
    )
    return scene, Cameras.cat([ring, extra])


def make_example(config: StreamConfig, seed: int, index: int, device: torch.device | str = "cpu") -> Example:
    """Example ``index`` of the stream ``seed`` (rendered on ``device``)."""
    gen = example_generator(seed, index)
    if config.sampling == "long-lrm":
        scene, cams = _room_cameras(config, gen)
        inputs, targets = long_lrm_selection(len(cams), config, gen)
    else:
        scene, cams = _object_cameras(config, gen)
        inputs, targets = geolrm_selection(config, gen)
    frames = sorted(set(inputs) | set(targets))
    pos = {f: i for i, f in enumerate(frames)}
    out = render(scene, cams[frames].to(device), supersample=config.supersample)
    ii = torch.tensor([pos[f] for f in inputs], device=out.rgb.device)
    ti = torch.tensor([pos[f] for f in targets], device=out.rgb.device)
    cams = cams.to(device)
    return Example(
        inputs=Views(out.rgb[ii], cams[inputs]),
        targets=Views(out.rgb[ti], cams[targets]),
        target_depth=out.depth[ti],
        target_mask=out.mask[ti] >= 0,
        input_index=inputs,
        target_index=targets,
        seed=int(seed),
        index=int(index),
        input_depth=out.depth[ii],
        input_mask=out.mask[ii] >= 0,
    )


@dataclass
class Sequence:
    """Every frame of one room example's trajectory: views [F] (images [F,3,H,W] in [0,1],
    cameras), depth [F,H,W] camera z (0 where no surface), mask [F,H,W] bool (surface)."""

    views: Views
    depth: Tensor
    mask: Tensor


def make_sequence(
    config: StreamConfig, seed: int, index: int, device: torch.device | str = "cpu"
) -> Sequence:
    """All ``trajectory_frames`` frames of room example ``index`` of stream ``seed`` (the same
    scene and path as :func:`make_example`, every frame rendered), for pools of reusable scenes."""
    assert config.sampling == "long-lrm", f"sequences exist for room streams only, got {config.sampling!r}"
    scene, cams = _room_cameras(config, example_generator(seed, index))
    out = render(scene, cams.to(device), supersample=config.supersample)
    depth = torch.where(out.mask >= 0, out.depth, torch.zeros_like(out.depth))
    return Sequence(Views(out.rgb, cams.to(device)), depth, out.mask >= 0)


def stream(
    config: StreamConfig,
    seed: int,
    *,
    start: int = 0,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> Iterator[Example]:
    """Endless iterator over examples start + rank, start + rank + world_size, ... of stream ``seed``."""
    i = start + rank
    while True:
        yield make_example(config, seed, i, device)
        i += world_size


class ProceduralDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``length`` examples of stream ``seed`` (works with DataLoader workers
    and DistributedSampler; pass ``collate_fn=lambda b: b`` to keep Example objects)."""

    def __init__(self, config: StreamConfig, seed: int, length: int = 1_000_000) -> None:
        self.config, self.seed, self.length = config, int(seed), int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return make_example(self.config, self.seed, index)
