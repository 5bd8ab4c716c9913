"""Gaussians: the container, splat files (.ply, .splat, .spz), spherical harmonics and the renderer.

Examples:
    >>> from pipelines.gaussians import Gaussians, read_ply, write_ply, render
"""

from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.formats import (
    FORMATS,
    GaussianFormat,
    gaussians_bytes,
    read_gaussians,
    write_gaussians,
)
from pipelines.gaussians.ply import read_ply, read_points_ply, write_ply, write_points_ply
from pipelines.gaussians.render import BLACK, WHITE, Background, Render, gsplat_available, render
from pipelines.gaussians.splat import read_splat, write_splat
from pipelines.gaussians.spz import read_spz, write_spz

__all__ = [
    "Gaussians", "read_ply", "write_ply", "read_points_ply", "write_points_ply",
    "read_splat", "write_splat", "read_spz", "write_spz",
    "GaussianFormat", "FORMATS", "gaussians_bytes", "read_gaussians", "write_gaussians",
    "render", "Render", "gsplat_available", "Background", "BLACK", "WHITE",
]  # fmt: skip
