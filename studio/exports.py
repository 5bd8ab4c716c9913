"""Export a run's Gaussians for other splat tools: INRIA 3DGS ``.ply``, antimatter15 ``.splat``,
Niantic ``.spz`` (``lrm-studio export-run``; the page's export button calls the same functions).

Every file holds the run in its capture's world, as the run's gaussians.ply does; .spz stores it
in that format's RUB axes (converted inside; read back by :func:`pipelines.gaussians.read_gaussians`
in our world again). Gaussians with NaN or infinite values are left out, as everywhere a run is
read (:meth:`studio.workspace.Run.gaussians`). Layouts, precision and conventions: the format
modules, pipelines/gaussians/{ply,splat,spz}.py.

The default file is ``RUN/exports/<capture>-<run-id>.<ext>`` (``-compact.ply`` for a compact PLY).

Examples:
    >>> path = export_run(run_dir, ExportRunOptions(format="spz"))     # doctest: +SKIP
    >>> path.name                                                       # doctest: +SKIP
    'garden-3dgs-20250101-120000-ab12.spz'
    >>> name, data = export_run_bytes(run_dir, ExportRunOptions())       # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError
from pipelines.gaussians import FORMATS, GaussianFormat, gaussians_bytes, write_gaussians
from studio.workspace import Run

EXPORTS_DIR = "exports"


@dataclass(frozen=True)
class ExportRunOptions:
    """What ``lrm-studio export-run`` writes (the page passes the same)."""

    format: GaussianFormat = "ply"
    """ply (INRIA 3DGS: every tool), splat (antimatter15: 32 bytes per Gaussian, colour without
    view dependence) or spz (Niantic: a tenth of the full ply or less, SH kept at 4-5 bits)."""
    compact: bool = False
    """ply only: write the SH bands the run uses (e.g. 17 properties for a degree-0 GeoLRM run)
    instead of the full degree-3 layout (62 properties) that every tool expects."""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InputError(f"unknown splat format {self.format!r}; use {', '.join(FORMATS)}")
        if self.compact and self.format != "ply":
            raise InputError(f"--compact is for ply; {self.format} never stores unused SH bands")


def export_name(run: Run, options: ExportRunOptions) -> str:
    """``<capture>-<run-id>[-compact].<ext>``: the default file name (and the browser download's)."""
    tail = "-compact" if options.compact else ""
    return f"{run.capture_root.name}-{run.id}{tail}.{options.format}"


def export_run(
    run_dir: str | os.PathLike,
    options: ExportRunOptions = ExportRunOptions(),  # noqa: B008 (frozen)
    out: str | os.PathLike | None = None,
) -> Path:
    """Write the run's Gaussians as ``options.format`` to ``out`` (a file; default
    ``RUN/exports/<export_name>``), atomically; returns the file. InputError for an unreadable
    run or an ``out`` whose suffix names another format."""
    run = Run.load(run_dir)
    path = Path(out) if out is not None else run.path / EXPORTS_DIR / export_name(run, options)
    if path.suffix.lower() != f".{options.format}":
        raise InputError(f"{path.name}: a {options.format} file must end in .{options.format}")
    g = run.gaussians()
    try:
        return write_gaussians(path, g, options.format, compact=options.compact)
    except ValueError as e:  # what the format cannot hold (e.g. .spz coordinates beyond 24 bits)
        raise InputError(f"run {run.id} as {options.format}: {e}") from e


def export_run_bytes(
    run_dir: str | os.PathLike,
    options: ExportRunOptions = ExportRunOptions(),  # noqa: B008 (frozen)
) -> tuple[str, bytes]:
    """(file name, contents) of the export, in memory: what the page sends as a download
    (``client.send_file_download(name, data)``); nothing is written."""
    run = Run.load(run_dir)
    g = run.gaussians()
    try:
        return export_name(run, options), gaussians_bytes(g, options.format, compact=options.compact)
    except ValueError as e:  # as in export_run
        raise InputError(f"run {run.id} as {options.format}: {e}") from e


__all__ = ["ExportRunOptions", "export_run", "export_run_bytes", "export_name", "EXPORTS_DIR"]
