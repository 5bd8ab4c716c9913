"""CPU rasterization of projected Gaussians: front-to-back alpha compositing with a hand-written
backward, as numba kernels parallel over image tiles, wrapped in a ``torch.autograd.Function``.

Semantics (gsplat 1.5.3 classic mode, RasterizeToPixels3DGSFwd.cu / Bwd.cu), per pixel centre
p = (j + 0.5, i + 0.5) and Gaussians in increasing camera depth:

- d = mean2d - p, sigma = 1/2 (a dx^2 + c dy^2) + b dx dy, alpha = min(0.999, o exp(-sigma));
  skipped if sigma < 0 or alpha < 1/255. (The issue text says 0.99; gsplat's kernels use 0.999.)
- next_T = T (1 - alpha); if next_T <= 1e-4 the pixel stops *before* this Gaussian (exclusive).
- colour = sum c_i alpha_i T_i + T_final bg; alpha = 1 - T_final; accumulated depth = sum z_i
  alpha_i T_i (gsplat composites depth as an extra channel with background 0).

How: Gaussians of one camera are sorted by depth (stable, ties by index). Each one covers the
pixels where o exp(-sigma) >= 1/255, an ellipse inside gsplat's radius box; its bounding box
is binned into 16x16 tiles, and each tile composites its list *Gaussian-major*: for every
Gaussian, row by row, only the pixel span inside that ellipse (widened by 1e-3 px against
rounding; the alpha test itself decides) is visited, with per-pixel transmittance and a done
flag. Skipped pixels are exactly those gsplat skips (alpha < 1/255), so work is proportional to
covered pixels, not to tile area x list length as in a GPU kernel. Tiles run in parallel
(numba prange). The backward pass walks each tile's list back to front from every pixel's last
contributing Gaussian, recovering T_i = T_{i+1} / (1 - alpha_i) in float64, and writes one
gradient row per (tile, Gaussian) entry; rows are summed per Gaussian afterwards in list order,
so gradients are deterministic (no atomics, no races). All kernel arithmetic is float64 (with
fastmath contractions); inputs and outputs keep their dtype (float32 or float64).

Why numba (numbers from `lrm-studio bench render` on the 2-core VM, README "## Measured"):
vectorized PyTorch needs every (pixel, Gaussian) pair in memory with its autograd state; the
tiled torch version in the reference notes took 22.6 s and ~10 GB for 50k Gaussians at 256x256,
this one 0.47 s and 0.03 GiB forward+backward on a similarly clustered scene (0.67 s, 0.05 GiB
for 100k Gaussians of a surface scene). A scalar kernel visits each pair once, keeps only
per-pixel state, and its backward recomputes alpha instead of storing it. numba compiles at
first use (no compiler needed at install) and caches to disk; warp-lang would add a large
dependency for the same kernel structure (not measured).

Examples:
    >>> out = rasterize(means2d, conics, colors, opacities, depths, radii, bg, width=64, height=48)
    >>> out.rgb.shape, out.alpha.shape, out.depth.shape
    (torch.Size([1, 48, 64, 3]), torch.Size([1, 48, 64, 1]), torch.Size([1, 48, 64, 1]))
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

TILE_SIZE = 16  # pixels per tile side (parallel work unit)
MAX_ALPHA = 0.999  # gsplat's clamp (its kernels use 0.999; the issue text's 0.99 is not what runs)
ALPHA_MIN = 1.0 / 255.0
T_STOP = 1e-4  # a pixel stops before the Gaussian that would bring T to or below this

SPAN_MARGIN = 1e-3  # pixels added to the alpha >= 1/255 ellipse's extents against rounding
N_GRAD = 12  # per-entry gradient row: mean2d (2), conic (3), colour (3), opacity, depth, |mean2d| (2)

_lock = threading.Lock()  # numba's workqueue layer must not be entered from two threads at once
_compile_seconds: dict[str, float] = {}
PARALLEL_MIN_WORK = 20_000  # below this many work units (entries, Gaussians) kernels run on one thread

# numba's OpenMP layer (GNU libgomp) spin-waits after each parallel region and then competes with
# torch's own OpenMP threads for the cores: small renders got 10x slower and torch ops after a
# kernel 10x slower on 2 cores. The workqueue layer blocks instead. An explicit
# NUMBA_THREADING_LAYER in the environment wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def _jit(**kw):
    """numba.njit with an on-disk cache when the package directory (or numba's fallback cache
    directory) is writable; without any writable location, compile in memory each process."""

    def wrap(fn):
        try:
            return numba.njit(cache=True, **kw)(fn)
        except RuntimeError as e:  # "cannot cache function ...: no locator available"
            log.warning("numba cache unavailable for %s (%s); compiling in memory", fn.__name__, e)
            return numba.njit(cache=False, **kw)(fn)

    return wrap


# ---------------------------------------------------------------------------------- kernels
@_jit()
def _half_extent(a, b, c, o):
    """Half-sizes (hx, hy) in pixels of the ellipse where o exp(-sigma) >= 1/255 for the conic
    (a, b, c), slightly widened against rounding: no pixel outside can pass the alpha test."""
    s_thr = math.log(o * 255.0)  # sigma <= s_thr  <=>  alpha >= 1/255
    det = a * c - b * b
    if s_thr < 0.0 or det <= 0.0:
        return -1.0, -1.0
    hx = math.sqrt(2.0 * s_thr * c / det)
    hy = math.sqrt(2.0 * s_thr * a / det)
    return hx * (1.0 + 1e-6) + SPAN_MARGIN, hy * (1.0 + 1e-6) + SPAN_MARGIN


@_jit()
def _row_span(mx, dy, a, b, c, s_thr):
    """For the pixel row at offset dy = my - (y + 0.5): the interval of pixel-centre x where
    sigma <= s_thr (widened against rounding), as floats (lo > hi when the row misses)."""
    D = dy * dy * (b * b - a * c) + 2.0 * a * s_thr
    if D < 0.0:
        return 1.0, -1.0
    sq = math.sqrt(D)
    lo = mx - (-b * dy + sq) / a
    hi = mx - (-b * dy - sq) / a
    m = SPAN_MARGIN + 1e-6 * (abs(lo) + abs(hi))
    return lo - m, hi + m


@_jit()
def _bin(
    means2d, conics, opacities, radii, order, n_valid, width, height, tile, tiles_x, tiles_y, boxes, counts
):
    """Pixel boxes [C, N, 4] (x0, y0, x1, y1 inclusive; x0 > x1 = empty) of the alpha >= 1/255
    ellipses and per-tile entry counts [C * tiles_y * tiles_x] for the depth-sorted valid
    Gaussians order[c, :n_valid[c]]."""
    C = means2d.shape[0]
    n_tiles = tiles_x * tiles_y
    for c in range(C):
        for k in range(n_valid[c]):
            g = order[c, k]
            mx = np.float64(means2d[c, g, 0])
            my = np.float64(means2d[c, g, 1])
            hx, hy = _half_extent(np.float64(conics[c, g, 0]), np.float64(conics[c, g, 1]),
                                  np.float64(conics[c, g, 2]), np.float64(opacities[c, g]))  # fmt: skip
            # also within the radius box (gsplat's tile assignment); pixel centres j + 0.5
            hx = min(hx, np.float64(radii[c, g, 0]))
            hy = min(hy, np.float64(radii[c, g, 1]))
            x0 = max(0, int(math.ceil(mx - hx - 0.5)))
            x1 = min(width - 1, int(math.floor(mx + hx - 0.5)))
            y0 = max(0, int(math.ceil(my - hy - 0.5)))
            y1 = min(height - 1, int(math.floor(my + hy - 0.5)))
            if hx < 0.0 or x0 > x1 or y0 > y1:
                x0, x1 = 1, 0
            boxes[c, g, 0] = x0
            boxes[c, g, 1] = y0
            boxes[c, g, 2] = x1
            boxes[c, g, 3] = y1
            if x0 > x1 or y0 > y1:
                continue
            for ty in range(y0 // tile, y1 // tile + 1):
                for tx in range(x0 // tile, x1 // tile + 1):
                    counts[c * n_tiles + ty * tiles_x + tx] += 1


@_jit()
def _order(depths, radii, order, n_valid):
    """order[c, :n_valid[c]] = the valid Gaussians (radii > 0) of camera c by increasing depth,
    ties by index (stable sort, as gsplat's radix sort of (tile, depth) keys)."""
    C, N = depths.shape
    idx = np.empty(N, dtype=np.int64)
    for c in range(C):
        m = 0
        for g in range(N):
            if radii[c, g, 0] > 0 and radii[c, g, 1] > 0:
                idx[m] = g
                m += 1
        d = np.empty(m, dtype=depths.dtype)
        for i in range(m):
            d[i] = depths[c, idx[i]]
        perm = np.argsort(d, kind="mergesort")
        for i in range(m):
            order[c, i] = idx[perm[i]]
        n_valid[c] = m


@_jit()
def _fill(order, n_valid, boxes, tile, tiles_x, tiles_y, offsets, ids):
    """ids[offsets[t]:offsets[t + 1]] = Gaussians of tile t in depth order."""
    C = order.shape[0]
    n_tiles = tiles_x * tiles_y
    cursor = offsets[:-1].copy()
    for c in range(C):
        for k in range(n_valid[c]):
            g = order[c, k]
            x0, y0, x1, y1 = boxes[c, g, 0], boxes[c, g, 1], boxes[c, g, 2], boxes[c, g, 3]
            if x0 > x1 or y0 > y1:
                continue
            for ty in range(y0 // tile, y1 // tile + 1):
                for tx in range(x0 // tile, x1 // tile + 1):
                    t = c * n_tiles + ty * tiles_x + tx
                    ids[cursor[t]] = g
                    cursor[t] += 1


@_jit(parallel=True, fastmath=True)
def _forward(means2d, conics, colors, opacities, depths, boxes, offsets, ids, bg,
             width, height, tile, tiles_x, tiles_y, out_rgb, out_T, out_depth, out_last):  # fmt: skip
    n_items = offsets.shape[0] - 1
    n_tiles = tiles_x * tiles_y
    for item in numba.prange(n_items):
        c = item // n_tiles
        t = item % n_tiles
        px0 = (t % tiles_x) * tile
        py0 = (t // tiles_x) * tile
        tw = min(tile, width - px0)
        th = min(tile, height - py0)
        n_pix = tw * th
        T = np.ones(n_pix)
        acc = np.zeros((n_pix, 4))
        last = np.full(n_pix, offsets[item] - 1, dtype=np.int64)
        done = np.zeros(n_pix, dtype=np.bool_)
        n_done = 0
        for k in range(offsets[item], offsets[item + 1]):
            if n_done == n_pix:
                break
            g = ids[k]
            x0 = max(boxes[c, g, 0], px0)
            x1 = min(boxes[c, g, 2], px0 + tw - 1)
            y0 = max(boxes[c, g, 1], py0)
            y1 = min(boxes[c, g, 3], py0 + th - 1)
            mx = np.float64(means2d[c, g, 0])
            my = np.float64(means2d[c, g, 1])
            ca = np.float64(conics[c, g, 0])
            cb = np.float64(conics[c, g, 1])
            cc = np.float64(conics[c, g, 2])
            o = np.float64(opacities[c, g])
            cr = np.float64(colors[c, g, 0])
            cg = np.float64(colors[c, g, 1])
            cbl = np.float64(colors[c, g, 2])
            z = np.float64(depths[c, g])
            s_thr = math.log(o * 255.0)
            for y in range(y0, y1 + 1):
                dy = my - (y + 0.5)
                row = (y - py0) * tw - px0
                lo, hi = _row_span(mx, dy, ca, cb, cc, s_thr)
                xa = max(x0, int(math.ceil(lo - 0.5)))
                xb = min(x1, int(math.floor(hi - 0.5)))
                for x in range(xa, xb + 1):
                    p = row + x
                    if done[p]:
                        continue
                    dx = mx - (x + 0.5)
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0:
                        continue
                    alpha = min(MAX_ALPHA, o * math.exp(-sigma))
                    if alpha < ALPHA_MIN:
                        continue
                    next_T = T[p] * (1.0 - alpha)
                    if next_T <= T_STOP:
                        done[p] = True
                        n_done += 1
                        continue
                    w = alpha * T[p]
                    acc[p, 0] += cr * w
                    acc[p, 1] += cg * w
                    acc[p, 2] += cbl * w
                    acc[p, 3] += z * w
                    T[p] = next_T
                    last[p] = k
        for yy in range(th):
            for xx in range(tw):
                p = yy * tw + xx
                y = py0 + yy
                x = px0 + xx
                out_rgb[c, y, x, 0] = acc[p, 0] + T[p] * bg[c, 0]
                out_rgb[c, y, x, 1] = acc[p, 1] + T[p] * bg[c, 1]
                out_rgb[c, y, x, 2] = acc[p, 2] + T[p] * bg[c, 2]
                out_depth[c, y, x] = acc[p, 3]
                out_T[c, y, x] = T[p]
                out_last[c, y, x] = last[p]


@_jit(parallel=True, fastmath=True)
def _backward(means2d, conics, colors, opacities, depths, boxes, offsets, ids, bg,
              width, height, tile, tiles_x, tiles_y, out_T, out_last,
              v_rgb, v_alpha_out, v_depth, grads):  # fmt: skip
    """grads [n_entries, N_GRAD]: per (tile, Gaussian) entry, the sums over the tile's pixels."""
    n_items = offsets.shape[0] - 1
    n_tiles = tiles_x * tiles_y
    for item in numba.prange(n_items):
        start = offsets[item]
        if offsets[item + 1] == start:
            continue
        c = item // n_tiles
        t = item % n_tiles
        px0 = (t % tiles_x) * tile
        py0 = (t // tiles_x) * tile
        tw = min(tile, width - px0)
        th = min(tile, height - py0)
        n_pix = tw * th
        T = np.empty(n_pix)
        T_final = np.empty(n_pix)
        last = np.empty(n_pix, dtype=np.int64)
        buf = np.zeros((n_pix, 4))  # colour and depth composited behind the current Gaussian
        gout = np.empty((n_pix, 5))  # dL/d(r, g, b, depth, alpha) per pixel
        k_max = start - 1
        bg_dot = np.empty(n_pix)
        for yy in range(th):
            for xx in range(tw):
                p = yy * tw + xx
                y = py0 + yy
                x = px0 + xx
                T_final[p] = out_T[c, y, x]
                T[p] = T_final[p]
                last[p] = out_last[c, y, x]
                k_max = max(k_max, last[p])
                gout[p, 0] = v_rgb[c, y, x, 0]
                gout[p, 1] = v_rgb[c, y, x, 1]
                gout[p, 2] = v_rgb[c, y, x, 2]
                gout[p, 3] = v_depth[c, y, x]
                gout[p, 4] = v_alpha_out[c, y, x]
                bg_dot[p] = bg[c, 0] * gout[p, 0] + bg[c, 1] * gout[p, 1] + bg[c, 2] * gout[p, 2]
        for k in range(k_max + 1, offsets[item + 1]):
            for j in range(grads.shape[1]):
                grads[k, j] = 0.0
        for k in range(k_max, start - 1, -1):
            g = ids[k]
            x0 = max(boxes[c, g, 0], px0)
            x1 = min(boxes[c, g, 2], px0 + tw - 1)
            y0 = max(boxes[c, g, 1], py0)
            y1 = min(boxes[c, g, 3], py0 + th - 1)
            mx = np.float64(means2d[c, g, 0])
            my = np.float64(means2d[c, g, 1])
            ca = np.float64(conics[c, g, 0])
            cb = np.float64(conics[c, g, 1])
            cc = np.float64(conics[c, g, 2])
            o = np.float64(opacities[c, g])
            cr = np.float64(colors[c, g, 0])
            cg = np.float64(colors[c, g, 1])
            cbl = np.float64(colors[c, g, 2])
            z = np.float64(depths[c, g])
            g_mx = 0.0
            g_my = 0.0
            g_a = 0.0
            g_b = 0.0
            g_c = 0.0
            g_r = 0.0
            g_g = 0.0
            g_bl = 0.0
            g_o = 0.0
            g_z = 0.0
            g_ax = 0.0
            g_ay = 0.0
            s_thr = math.log(o * 255.0)
            for y in range(y0, y1 + 1):
                dy = my - (y + 0.5)
                row = (y - py0) * tw - px0
                lo, hi = _row_span(mx, dy, ca, cb, cc, s_thr)
                xa = max(x0, int(math.ceil(lo - 0.5)))
                xb = min(x1, int(math.floor(hi - 0.5)))
                for x in range(xa, xb + 1):
                    p = row + x
                    if k > last[p]:
                        continue
                    dx = mx - (x + 0.5)
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0:
                        continue
                    vis = math.exp(-sigma)
                    alpha = min(MAX_ALPHA, o * vis)
                    if alpha < ALPHA_MIN:
                        continue
                    ra = 1.0 / (1.0 - alpha)
                    Tp = T[p] * ra  # transmittance in front of this Gaussian
                    T[p] = Tp
                    w = alpha * Tp
                    g_r += w * gout[p, 0]
                    g_g += w * gout[p, 1]
                    g_bl += w * gout[p, 2]
                    g_z += w * gout[p, 3]
                    v_alpha = (
                        (cr * Tp - buf[p, 0] * ra) * gout[p, 0]
                        + (cg * Tp - buf[p, 1] * ra) * gout[p, 1]
                        + (cbl * Tp - buf[p, 2] * ra) * gout[p, 2]
                        + (z * Tp - buf[p, 3] * ra) * gout[p, 3]
                        + T_final[p] * ra * (gout[p, 4] - bg_dot[p])
                    )
                    if o * vis <= MAX_ALPHA:
                        v_sigma = -o * vis * v_alpha
                        g_a += 0.5 * v_sigma * dx * dx
                        g_b += v_sigma * dx * dy
                        g_c += 0.5 * v_sigma * dy * dy
                        gx = v_sigma * (ca * dx + cb * dy)
                        gy = v_sigma * (cb * dx + cc * dy)
                        g_mx += gx
                        g_my += gy
                        g_ax += abs(gx)
                        g_ay += abs(gy)
                        g_o += vis * v_alpha
                    buf[p, 0] += cr * w
                    buf[p, 1] += cg * w
                    buf[p, 2] += cbl * w
                    buf[p, 3] += z * w
            grads[k, 0] = g_mx
            grads[k, 1] = g_my
            grads[k, 2] = g_a
            grads[k, 3] = g_b
            grads[k, 4] = g_c
            grads[k, 5] = g_r
            grads[k, 6] = g_g
            grads[k, 7] = g_bl
            grads[k, 8] = g_o
            grads[k, 9] = g_z
            grads[k, 10] = g_ax
            grads[k, 11] = g_ay


@_jit(parallel=True)
def _reduce(offsets, ids, n_tiles, grads, out):
    """out[c, g] = sum of the rows of g's entries in camera c, in list order (deterministic)."""
    C = out.shape[0]
    for c in numba.prange(C):
        for t in range(n_tiles):
            item = c * n_tiles + t
            for k in range(offsets[item], offsets[item + 1]):
                g = ids[k]
                for j in range(grads.shape[1]):
                    out[c, g, j] += grads[k, j]


# ------------------------------------------------------------------------- torch binding
class Tiles(NamedTuple):
    boxes: np.ndarray  # [C, N, 4] int64 pixel boxes
    offsets: np.ndarray  # [C * tiles_y * tiles_x + 1] int64
    ids: np.ndarray  # [n_entries] int64 Gaussian index per entry, depth order within a tile
    tiles_x: int
    tiles_y: int


def bin_tiles(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2]
    width: int,
    height: int,
    tile: int = TILE_SIZE,
) -> Tiles:
    """Sort each camera's valid Gaussians (radii > 0) by depth and list them per tile, each in
    the tiles its alpha >= 1/255 box touches."""
    C, N = depths.shape
    order = np.empty((C, N), dtype=np.int64)
    n_valid = np.empty(C, dtype=np.int64)
    radii_np = radii.numpy()
    _order(_np(depths), radii_np, order, n_valid)
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    boxes = np.empty((C, N, 4), dtype=np.int64)  # written for the valid Gaussians
    counts = np.zeros(C * tiles_x * tiles_y, dtype=np.int64)
    _bin(_np(means2d), _np(conics), _np(opacities), radii_np, order, n_valid, width, height, tile,
         tiles_x, tiles_y, boxes, counts)  # fmt: skip
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.int64)
    _fill(order, n_valid, boxes, tile, tiles_x, tiles_y, offsets, ids)
    return Tiles(boxes, offsets, ids, tiles_x, tiles_y)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _call(name: str, fn, *args, work: int = PARALLEL_MIN_WORK) -> None:
    """Run a parallel kernel, one call at a time, with numba's threads matched to torch's, or on
    one thread when ``work`` (entries, Gaussians) is too small to pay for waking the others."""
    with _lock:
        threads = torch.get_num_threads() if work >= PARALLEL_MIN_WORK else 1
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        if name in _compile_seconds:
            fn(*args)
            return
        t0 = time.perf_counter()
        fn(*args)
        _compile_seconds[name] = time.perf_counter() - t0
        log.info("numba %s: first call (compile or cache load) %.2f s", name, _compile_seconds[name])


def first_call_seconds() -> dict[str, float]:
    """Seconds each kernel's first call took in this process (numba compile or cache load)."""
    return dict(_compile_seconds)


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, means2d, conics, colors, opacities, depths, background, radii, width, height, tile, absgrad
    ):
        C, N = depths.shape
        tiles = bin_tiles(means2d, conics, opacities, depths, radii, width, height, tile)
        dt = means2d.dtype
        rgb = torch.empty(C, height, width, 3, dtype=dt)
        T = torch.empty(C, height, width, dtype=torch.float64)
        acc_depth = torch.empty(C, height, width, dtype=dt)
        last = torch.empty(C, height, width, dtype=torch.int64)
        arrays = tuple(_np(t) for t in (means2d, conics, colors, opacities, depths))
        bg = _np(background)
        _call("forward", _forward, *arrays, tiles.boxes, tiles.offsets, tiles.ids, bg, width, height, tile,
              tiles.tiles_x, tiles.tiles_y, rgb.numpy(), T.numpy(), acc_depth.numpy(), last.numpy(),
              work=len(tiles.ids) + C * width * height // 16)  # fmt: skip
        ctx.save_for_backward(means2d, conics, colors, opacities, depths, background, T, last)
        ctx.tiles = tiles
        ctx.shape = (width, height, tile)
        ctx.absgrad = absgrad
        alpha = (1.0 - T).to(dt)
        ctx.mark_non_differentiable(last)
        return rgb, alpha[..., None], acc_depth[..., None]

    @staticmethod
    def backward(ctx, v_rgb, v_alpha, v_depth):
        means2d, conics, colors, opacities, depths, background, T, last = ctx.saved_tensors
        tiles: Tiles = ctx.tiles
        width, height, tile = ctx.shape
        C, N = depths.shape
        dt = means2d.dtype
        zeros = lambda *shape: torch.zeros(*shape, dtype=dt)  # noqa: E731
        v_rgb = v_rgb.to(dt) if v_rgb is not None else zeros(C, height, width, 3)
        v_alpha = v_alpha[..., 0].to(dt) if v_alpha is not None else zeros(C, height, width)
        v_depth = v_depth[..., 0].to(dt) if v_depth is not None else zeros(C, height, width)
        entries = np.empty(
            (tiles.ids.shape[0], N_GRAD), dtype=np.float64 if dt == torch.float64 else np.float32
        )
        arrays = tuple(_np(t) for t in (means2d, conics, colors, opacities, depths))
        _call("backward", _backward, *arrays, tiles.boxes, tiles.offsets, tiles.ids, _np(background),
              width, height, tile, tiles.tiles_x, tiles.tiles_y, T.numpy(), last.numpy(),
              _np(v_rgb), _np(v_alpha), _np(v_depth), entries,
              work=len(tiles.ids) + C * width * height // 16)  # fmt: skip
        out = np.zeros((C, N, N_GRAD), dtype=entries.dtype)
        n_tiles = tiles.tiles_x * tiles.tiles_y
        _call("reduce", _reduce, tiles.offsets, tiles.ids, n_tiles, entries, out, work=C * N)
        g = torch.from_numpy(out).to(dt)  # [C, N, N_GRAD]
        if ctx.absgrad:
            means2d.absgrad = g[..., 10:12].clone()
        v_bg = None
        if ctx.needs_input_grad[5]:
            v_bg = (v_rgb * T.to(dt)[..., None]).sum(dim=(1, 2))  # [C, 3]
        return g[..., 0:2], g[..., 2:5], g[..., 5:8], g[..., 8], g[..., 9], v_bg, None, None, None, None, None


class Raster(NamedTuple):
    rgb: Tensor  # [C, H, W, 3] composited colour plus T_final * background
    alpha: Tensor  # [C, H, W, 1] 1 - T_final
    depth: Tensor  # [C, H, W, 1] accumulated camera z, sum z_i alpha_i T_i (not normalized)


def rasterize(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2] int
    background: Tensor,  # [C, 3]
    *,
    width: int,
    height: int,
    tile: int = TILE_SIZE,
    absgrad: bool = False,
) -> Raster:
    """Composite projected Gaussians on the CPU (semantics in the module docstring).

    Differentiable w.r.t. means2d, conics, colors, opacities, depths and background; with
    ``absgrad`` the backward pass also sets ``means2d.absgrad`` [C, N, 2], the per-pixel sum of
    |dL/dmeans2d| (AbsGS). float32 or float64, CPU tensors only.
    """
    C, N = depths.shape
    for name, t, shape in (
        ("means2d", means2d, (C, N, 2)), ("conics", conics, (C, N, 3)), ("colors", colors, (C, N, 3)),
        ("opacities", opacities, (C, N)), ("radii", radii, (C, N, 2)), ("background", background, (C, 3)),
    ):  # fmt: skip
        assert t.shape == shape, f"{name} must be {list(shape)}, got {tuple(t.shape)}"
        assert t.device.type == "cpu", f"{name} is on {t.device}; the CPU rasterizer needs CPU tensors"
    dt = means2d.dtype
    assert dt in (torch.float32, torch.float64), f"float32 or float64 expected, got {dt}"
    conics, colors, opacities, depths, background = (
        t.to(dt) for t in (conics, colors, opacities, depths, background)
    )
    rgb, alpha, depth = _Rasterize.apply(
        means2d, conics, colors, opacities, depths, background, radii, width, height, tile, absgrad
    )
    return Raster(rgb, alpha, depth)
