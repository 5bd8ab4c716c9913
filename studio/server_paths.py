"""Which paths on the server the page may name: the workspace, the folders the user allowed with
``--allow-path``, and the bundled demo video; nothing else.

Every path typed into the page (Source of a new capture, a dataset to import) goes through
:meth:`ServerPaths.resolve` before anything looks at it. A path outside the allowed folders is
refused with the same message whether it exists or not, and nothing is read there, so the page
cannot be used to learn what the disk holds. Relative paths are relative to the workspace
(``uploads/clip.mp4``); ``~`` is expanded, then the check applies as to any other path. Symbolic
links are followed before the check, so a link in the workspace that points outside is outside.

Examples:
    >>> paths = ServerPaths.of(Path("/home/me/ws"), allowed=(Path("/home/me/Videos"),))   # doctest: +SKIP
    >>> paths.resolve("uploads/clip.mp4")                                               # doctest: +SKIP
    PosixPath('/home/me/ws/uploads/clip.mp4')
    >>> paths.resolve("/etc/passwd")                                                    # doctest: +SKIP
    Traceback (most recent call last):
    pipelines.errors.InputError: not allowed: the page may only use files in the workspace ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


@dataclass(frozen=True)
class ServerPaths:
    """roots: allowed folders (resolved), the workspace first; files: single allowed files."""

    roots: tuple[Path, ...]
    files: tuple[Path, ...] = ()

    @staticmethod
    def of(workspace: Path, allowed: Iterable[Path] = (), files: Iterable[Path] = ()) -> ServerPaths:
        return ServerPaths(
            roots=tuple(_resolved(p) for p in (workspace, *allowed)),
            files=tuple(_resolved(p) for p in files),
        )

    @property
    def workspace(self) -> Path:
        return self.roots[0]

    def refusal(self) -> str:
        extra = " and the folders given with --allow-path" if len(self.roots) > 1 else ""
        return (
            f"not allowed: the page may only use files in the workspace{extra} "
            "(upload the file, or restart the studio with --allow-path FOLDER)"
        )

    def resolve(self, text: str | os.PathLike) -> Path:
        """The allowed, resolved path that ``text`` names; InputError otherwise (nothing on
        the disk is looked at for a path outside the allowed folders)."""
        raw = os.fspath(text).strip()
        if not raw:
            raise InputError("no path given: upload a file or type a path in the workspace")
        if "\x00" in raw:
            raise InputError(self.refusal())
        p = Path(raw).expanduser()
        path = (p if p.is_absolute() else self.workspace / p).resolve()
        if path in self.files or any(path.is_relative_to(root) for root in self.roots):
            return path
        raise InputError(self.refusal())

    def shown(self, path: str | os.PathLike) -> str:
        """``path`` as the page shows it: relative to the workspace when inside it."""
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.workspace))
        except (ValueError, OSError):
            return str(p)
