"""The analytic ray caster against closed forms and an independent float64 ray-marching reference."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.synth.primitives import Kind
from pipelines.synth.raycast import (
    _chunk_rays,
    _render_reference,
    _tile_cull,
    render,
    subpixel_offsets,
    tile_order,
)
from pipelines.synth.scene import object_scene, primitive_scene, room_scene
from pipelines.transforms import random_rotations

UP = torch.tensor([0.0, 0.0, 1.0])


def _camera_towards(
    gen: torch.Generator, target: torch.Tensor, dist: float, w: int = 48, h: int = 40, fov: float = 50.0
) -> Cameras:
    d = torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0)
    eye = target + dist * d
    cams = Cameras.look_at(eye[None], target[None], fov_y_deg=fov, width=w, height=h, up=UP)
    # a random principal point and focal length, so K is not trivial
    cams.K[0, 0, 0] *= 0.9 + 0.2 * float(torch.rand(1, generator=gen))
    cams.K[0, 0, 2] += 3 * float(torch.rand(1, generator=gen)) - 1.5
    return cams


def _pixel_rays64(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """World origins [P, 3] and direction [P, 3] with camera z = 1, float64, from K and c2w."""
    c = cams.to(dtype=torch.float64)
    v, u = torch.meshgrid(
        torch.arange(c.height, dtype=torch.float64) + 0.5,
        torch.arange(c.width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    d_cam = torch.stack([(u - c.cx[0]) / c.fx[0], (v - c.cy[0]) / c.fy[0], torch.ones_like(u)], -1).reshape(
        -1, 3
    )
    d = d_cam @ c.c2w[0, :3, :3].T
    return c.c2w[0, :3, 3].expand_as(d), d


def test_plane_depth_closed_form(gen):
    R = random_rotations(1, gen)
    centre = torch.randn(1, 3, generator=gen, dtype=torch.float64).float()
    half = 0.8 + torch.rand(1, 3, generator=gen)
    scene = primitive_scene([Kind.QUAD], R, centre, half, gen=gen)
    normal = R[0, :, 2].double()
    eye_dir = normal if float(torch.rand(1, generator=gen)) < 0.5 else -normal  # both faces
    cams = Cameras.look_at(
        (centre[0] + 2.5 * eye_dir.float() + 0.3 * torch.randn(3, generator=gen))[None],
        centre,
        fov_y_deg=60,
        width=48,
        height=40,
        up=UP,
    )
    out = render(scene, cams)
    o, d = _pixel_rays64(cams)
    t = ((centre[0].double() - o) @ normal) / (d @ normal)  # z-depth of the plane: d has camera z = 1
    p_local = (o + t[:, None] * d - centre[0].double()) @ R[0].double()
    inside = (p_local[:, 0].abs() <= half[0, 0]) & (p_local[:, 1].abs() <= half[0, 1]) & (t > 0)
    margin = torch.minimum(half[0, 0] - p_local[:, 0].abs(), half[0, 1] - p_local[:, 1].abs()).abs() > 1e-3
    got_hit = (out.mask[0] >= 0).reshape(-1)
    assert inside.any()
    assert torch.equal(got_hit[margin], inside[margin])
    both = got_hit & inside
    torch.testing.assert_close(out.depth[0].reshape(-1)[both].double(), t[both], rtol=2e-5, atol=1e-5)
    # the normal faces the camera and is the plane's normal
    n = out.normals[0].reshape(3, -1).T[both].double()
    facing = torch.where((d[both] @ normal)[:, None] > 0, -normal, normal)
    torch.testing.assert_close(n, facing, atol=1e-5, rtol=0)


def test_sphere_depth_and_normals_closed_form(gen):
    r = 0.3 + float(torch.rand(1, generator=gen))
    centre = torch.randn(3, generator=gen)
    scene = primitive_scene(
        [Kind.SPHERE], random_rotations(1, gen), centre[None], torch.full((1, 3), r), gen=gen
    )
    cams = _camera_towards(gen, centre + 0.2 * r * torch.randn(3, generator=gen), dist=2.5 * r + 0.5)
    out = render(scene, cams)
    o, d = _pixel_rays64(cams)
    oc = o - centre.double()
    a, b, c = (d * d).sum(-1), (oc * d).sum(-1), (oc * oc).sum(-1) - r * r
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    ref_hit = disc > 0
    got_hit = (out.mask[0] >= 0).reshape(-1)
    clear = disc.abs() > 1e-3 * a * r * r  # away from the silhouette
    assert ref_hit.any() and (~ref_hit).any()
    assert torch.equal(got_hit[clear], ref_hit[clear])
    both = got_hit & ref_hit
    torch.testing.assert_close(out.depth[0].reshape(-1)[both].double(), t[both], rtol=1e-4, atol=1e-5)
    n_ref = (oc + t[:, None] * d)[both] / r
    n = out.normals[0].reshape(3, -1).T[both].double()
    torch.testing.assert_close(n, n_ref, atol=2e-3, rtol=0)


def _inside(kind: Kind, p: torch.Tensor, minor: float) -> torch.Tensor:
    """Independent point-in-solid tests in the local unit frame. p [..., 3] -> bool [...]."""
    x, y, z = p.unbind(-1)
    rho = torch.sqrt(x * x + y * y)
    if kind == Kind.BOX:
        return p.abs().amax(-1) <= 1
    if kind == Kind.SPHERE:
        return (p * p).sum(-1) <= 1
    if kind == Kind.CYLINDER:
        return (rho <= 1) & (z.abs() <= 1)
    if kind == Kind.CONE:
        return (z >= -1) & (z <= 1) & (rho <= (1 - z) / 2)
    if kind == Kind.TORUS:
        return (rho - 1) ** 2 + z * z <= minor * minor
    raise ValueError(kind)


def _march_reference(kind, R, T, S, minor, o, d, steps=4000):
    """First entry into the solid along each ray: dense float64 marching, then bisection.

    Returns t [P] (inf where the ray misses)."""
    A = R.double() / S.double()
    o_l, d_l = (o - T.double()) @ A, d @ A
    t_far = 10.0
    ts = torch.linspace(1e-3, t_far, steps, dtype=torch.float64)
    inside = _inside(kind, o_l[:, None] + ts[None, :, None] * d_l[:, None], minor)  # [P, steps]
    hit = inside.any(-1)
    first = inside.to(torch.int8).argmax(-1)
    lo = ts[(first - 1).clamp_min(0)]
    hi = ts[first]
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        ins = _inside(kind, o_l + mid[:, None] * d_l, minor)
        hi = torch.where(ins, mid, hi)
        lo = torch.where(ins, lo, mid)
    return torch.where(hit & (first > 0), hi, torch.full_like(hi, math.inf))


@pytest.mark.parametrize("kind", [Kind.BOX, Kind.SPHERE, Kind.CYLINDER, Kind.CONE, Kind.TORUS])
def test_solids_match_marching_reference(kind, gen):
    R = random_rotations(1, gen)
    T = torch.randn(1, 3, generator=gen) * 0.2
    S = 0.4 + 0.5 * torch.rand(1, 3, generator=gen)
    minor = 0.15 + 0.3 * float(torch.rand(1, generator=gen))
    scene = primitive_scene([kind], R, T, S, torch.tensor([minor if kind == Kind.TORUS else 0.0]), gen=gen)
    cams = _camera_towards(gen, T[0], dist=3.0, w=40, h=32, fov=45.0)
    out = render(scene, cams)
    o, d = _pixel_rays64(cams)
    t_ref = _march_reference(kind, R[0], T[0], S[0], minor, o, d)
    got = out.depth[0].reshape(-1).double()
    got_hit = got > 0
    ref_hit = torch.isfinite(t_ref)
    assert ref_hit.sum() > 20
    # disagreement only on silhouette pixels: grazing rays whose chord is below the march step
    disagree = got_hit != ref_hit
    assert disagree.float().mean() < 0.01, f"{int(disagree.sum())} of {got.numel()} pixels disagree"
    both = got_hit & ref_hit
    torch.testing.assert_close(got[both], t_ref[both], rtol=0, atol=3e-3)  # march step 2.5e-3
    # exactness: just before the returned depth the ray is outside, just after it inside
    A = R[0].double() / S[0].double()
    eps = 1e-4  # in depth units; the march's tolerance is 25x coarser

    def local(t):
        return ((o + t[:, None] * d - T[0].double()) @ A)[both]

    on_surface = ~_inside(kind, local(got - eps), minor) & _inside(kind, local(got + eps), minor)
    assert on_surface.float().mean() > 0.97


def test_normals_unit_masks_agree_with_depth(gen, seed):
    scene = object_scene(seed % 1000)
    cams = Cameras.look_at(
        torch.tensor([[1.6, -1.2, 0.9], [-1.5, 1.0, 1.3]]),
        torch.zeros(2, 3),
        fov_y_deg=40,
        width=40,
        height=36,
        up=UP,
    )
    out = render(scene, cams, supersample=2)
    hit = out.mask >= 0
    assert hit.any() and (~hit).any()
    assert torch.equal(hit, out.depth > 0)
    assert torch.equal(hit, out.primitive >= 0)
    assert torch.equal(out.mask[hit], scene.object_id[out.primitive[hit]])
    norms = out.normals.norm(dim=1)
    torch.testing.assert_close(norms[hit], torch.ones_like(norms[hit]), atol=1e-5, rtol=0)
    assert torch.all(norms[~hit] == 0)
    # normals face the camera: n . (view ray) < 0
    _, d = cams.pixel_rays()
    dot = (out.normals.permute(0, 2, 3, 1) * d).sum(-1)
    assert torch.all(dot[hit] < 1e-6)
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    one = render(scene, cams)  # without antialiasing, missed pixels are exactly the background
    assert torch.equal(one.mask, out.mask)
    bg = scene.background.view(3, 1)
    torch.testing.assert_close(one.rgb.permute(1, 0, 2, 3)[:, ~hit], bg.expand(3, int((~hit).sum())))


def test_same_seed_same_scene_and_pixels(seed):
    s = seed % 10_000
    a, b = room_scene(s), room_scene(s)
    for name in ("kind", "rotation", "translation", "scale", "param", "object_id", "light_dir"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("kind", "palette", "freq", "angle", "offset", "photo", "seed", "detail"):
        assert torch.equal(getattr(a.textures, name), getattr(b.textures, name)), name
    assert a.info == b.info
    cams = Cameras.look_at(
        torch.tensor([[0.3, 0.2, 1.5]]),
        torch.tensor([[2.0, 1.0, 1.0]]),
        fov_y_deg=60,
        width=32,
        height=24,
        up=UP,
    )
    ra, rb = render(a, cams), render(b, cams)
    assert torch.equal(ra.rgb, rb.rgb) and torch.equal(ra.depth, rb.depth) and torch.equal(ra.mask, rb.mask)
    c = room_scene(s + 1)
    assert not torch.equal(
        c.translation[: min(len(c.translation), len(a.translation))],
        a.translation[: min(len(c.translation), len(a.translation))],
    )
    o1, o2 = object_scene(s), object_scene(s)
    assert torch.equal(o1.translation, o2.translation) and torch.equal(
        o1.textures.palette, o2.textures.palette
    )


@pytest.mark.parametrize("k", [2, 3])
def test_supersampling_is_the_mean_of_shifted_renders(k, gen):
    scene = object_scene(int(torch.randint(1000, (1,), generator=gen)))
    cams = Cameras.look_at(
        torch.tensor([[1.7, 0.9, 0.8]]), torch.zeros(1, 3), fov_y_deg=40, width=24, height=20, up=UP
    )
    ss = render(scene, cams, supersample=k)
    offsets, weights, centre = subpixel_offsets(k)
    acc = torch.zeros_like(ss.rgb)
    for (ox, oy), w in zip(offsets.tolist(), weights.tolist(), strict=True):
        shifted = Cameras(cams.c2w, cams.K.clone(), cams.width, cams.height)
        shifted.K[:, 0, 2] -= ox - 0.5  # pixel centre (x + 0.5) now casts the ray through x + ox
        shifted.K[:, 1, 2] -= oy - 0.5
        acc += w * render(scene, shifted).rgb
    # float32: the shifted principal point rounds the rays differently (seen: 1.5e-5 at a texture
    # edge); a wrong sample or weight would be off by > 1e-2
    torch.testing.assert_close(ss.rgb, acc, atol=5e-5, rtol=0)
    one = render(scene, cams)
    assert torch.equal(ss.mask, one.mask)  # geometry comes from pixel centres at any k
    torch.testing.assert_close(ss.depth, one.depth)


def test_chunking_does_not_change_the_result(seed):
    scene = room_scene(seed % 1000)
    cams = Cameras.look_at(
        torch.tensor([[0.2, -0.3, 1.4], [-0.4, 0.1, 1.6]]),
        torch.tensor([[2.0, 0.5, 1.0], [-1.0, -2.0, 0.8]]),
        fov_y_deg=60,
        width=40,
        height=30,
        up=UP,
    )
    a = render(scene, cams, supersample=2)
    b = render(scene, cams, supersample=2, chunk_rays=1000)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.rgb, b.rgb)
    torch.testing.assert_close(a.depth, b.depth)


@pytest.mark.parametrize("family", ["object", "room"])
def test_fast_path_matches_float64_reference(family, seed):
    """The culled float32 path sees what the unculled float64 one sees: several views inside the
    room (walls behind the camera culled per tile), sizes that leave partial edge tiles."""
    gen = torch.Generator().manual_seed(seed)
    scene = object_scene(seed % 1000) if family == "object" else room_scene(seed % 1000)
    if family == "object":
        eye, target, fov = torch.tensor([[1.8, -1.0, 0.7], [-1.5, 1.2, 1.0]]), torch.zeros(2, 3), 40.0
    else:
        yaw = torch.rand(3, generator=gen) * 2 * math.pi
        eye = torch.tensor([[0.1, 0.2, 1.5]]).expand(3, 3)
        target = eye + torch.stack([torch.cos(yaw), torch.sin(yaw), torch.full_like(yaw, -0.3)], -1)
        fov = 70.0
    cams = Cameras.look_at(eye, target, fov_y_deg=fov, width=40, height=34, up=UP)
    fast, ref = render(scene, cams), _render_reference(scene, cams)
    agree = fast.primitive == ref.primitive
    assert agree.float().mean() > 0.99
    # Near-double roots amplify the float32 rounding of the local ray to ~sqrt(eps) = 2.4e-4
    # relative: grazing hits on any surface (spheres at |cos| 0.002-0.004, seeds 931797964 and
    # 800938645: 1.1e-4 and 2.4e-4), the torus's quartic (1.8e-4 on a grazing hit) and the cone
    # near its apex, where a ray's entry and exit nearly meet (seed 1427839232: roots 1.2e-3 apart
    # at z = 0.955, cos -0.64; 2.2e-4). Those get 1e-3; every other hit 1e-4.
    kind = scene.kind[fast.primitive.clamp_min(0)]
    _, dirs = cams.pixel_rays()
    grazing = (ref.normals.permute(0, 2, 3, 1).float() * dirs).sum(-1).abs() < 0.05
    loose = (kind == Kind.TORUS) | (kind == Kind.CONE) | grazing
    tight = agree & ~loose
    torch.testing.assert_close(fast.depth[tight], ref.depth[tight].float(), rtol=1e-4, atol=1e-5)
    near_double = agree & loose
    torch.testing.assert_close(fast.depth[near_double], ref.depth[near_double].float(), rtol=1e-3, atol=1e-5)
    # colour where the float32 hit point matches (a 1e-4 depth error on a photo texture shifts a
    # texel's colour by a few 1e-3: rounding, not culling)
    same = agree & ((fast.depth - ref.depth.float()).abs() <= 1e-5 * ref.depth.float())
    assert same.float().mean() > 0.98
    torch.testing.assert_close(
        fast.rgb.permute(0, 2, 3, 1)[same], ref.rgb.permute(0, 2, 3, 1)[same].float(), atol=2e-3, rtol=0
    )


@pytest.mark.gpu
def test_cuda_matches_cpu(seed):
    scene = room_scene(seed % 1000)
    cams = Cameras.look_at(
        torch.tensor([[0.1, 0.2, 1.5]]),
        torch.tensor([[1.5, -2.0, 0.9]]),
        fov_y_deg=70,
        width=64,
        height=48,
        up=UP,
    )
    cpu = render(scene, cams, supersample=2)
    gpu = render(scene, cams.to("cuda"), supersample=2)
    assert (gpu.mask.cpu() == cpu.mask).float().mean() > 0.999
    same = gpu.mask.cpu() == cpu.mask
    torch.testing.assert_close(gpu.depth.cpu()[same], cpu.depth[same], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.rgb.cpu(), cpu.rgb, atol=0.02, rtol=0)


def test_tile_cull_keeps_every_primitive_a_tile_sees(seed):
    """Tile culling is conservative: every primitive the float64 reference sees through a pixel
    passes that pixel's tile test; and it culls (walls behind the camera, small objects)."""
    gen = torch.Generator().manual_seed(seed)
    scene = room_scene(seed % 1000)
    yaw = torch.rand(4, generator=gen) * 2 * math.pi
    pitch = (torch.rand(4, generator=gen) - 0.5) * 1.2
    jitter = (torch.rand(4, 3, generator=gen) - 0.5) * torch.tensor([1.0, 1.0, 0.4])
    eye = torch.tensor([0.0, 0.0, 1.4]) + jitter
    cp = torch.cos(pitch)
    look = torch.stack([torch.cos(yaw) * cp, torch.sin(yaw) * cp, torch.sin(pitch)], -1)
    cams = Cameras.look_at(eye, eye + look, fov_y_deg=60, width=72, height=40, up=UP)
    ref = _render_reference(scene, cams, supersample=2)
    raster, tile_of = tile_order(40, 72)
    offsets = subpixel_offsets(2)[0]
    rays = _chunk_rays(cams, offsets, (raster, tile_of), 0, 4 * 40 * 72 * offsets.shape[0], torch.float32)
    passes, starts, counts = _tile_cull(scene, rays, cams.c2w[:, :3, :3], 1e-3)
    assert passes.shape == (scene.num_primitives, 4 * int(tile_of.max() + 1))
    prim = ref.primitive.reshape(4, -1)[:, raster]  # [V, H*W] in tile order
    tile = tile_of[None] + torch.arange(4)[:, None] * int(tile_of.max() + 1)
    seen = prim >= 0
    assert passes[prim[seen], tile[seen]].all()
    assert passes.float().mean() < 0.6  # it culls
