"""The bundled demo capture: copied from ``assets/demo`` into a workspace on first start.

``assets/demo`` is a capture folder (``cameras.json``, ``images/``, optionally ``points.ply``).
The copy goes to a temporary folder first and is renamed into place, so a crash mid-copy
never leaves a half-copied demo that the studio would list.

Examples:
    >>> install_demo(workspace)          # doctest: +SKIP
    PosixPath('.../lrm-studio-workspace/demo')
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

DEMO_NAME = "demo"
DEMO_ASSET = Path(__file__).resolve().parents[1] / "assets" / "demo"


def demo_available(source: Path = DEMO_ASSET) -> bool:
    """True when ``source`` is a capture folder (has a cameras.json)."""
    return (source / "cameras.json").is_file()


def install_demo(
    workspace: str | os.PathLike, *, source: Path = DEMO_ASSET, name: str = DEMO_NAME
) -> Path | None:
    """Copy the demo capture into ``workspace/name`` unless it is there already.

    Returns the capture folder, or None when this build ships no demo capture (logged).
    Runs of the source (``runs/``) are not copied: the workspace's runs are its own.
    """
    target = Path(workspace) / name
    if (target / "cameras.json").is_file():
        return target
    if not demo_available(source):
        log.info("no demo capture in %s; open a capture of the workspace or upload one", source)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", "__pycache__"))
        if target.exists():  # an earlier copy without cameras.json: incomplete, replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("copied the demo capture into %s", target)
    return target
