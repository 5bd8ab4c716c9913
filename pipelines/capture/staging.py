"""Build a folder beside its destination and move it into place only when complete.

A capture folder is built in a hidden temporary folder next to the destination
(``.<name>.tmp-<hex>``). When the build finishes, the temporary folder is renamed onto the
destination; when it fails or is cancelled, the temporary folder is removed and whatever was at
the destination before is untouched. An existing destination is replaced only with
``overwrite=True`` (it is renamed away first and deleted after the new folder is in place).

Examples:
    >>> with staged_folder(workspace / "garden", overwrite=False) as tmp:   # doctest: +SKIP
    ...     (tmp / "cameras.json").write_text("...")
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import InputError


def check_destination(dest: str | os.PathLike, overwrite: bool) -> Path:
    """Raise InputError if ``dest`` exists and ``overwrite`` is False (checked before any work)."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise InputError(
            f"{dest} already exists; pass --overwrite to replace it or --name to choose another capture name"
        )
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest} exists and is not a folder; remove it or choose another --name")
    return dest


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it becomes ``dest``."""
    dest = check_destination(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            if not overwrite:  # appeared while we were building
                raise InputError(f"{dest} appeared while building; pass --overwrite to replace it")
            old = dest.parent / f".{dest.name}.old-{secrets.token_hex(3)}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
