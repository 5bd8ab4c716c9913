"""PLY files: Gaussians in the standard (INRIA) 3DGS layout, and coloured point clouds.

3DGS PLY: one ``vertex`` element, binary little-endian float32 properties
``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`` with M = 3 ((d+1)^2 - 1);
``f_rest`` is channel-major (all R coefficients, then G, then B); opacity is a logit, scales are
logs, rot is an unnormalized wxyz quaternion; normals are zero. Coordinates are the capture's
world (COLMAP-style, cameras in OpenCV axes), which splat tools call RDF.

Writing: by default SH degree 3 whatever the Gaussians hold (``f_rest_0..44``, the missing bands
zero-padded), the layout Inria's viewers, SuperSplat and most tools expect (62 properties,
248 bytes per Gaussian). ``compact=True`` writes only the bands in use
(:meth:`Gaussians.sh_degree_used`: a GeoLRM run's degree 0 gives 17 properties, 68 bytes).
Zero bands add nothing to a colour, so both files render the same.

Reading: by property name, so any property order (Brush writes them alphabetically) and any SH
degree 0..3 load; ``red/green/blue`` uchar colours are accepted in place of ``f_dc``.

Examples:
    >>> write_ply("g.ply", g)                 # doctest: +SKIP
    >>> write_ply("g-small.ply", g, compact=True)  # doctest: +SKIP
    >>> read_ply("g.ply").sh_degree           # doctest: +SKIP
    3
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from pipelines.fileio import atomic_path
from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.sh import rgb_to_sh0, sh_degree_from_bases

FULL_SH_DEGREE = 3  # what write_ply pads to unless compact


def _gaussian_dtype(num_rest: int) -> np.dtype:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return np.dtype([(n, "<f4") for n in names])


def _ply_data(g: Gaussians, compact: bool) -> PlyData:
    """The PlyData of ``g`` at SH degree 3 (or, compact, the degree in use)."""
    g = g.detach().to("cpu", torch.float32)
    g = g.with_sh_degree(g.sh_degree_used() if compact else FULL_SH_DEGREE)
    n, k = g.num, g.sh.shape[1]
    rest = g.sh[:, 1:].transpose(1, 2).reshape(n, 3 * (k - 1))  # [N, 3*(K-1)] channel-major
    cols = [g.means, torch.zeros(n, 3), g.sh[:, 0], rest, g.opacity_logits[:, None], g.log_scales, g.quats]
    flat = np.ascontiguousarray(torch.cat(cols, dim=1).numpy(), dtype="<f4")  # [N, 17 + 3*(K-1)]
    arr = flat.view(_gaussian_dtype(3 * (k - 1))).reshape(n)  # one record per row, no copy
    return PlyData([PlyElement.describe(arr, "vertex")], byte_order="<")


def write_ply(path: str | os.PathLike, g: Gaussians, *, compact: bool = False) -> None:
    """Write ``g`` as a standard 3DGS PLY (atomically): SH degree 3, zero-padded, unless
    ``compact`` (the degree in use; see the module doc)."""
    data = _ply_data(g, compact)
    with atomic_path(path) as tmp:
        data.write(str(tmp))


def ply_bytes(g: Gaussians, *, compact: bool = False) -> bytes:
    """The file :func:`write_ply` writes, in memory (for a browser download)."""
    buf = io.BytesIO()
    _ply_data(g, compact).write(buf)
    return buf.getvalue()


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


def write_points_ply(path: str | os.PathLike, xyz: Tensor | np.ndarray, rgb: Tensor | np.ndarray) -> None:
    """Coloured point cloud: xyz [P, 3] float, rgb [P, 3] uint8."""
    xyz, rgb = np.asarray(xyz, dtype=np.float32), np.asarray(rgb, dtype=np.uint8)
    assert xyz.ndim == 2 and xyz.shape[1] == 3 and rgb.shape == xyz.shape, (xyz.shape, rgb.shape)
    arr = np.empty(
        len(xyz), dtype=[(c, "<f4") for c in "xyz"] + [(c, "u1") for c in ("red", "green", "blue")]
    )
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


__all__ = ["read_ply", "write_ply", "ply_bytes", "write_points_ply", "read_points_ply", "FULL_SH_DEGREE"]
