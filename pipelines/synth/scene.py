"""Procedural scenes drawn from a seed: Zeroverse-style objects and MegaSynth-style rooms.

World frame: z is up, units are metres for rooms (an object scene fits in a cube of side
``ObjectConfig.extent`` centred at the origin). A scene is a flat list of P primitives (see
:mod:`pipelines.synth.primitives`), each with a texture and an object id; object ids index
``scene.info["objects"]`` (names such as "room", "poster 2", "object 0").

Object-centric (``object_scene``, after LRM-Zero's Zeroverse): 1-9 primitives (box, sphere,
cylinder, cone, torus; counts drawn with Zeroverse's weights 5,5,5,5,5,4,3,2,1), independent
per-axis scales, random rotations and centres, unioned, then scaled and centred to fit the cube.

Room-scale (``room_scene``, after MegaSynth): a box room (floor, four walls, ceiling as inward
quads), furniture boxes against the walls, Zeroverse-style compositions standing on the floor,
photo posters on the walls and, optionally, a table with a composition at the centre. A disc
(or, with the centre table, a ring) around the room centre is kept free for cameras: its
geometry is in ``scene.info["camera_zone"]``.

Everything is drawn from one ``torch.Generator`` on the CPU: the same seed gives the same scene,
bit for bit.

Examples:
    >>> scene = object_scene(3)
    >>> scene.num_primitives >= 1, scene.family
    (True, 'object')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from pipelines.synth.primitives import SOLID_KINDS, Kind, local_half_extents
from pipelines.synth.textures import PHOTO_NAMES, Textures, random_textures
from pipelines.transforms import random_rotations

ZEROVERSE_COUNT_WEIGHTS = (5, 5, 5, 5, 5, 4, 3, 2, 1)  # P(1..9 primitives), LRM-Zero App. D


@dataclass
class Scene:
    """P primitives placed by x_world = rotation @ (scale * x_local) + translation.

    kind [P] long (primitives.Kind); rotation [P, 3, 3]; translation [P, 3]; scale [P, 3]
    (half extents of the unit shape along its local axes); param [P] torus minor radius (0 for
    other kinds); object_id [P] long >= 0; textures (P entries). light_dir [3] unit vector
    towards the directional light; shading = albedo * (ambient + diffuse * max(0, n . l));
    background [3] RGB of rays that hit nothing.
    """

    kind: Tensor
    rotation: Tensor
    translation: Tensor
    scale: Tensor
    param: Tensor
    object_id: Tensor
    textures: Textures
    light_dir: Tensor
    ambient: float = 0.5
    diffuse: float = 0.5
    background: Tensor = field(default_factory=lambda: torch.ones(3))
    family: str = "object"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.kind.shape[0]
        assert self.rotation.shape == (p, 3, 3), f"rotation must be [P,3,3], got {tuple(self.rotation.shape)}"
        assert self.translation.shape == (p, 3) and self.scale.shape == (p, 3), (
            f"translation/scale must be [P,3], got {tuple(self.translation.shape)}, {tuple(self.scale.shape)}"
        )
        assert self.param.shape == (p,) and self.object_id.shape == (p,), (
            self.param.shape,
            self.object_id.shape,
        )
        assert len(self.textures) == p, (len(self.textures), p)
        assert self.light_dir.shape == (3,) and self.background.shape == (3,), (
            self.light_dir.shape,
            self.background.shape,
        )

    @property
    def num_primitives(self) -> int:
        return self.kind.shape[0]

    @property
    def device(self) -> torch.device:
        return self.rotation.device

    def to(self, device: torch.device | str) -> Scene:
        tensors = {
            f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(
            self, **{k: v.to(device) for k, v in tensors.items()}, textures=self.textures.to(device)
        )

    def bounding_spheres(self) -> tuple[Tensor, Tensor]:
        """Centres [P, 3] and radii [P] of spheres that contain each primitive."""
        h = local_half_extents(self.kind, self.param) * self.scale
        return self.translation, h.norm(dim=-1)

    def box_corners(self) -> Tensor:
        """World corners [P, 8, 3] of each primitive's local bounding box (its oriented box)."""
        h = local_half_extents(self.kind, self.param) * self.scale  # [P, 3]
        signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]).to(h)
        local = h[:, None, :] * signs  # [P, 8, 3]
        return torch.einsum("pij,pkj->pki", self.rotation, local) + self.translation[:, None, :]

    def primitive_aabbs(self) -> tuple[Tensor, Tensor]:
        """Per-primitive world AABBs (lo [P, 3], hi [P, 3]): exact for boxes, quads and
        ellipsoids, a containing box for the other kinds."""
        h = local_half_extents(self.kind, self.param) * self.scale  # [P, 3]
        M = self.rotation * self.scale[:, None, :]  # R diag(s): columns are scaled local axes
        half = (self.rotation.abs() * h[:, None, :]).sum(-1)
        ell = torch.sqrt((M * M).sum(-1))  # ellipsoid: sqrt(sum_j (R_ij s_j)^2)
        half = torch.where((self.kind == Kind.SPHERE)[:, None], ell, half)
        return self.translation - half, self.translation + half

    def bounds(self) -> Tensor:
        """World AABB [2, 3] (lo, hi) containing every primitive."""
        lo, hi = self.primitive_aabbs()
        return torch.stack([lo.amin(0), hi.amax(0)])

    @staticmethod
    def cat_primitives(parts: list[dict]) -> dict:
        """Concatenate primitive dictionaries (see ``_Prims``)."""
        keys = ("kind", "rotation", "translation", "scale", "param", "object_id")
        out = {k: torch.cat([p[k] for p in parts]) for k in keys}
        out["textures"] = Textures.cat([p["textures"] for p in parts])
        return out


