"""Atomic file writes: a crash never leaves a half-written file that the studio later trusts.

Every writer in the project goes through :func:`atomic_path`: it yields a temporary path in the
destination's folder and renames it over the destination only when the block finished without
an exception. The file gets the permissions a plain ``open(path, "w")`` would give it (0666
less the process's umask; the temporary file itself starts private). JSON is strict: NaN and
infinities are refused instead of written as tokens other tools cannot parse.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask would set it
    for every thread for a moment)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # at import, before the studio starts threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success ``os.replace`` it onto ``path``.

    ``suffix`` defaults to the destination's own suffix, so writers that pick a format from the
    extension (imageio, plyfile) still see it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON with 1-space indentation and a trailing newline, written atomically; ValueError for
    NaN or infinite numbers (strict JSON has none)."""
    write_text(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)
