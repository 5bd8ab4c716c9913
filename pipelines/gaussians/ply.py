"""PLY (standard 3DGS layout), .splat export, and coloured point-cloud PLY.

3DGS PLY: one ``vertex`` element, binary little-endian float32 properties
``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`` with M = 3 ((d+1)^2 - 1);
``f_rest`` is channel-major (all R coefficients, then G, then B); opacity is a logit, scales are
logs, rot is an unnormalized wxyz quaternion. Files are read by property name, so any property
order (Brush writes them alphabetically) and any SH degree 0..3 load; ``red/green/blue`` uchar
colours are accepted in place of ``f_dc``.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from pipelines.fileio import atomic_path
from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.sh import num_sh_bases, rgb_to_sh0, sh0_to_rgb, sh_degree_from_bases


def _gaussian_dtype(num_rest: int) -> list[tuple[str, str]]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return [(n, "<f4") for n in names]


def write_ply(path: str | os.PathLike, g: Gaussians) -> None:
    """Write ``g`` as a standard 3DGS PLY (atomically)."""
    g = g.detach().to("cpu", torch.float32)
    n, k = g.num, g.sh.shape[1]
    rest = g.sh[:, 1:].transpose(1, 2).reshape(n, 3 * (k - 1))  # channel-major
    cols = [g.means, torch.zeros(n, 3), g.sh[:, 0], rest, g.opacity_logits[:, None], g.log_scales, g.quats]
    flat = torch.cat(cols, dim=1).numpy()
    arr = np.empty(n, dtype=_gaussian_dtype(3 * (k - 1)))
    for i, name in enumerate(arr.dtype.names):
        arr[name] = flat[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(str(tmp))


def _vertex(path: str | os.PathLike):
    ply = PlyData.read(str(path))
    if "vertex" not in ply:
        raise ValueError(f"{path}: no 'vertex' element; not a point or Gaussian PLY")
    return ply["vertex"]


def read_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS PLY (any property order, SH degree 0..3) into float32 Gaussians on the CPU."""
    v = _vertex(path)
    names = set(v.data.dtype.names)
    need = {"x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"}
    if missing := sorted(need - names):
        raise ValueError(f"{path}: not a 3DGS PLY, missing properties {missing}")

    def col(name: str) -> np.ndarray:
        return np.asarray(v[name], dtype=np.float32)

    n = len(v.data)
    means = np.stack([col("x"), col("y"), col("z")], axis=1)
    if {"f_dc_0", "f_dc_1", "f_dc_2"} <= names:
        dc = np.stack([col(f"f_dc_{i}") for i in range(3)], axis=1)
    elif {"red", "green", "blue"} <= names:
        rgb = np.stack([col(c) for c in ("red", "green", "blue")], axis=1) / 255.0
        dc = rgb_to_sh0(torch.from_numpy(rgb)).numpy()
    else:
        raise ValueError(f"{path}: no colour (f_dc_* or red/green/blue)")
    rest_names = sorted((p for p in names if re.fullmatch(r"f_rest_\d+", p)), key=lambda p: int(p[7:]))
    m = len(rest_names)
    if m % 3 != 0:
        raise ValueError(f"{path}: {m} f_rest properties is not a multiple of 3")
    k = m // 3 + 1
    sh_degree_from_bases(k)  # raises on an incomplete degree
    if rest_names != [f"f_rest_{i}" for i in range(m)]:
        raise ValueError(f"{path}: f_rest properties are not numbered 0..{m - 1}")
    sh = np.zeros((n, k, 3), dtype=np.float32)
    sh[:, 0] = dc
    if m:
        rest = np.stack([col(p) for p in rest_names], axis=1).reshape(n, 3, k - 1)
        sh[:, 1:] = rest.transpose(0, 2, 1)
    return Gaussians(
        means=torch.from_numpy(means),
        quats=torch.from_numpy(np.stack([col(f"rot_{i}") for i in range(4)], axis=1)),
        log_scales=torch.from_numpy(np.stack([col(f"scale_{i}") for i in range(3)], axis=1)),
        opacity_logits=torch.from_numpy(col("opacity")),
        sh=torch.from_numpy(sh),
    )


def splat_bytes(g: Gaussians) -> bytes:
    """antimatter15 .splat: 32 bytes per Gaussian (pos 3xf32, scale 3xf32 linear, RGBA u8,
    rotation wxyz u8 as q/|q| * 128 + 128), sorted by exp(sum log-scales) * opacity descending.
    No SH beyond the DC colour."""
    g = g.detach().to("cpu", torch.float32)
    order = torch.argsort(torch.exp(g.log_scales.sum(-1)) * g.opacities(), descending=True)
    g = g[order]
    rec = np.zeros(g.num, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = g.means.numpy()
    rec["scale"] = g.scales().numpy()
    rgba = torch.cat([sh0_to_rgb(g.sh[:, 0]), g.opacities()[:, None]], dim=1)
    rec["rgba"] = (rgba * 255).clamp(0, 255).round().to(torch.uint8).numpy()
    rec["rot"] = (g.rotations() * 128 + 128).clamp(0, 255).round().to(torch.uint8).numpy()
    return rec.tobytes()


def write_splat(path: str | os.PathLike, g: Gaussians) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(splat_bytes(g))


def write_points_ply(path: str | os.PathLike, xyz: Tensor | np.ndarray, rgb: Tensor | np.ndarray) -> None:
    """Coloured point cloud: xyz [P, 3] float, rgb [P, 3] uint8."""
    xyz, rgb = np.asarray(xyz, dtype=np.float32), np.asarray(rgb, dtype=np.uint8)
    assert xyz.ndim == 2 and xyz.shape[1] == 3 and rgb.shape == xyz.shape, (xyz.shape, rgb.shape)
    arr = np.empty(len(xyz), dtype=[(c, "<f4") for c in "xyz"] + [(c, "u1") for c in ("red", "green", "blue")])
    for i, c in enumerate("xyz"):
        arr[c] = xyz[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        arr[c] = rgb[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(str(tmp))


def read_points_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """-> xyz [P, 3] float32, rgb [P, 3] uint8 (grey where the file has no colour)."""
    v = _vertex(path)
    xyz = np.stack([np.asarray(v[c], dtype=np.float32) for c in "xyz"], axis=1)
    if {"red", "green", "blue"} <= set(v.data.dtype.names):
        rgb = np.stack([np.asarray(v[c]) for c in ("red", "green", "blue")], axis=1).astype(np.uint8)
    else:
        rgb = np.full_like(xyz, 128, dtype=np.uint8)
    return xyz, rgb


__all__ = ["read_ply", "write_ply", "splat_bytes", "write_splat", "write_points_ply", "read_points_ply", "num_sh_bases"]