# ------------------------------------------------------------------------------ helpers
def _generator(seed: int | torch.Generator) -> torch.Generator:
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def _prims(kind, rotation, translation, scale, param, object_id, textures) -> dict:
    n = kind.shape[0]
    return {
        "kind": kind.long(),
        "rotation": rotation.float(),
        "translation": translation.float(),
        "scale": scale.float(),
        "param": param.float(),
        "object_id": torch.full((n,), int(object_id), dtype=torch.long)
        if isinstance(object_id, int)
        else object_id,
        "textures": textures,
    }


def _aabb(parts: dict) -> tuple[Tensor, Tensor]:
    s = Scene(**parts, light_dir=torch.tensor([0.0, 0.0, 1.0]))
    lo, hi = s.primitive_aabbs()
    return lo.amin(0), hi.amax(0)


def _place(parts: dict, *, scale: float, rotation: Tensor | None = None, offset: Tensor) -> dict:
    """Apply x -> scale * rotation @ x + offset to every primitive of ``parts``."""
    Q = torch.eye(3) if rotation is None else rotation.float()
    out = dict(parts)
    out["rotation"] = Q @ parts["rotation"]
    out["translation"] = scale * parts["translation"] @ Q.T + offset.float()
    out["scale"] = parts["scale"] * scale
    return out


def composition(
    gen: torch.Generator,
    *,
    count_weights: tuple[float, ...] = ZEROVERSE_COUNT_WEIGHTS,
    scale: tuple[float, float] = (0.2, 0.6),
    spread: float = 0.5,
    torus_minor: tuple[float, float] = (0.2, 0.45),
    texture_kwargs: dict | None = None,
    object_id: int = 0,
) -> dict:
    """A Zeroverse-style union of primitives, centred and fitted to the cube [-1, 1]^3.

    count_weights[i]: relative probability of i + 1 primitives; scale: per-axis half-extent
    range; spread: centres uniform in [-spread, spread]^3. Returns primitive dictionary entries.
    """
    n = int(torch.multinomial(torch.tensor(count_weights, dtype=torch.float64), 1, generator=gen)) + 1
    kind = torch.tensor(SOLID_KINDS, dtype=torch.long)[torch.randint(len(SOLID_KINDS), (n,), generator=gen)]
    sc = _uniform(gen, *scale, n, 3)
    minor = torch.where(
        kind == Kind.TORUS, _uniform(gen, *torus_minor, n), torch.zeros(n, dtype=torch.float64)
    )
    sc = torch.where((kind == Kind.TORUS)[:, None], sc / (1 + minor[:, None]), sc)  # similar overall size
    rot = random_rotations(n, gen, dtype=torch.float64)
    centre = _uniform(gen, -spread, spread, n, 3)
    tex = random_textures(n, gen, **(texture_kwargs or {}))
    parts = _prims(kind, rot, centre, sc, minor, object_id, tex)
    lo, hi = _aabb(parts)
    fit = 2.0 / float((hi - lo).max())
    return _place(parts, scale=fit, offset=-fit * (lo + hi) / 2)


