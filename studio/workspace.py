"""The workspace on disk: capture folders and their runs (ARCHITECTURE.md).

    <workspace>/<capture>/cameras.json, images/, points.ply, capture.json
    <workspace>/<capture>/runs/<run-id>/run.json, gaussians.ply, renders/
    <workspace>/<capture>/paths/<name>.json        camera paths (nerfstudio camera_path.json)
    <workspace>/<capture>/videos/<name>-<A|B|A-vs-B>-<time>.mp4   videos along paths (studio.paths)

A run is complete once its run.json exists: it is written last, atomically, so a crash during a
run never leaves a folder the studio lists as a finished run.

Examples:
    >>> run_dir = new_run_dir(capture_root, "long-lrm")                 # doctest: +SKIP
    >>> write_run(run_dir, gaussians, {"method": "long-lrm", ...})      # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines.fileio import read_json, write_json
from pipelines.gaussians import Gaussians, read_ply, write_ply

RUN_JSON = "run.json"
GAUSSIANS_PLY = "gaussians.ply"


def list_captures(workspace: str | os.PathLike) -> list[Path]:
    """Capture folders (those with a cameras.json) directly under ``workspace``, by name."""
    ws = Path(workspace)
    if not ws.is_dir():
        return []
    return sorted(p for p in ws.iterdir() if (p / "cameras.json").is_file())


def new_run_dir(capture_root: str | os.PathLike, method: str) -> Path:
    """Create ``runs/<method>-<YYYYmmdd-HHMMSS>-<4 hex>`` and return it."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(capture_root) / "runs" / f"{method}-{stamp}-{secrets.token_hex(2)}"
    path.mkdir(parents=True)
    return path


def write_run(run_dir: str | os.PathLike, gaussians: Gaussians, info: dict) -> None:
    """Write gaussians.ply, then run.json (which marks the run complete). ``info`` follows the
    run.json contract: method, params, weights, timings, num_gaussians, device, metrics."""
    run_dir = Path(run_dir)
    write_ply(run_dir / GAUSSIANS_PLY, gaussians)
    info = {"num_gaussians": gaussians.num, **info}
    write_json(run_dir / RUN_JSON, info)


def update_run_info(run_dir: str | os.PathLike, **fields) -> dict:
    """Merge top-level fields into run.json (e.g. metrics after an evaluation)."""
    path = Path(run_dir) / RUN_JSON
    info = read_json(path)
    info.update(fields)
    write_json(path, info)
    return info


@dataclass
class Run:
    path: Path
    info: dict

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def capture_root(self) -> Path:
        return self.path.parent.parent

    def gaussians(self) -> Gaussians:
        return read_ply(self.path / GAUSSIANS_PLY)

    @staticmethod
    def load(run_dir: str | os.PathLike) -> Run:
        run_dir = Path(run_dir)
        if not (run_dir / RUN_JSON).is_file():
            raise FileNotFoundError(f"{run_dir} is not a finished run (no {RUN_JSON})")
        return Run(run_dir, read_json(run_dir / RUN_JSON))


def list_runs(capture_root: str | os.PathLike) -> list[Run]:
    """Finished runs of a capture, oldest first."""
    runs_dir = Path(capture_root) / "runs"
    if not runs_dir.is_dir():
        return []
    runs = [Run.load(p) for p in runs_dir.iterdir() if (p / RUN_JSON).is_file()]
    return sorted(runs, key=lambda r: (r.path.stat().st_mtime, r.id))


def delete_run(run_dir: str | os.PathLike) -> None:
    """Remove a run folder (the caller confirms with the user first)."""
    run_dir = Path(run_dir)
    assert run_dir.parent.name == "runs", f"refusing to delete {run_dir}: not inside a runs/ folder"
    shutil.rmtree(run_dir)
