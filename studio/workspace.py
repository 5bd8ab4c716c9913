"""The workspace on disk: capture folders and their runs (ARCHITECTURE.md).

    <workspace>/<capture>/cameras.json, images/, points.ply, capture.json
    <workspace>/<capture>/runs/<run-id>/run.json, gaussians.ply, renders/
    <workspace>/<capture>/paths/<name>.json        camera paths (nerfstudio camera_path.json)
    <workspace>/<capture>/videos/<name>-<A|B|A-vs-B>-<time>.mp4   videos along paths (studio.paths)

A run is complete once its run.json exists: it is written last, atomically, so a crash during a
run never leaves a folder the studio lists as a finished run. A run made in one go (a
feed-forward reconstruction) is written by :func:`write_new_run` into a hidden folder that is
renamed into place when complete, so a failure (a full disk) leaves no run folder at all. A run
whose run.json cannot be read is still listed (:attr:`Run.error` says why) so it can be deleted;
the others are unaffected. :func:`remove_leftovers` deletes what crashed processes left behind.

Examples:
    >>> write_new_run(capture_root, "long-lrm", gaussians, {"method": "long-lrm"})   # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.capture.staging import staged_folder
from pipelines.errors import InputError
from pipelines.fileio import read_json, write_json
from pipelines.gaussians import BLACK, Background, Gaussians, read_ply, write_ply

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
GAUSSIANS_PLY = "gaussians.ply"


def list_captures(workspace: str | os.PathLike) -> list[Path]:
    """Capture folders (those with a cameras.json) directly under ``workspace``, by name."""
    ws = Path(workspace)
    if not ws.is_dir():
        return []
    return sorted(p for p in ws.iterdir() if (p / "cameras.json").is_file())


def _run_path(capture_root: str | os.PathLike, method: str) -> Path:
    """``runs/<method>-<YYYYmmdd-HHMMSS>-<4 hex>`` (not created)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(capture_root) / "runs" / f"{method}-{stamp}-{secrets.token_hex(2)}"


def new_run_dir(capture_root: str | os.PathLike, method: str) -> Path:
    """Create ``runs/<method>-<YYYYmmdd-HHMMSS>-<4 hex>`` and return it (for runs that write as
    they go, e.g. an optimization's checkpoints)."""
    path = _run_path(capture_root, method)
    path.mkdir(parents=True)
    return path


def write_new_run(capture_root: str | os.PathLike, method: str, gaussians: Gaussians, info: dict) -> Path:
    """A new finished run (:func:`write_run`) built in a hidden folder beside it and renamed
    into place when both files are written; returns its folder."""
    dest = _run_path(capture_root, method)
    with staged_folder(dest) as tmp:
        write_run(tmp, gaussians, info)
    return dest


