"""``lrm-studio export-run RUN [--format ply|splat|spz] [--compact] [--out FILE]``: a run's
Gaussians as a file other splat tools open (:mod:`studio.exports` does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from pipelines.gaussians.formats import GaussianFormat
from studio.exports import ExportRunOptions

_DEFAULT = ExportRunOptions()


def main(
    run: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN")],
    format: Annotated[GaussianFormat, tyro.conf.arg(name="format")] = _DEFAULT.format,
    compact: bool = _DEFAULT.compact,
    out: Path | None = None,
) -> int:
    """Export a run as INRIA 3DGS .ply, antimatter15 .splat or Niantic .spz.

    Args:
        run: A run folder (CAPTURE/runs/RUN-ID).
        format: ply (every tool; SH degree 3), splat (32 bytes per Gaussian, no view-dependent
            colour) or spz (a tenth of the full ply or less; stored in RUB axes as the format asks).
        compact: ply only: the SH bands the run uses instead of the full degree-3 layout.
        out: Output file, ending in the format's suffix; None writes RUN/exports/CAPTURE-RUNID.FORMAT.
    """
    from studio.console import console
    from studio.exports import export_run

    path = export_run(run, ExportRunOptions(format=format, compact=compact), out)
    console.print(f"[green]wrote[/green] {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)
    return 0
