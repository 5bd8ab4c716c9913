"""Gaussian splat files by format: INRIA 3DGS ``.ply``, antimatter15 ``.splat``, Niantic ``.spz``.

One entry point per direction, choosing the format's module (ply.py, splat.py, spz.py: layouts,
precision and coordinate conventions are documented there). Every format holds the Gaussians of
the capture's world as our PLY files do; .spz converts to and from its own RUB axes inside.

Examples:
    >>> write_gaussians("out/run.spz", g)                 # doctest: +SKIP
    >>> read_gaussians("out/run.spz").num == g.num        # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.ply import ply_bytes, read_ply, write_ply
from pipelines.gaussians.splat import read_splat, splat_bytes, write_splat
from pipelines.gaussians.spz import read_spz, spz_bytes, write_spz

GaussianFormat = Literal["ply", "splat", "spz"]
FORMATS: tuple[GaussianFormat, ...] = get_args(GaussianFormat)


def format_of(path: str | os.PathLike) -> GaussianFormat:
    """The format named by a file's suffix (.ply, .splat, .spz); ValueError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{Path(path).name}: not a splat file (expected .ply, .splat or .spz)")
    return suffix  # type: ignore[return-value]


def gaussians_bytes(g: Gaussians, fmt: GaussianFormat, *, compact: bool = False) -> bytes:
    """The file contents of ``g`` in ``fmt``. compact: PLY only, the SH degree in use instead
    of 3 (the other formats never store all-zero bands)."""
    if fmt == "ply":
        return ply_bytes(g, compact=compact)
    if fmt == "splat":
        return splat_bytes(g)
    if fmt == "spz":
        return spz_bytes(g)
    raise ValueError(f"unknown splat format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_gaussians(
    path: str | os.PathLike, g: Gaussians, fmt: GaussianFormat | None = None, *, compact: bool = False
) -> Path:
    """Write ``g`` atomically in ``fmt`` (default: from the suffix); returns the path."""
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt == "ply":
        write_ply(path, g, compact=compact)
    elif fmt == "splat":
        write_splat(path, g)
    elif fmt == "spz":
        write_spz(path, g)
    else:
        raise ValueError(f"unknown splat format {fmt!r}; use one of {', '.join(FORMATS)}")
    return path


def read_gaussians(path: str | os.PathLike) -> Gaussians:
    """Read a .ply, .splat or .spz file (by suffix) into float32 CPU Gaussians in the capture's
    world frame."""
    readers = {"ply": read_ply, "splat": read_splat, "spz": read_spz}
    return readers[format_of(path)](path)


__all__ = ["GaussianFormat", "FORMATS", "format_of", "gaussians_bytes", "write_gaussians", "read_gaussians"]
