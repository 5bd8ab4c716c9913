"""Small workspaces for the studio and viewer tests: capture folders with real image files,
cameras on a circle around the origin, sparse points, and runs with PLYs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import write_image
from pipelines.gaussians import Gaussians, write_points_ply
from studio.workspace import new_run_dir, write_run


def circle_cameras(n: int, *, width: int = 64, height: int = 48, radius: float = 3.0) -> Cameras:
    """n cameras on a circle of ``radius`` in the z = 0 plane, looking at the origin, world up +z."""
    t = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n)
    eye = torch.stack([radius * torch.cos(t), radius * torch.sin(t), torch.full_like(t, 0.5)], dim=1)
    return Cameras.look_at(
        eye, torch.zeros(n, 3), fov_y_deg=50.0, width=width, height=height, up=torch.tensor([0.0, 0, 1])
    )


def make_capture(
    root: Path,
    n: int,
    gen: torch.Generator,
    *,
    width: int = 64,
    height: int = 48,
    points: int = 200,
    unregistered: int = 0,
    cameras: Cameras | None = None,
) -> Capture:
    """A capture folder with n random-colour PNG frames (each a distinct flat colour plus noise),
    cameras on a circle (or ``cameras``, n of width x height), ``points`` random sparse points
    and ``unregistered`` extra frames that SfM "could not place"."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    file_paths = []
    for i in range(n + unregistered):
        base = torch.rand(3, 1, 1, generator=gen)
        img = (base + 0.1 * torch.rand(3, height, width, generator=gen)).clamp(0, 1)
        fp = f"images/{i:06d}.png"
        write_image(root / fp, img)
        file_paths.append(fp)
    points_rel = None
    if points:
        xyz = (torch.rand(points, 3, generator=gen) * 2 - 1).numpy()
        rgb = (torch.rand(points, 3, generator=gen) * 255).to(torch.uint8).numpy()
        write_points_ply(root / "points.ply", xyz, rgb)
        points_rel = "points.ply"
    cap = Capture(
        root=root,
        file_paths=file_paths[:n],
        cameras=circle_cameras(n, width=width, height=height) if cameras is None else cameras,
        splits=default_splits(n),
        unregistered=file_paths[n:],
        points=points_rel,
        meta={"source": "test"},
    )
    cap.save()
    return cap


def make_run(
    capture_root: Path,
    gen: torch.Generator,
    *,
    method: str = "3dgs",
    n: int = 500,
    info: dict | None = None,
    extent: float = 0.8,
) -> Path:
    """A finished run with n random Gaussians inside the cameras' view."""
    d = new_run_dir(capture_root, method)
    g = Gaussians.random(n, sh_degree=1, extent=extent, scale_range=(0.02, 0.08), generator=gen)
    g.opacity_logits = g.opacity_logits.abs() + 2.0  # mostly opaque, so the page visibly shows them
    write_run(d, g, {"method": method, "params": {}, "timings": {"total_s": 1.5}, **(info or {})})
    return d


def image_std(png_or_array) -> float:
    arr = np.asarray(png_or_array, dtype=np.float64)
    return float(arr[..., :3].std())


def plain(markdown: str) -> str:
    """A markdown widget's text with the escapes of viewer.markup.md removed (what a reader sees,
    markup characters such as ** aside)."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)
