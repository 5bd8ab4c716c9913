"""``lrm-studio paths export PATH.json --out FILE [--nerfstudio-world] [--transforms-json FILE]
[--dataparser-transforms FILE]``.

Writes a camera path of a capture (one the studio saved, CAPTURE/paths/<name>.json, or any
camera_path.json in the capture's world) as a nerfstudio camera_path.json in another world: with
``--nerfstudio-world``, the world of the capture's nerfstudio export (``lrm-studio export
CAPTURE --format nerfstudio``), so that nerfstudio renders the same views on that dataset; with
``--dataparser-transforms`` too, a model trained on it (ns-render and nerfstudio's viewer work in
its normalized world). The file records its world: ``lrm-studio render`` and the studio read it
back into the capture's world by themselves.

A separate command rather than an option of ``export``: the path file is what is exported,
after training when the model's transform is wanted (``export`` runs before training), and it
takes the same world flags as ``lrm-studio render --path``, which reads such files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from pipelines.paths import PathWorld


def export(
    path: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="PATH_JSON")],
    out: Path,
    world: Annotated[PathWorld, tyro.conf.arg(name="")] = PathWorld(),  # noqa: B008 (frozen)
) -> int:
    """Write a capture's camera path as a camera_path.json, in nerfstudio's world if asked.

    Args:
        path: a camera_path.json in the capture's world (e.g. CAPTURE/paths/orbit.json).
        out: the camera_path.json to write (atomically).
        world: the world to write in (see PathWorld): --nerfstudio-world, --transforms-json,
            --dataparser-transforms; none: the capture's.
    """
    from studio.console import console
    from studio.paths import export_camera_path

    written, frames = export_camera_path(path, out, world)
    console.print(f"[green]wrote[/green] {written}: {frames} frames", highlight=False)
    return 0
