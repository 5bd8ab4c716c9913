"""Surface textures: procedural (checkers, stripes, value-noise fBm) and CC0 photographs.

Every primitive carries one texture, evaluated at 2-D texture coordinates fixed to the
primitive's object space (box mapping: the two object-space coordinates across the dominant
axis of the object-space normal, in world units). Texture coordinates therefore move with the
surface and never with the camera, so features track across views (SIFT, photometric losses).

Photographs come from scikit-image's bundled sample data (``skimage/data/*.png`` is inside the
wheel, so nothing is downloaded). Only images whose scikit-image docstring states CC0 are used:

========= ========================================================== =========
name      what                                                       licence
========= ========================================================== =========
brick     brick wall, from CC0Textures (Bricks25)                    CC0
grass     grass, from DeviantArt user linolafett                     CC0
gravel    gravel, from CC0Textures (Gravel04)                        CC0
camera    "camera" photograph by Lav Varshney                        CC0
coffee    coffee cup, by Rachel Michetti                             CC0
chelsea   Chelsea the cat, by Stefan van der Walt                    CC0
========= ========================================================== =========

Grey photographs are mapped through the texture's two first palette colours (duotone), colour
photographs are used as they are. (imageio's "standard images" are not usable: imageio fetches
them from the network on first use.)

Texture noise uses an integer hash (identical on CPU and CUDA), so the same scene renders the
same pixels on any device up to float rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np
import torch
from torch import Tensor

PHOTO_NAMES: tuple[str, ...] = ("brick", "grass", "gravel", "camera", "coffee", "chelsea")
PHOTO_SIZE = 256  # photographs are centre-cropped to a square and resized to this many texels


class TexKind(IntEnum):
    CHECKER = 0
    STRIPES = 1
    NOISE = 2
    PHOTO = 3


@dataclass
class Textures:
    """Per-primitive texture parameters (P primitives).

    kind [P] long (TexKind); palette [P, 3, 3] three RGB colours in [0, 1]; freq [P, 2] cycles
    per world unit along u and v; angle [P] rotation of (u, v) in radians; offset [P, 2] added
    to the scaled coordinates; photo [P] long index into PHOTO_NAMES (PHOTO kind only);
    seed [P] long noise seed; detail [P] amplitude in [0, 1) of a fine fBm overlay that breaks
    up repetition (multiplies the albedo by 1 - detail + 2 detail noise).
    """

    kind: Tensor
    palette: Tensor
    freq: Tensor
    angle: Tensor
    offset: Tensor
    photo: Tensor
    seed: Tensor
    detail: Tensor

    def __post_init__(self) -> None:
        p = self.kind.shape[0]
        assert self.palette.shape == (p, 3, 3), f"palette must be [P,3,3], got {tuple(self.palette.shape)}"
        assert self.freq.shape == (p, 2) and self.offset.shape == (p, 2), (self.freq.shape, self.offset.shape)
        for name in ("angle", "photo", "seed", "detail"):
            assert getattr(self, name).shape == (p,), (
                f"{name} must be [P], got {tuple(getattr(self, name).shape)}"
            )

    def __len__(self) -> int:
        return self.kind.shape[0]

    def to(self, device: torch.device | str) -> Textures:
        return Textures(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index: Tensor | slice | list[int]) -> Textures:
        if isinstance(index, Tensor) and index.dtype == torch.long:
            return Textures(**{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)})
        return Textures(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(items: list[Textures]) -> Textures:
        return Textures(**{f.name: torch.cat([getattr(t, f.name) for t in items]) for f in fields(Textures)})


# ------------------------------------------------------------------------------ sampling
def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """h, s, v [...] in [0, 1] -> rgb [..., 3]."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], -1)
    return v[..., None] - v[..., None] * s[..., None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def random_palettes(n: int, gen: torch.Generator, *, value: tuple[float, float] = (0.25, 0.95)) -> Tensor:
    """n palettes [n, 3, 3] of three colours: a random hue family with contrasting values."""
    u = torch.rand(n, 8, generator=gen, dtype=torch.float64)
    hue = u[:, 0:1] + (u[:, 1:4] - 0.5) * torch.tensor(
        [0.0, 0.3, 1.0], dtype=torch.float64
    )  # related + one free hue
    sat = 0.15 + 0.75 * u[:, 4:7]
    lo, hi = value
    v0 = lo + (hi - lo) * 0.45 * u[:, 7]
    val = torch.stack([v0, (v0 + 0.35 + 0.2 * u[:, 5]).clamp(max=hi), lo + (hi - lo) * u[:, 6]], -1)
    return _hsv_to_rgb(hue % 1.0, sat, val).float()


def random_textures(
    n: int,
    gen: torch.Generator,
    *,
    kinds: tuple[float, float, float, float] = (0.2, 0.2, 0.3, 0.3),
    freq: tuple[float, float] = (2.0, 8.0),
    photo_freq: tuple[float, float] = (0.4, 1.2),
    detail: tuple[float, float] = (0.1, 0.35),
    value: tuple[float, float] = (0.25, 0.95),
) -> Textures:
    """n random textures. kinds: probabilities of (checker, stripes, noise, photo); freq: range
    of procedural cycles per world unit, photo_freq: photograph tiles per world unit (both
    log-uniform); detail: range of the fine-noise amplitude."""
    kind = torch.multinomial(torch.tensor(kinds, dtype=torch.float64), n, replacement=True, generator=gen)
    u = torch.rand(n, 7, generator=gen, dtype=torch.float64)

    def log_uniform(lo_hi: tuple[float, float], x: Tensor) -> Tensor:
        return torch.exp(np.log(lo_hi[0]) + (np.log(lo_hi[1]) - np.log(lo_hi[0])) * x)

    f = torch.where(kind == TexKind.PHOTO, log_uniform(photo_freq, u[:, 0]), log_uniform(freq, u[:, 0]))
    aspect = torch.exp((u[:, 1] - 0.5) * 0.6)  # mild anisotropy
    return Textures(
        kind=kind,
        palette=random_palettes(n, gen, value=value),
        freq=torch.stack([f * aspect, f / aspect], -1).float(),
        angle=(u[:, 2] * 2 * np.pi).float(),
        offset=(u[:, 3:5] * 16).float(),
        photo=torch.randint(len(PHOTO_NAMES), (n,), generator=gen),
        seed=torch.randint(2**31 - 1, (n,), generator=gen),
        detail=(detail[0] + (detail[1] - detail[0]) * u[:, 5]).float(),
    )


# ------------------------------------------------------------------------------ photos
@functools.lru_cache(maxsize=1)
def _photo_bank_cpu() -> tuple[Tensor, Tensor]:
    """(texels [N, S*S, 3] float32 in [0, 1], grey [N] bool), from scikit-image's bundled data."""
    try:
        import skimage.data
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImportError("photo textures need scikit-image (pip install scikit-image)") from e
    out, grey = [], []
    for name in PHOTO_NAMES:
        img = np.asarray(getattr(skimage.data, name)())
        is_grey = img.ndim == 2
        x = torch.from_numpy(img).float() / 255.0
        x = x[None].expand(3, -1, -1) if is_grey else x.permute(2, 0, 1)[:3]
        h, w = x.shape[1:]
        side = min(h, w)
        x = x[:, (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        x = torch.nn.functional.interpolate(x[None], size=(PHOTO_SIZE, PHOTO_SIZE), mode="area")[0]
        out.append(x.permute(1, 2, 0).reshape(-1, 3))
        grey.append(is_grey)
    return torch.stack(out).contiguous(), torch.tensor(grey)


_BANKS: dict[str, tuple[Tensor, Tensor]] = {}


def photo_bank(device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The photographs on ``device`` (cached): texels [N, S*S, 3], grey [N] bool."""
    key = str(device)
    if key not in _BANKS:
        texels, grey = _photo_bank_cpu()
        _BANKS[key] = (texels.to(device), grey.to(device))
    return _BANKS[key]


def _sample_photo(photo: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Bilinear, mirrored-repeat lookup. photo [M] long; u, v [M] in tile units -> rgb [M, 3], grey [M]."""
    texels, grey = photo_bank(u.device)
    S = PHOTO_SIZE
    x = u * S - 0.5
    y = v * S - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.long(), y0.long()

    def mirror(i: Tensor) -> Tensor:
        m = i % (2 * S)
        return torch.where(m >= S, 2 * S - 1 - m, m)

    base = photo * (S * S)
    xs = (mirror(x0), mirror(x0 + 1))
    ys = (mirror(y0), mirror(y0 + 1))
    flat = texels.reshape(-1, 3)

    def tex(yi: Tensor, xi: Tensor) -> Tensor:
        return flat[base + yi * S + xi]

    top = tex(ys[0], xs[0]) * (1 - fx) + tex(ys[0], xs[1]) * fx
    bot = tex(ys[1], xs[0]) * (1 - fx) + tex(ys[1], xs[1]) * fx
    return top * (1 - fy) + bot * fy, grey[photo]


# ------------------------------------------------------------------------------ noise
_M32 = 0xFFFFFFFF


def _hash01(ix: Tensor, iy: Tensor, seed: Tensor) -> Tensor:
    """Integer lattice hash -> float in [0, 1). ix, iy, seed int64 [M]; exact on CPU and CUDA
    (every product stays below 2^63)."""
    h = (ix * 374761393 + iy * 668265263 + seed * 1274126177) & _M32
    h = ((h ^ (h >> 13)) * 1103515245) & _M32
    h = h ^ (h >> 16)
    return h.to(torch.float32) * (1.0 / 4294967296.0)


def value_noise(u: Tensor, v: Tensor, seed: Tensor) -> Tensor:
    """Smooth value noise in [0, 1]: hashed lattice values, smoothstep-interpolated. [M] -> [M]."""
    x0, y0 = torch.floor(u), torch.floor(v)
    fx, fy = u - x0, v - y0
    fx = fx * fx * (3 - 2 * fx)
    fy = fy * fy * (3 - 2 * fy)
    ix, iy = x0.long(), y0.long()
    a = _hash01(ix, iy, seed)
    b = _hash01(ix + 1, iy, seed)
    c = _hash01(ix, iy + 1, seed)
    d = _hash01(ix + 1, iy + 1, seed)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def fbm(u: Tensor, v: Tensor, seed: Tensor, octaves: int = 4) -> Tensor:
    """Fractal sum of value noise, normalized to [0, 1]. [M] -> [M]."""
    total = torch.zeros_like(u)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total = total + amp * value_noise(u * (2**o), v * (2**o), seed + 7919 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def _palette_ramp(palette: Tensor, x: Tensor) -> Tensor:
    """palette [M, 3, 3], x [M] in [0, 1] -> piecewise-linear colour ramp c0 -> c1 -> c2 [M, 3]."""
    x = x.clamp(0, 1)[:, None] * 2
    lo = (x < 1).to(x.dtype)
    first = palette[:, 0] + (palette[:, 1] - palette[:, 0]) * x.clamp(max=1)
    second = palette[:, 1] + (palette[:, 2] - palette[:, 1]) * (x - 1).clamp(min=0)
    return lo * first + (1 - lo) * second


def evaluate(tex: Textures, uv: Tensor) -> Tensor:
    """Albedo [M, 3] in [0, 1] at texture coordinates uv [M, 2] (world units), where ``tex`` holds
    the M rays' own texture parameters (already gathered per ray)."""
    assert uv.ndim == 2 and uv.shape[1] == 2 and len(tex) == uv.shape[0], (tuple(uv.shape), len(tex))
    c, s = torch.cos(tex.angle), torch.sin(tex.angle)
    ru = c * uv[:, 0] - s * uv[:, 1]
    rv = s * uv[:, 0] + c * uv[:, 1]
    u = ru * tex.freq[:, 0] + tex.offset[:, 0]
    v = rv * tex.freq[:, 1] + tex.offset[:, 1]
    albedo = torch.empty(uv.shape[0], 3, dtype=uv.dtype, device=uv.device)
    for kind in TexKind:
        sel = (tex.kind == kind).nonzero()[:, 0]
        if sel.numel() == 0:
            continue
        su, sv, pal = u[sel], v[sel], tex.palette[sel]
        if kind == TexKind.CHECKER:
            parity = ((torch.floor(su) + torch.floor(sv)) % 2)[:, None]
            out = pal[:, 0] * (1 - parity) + pal[:, 1] * parity
        elif kind == TexKind.STRIPES:
            band = (torch.floor(su) % 3).long()
            out = pal.gather(1, band[:, None, None].expand(-1, 1, 3))[:, 0]
        elif kind == TexKind.NOISE:
            out = _palette_ramp(pal, fbm(su, sv, tex.seed[sel]) * 1.4 - 0.2)
        else:
            rgb, grey = _sample_photo(tex.photo[sel], su, sv)
            duo = pal[:, 0] + (pal[:, 1] - pal[:, 0]) * rgb[:, :1]
            out = torch.where(grey[:, None], duo, rgb)
        albedo[sel] = out
    fine = fbm(u * 6.0, v * 6.0, tex.seed + 104729, octaves=2)
    return (albedo * (1 - tex.detail[:, None] + 2 * tex.detail[:, None] * fine[:, None])).clamp(0, 1)
