"""antimatter15 ``.splat``: 32 bytes per Gaussian, no header, no SH beyond the DC colour.

Record (little-endian): position 3 x f32 | scale 3 x f32, linear (exp of the log-scales) |
RGBA 4 x u8 (RGB = clamp(0.5 + C0 f_dc, 0, 1) * 255, A = sigmoid(opacity logit) * 255) |
rotation 4 x u8, unit wxyz quaternion stored as q * 128 + 128. Records are sorted by
exp(sum of log-scales) * opacity, largest first (antimatter15's order, for progressive loading).
Coordinates are the capture's world, as in our PLY files (the format has no convention of its own:
antimatter15's converter copies a PLY's positions unchanged).

Precision (what a round trip keeps): positions exact; scales exact up to exp/log in float32;
colour and opacity to 1/255 (colour clamped to [0, 1]); each quaternion component to 1/128;
SH bands above DC are dropped. Reading maps an opacity byte of 0 or 255 to the logit of 0.5/255 or
254.5/255 so every value stays finite.

Examples:
    >>> write_splat("g.splat", g)               # doctest: +SKIP
    >>> read_splat("g.splat").sh_degree         # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pipelines.fileio import atomic_path
from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.sh import rgb_to_sh0, sh0_to_rgb

SPLAT_RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert SPLAT_RECORD.itemsize == 32


def u8_to_logit(a: torch.Tensor) -> torch.Tensor:
    """Opacity bytes [N] (uint8, opacity * 255) -> finite logits [N] float32: 0 and 255 read as
    0.5/255 and 254.5/255 (half a step inside), the others exactly as stored."""
    p = (a.float() / 255).clamp(0.5 / 255, 254.5 / 255)
    return torch.logit(p)


def splat_bytes(g: Gaussians) -> bytes:
    """``g`` as .splat records, sorted (see the module doc). g: any device, float; SH bands
    above DC ignored."""
    g = g.detach().to("cpu", torch.float32)
    order = torch.argsort(torch.exp(g.log_scales.sum(-1)) * g.opacities(), descending=True)
    g = g[order]
    rec = np.zeros(g.num, dtype=SPLAT_RECORD)
    rec["pos"] = g.means.numpy()
    rec["scale"] = g.scales().numpy()
    rgba = torch.cat([sh0_to_rgb(g.sh[:, 0]), g.opacities()[:, None]], dim=1)  # [N, 4] in [0, 1]
    rec["rgba"] = (rgba * 255).clamp(0, 255).round().to(torch.uint8).numpy()
    rec["rot"] = (g.rotations() * 128 + 128).clamp(0, 255).round().to(torch.uint8).numpy()
    return rec.tobytes()


def splat_from_bytes(raw: bytes) -> Gaussians:
    """.splat records -> Gaussians (CPU, float32, SH degree 0) in the file's order."""
    if len(raw) % SPLAT_RECORD.itemsize:
        raise ValueError(f"a .splat file is 32-byte records; {len(raw)} bytes is not a multiple of 32")
    rec = np.frombuffer(raw, dtype=SPLAT_RECORD)
    rgba = torch.from_numpy(rec["rgba"].copy())  # [N, 4] uint8
    scale = torch.from_numpy(rec["scale"].copy())  # [N, 3] linear
    if not bool((scale > 0).all()):
        raise ValueError(".splat scales must be positive")
    return Gaussians(
        means=torch.from_numpy(rec["pos"].copy()),
        quats=(torch.from_numpy(rec["rot"].astype(np.float32)) - 128) / 128,  # [N, 4] wxyz, near unit
        log_scales=torch.log(scale),
        opacity_logits=u8_to_logit(rgba[:, 3]),
        sh=rgb_to_sh0(rgba[:, :3].float() / 255)[:, None, :],  # [N, 1, 3]
    )


def write_splat(path: str | os.PathLike, g: Gaussians) -> None:
    """Write ``g`` as a .splat file (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(splat_bytes(g))


def read_splat(path: str | os.PathLike) -> Gaussians:
    """Read a .splat file (see :func:`splat_from_bytes`)."""
    return splat_from_bytes(Path(path).read_bytes())


__all__ = ["splat_bytes", "splat_from_bytes", "write_splat", "read_splat", "SPLAT_RECORD"]
