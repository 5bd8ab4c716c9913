"""Exact ray intersections with the unit primitives, in each primitive's local frame.

A primitive is a unit shape in its local frame, placed in the world by
``x_world = R @ (s * x_local) + t`` (rotation R [3,3], per-axis scale s [3], translation t [3]).
A world ray ``o + t d`` maps to the local ray ``o_l + t d_l`` with the *same* parameter t
(``o_l = (R^T (o - t)) / s``, ``d_l = (R^T d) / s``), so every routine below returns the world
ray parameter directly; ``d`` need not be unit length (the ray caster uses ``z_cam = 1``
directions, which makes t the camera z-depth).

Unit shapes (local frame):

====== ================================================================ ======================
kind   surface                                                          local bounds
====== ================================================================ ======================
BOX    the cube [-1, 1]^3                                               [-1, 1]^3
SPHERE x^2 + y^2 + z^2 = 1                                              [-1, 1]^3
CYL    x^2 + y^2 = 1, |z| <= 1, with caps z = +-1                       [-1, 1]^3
CONE   x^2 + y^2 = ((1 - z) / 2)^2, z in [-1, 1] (apex z = 1), base cap [-1, 1]^3
TORUS  (sqrt(x^2 + y^2) - 1)^2 + z^2 = r^2 (major radius 1, minor r)    [-1-r, 1+r]^2 x [-r, r]
QUAD   z = 0, |x| <= 1, |y| <= 1 (two-sided)                            [-1, 1]^2 x {0}
====== ================================================================ ======================

Each ``intersect_*`` takes local rays ``o [M,3]``, ``d [M,3]`` and ``near`` (smallest accepted
t) and returns ``t [M]`` (``inf`` where the ray misses) and the local-frame surface gradient
``n [M,3]`` (not normalized; zero where missed). The world normal is ``R @ (n / s)``.

Quadrics and planes are closed form. The torus is a quartic: its roots are isolated exactly on
monotonic pieces (the quartic's critical points come from its derivative cubic, solved in closed
form in float64 and polished by Newton), and the first sign change is refined by safeguarded
Newton (bisection whenever a Newton step leaves the bracket), in float64.
"""

from __future__ import annotations

import math
from enum import IntEnum

import torch
from torch import Tensor

INF = float("inf")


class Kind(IntEnum):
    BOX = 0
    SPHERE = 1
    CYLINDER = 2
    CONE = 3
    TORUS = 4
    QUAD = 5


SOLID_KINDS = (Kind.BOX, Kind.SPHERE, Kind.CYLINDER, Kind.CONE, Kind.TORUS)


def local_half_extents(kind: Tensor, param: Tensor) -> Tensor:
    """kind [P] long, param [P] (torus minor radius) -> local AABB half extents [P, 3]."""
    h = torch.ones(kind.shape[0], 3, dtype=param.dtype, device=param.device)
    torus = kind == Kind.TORUS
    h[torus, 0] = 1 + param[torus]
    h[torus, 1] = 1 + param[torus]
    h[torus, 2] = param[torus]
    h[kind == Kind.QUAD, 2] = 0
    return h