def write_run(run_dir: str | os.PathLike, gaussians: Gaussians, info: dict) -> None:
    """Write gaussians.ply (the full INRIA layout, SH degree 3 zero-padded, so other tools open
    it as it is), then run.json (which marks the run complete). ``info`` follows the run.json
    contract: method, params, weights, timings, num_gaussians, device, metrics."""
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
    """A run folder and its run.json; ``error`` says why run.json could not be read (then
    ``info`` is empty and only deleting the run makes sense)."""

    path: Path
    info: dict
    error: str | None = None

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def capture_root(self) -> Path:
        return self.path.parent.parent

    @property
    def background(self) -> Background:
        """RGB in [0, 1] behind the run's Gaussians, for every render of it: run.json's
        ``params.background``; for runs written before it was recorded, the model's own for a
        feed-forward method (:func:`pipelines.models.base.model_background`), else black."""
        from pipelines.models.base import MODELS, model_background

        bg = (self.info.get("params") or {}).get("background") if isinstance(self.info, dict) else None
        if isinstance(bg, (list, tuple)) and len(bg) == 3 and all(isinstance(c, (int, float)) for c in bg):
            return tuple(min(max(float(c), 0.0), 1.0) for c in bg)
        method = self.info.get("method") if isinstance(self.info, dict) else None
        return model_background(method) if method in MODELS else BLACK

    def gaussians(self) -> Gaussians:
        """The run's Gaussians (CPU), those with NaN or infinite parameters dropped (logged: they
        cannot be drawn); InputError when the run is unreadable or none is left."""
        if self.error is not None:
            raise InputError(f"run {self.id}: {self.error}")
        try:
            g = read_ply(self.path / GAUSSIANS_PLY)
        except FileNotFoundError as e:
            raise InputError(f"run {self.id} has no {GAUSSIANS_PLY}; delete it") from e
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"run {self.id}: {GAUSSIANS_PLY} cannot be read ({e}); delete it") from e
        finite = g.finite()
        if finite.num == 0:
            what = "no Gaussians" if g.num == 0 else f"only NaN or infinite values ({g.num:,} Gaussians)"
            raise InputError(f"run {self.id} holds {what}; delete it")
        if finite.num < g.num:
            log.warning("run %s: %d of %d Gaussians have NaN or infinite values; left out", self.id,
                        g.num - finite.num, g.num)  # fmt: skip
        return finite

    @staticmethod
    def load(run_dir: str | os.PathLike) -> Run:
        """The run in ``run_dir``; FileNotFoundError when it has no run.json (unfinished), a Run
        with ``error`` set when its run.json is not a JSON object."""
        run_dir = Path(run_dir)
        if not (run_dir / RUN_JSON).is_file():
            raise FileNotFoundError(f"{run_dir} is not a finished run (no {RUN_JSON})")
        try:
            info = read_json(run_dir / RUN_JSON)
        except (OSError, ValueError) as e:
            return Run(run_dir, {}, f"its {RUN_JSON} cannot be read ({e})")
        if not isinstance(info, dict):
            return Run(run_dir, {}, f"its {RUN_JSON} is not a JSON object")
        return Run(run_dir, info)


def list_runs(capture_root: str | os.PathLike) -> list[Run]:
    """Finished runs of a capture (unreadable ones included, with ``error`` set), oldest first."""
    runs_dir = Path(capture_root) / "runs"
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if not p.name.startswith(".") and (p / RUN_JSON).is_file()]
    runs = [Run.load(p) for p in found]
    return sorted(runs, key=lambda r: (r.path.stat().st_mtime, r.id))


LEFTOVER_AGE_S = 600.0  # what a crash left behind is removed once it is this old (not in use)


def remove_leftovers(workspace: str | os.PathLike, *, older_than_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """Delete what crashed or killed processes left in a workspace and return it: temporary
    upload files of dead servers, hidden half-built capture and run folders, and empty run
    folders, once untouched for ``older_than_s`` seconds (another process may still be making
    a recent one). Finished runs and resumable ones (with a checkpoint) are never touched."""
    from studio.uploads import remove_stale_parts

    ws = Path(workspace)
    removed = remove_stale_parts(ws / "uploads")
    cutoff = time.time() - older_than_s

    def old(p: Path) -> bool:
        try:
            return max([p.stat().st_mtime] + [q.stat().st_mtime for q in p.rglob("*")]) < cutoff
        except OSError:
            return False

    staged = [p for p in ws.glob(".*") if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name)]
    for capture in list_captures(ws):
        runs = capture / "runs"
        if runs.is_dir():
            staged += [p for p in runs.iterdir() if p.is_dir() and p.name.startswith(".")]
            staged += [p for p in runs.iterdir() if p.is_dir() and not any(p.iterdir())]
    for p in staged:
        if old(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    for p in removed:
        log.info("removed a leftover of an interrupted operation: %s", p.relative_to(ws))
    return removed


def delete_run(run_dir: str | os.PathLike) -> None:
    """Remove a run folder (the caller confirms with the user first)."""
    run_dir = Path(run_dir)
    assert run_dir.parent.name == "runs", f"refusing to delete {run_dir}: not inside a runs/ folder"
    shutil.rmtree(run_dir)
