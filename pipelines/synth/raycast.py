"""Analytic ray caster for procedural scenes: RGB, z-depth, normals and object masks.

``render(scene, cameras)`` casts one ray per sub-pixel sample through every pixel of every
camera (batched over all views, in chunks of rays to bound memory; CPU or CUDA, wherever the
cameras live), intersects the primitives exactly (pipelines.synth.primitives) and shades the
nearest hit. Rays go in 16 x 16-pixel screen tiles; a primitive is tested only against the
tiles whose view pyramid meets its box, then against the rays that meet its bounding sphere
(conservative culling: the result is that of testing every primitive). Shading:
``albedo * (ambient + diffuse * max(0, n . l))`` with ``n`` the normal facing the camera and
``l`` the scene's light direction (no shadows, no inter-reflection). Rays that hit
nothing get the scene's background colour.

Outputs (``SynthRender``), V views of H x W pixels:

- ``rgb [V, 3, H, W]`` in [0, 1]: the mean over a k x k grid of sub-pixel samples
  (supersampling antialiasing; k = ``supersample``);
- ``depth [V, H, W]``: camera z-depth (OpenCV z, not distance along the ray) of the surface
  seen through the pixel centre; **0 where the centre ray hits nothing**;
- ``normals [V, 3, H, W]``: unit world-frame normal at that surface point, oriented towards the
  camera; 0 where nothing is hit;
- ``mask [V, H, W]`` long: object id (index into ``scene.info["objects"]``) of that surface,
  **-1 where nothing is hit**; ``primitive [V, H, W]`` long: primitive index, -1 likewise.

Depth, normals and masks are exact point samples at pixel centres (never averaged across an
edge); only RGB is supersampled.

``_render_reference`` has the same signature: float64, no bounding-sphere culling, one ray
chunk; it exists to check the fast path.

Examples:
    >>> from pipelines.cameras import Cameras
    >>> from pipelines.synth.scene import object_scene
    >>> cams = Cameras.look_at(torch.tensor([[0.0, -2.5, 1.0]]), torch.zeros(1, 3), fov_y_deg=40.0,
    ...                        width=32, height=24, up=torch.tensor([0.0, 0.0, 1.0]))
    >>> out = render(object_scene(0), cams, supersample=2)
    >>> out.rgb.shape, out.depth.shape, out.mask.shape
    (torch.Size([1, 3, 24, 32]), torch.Size([1, 24, 32]), torch.Size([1, 24, 32]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.progress import CancelToken, Progress, check, no_progress
from pipelines.synth.primitives import Kind, intersect
from pipelines.synth.scene import Scene
from pipelines.synth.textures import evaluate

DEFAULT_CHUNK = {"cpu": 1 << 17, "cuda": 1 << 21}  # rays per chunk (CPU: ~100 MB of temporaries)
_UV_AXES = torch.tensor([[1, 2], [0, 2], [0, 1]])  # box mapping: coordinates across each axis


@dataclass
class SynthRender:
    """See the module docstring for conventions. rgb [V,3,H,W]; depth [V,H,W]; normals
    [V,3,H,W]; mask [V,H,W] long; primitive [V,H,W] long."""

    rgb: Tensor
    depth: Tensor
    normals: Tensor
    mask: Tensor
    primitive: Tensor

    def __getitem__(self, index) -> SynthRender:
        return SynthRender(
            self.rgb[index], self.depth[index], self.normals[index], self.mask[index], self.primitive[index]
        )


def subpixel_offsets(k: int) -> tuple[Tensor, Tensor, int]:
    """Sample offsets within a pixel for k x k supersampling.

    Returns offsets [S, 2] (x, y) in pixels from the pixel's top-left corner, rgb weights [S]
    (summing to 1) and the index of the pixel-centre sample. For even k the centre is an extra
    sample with weight 0 (it only feeds depth, normals and masks).
    """
    assert k >= 1, k
    g = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    offsets = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    weights = torch.full((k * k,), 1.0 / (k * k), dtype=torch.float64)
    if k % 2 == 1:
        return offsets, weights, (k // 2) * k + k // 2
    offsets = torch.cat([offsets, torch.tensor([[0.5, 0.5]], dtype=torch.float64)])
    weights = torch.cat([weights, torch.zeros(1, dtype=torch.float64)])
    return offsets, weights, k * k


TILE = 16  # pixels per side of the screen tiles that bound groups of rays for culling


def tile_order(height: int, width: int, tile: int = TILE) -> tuple[Tensor, Tensor]:
    """Pixels of one view in tile-major order: tiles row by row, pixels row by row inside each.

    Returns raster [H*W] long (raster index ``row * W + col`` of the i-th pixel in that order) and
    tile [H*W] long (the tile of the i-th pixel; non-decreasing). Edge tiles may be smaller.
    """
    rows, cols = torch.arange(height), torch.arange(width)
    tr, tc = rows // tile, cols // tile
    key = (tr[:, None] * ((width + tile - 1) // tile) + tc[None, :]) * (tile * tile) + (
        (rows % tile)[:, None] * tile + (cols % tile)[None, :]
    )
    raster = key.reshape(-1).argsort()
    return raster, key.reshape(-1)[raster] // (tile * tile)


@dataclass
class _Rays:
    """A chunk of rays in tile order: origins o [M, 3] and directions d [M, 3] (camera-z
    component 1, so t is the z-depth), their camera-plane coordinates xy [M, 2] (d = R (x, y, 1)),
    view [M] long and tile [M] long (view * tiles per view + tile: non-decreasing)."""

    o: Tensor
    d: Tensor
    xy: Tensor
    view: Tensor
    tile: Tensor


def _chunk_rays(
    cams: Cameras, offsets: Tensor, order: tuple[Tensor, Tensor], start: int, stop: int, dtype: torch.dtype
) -> _Rays:
    """Rays start..stop of the flattened (view, pixel in ``tile_order``, sample) grid."""
    dev = cams.device
    S, W, H = offsets.shape[0], cams.width, cams.height
    raster, tile_of = order
    tiles_per_view = int(tile_of[-1]) + 1
    per_view = H * W * S
    M = stop - start
    o, d = torch.empty(M, 3, dtype=dtype, device=dev), torch.empty(M, 3, dtype=dtype, device=dev)
    xy = torch.empty(M, 2, dtype=dtype, device=dev)
    view, tile = torch.empty(M, dtype=torch.long, device=dev), torch.empty(M, dtype=torch.long, device=dev)
    off_all = offsets.to(dev, dtype)
    for v in range(start // per_view, (stop - 1) // per_view + 1):  # contiguous segments, one per view
        a, b = max(start, v * per_view), min(stop, (v + 1) * per_view)
        idx = torch.arange(a - v * per_view, b - v * per_view, device=dev)
        off = off_all[idx % S]
        pix = raster[idx // S]
        K = cams.K[v].to(dtype)
        xc = ((pix % W).to(dtype) + off[:, 0] - K[0, 2]) / K[0, 0]
        yc = ((pix // W).to(dtype) + off[:, 1] - K[1, 2]) / K[1, 1]
        c2w = cams.c2w[v].to(dtype)
        R = c2w[:3, :3]
        seg = slice(a - start, b - start)
        d[seg] = xc[:, None] * R[:, 0] + yc[:, None] * R[:, 1] + R[:, 2]
        o[seg] = c2w[:3, 3]
        xy[seg, 0], xy[seg, 1] = xc, yc
        view[seg] = v
        tile[seg] = tile_of[idx // S] + v * tiles_per_view
    return _Rays(o, d, xy, view, tile)


def _tile_cull(scene: Scene, rays: _Rays, rotations: Tensor, near: float) -> tuple[Tensor, Tensor, Tensor]:
    """Which primitives can be hit by which tiles' rays.

    A tile's rays lie in the pyramid ``x0 <= x / z <= x1, y0 <= y / z <= y1, z >= near`` of its
    camera (bounds taken over the rays, widened by 1e-4); a primitive lies in the box of its
    local bounds, so it is missed when all 8 box corners are outside one of the pyramid's 5
    planes. Conservative (float64). rotations [V, 3, 3]: camera-to-world rotations.
    Returns passes [P, G] bool over the chunk's G tiles, starts [G] and counts [G] (each tile's
    rays are one contiguous run).
    """
    _, counts = torch.unique_consecutive(rays.tile, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    G = counts.shape[0]
    seg = torch.repeat_interleave(torch.arange(G, device=rays.d.device), counts)
    xy = rays.xy.double()
    lo = torch.full((G, 2), float("inf"), dtype=xy.dtype, device=xy.device)
    hi = torch.full((G, 2), -float("inf"), dtype=xy.dtype, device=xy.device)
    lo = lo.scatter_reduce_(0, seg[:, None].expand(-1, 2), xy, "amin") - 1e-4
    hi = hi.scatter_reduce_(0, seg[:, None].expand(-1, 2), xy, "amax") + 1e-4
    corners = scene.box_corners().double()  # [P, 8, 3] world
    R = rotations.double()[rays.view[starts]]  # [G, 3, 3]
    rel = corners[:, None, :, :] - rays.o.double()[starts][None, :, None, :]  # [P, G, 8, 3]
    X = torch.einsum("pgkj,gji->pgki", rel, R)  # camera frame: R^T (x - o)
    x, y, z = X.unbind(-1)
    outside = (
        ((x - lo[None, :, None, 0] * z).amax(-1) < 0)
        | ((hi[None, :, None, 0] * z - x).amax(-1) < 0)
        | ((y - lo[None, :, None, 1] * z).amax(-1) < 0)
        | ((hi[None, :, None, 1] * z - y).amax(-1) < 0)
        | (z.amax(-1) < 0.5 * near)
    )
    return ~outside, starts, counts


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """Concatenated index ranges ``starts[i] ..< starts[i] + counts[i]`` [sum(counts)] long."""
    offsets = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    first = torch.repeat_interleave(starts - offsets, counts, output_size=total)
    return first + torch.arange(total, device=starts.device)


def _trace(
    scene: Scene, rays: _Rays, rotations: Tensor, near: float, cull: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest hit of each ray: t [M] (inf = miss), primitive [M] long (-1), unit world normal [M, 3].

    rotations [V, 3, 3]: the cameras' camera-to-world rotations. With ``cull``, a primitive is
    tested only against the rays of the tiles whose pyramids meet its box (``_tile_cull``),
    then only against the rays that meet the sphere in front of the nearest hit so far (unless
    the sphere holds the rays' origin, when that test culls nothing); nearer primitives go first.
    """
    o, d = rays.o, rays.d
    M = o.shape[0]
    dt = o.dtype
    t_best = torch.full((M,), float("inf"), dtype=dt, device=o.device)
    prim_best = torch.full((M,), -1, dtype=torch.long, device=o.device)
    n_best = torch.zeros(M, 3, dtype=dt, device=o.device)
    R_all = scene.rotation.to(dt)
    A_all = R_all / scene.scale.to(dt)[:, None, :]  # world -> local: x_l = (x - t) @ (R / s)
    T_all = scene.translation.to(dt)
    P_all = scene.param.to(dt)
    kinds = scene.kind.tolist()
    if cull:
        passes, starts, counts = _tile_cull(scene, rays, rotations, near)
        all_tiles = passes.all(1).tolist()
        centres, radii = (x.to(dt) for x in scene.bounding_spheres())
        holds_origin = ((centres[:, None] - o[starts][None]).norm(dim=-1) <= radii[:, None]).all(1).tolist()
        order = (centres - o.mean(0)).norm(dim=-1).argsort().tolist()  # near first: they occlude
    else:
        order = list(range(len(kinds)))
    for p in order:
        cand = None  # None: every ray
        if cull:
            if not all_tiles[p]:
                keep = passes[p].nonzero()[:, 0]
                if keep.numel() == 0:
                    continue
                cand = _ranges(starts[keep], counts[keep])
            if not holds_origin[p]:  # ray / bounding-sphere test, in front of the best hit so far
                oc_, dc_ = (o, d) if cand is None else (o.index_select(0, cand), d.index_select(0, cand))
                rel = oc_ - centres[p]
                a = (dc_ * dc_).sum(-1)
                b = (dc_ * rel).sum(-1)
                disc = b * b - a * ((rel * rel).sum(-1) - radii[p] ** 2)
                sq = torch.sqrt(disc.clamp_min(0))
                prev = t_best if cand is None else t_best.index_select(0, cand)
                ok = (disc > 0) & ((sq - b) > near * a) & ((-b - sq) < prev * a)
                sel = ok.nonzero()[:, 0]
                if sel.numel() == 0:
                    continue
                cand = sel if cand is None else cand[sel]
            if cand is not None and cand.numel() > M // 2:  # most rays: testing all beats gathering
                cand = None
        oc, dc = (o, d) if cand is None else (o.index_select(0, cand), d.index_select(0, cand))
        A = A_all[p]
        o_l = (oc - T_all[p]) @ A
        d_l = dc @ A
        t, n_l = intersect(Kind(kinds[p]), o_l, d_l, near, P_all[p].expand(o_l.shape[0]))
        prev = t_best if cand is None else t_best.index_select(0, cand)
        sel = (t < prev).nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        rows = sel if cand is None else cand[sel]
        n_w = torch.nn.functional.normalize(n_l[sel] @ A.T, dim=-1)  # R (n / s)
        t_best[rows] = t[sel]
        prim_best[rows] = p
        n_best[rows] = n_w
    return t_best, prim_best, n_best