def _first_after(cands: Tensor, valid: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    """cands [M, K] candidate t, valid [M, K] -> (t [M] smallest valid t > near or inf, index [M])."""
    ok = valid & (cands > near)
    t = torch.where(ok, cands, torch.full_like(cands, INF))
    best, idx = t.min(dim=-1)
    return best, idx


def _quadratic(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Roots of a t^2 + 2 b t + c = 0 (note the half coefficient b).

    Returns (t0, t1, real [M] bool). Uses q = -(b + sign(b) sqrt(b^2 - ac)), roots q/a and c/q,
    which stays accurate when a -> 0 (c/q becomes the linear root; q/a becomes +-inf).
    """
    disc = b * b - a * c
    real = disc >= 0
    sq = torch.sqrt(disc.clamp_min(0))
    q = -(b + torch.where(b >= 0, sq, -sq))
    t0 = q / a
    t1 = c / q
    return t0, t1, real


def intersect_sphere(o: Tensor, d: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    t0, t1, real = _quadratic(a, b, c)
    t, _ = _first_after(torch.stack([t0, t1], -1), real[:, None].expand(-1, 2), near)
    hit = torch.isfinite(t)
    n = torch.where(hit[:, None], o + t.nan_to_num(0, 0, 0)[:, None] * d, torch.zeros_like(o))
    return t, n


def _safe_div_dir(d: Tensor) -> Tensor:
    eps = 1e-12
    return torch.where(
        d.abs() < eps, torch.where(d >= 0, torch.full_like(d, eps), torch.full_like(d, -eps)), d
    )


def intersect_box(o: Tensor, d: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    inv = 1.0 / _safe_div_dir(d)
    ta = (-1 - o) * inv
    tb = (1 - o) * inv
    t_enter = torch.minimum(ta, tb).amax(-1)
    t_exit = torch.maximum(ta, tb).amin(-1)
    valid = (t_enter <= t_exit)[:, None].expand(-1, 2)
    t, _ = _first_after(torch.stack([t_enter, t_exit], -1), valid, near)
    hit = torch.isfinite(t)
    p = o + t.nan_to_num(0, 0, 0)[:, None] * d
    axis = p.abs().argmax(-1, keepdim=True)
    n = torch.zeros_like(o).scatter_(-1, axis, torch.sign(p.gather(-1, axis)))
    return t, torch.where(hit[:, None], n, torch.zeros_like(n))


def intersect_cylinder(o: Tensor, d: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    s0, s1, real = _quadratic(dx * dx + dy * dy, ox * dx + oy * dy, ox * ox + oy * oy - 1)
    dz_safe = _safe_div_dir(dz)
    c0 = (-1 - oz) / dz_safe
    c1 = (1 - oz) / dz_safe
    cands = torch.stack([s0, s1, c0, c1], -1)  # [M, 4]
    z = oz[:, None] + cands * dz[:, None]
    x = ox[:, None] + cands * dx[:, None]
    y = oy[:, None] + cands * dy[:, None]
    valid = torch.cat([(real[:, None] & (z[:, :2].abs() <= 1)), (x[:, 2:] ** 2 + y[:, 2:] ** 2 <= 1)], -1)
    t, idx = _first_after(cands, valid, near)
    hit = torch.isfinite(t)
    p = o + t.nan_to_num(0, 0, 0)[:, None] * d
    side = torch.stack([p[:, 0], p[:, 1], torch.zeros_like(p[:, 0])], -1)
    cap = torch.zeros_like(p)
    cap[:, 2] = torch.where(idx == 3, 1.0, -1.0)
    n = torch.where((idx < 2)[:, None], side, cap)
    return t, torch.where(hit[:, None], n, torch.zeros_like(n))


def intersect_cone(o: Tensor, d: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    w = 1 - oz
    s0, s1, real = _quadratic(
        dx * dx + dy * dy - 0.25 * dz * dz,
        ox * dx + oy * dy + 0.25 * w * dz,
        ox * ox + oy * oy - 0.25 * w * w,
    )
    cap_t = (-1 - oz) / _safe_div_dir(dz)
    cands = torch.stack([s0, s1, cap_t], -1)  # [M, 3]
    z = oz[:, None] + cands * dz[:, None]
    x = ox[:, None] + cands[:, 2:] * dx[:, None]
    y = oy[:, None] + cands[:, 2:] * dy[:, None]
    valid = torch.cat([real[:, None] & (z[:, :2] >= -1) & (z[:, :2] <= 1), x**2 + y**2 <= 1], -1)
    t, idx = _first_after(cands, valid, near)
    hit = torch.isfinite(t)
    p = o + t.nan_to_num(0, 0, 0)[:, None] * d
    side = torch.stack([p[:, 0], p[:, 1], 0.25 * (1 - p[:, 2])], -1)
    apex = side.abs().sum(-1, keepdim=True) < 1e-9  # the apex has no tangent plane: point it up
    side = torch.where(apex, torch.tensor([0.0, 0.0, 1.0], dtype=o.dtype, device=o.device), side)
    cap = torch.zeros_like(p)
    cap[:, 2] = -1
    n = torch.where((idx < 2)[:, None], side, cap)
    return t, torch.where(hit[:, None], n, torch.zeros_like(n))


def intersect_quad(o: Tensor, d: Tensor, near: Tensor | float) -> tuple[Tensor, Tensor]:
    t = -o[:, 2] / _safe_div_dir(d[:, 2])
    p = o + t[:, None] * d
    valid = (p[:, 0].abs() <= 1) & (p[:, 1].abs() <= 1) & (d[:, 2] != 0)
    t, _ = _first_after(t[:, None], valid[:, None], near)
    hit = torch.isfinite(t)
    n = torch.zeros_like(o)
    n[:, 2] = hit.to(o.dtype)
    return t, n


# ------------------------------------------------------------------------------- torus
def _poly(c: Tensor, s: Tensor) -> Tensor:
    """Horner: c [M, K+1] highest degree first, s [M, ...] -> value [M, ...]."""
    out = c[:, :1].expand_as(s) if s.ndim == 2 else c[:, 0]
    for k in range(1, c.shape[1]):
        ck = c[:, k : k + 1] if s.ndim == 2 else c[:, k]
        out = out * s + ck
    return out


def _cubic_real_roots(A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Real roots of s^3 + A s^2 + B s + C = 0 -> [M, 3] (nan for absent roots), float64."""
    p = B - A * A / 3
    q = 2 * A**3 / 27 - A * B / 3 + C
    shift = -A / 3
    D = q * q / 4 + p**3 / 27  # < 0: three distinct real roots
    three = D < 0
    # three real roots (trigonometric form); p < 0 here
    m = 2 * torch.sqrt((-p / 3).clamp_min(0))
    arg = torch.where(three, 3 * q / (p * m).where(three, torch.ones_like(p)), torch.zeros_like(p))
    theta = torch.acos(arg.clamp(-1, 1)) / 3
    trig = torch.stack([m * torch.cos(theta - 2 * math.pi * k / 3) for k in range(3)], -1)
    # one real root (Cardano)
    sq = torch.sqrt(D.clamp_min(0))
    u, v = -q / 2 + sq, -q / 2 - sq
    cbrt = lambda x: torch.sign(x) * x.abs().pow(1.0 / 3.0)  # noqa: E731
    one = (cbrt(u) + cbrt(v))[:, None]
    nan = torch.full_like(one, float("nan"))
    y = torch.where(three[:, None], trig, torch.cat([one, nan, nan], -1))
    s = y + shift[:, None]
    coeffs = torch.stack([torch.ones_like(A), A, B, C], -1)
    dcoeffs = torch.stack([3 * torch.ones_like(A), 2 * A, B], -1)
    for _ in range(2):  # Newton polish
        f, fp = _poly(coeffs, s), _poly(dcoeffs, s)
        step = torch.where(fp.abs() > 1e-300, f / fp, torch.zeros_like(f))
        s = s - step
    return s


def intersect_torus(
    o: Tensor, d: Tensor, near: Tensor | float, minor: Tensor, iterations: int = 30
) -> tuple[Tensor, Tensor]:
    """minor [M]: minor radius r (major radius 1). Solved in float64: the first root of the
    quartic, bracketed between critical points, by safeguarded Newton until every step is below
    1e-9 (at most ``iterations``; near-tangent rays fall back to bisection and need ~25)."""
    dtype = o.dtype
    o, d, r = o.double(), d.double(), minor.double()
    near_t = torch.as_tensor(near, dtype=torch.float64, device=o.device)
    dlen = d.norm(dim=-1)
    dn = d / dlen[:, None]
    # bounding sphere of radius 1 + r: [s_in, s_out] along the unit direction
    rb = 1 + r
    mo = (o * dn).sum(-1)
    disc = mo * mo - ((o * o).sum(-1) - rb * rb)
    sq = torch.sqrt(disc.clamp_min(0))
    s_start = torch.maximum(-mo - sq, near_t * dlen)
    s_end = -mo + sq
    live = (disc > 0) & (s_end > s_start)
    o2 = o + s_start[:, None] * dn  # start the quartic at the sphere entry: better conditioned
    L = (s_end - s_start).clamp_min(0)
    # G(s) = (|p|^2 + 1 - r^2)^2 - 4 (px^2 + py^2), p = o2 + s dn, |dn| = 1
    m = (o2 * dn).sum(-1)
    k = (o2 * o2).sum(-1) + 1 - r * r
    dxy2 = dn[:, 0] ** 2 + dn[:, 1] ** 2
    oxy_dxy = o2[:, 0] * dn[:, 0] + o2[:, 1] * dn[:, 1]
    oxy2 = o2[:, 0] ** 2 + o2[:, 1] ** 2
    c4 = torch.ones_like(m)
    c3 = 4 * m
    c2 = 4 * m * m + 2 * k - 4 * dxy2
    c1 = 4 * m * k - 8 * oxy_dxy
    c0 = k * k - 4 * oxy2
    quart = torch.stack([c4, c3, c2, c1, c0], -1)  # [M, 5]
    dquart = torch.stack([4 * c4, 3 * c3, 2 * c2, c1], -1)
    crit = _cubic_real_roots(0.75 * c3, 0.5 * c2, 0.25 * c1)  # roots of G'(s) / 4
    crit = torch.where(torch.isfinite(crit), crit.clamp(min=0), L[:, None])
    crit = torch.minimum(crit, L[:, None])
    ends = torch.cat([torch.zeros_like(L)[:, None], crit.sort(-1).values, L[:, None]], -1)  # [M, 5]
    g = _poly(quart, ends)
    pos = g > 0
    change = pos[:, :-1] != pos[:, 1:]  # [M, 4] monotonic pieces with a root
    has = change.any(-1) & live
    first = change.to(torch.int8).argmax(-1, keepdim=True)
    lo = ends.gather(-1, first)[:, 0]
    hi = ends.gather(-1, first + 1)[:, 0]
    lo_pos = pos.gather(-1, first)[:, 0]
    x = 0.5 * (lo + hi)
    for _ in range(iterations):  # safeguarded Newton inside the bracket, until every step is tiny
        gx = _poly(quart, x)
        same = (gx > 0) == lo_pos
        lo = torch.where(same, x, lo)
        hi = torch.where(same, hi, x)
        gp = _poly(dquart, x)
        xn = x - gx / torch.where(gp == 0, torch.ones_like(gp), gp)
        inside = (xn > lo) & (xn < hi) & (gp != 0)
        x, prev = torch.where(inside, xn, 0.5 * (lo + hi)), x
        if not bool(((x - prev).abs() > 1e-9)[has].any()):
            break
    t = torch.where(has, (s_start + x) / dlen, torch.full_like(x, INF))
    p = o + t.nan_to_num(0, 0, 0)[:, None] * d
    rho = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2).clamp_min(1e-12)
    n = torch.stack([p[:, 0] * (1 - 1 / rho), p[:, 1] * (1 - 1 / rho), p[:, 2]], -1)
    n = torch.where(has[:, None], n, torch.zeros_like(n))
    return t.to(dtype), n.to(dtype)


def intersect(
    kind: Kind, o: Tensor, d: Tensor, near: Tensor | float, param: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Dispatch on the primitive kind. o, d [M, 3] local rays; param [M] torus minor radius."""
    assert o.shape == d.shape and o.ndim == 2 and o.shape[1] == 3, (tuple(o.shape), tuple(d.shape))
    if kind == Kind.BOX:
        return intersect_box(o, d, near)
    if kind == Kind.SPHERE:
        return intersect_sphere(o, d, near)
    if kind == Kind.CYLINDER:
        return intersect_cylinder(o, d, near)
    if kind == Kind.CONE:
        return intersect_cone(o, d, near)
    if kind == Kind.TORUS:
        assert param is not None, "the torus needs its minor radius"
        return intersect_torus(o, d, near, param)
    if kind == Kind.QUAD:
        return intersect_quad(o, d, near)
    raise ValueError(f"unknown primitive kind {kind}")
