"""The studio's settings: one dataclass that ``lrm-studio serve`` parses and the viewer reads.

Defaults live here and nowhere else.

Default workspace: ``$LRM_STUDIO_WORKSPACE`` when set, else ``./lrm-studio-workspace`` in the
current directory (a visible folder beside where the studio was started, so results are easy
to find, copy and delete). A workspace holds capture folders (``<capture>/cameras.json``,
``images/``, ``runs/``) and ``uploads/`` (files uploaded from the browser).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from studio.console import default_is

WORKSPACE_ENV = "LRM_STUDIO_WORKSPACE"
DEFAULT_WORKSPACE_NAME = "lrm-studio-workspace"


def default_workspace() -> Path:
    """``$LRM_STUDIO_WORKSPACE`` or ``./lrm-studio-workspace``."""
    env = os.environ.get(WORKSPACE_ENV)
    return Path(env) if env else Path.cwd() / DEFAULT_WORKSPACE_NAME


@dataclass(frozen=True)
class StudioConfig:
    workspace: Annotated[Path | None, default_is("$LRM_STUDIO_WORKSPACE, else ./lrm-studio-workspace")] = None
    """Workspace folder (created if missing)."""
    host: str = "127.0.0.1"
    """Address to bind: 127.0.0.1 serves this machine only; 0.0.0.0 exposes the studio to the network
    (then a token is required: see --token)."""
    port: int = 8080
    """Port to serve on; the next free one is used when it is taken (0: any free port)."""
    token: Annotated[str | None, default_is("a new random one per start off loopback, none on loopback")] = (
        None
    )
    """Secret the page's URL must carry (?token=...); on loopback only this machine's own pages get in."""
    capture: Annotated[str | None, default_is("the demo, else the first one")] = None
    """Capture to open at start (a folder name in the workspace)."""
    demo: bool = True
    """Copy the bundled demo capture (assets/demo) into the workspace on first start."""
    allow_path: Annotated[tuple[Path, ...], default_is("none")] = ()
    """Folders outside the workspace whose videos and photos the page may use as a Source (e.g. ~/Videos).
    The workspace is always allowed; nothing else on the disk is (see SECURITY.md)."""
    browser_budget: int = 1_000_000
    """Most splats sent to the browser per result, chosen by importance; the full set stays on the server."""
    upload_limit_mb: int = 4096
    """Largest file the browser's upload button accepts (MiB); give bigger ones as a path on the server."""
    uploads_quota_mb: int = 32768
    """Most the workspace's uploads/ folder may hold (MiB); uploads beyond it are refused until old ones
    are cleared (Capture panel: Clear uploads)."""
    thumbnail_px: int = 160
    """Longer side of the camera-frustum thumbnails, in pixels."""

    def resolved_workspace(self) -> Path:
        return (self.workspace if self.workspace is not None else default_workspace()).expanduser().resolve()

    @property
    def upload_limit_bytes(self) -> int:
        return self.upload_limit_mb * 1024 * 1024

    @property
    def uploads_quota_bytes(self) -> int:
        return self.uploads_quota_mb * 1024 * 1024
