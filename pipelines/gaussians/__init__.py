"""Gaussians: the container, PLY / .splat I/O, spherical harmonics and the renderer.

Examples:
    >>> from pipelines.gaussians import Gaussians, read_ply, write_ply, render
"""

from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.ply import read_ply, read_points_ply, write_ply, write_points_ply, write_splat
from pipelines.gaussians.render import BLACK, WHITE, Background, Render, gsplat_available, render

__all__ = [
    "Gaussians", "read_ply", "write_ply", "write_splat", "read_points_ply", "write_points_ply",
    "render", "Render", "gsplat_available", "Background", "BLACK", "WHITE",
]  # fmt: skip