def _shade(scene: Scene, o: Tensor, d: Tensor, t: Tensor, prim: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    """Colour [M, 3] of each ray and its camera-facing normal [M, 3] (0 for misses)."""
    M, dt = o.shape[0], o.dtype
    rgb = scene.background.to(o.device, dt).expand(M, 3).clone()
    n_face = torch.zeros_like(n)
    hit = (prim >= 0).nonzero()[:, 0]
    if hit.numel() == 0:
        return rgb, n_face
    pr = prim[hit]
    p = o[hit] + t[hit, None] * d[hit]
    R = scene.rotation.to(dt)[pr]
    p_obj = torch.einsum(
        "mji,mj->mi", R, p - scene.translation.to(dt)[pr]
    )  # R^T (p - t): object axes, world units
    nw = n[hit]
    n_obj = torch.einsum("mji,mj->mi", R, nw)
    axis = n_obj.abs().argmax(-1)
    uv = p_obj.gather(1, _UV_AXES.to(o.device)[axis])
    albedo = evaluate(scene.textures[pr], uv.float()).to(dt)
    facing = torch.where(((nw * d[hit]).sum(-1) > 0)[:, None], -nw, nw)
    light = scene.light_dir.to(o.device, dt)
    shade = scene.ambient + scene.diffuse * (facing @ light).clamp_min(0)
    rgb[hit] = (albedo * shade[:, None]).clamp(0, 1)
    n_face[hit] = facing
    return rgb, n_face


def _render(
    scene: Scene,
    cameras: Cameras,
    supersample: int,
    chunk_rays: int,
    near: float,
    cull: bool,
    dtype: torch.dtype,
    progress: Progress,
    cancel: CancelToken | None,
) -> SynthRender:
    dev = cameras.device
    scene = scene.to(dev) if scene.device != dev else scene
    V, H, W = len(cameras), cameras.height, cameras.width
    offsets, weights, centre = subpixel_offsets(supersample)
    S = offsets.shape[0]
    weights = weights.to(dev, dtype)
    n_pix = V * H * W
    pix_per_chunk = max(1, chunk_rays // S)
    order = tuple(x.to(dev) for x in tile_order(H, W))
    rotations = cameras.c2w[:, :3, :3]
    rgb = torch.empty(n_pix, 3, dtype=torch.float32, device=dev)
    depth = torch.zeros(n_pix, dtype=torch.float32, device=dev)
    normals = torch.zeros(n_pix, 3, dtype=torch.float32, device=dev)
    prim = torch.full((n_pix,), -1, dtype=torch.long, device=dev)
    for p0 in range(0, n_pix, pix_per_chunk):
        check(cancel)
        p1 = min(n_pix, p0 + pix_per_chunk)
        rays = _chunk_rays(cameras, offsets, order, p0 * S, p1 * S, dtype)
        t, pr, n = _trace(scene, rays, rotations, near, cull)
        colour, n_face = _shade(scene, rays.o, rays.d, t, pr, n)
        pix = torch.arange(p0, p1, device=dev)
        dest = pix - pix % (H * W) + order[0][pix % (H * W)]  # tile order -> raster order
        rgb[dest] = (colour.view(-1, S, 3) * weights[None, :, None]).sum(1).float()
        t_c = t.view(-1, S)[:, centre]
        pr_c = pr.view(-1, S)[:, centre]
        depth[dest] = torch.where(pr_c >= 0, t_c, torch.zeros_like(t_c)).float()
        normals[dest] = n_face.view(-1, S, 3)[:, centre].float()
        prim[dest] = pr_c
        progress(p1 / n_pix, f"ray casting {V} view(s)")
    obj = scene.object_id.to(dev)
    mask = torch.where(prim >= 0, obj[prim.clamp_min(0)], torch.full_like(prim, -1))
    return SynthRender(
        rgb=rgb.view(V, H, W, 3).permute(0, 3, 1, 2).contiguous(),
        depth=depth.view(V, H, W),
        normals=normals.view(V, H, W, 3).permute(0, 3, 1, 2).contiguous(),
        mask=mask.view(V, H, W),
        primitive=prim.view(V, H, W),
    )


def render(
    scene: Scene,
    cameras: Cameras,
    *,
    supersample: int = 1,
    chunk_rays: int | None = None,
    near: float = 1e-3,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> SynthRender:
    """Render ``scene`` from every camera (on the cameras' device).

    supersample: k for k x k RGB samples per pixel; chunk_rays: rays traced at once (bounds
    memory; default 2^17 on the CPU, 2^21 on CUDA); near: smallest accepted z-depth. Returns a
    ``SynthRender`` (module docstring).
    """
    if chunk_rays is None:
        chunk_rays = DEFAULT_CHUNK.get(cameras.device.type, DEFAULT_CHUNK["cpu"])
    return _render(scene, cameras, supersample, chunk_rays, near, True, torch.float32, progress, cancel)


def _render_reference(
    scene: Scene,
    cameras: Cameras,
    *,
    supersample: int = 1,
    chunk_rays: int | None = None,
    near: float = 1e-3,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> SynthRender:
    """The same as ``render`` in float64, testing every ray against every primitive (no culling),
    all rays in one chunk (``chunk_rays`` is ignored)."""
    n = len(cameras) * cameras.width * cameras.height * subpixel_offsets(supersample)[0].shape[0]
    return _render(
        scene, cameras.to(dtype=torch.float64), supersample, n, near, False, torch.float64, progress, cancel
    )