def _random_light(gen: torch.Generator, min_elevation_deg: float) -> Tensor:
    az = float(_uniform(gen, 0, 2 * math.pi, 1))
    el = math.radians(float(_uniform(gen, min_elevation_deg, 85.0, 1)))
    return torch.tensor([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


# ------------------------------------------------------------------------------ objects
@dataclass(frozen=True)
class ObjectConfig:
    """A Zeroverse-style object. extent: side of the cube [-extent/2, extent/2]^3 the object is
    fitted into (1.0 matches GeoLRM's [-0.5, 0.5]^3 scene box); background: RGB of empty pixels
    (white, as Zeroverse and GeoLRM render); ambient: range of the ambient term (the directional
    term gets the rest of 1.05)."""

    count_weights: tuple[float, ...] = ZEROVERSE_COUNT_WEIGHTS
    extent: float = 1.0
    scale: tuple[float, float] = (0.2, 0.6)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: tuple[float, float] = (0.35, 0.55)
    texture_kinds: tuple[float, float, float, float] = (0.2, 0.2, 0.3, 0.3)


def object_scene(seed: int | torch.Generator, config: ObjectConfig = ObjectConfig()) -> Scene:
    """An object-centric scene (one object, id 0) centred at the origin."""
    gen = _generator(seed)
    parts = composition(
        gen,
        count_weights=config.count_weights,
        scale=config.scale,
        texture_kwargs={"kinds": config.texture_kinds},
    )
    parts = _place(parts, scale=config.extent / 2, offset=torch.zeros(3))
    ambient = float(_uniform(gen, *config.ambient, 1))
    return Scene(
        **parts,
        light_dir=_random_light(gen, 20.0),
        ambient=ambient,
        diffuse=1.05 - ambient,
        background=torch.tensor(config.background, dtype=torch.float32),
        family="object",
        info={
            "seed": seed if isinstance(seed, int) else None,
            "objects": ["object"],
            "extent": config.extent,
        },
    )


# ------------------------------------------------------------------------------ rooms
@dataclass(frozen=True)
class RoomConfig:
    """A MegaSynth-style room (metres). size_xy / height: ranges of the room's floor sides and
    height; objects: count range of floor compositions, object_size their size range;
    furniture: count range of boxes against the walls; posters: count range of photo posters;
    centerpiece: a table with a composition at the centre (cameras orbit it); free_radius:
    radius of the camera zone as a fraction of half the shorter floor side."""

    size_xy: tuple[float, float] = (4.0, 6.5)
    height: tuple[float, float] = (2.6, 3.2)
    objects: tuple[int, int] = (4, 8)
    object_size: tuple[float, float] = (0.4, 1.0)
    object_count_weights: tuple[float, ...] = (4, 4, 3, 2)
    furniture: tuple[int, int] = (2, 4)
    posters: tuple[int, int] = (3, 7)
    centerpiece: bool = False
    centerpiece_count_weights: tuple[float, ...] = (0, 0, 3, 3, 3, 2, 1)
    table_radius: float = 0.45
    table_height: float = 0.75
    free_radius: float = 0.45
    ambient: tuple[float, float] = (0.45, 0.6)
    surface_freq: tuple[float, float] = (1.5, 5.0)
    detail: tuple[float, float] = (0.2, 0.4)


def _frame(normal: Tensor, y: Tensor) -> Tensor:
    """Rotation [3, 3] whose columns are (y x normal, y, normal): local z -> normal."""
    x = torch.linalg.cross(y, normal)
    return torch.stack([x, y, normal], -1)


def _quad(center, normal, y, half_w, half_h, tex: Textures, object_id: int) -> dict:
    R = _frame(torch.tensor(normal, dtype=torch.float64), torch.tensor(y, dtype=torch.float64))
    return _prims(
        torch.tensor([int(Kind.QUAD)]),
        R[None],
        torch.tensor([center], dtype=torch.float64),
        torch.tensor([[half_w, half_h, 1.0]], dtype=torch.float64),
        torch.zeros(1),
        object_id,
        tex,
    )


def _box(center, half, yaw: float, tex: Textures, object_id: int) -> dict:
    c, s = math.cos(yaw), math.sin(yaw)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return _prims(
        torch.tensor([int(Kind.BOX)]),
        R[None],
        torch.tensor([center], dtype=torch.float64),
        torch.tensor([half], dtype=torch.float64),
        torch.zeros(1),
        object_id,
        tex,
    )


def room_scene(seed: int | torch.Generator, config: RoomConfig = RoomConfig()) -> Scene:
    """A room centred at the origin of the floor plane (floor z = 0, ceiling z = height)."""
    gen = _generator(seed)
    W, D = (float(v) for v in _uniform(gen, *config.size_xy, 2))
    H = float(_uniform(gen, *config.height, 1))
    names: list[str] = ["room"]
    parts: list[dict] = []

    # shell: floor, ceiling, four walls (inward quads)
    sf, det = config.surface_freq, config.detail
    floor_tex = random_textures(
        1, gen, kinds=(0.3, 0.25, 0.15, 0.3), freq=sf, photo_freq=(0.5, 1.0), detail=det
    )
    ceil_tex = random_textures(1, gen, kinds=(0.0, 0.2, 0.8, 0.0), freq=sf, value=(0.6, 0.95), detail=det)
    wall_tex = random_textures(
        4, gen, kinds=(0.1, 0.25, 0.3, 0.35), freq=sf, photo_freq=(0.6, 1.5), detail=det
    )
    up, down = (0.0, 0.0, 1.0), (0.0, 0.0, -1.0)
    parts.append(_quad((0, 0, 0), up, (0.0, 1.0, 0.0), W / 2, D / 2, floor_tex, 0))
    parts.append(_quad((0, 0, H), down, (0.0, 1.0, 0.0), W / 2, D / 2, ceil_tex, 0))
    walls = [  # (centre, inward normal, half width along the wall)
        ((-W / 2, 0.0, H / 2), (1.0, 0.0, 0.0), D / 2),
        ((W / 2, 0.0, H / 2), (-1.0, 0.0, 0.0), D / 2),
        ((0.0, -D / 2, H / 2), (0.0, 1.0, 0.0), W / 2),
        ((0.0, D / 2, H / 2), (0.0, -1.0, 0.0), W / 2),
    ]
    for i, (c, n, hw) in enumerate(walls):
        parts.append(_quad(c, n, down, hw, H / 2, wall_tex[i : i + 1], 0))

    # camera zone
    r_free = config.free_radius * min(W, D) / 2
    r_in = config.table_radius + 0.25 if config.centerpiece else 0.0
    r_out = max(r_free, r_in + 0.6)
    zone = {"center": [0.0, 0.0], "inner": r_in, "outer": r_out}
    footprints: list[tuple[float, float, float]] = []  # (x, y, radius) of things on the floor

    def free(x: float, y: float, r: float) -> bool:
        if math.hypot(x, y) < r_out + r:
            return False
        if abs(x) > W / 2 - r or abs(y) > D / 2 - r:
            return False
        return all(math.hypot(x - a, y - b) > r + c for a, b, c in footprints)

    # furniture boxes against walls
    n_furn = int(torch.randint(config.furniture[0], config.furniture[1] + 1, (1,), generator=gen))
    for _ in range(n_furn):
        for _try in range(30):
            wall = int(torch.randint(4, (1,), generator=gen))
            w, d, h = (float(v) for v in _uniform(gen, 0.0, 1.0, 3))
            w, d, h = 0.25 + 0.5 * w, 0.15 + 0.2 * d, 0.2 + 0.5 * h  # half sizes
            (cx, cy, _), (nx, ny, _), hw = walls[wall]
            along = float(_uniform(gen, -1, 1, 1)) * (hw - w)
            x = cx + nx * (d + 0.01) + (0 if nx else along)
            y = cy + ny * (d + 0.01) + (0 if ny else along)
            half = (w, d, h) if ny else (d, w, h)
            r = math.hypot(half[0], half[1])
            if free(x, y, r):
                footprints.append((x, y, r))
                oid = len(names)
                names.append(f"furniture {oid}")
                tex = random_textures(
                    1, gen, kinds=(0.25, 0.3, 0.25, 0.2), freq=(2 * sf[0], 2 * sf[1]), detail=det
                )
                parts.append(_box((x, y, h), half, 0.0, tex, oid))
                break

    # table and centerpiece
    if config.centerpiece:
        oid = len(names)
        names.append("table")
        tr, th = config.table_radius, config.table_height
        top_tex = random_textures(
            1, gen, kinds=(0.3, 0.2, 0.2, 0.3), freq=(4.0, 10.0), photo_freq=(1.0, 2.0), detail=det
        )
        leg_tex = random_textures(1, gen, kinds=(0.0, 0.5, 0.5, 0.0), freq=(4.0, 10.0), detail=det)
        parts.append(_box((0.0, 0.0, th - 0.025), (tr, tr, 0.025), 0.0, top_tex, oid))
        parts.append(_box((0.0, 0.0, (th - 0.05) / 2), (0.12, 0.12, (th - 0.05) / 2), 0.0, leg_tex, oid))
        oid = len(names)
        names.append("centerpiece")
        comp = composition(
            gen,
            count_weights=config.centerpiece_count_weights,
            scale=(0.25, 0.6),
            object_id=oid,
            texture_kwargs={"freq": (6.0, 16.0), "photo_freq": (1.5, 4.0), "detail": det},
        )
        size = 0.75 * tr * 2 / math.sqrt(2)
        comp = _place(comp, scale=size / 2, offset=torch.zeros(3))
        lo, hi = _aabb(comp)
        parts.append(_place(comp, scale=1.0, offset=torch.tensor([0.0, 0.0, th - float(lo[2])])))
        zone["table_top"] = th
        zone["target"] = [0.0, 0.0, th + float(hi[2] - lo[2]) / 2]

    # compositions standing on the floor
    n_obj = int(torch.randint(config.objects[0], config.objects[1] + 1, (1,), generator=gen))
    for _ in range(n_obj):
        size = float(_uniform(gen, *config.object_size, 1))
        comp = composition(
            gen,
            count_weights=config.object_count_weights,
            object_id=len(names),
            texture_kwargs={"freq": (4.0, 12.0), "photo_freq": (1.0, 3.0), "detail": det},
        )
        comp = _place(comp, scale=size / 2, offset=torch.zeros(3))
        lo, hi = _aabb(comp)
        r = float(torch.hypot(*(hi[:2] - lo[:2]))) / 2
        for _try in range(30):
            x, y = (float(v) for v in _uniform(gen, -1, 1, 2))
            x, y = x * (W / 2 - r), y * (D / 2 - r)
            if free(x, y, r):
                footprints.append((x, y, r))
                names.append(f"object {len(names)}")
                parts.append(_place(comp, scale=1.0, offset=torch.tensor([x, y, -float(lo[2])])))
                break

    # posters on the walls (photographs fitted once into the quad)
    n_post = int(torch.randint(config.posters[0], config.posters[1] + 1, (1,), generator=gen))
    placed: list[tuple[int, float, float]] = []
    for _ in range(n_post):
        for _try in range(30):
            wall = int(torch.randint(4, (1,), generator=gen))
            (cx, cy, _), (nx, ny, _), hw = walls[wall]
            pw, ph = (float(v) for v in _uniform(gen, 0.2, 0.6, 2))
            along = float(_uniform(gen, -1, 1, 1)) * (hw - pw - 0.05)
            zc = float(_uniform(gen, max(0.9, ph + 0.3), min(H - ph - 0.2, 2.1), 1))
            if any(w == wall and abs(a - along) < pw + b + 0.05 for w, a, b in placed):
                continue
            placed.append((wall, along, pw))
            oid = len(names)
            names.append(f"poster {oid}")
            tex = random_textures(1, gen, kinds=(0.0, 0.0, 0.0, 1.0))
            tex.freq[:] = 1 / (2 * max(pw, ph))  # the photo's centre, cropped to the poster
            tex.offset[:] = 0.5
            tex.palette[:, 0] *= 0.3  # duotone from dark to light for grey photographs
            tex.palette[:, 1] = 0.5 + 0.5 * tex.palette[:, 1]
            tex.angle[:] = 0.0
            tex.detail[:] = 0.05
            x = cx + nx * 0.005 + (0 if nx else along)
            y = cy + ny * 0.005 + (0 if ny else along)
            parts.append(_quad((x, y, zc), (nx, ny, 0.0), down, pw, ph, tex, oid))
            break

    ambient = float(_uniform(gen, *config.ambient, 1))
    light = _random_light(gen, 50.0)
    return Scene(
        **Scene.cat_primitives(parts),
        light_dir=light,
        ambient=ambient,
        diffuse=1.0 - ambient,
        background=torch.tensor([0.5, 0.5, 0.5]),
        family="room",
        info={
            "seed": seed if isinstance(seed, int) else None,
            "objects": names,
            "room": {"width": W, "depth": D, "height": H},
            "camera_zone": zone,
            "photos": list(PHOTO_NAMES),
        },
    )


def primitive_scene(
    kind: list[int] | Tensor,
    rotation: Tensor,
    translation: Tensor,
    scale: Tensor,
    param: Tensor | None = None,
    *,
    gen: torch.Generator | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Scene:
    """A scene of explicitly given primitives (object i = primitive i), random textures, light
    from +z. kind [P]; rotation [P, 3, 3]; translation [P, 3]; scale [P, 3]; param [P]."""
    kind = torch.as_tensor(kind, dtype=torch.long)
    p = kind.shape[0]
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    return Scene(
        kind=kind,
        rotation=rotation.float(),
        translation=translation.float(),
        scale=scale.float(),
        param=torch.zeros(p) if param is None else param.float(),
        object_id=torch.arange(p),
        textures=random_textures(p, gen),
        light_dir=torch.tensor([0.0, 0.0, 1.0]),
        background=torch.tensor(background, dtype=torch.float32),
        family="primitives",
        info={"objects": [f"primitive {i}" for i in range(p)]},
    )
