"""Files uploaded from the browser: streamed to disk part by part, size-limited, names sanitized.

An upload is written to a hidden temporary file in ``<workspace>/uploads/`` as its parts
arrive (never held in memory as a whole) and renamed to its final name only once every byte
arrived. The final name is the client's file name reduced to a safe base name (letters, digits,
``.``, ``-``, ``_``; no folders, no leading dot), so an upload can never write outside the
uploads folder; a taken name gets ``-2``, ``-3``... claimed atomically, so uploads of one name
from several tabs at once never overwrite each other. A zip of photos is unpacked flat into a
folder with the same rules, after its member count, its uncompressed total and its compression
ratio were checked against limits (a zip bomb is refused before anything is written).

Limits on what is kept: each upload at most ``limit_bytes``; all of ``uploads/`` at most
``quota_bytes`` (:func:`folder_bytes`), and never more than the disk has free minus
:data:`DISK_RESERVE`. :func:`remove_stale_parts` deletes the temporary files of uploads whose
server died mid-transfer.

Examples:
    >>> sanitize_filename("../../etc/passwd")
    'passwd'
    >>> sanitize_filename("Mein Urlaub (1).MP4")
    'Mein_Urlaub_1_.MP4'
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import Literal

from pipelines.errors import InputError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
ARCHIVE_SUFFIXES = frozenset({".zip"})
JSON_SUFFIXES = frozenset({".json"})  # camera paths
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES | ARCHIVE_SUFFIXES
MAX_NAME = 120
PHOTOS_DIR = "photos"  # single uploaded photos collect here, under the uploads folder
MAX_ZIP_MEMBERS = 5000  # photos in one zip
MAX_ZIP_RATIO = 50.0  # uncompressed / compressed size of a zip's photos (JPEG, PNG: about 1)
DISK_RESERVE = 1 << 30  # bytes an upload or an unpacked zip must leave free on the disk
PART_SUFFIX = ".part"

UploadKind = Literal["video", "image", "zip"]


class UploadError(InputError):
    """An upload was refused or broken; the message says why and what to do instead."""


def sanitize_filename(name: str) -> str:
    """A safe base name for a client-supplied file name: the last path component (either slash),
    NFKC-normalized, characters other than letters, digits, ``.``, ``-``, ``_`` replaced by
    ``_``, runs of ``_`` collapsed, leading dots and dashes dropped, at most 120 characters
    (the suffix kept). Never empty, never ``.`` or ``..``."""
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFKC", base)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base)
    base = re.sub(r"_+", "_", base).lstrip(".-")
    if len(base) > MAX_NAME:
        stem, suffix = os.path.splitext(base)
        suffix = suffix[:16]
        base = stem[: MAX_NAME - len(suffix)] + suffix
    return base if base.strip("._-") else "upload"


def upload_kind(name: str) -> UploadKind:
    """video / image / zip from the suffix; raises UploadError for anything else."""
    suffix = Path(name).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in ARCHIVE_SUFFIXES:
        return "zip"
    raise UploadError(
        f"{name!r}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}), a photo "
        f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a .zip of photos"
    )


def inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts`` resolved, refusing anything that resolves outside ``root``."""
    root_path = Path(root).resolve()
    path = root_path.joinpath(*parts).resolve()
    if not path.is_relative_to(root_path):
        raise UploadError(f"refusing a path outside {root_path}: {'/'.join(parts)!r}")
    return path


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/<stem>-2<suffix>``, ``-3``, ... if taken (a snapshot: use
    :func:`claim_unique` when another thread may take the same name meanwhile)."""
    path = folder / name
    stem, suffix = os.path.splitext(name)
    i = 2
    while path.exists():
        path = folder / f"{stem}-{i}{suffix}"
        i += 1
    return path


def claim_unique(folder: Path, name: str, claim) -> Path:
    """The first of ``folder/name``, ``<stem>-2<suffix>``, ... that ``claim(path)`` takes:
    ``claim`` must create the path atomically and raise FileExistsError when it exists (e.g.
    ``os.link``, ``os.mkdir``, ``open(path, "xb")``), so two threads never get the same one."""
    stem, suffix = os.path.splitext(name)
    for i in range(1, 100_000):
        path = folder / (name if i == 1 else f"{stem}-{i}{suffix}")
        try:
            claim(path)
            return path
        except FileExistsError:
            continue
    raise UploadError(f"{name}: too many files of that name in {folder.name}; clear the uploads")


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the files under ``folder`` (0 if missing)."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def check_room(folder: Path, size_bytes: int, quota_bytes: int | None, what: str) -> None:
    """UploadError unless ``size_bytes`` more fit under ``quota_bytes`` for ``folder``'s
    contents and leave :data:`DISK_RESERVE` free on its disk."""
    if quota_bytes is not None:
        used = folder_bytes(folder)
        if used + size_bytes > quota_bytes:
            raise UploadError(
                f"{what}: the uploads folder holds {used / 2**30:.1f} GiB and may hold "
                f"{quota_bytes / 2**30:.1f} GiB; clear old uploads (Capture panel: Clear uploads)"
            )
    free = shutil.disk_usage(folder).free
    if size_bytes > free - DISK_RESERVE:
        raise UploadError(
            f"{what} needs {size_bytes / 2**20:.0f} MiB but the disk has {free / 2**20:.0f} MiB free; "
            "free some space first"
        )


def remove_stale_parts(uploads_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of uploads whose process is gone (a server killed
    mid-transfer); returns them. Files of live processes (another studio on the same workspace)
    are kept."""
    removed = []
    folder = Path(uploads_dir)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".*{PART_SUFFIX}"):
        parts = p.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DiskUpload:
    """One upload in flight, written to disk as its parts arrive.

    ``size_bytes`` and ``part_count`` are what the client declared; every part but the last
    has the same length (the client's chunk size), so part i lands at offset i * that length.
    Raises UploadError at once if the declared size is over ``limit_bytes``, does not fit the
    quota or the disk (:func:`check_room`), or the suffix is not in ``suffixes`` (default:
    videos, photos, zips); a part that would overrun the declared size aborts the upload.
    """

    def __init__(
        self,
        uploads_dir: str | os.PathLike,
        filename: str,
        *,
        size_bytes: int,
        part_count: int,
        limit_bytes: int,
        quota_bytes: int | None = None,
        suffixes: frozenset[str] = MEDIA_SUFFIXES,
    ):
        if suffixes == MEDIA_SUFFIXES:
            upload_kind(filename)  # says which kinds are accepted
        elif Path(filename).suffix.lower() not in suffixes:
            raise UploadError(f"{filename!r}: not a {' or '.join(sorted(suffixes))} file")
        if size_bytes > limit_bytes:
            raise UploadError(
                f"{filename!r} is {size_bytes / 2**20:.1f} MiB, over the upload limit of "
                f"{limit_bytes / 2**20:.0f} MiB; "
                "give its path on the server instead (or start the studio with a larger --upload-limit-mb)"
            )
        if size_bytes < 0 or part_count < 0 or (part_count == 0) != (size_bytes == 0):
            raise UploadError(
                f"{filename!r}: inconsistent upload header ({size_bytes} bytes in {part_count} parts)"
            )
        self.uploads_dir = Path(uploads_dir)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        check_room(self.uploads_dir, size_bytes, quota_bytes, repr(filename))
        self.name = sanitize_filename(filename)
        self.size_bytes = size_bytes
        self.part_count = part_count
        self.received_bytes = 0
        self._parts: set[int] = set()
        self._chunk: int | None = None
        self._tmp = inside(self.uploads_dir, f".{self.name}.{os.getpid()}.{id(self):x}{PART_SUFFIX}")
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    @property
    def complete(self) -> bool:
        return len(self._parts) == self.part_count and self.received_bytes == self.size_bytes

    def write_part(self, index: int, data: bytes) -> bool:
        """Write part ``index``; True once every part arrived. Duplicate parts are ignored."""
        if self._fd is None:
            raise UploadError(f"{self.name}: upload already closed")
        if not 0 <= index < self.part_count:
            self.abort()
            raise UploadError(f"{self.name}: part {index} of {self.part_count} is out of range")
        if index in self._parts:
            return self.complete
        if index == self.part_count - 1:
            offset = self.size_bytes - len(data)
        else:
            if self._chunk is None:
                self._chunk = len(data)
            if len(data) != self._chunk:
                self.abort()
                raise UploadError(f"{self.name}: part {index} has {len(data)} bytes, expected {self._chunk}")
            offset = index * self._chunk
        # Parts are uniform but the last, so once the byte total matches the declared size
        # the offsets tile the file exactly; capping the total is what keeps a lying client out.
        if (
            offset < 0
            or offset + len(data) > self.size_bytes
            or self.received_bytes + len(data) > self.size_bytes
        ):
            self.abort()
            raise UploadError(f"{self.name}: more data than the declared {self.size_bytes} bytes")
        os.pwrite(self._fd, data, offset)
        self._parts.add(index)
        self.received_bytes += len(data)
        return self.complete

    def finish(self, folder: str | os.PathLike | None = None) -> Path:
        """Close and move the file to its final name in ``folder`` (default: the uploads
        folder; it must lie inside it); a taken name gets a ``-2``, ``-3``... suffix."""
        if not self.complete:
            self.abort()
            raise UploadError(
                f"{self.name}: incomplete upload ({self.received_bytes} of {self.size_bytes} bytes); retry"
            )
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        target_dir = self.uploads_dir if folder is None else inside(self.uploads_dir, os.fspath(folder))
        target_dir.mkdir(parents=True, exist_ok=True)
        try:
            final = claim_unique(target_dir, self.name, lambda p: os.link(self._tmp, p))
        finally:
            self._tmp.unlink(missing_ok=True)
        return final

    def abort(self) -> None:
        """Close and delete the partial file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)


def unpack_photos(
    zip_path: str | os.PathLike, dest_dir: str | os.PathLike, *, limit_bytes: int
) -> list[Path]:
    """Extract the photos of a zip flat into ``dest_dir`` (created if missing; must be empty).

    Only members with an image suffix are extracted, each under its sanitized base name (a
    member named ``../../x.jpg`` becomes ``x.jpg`` inside dest_dir; clashing names get
    ``-2``...). Before anything is written: at most :data:`MAX_ZIP_MEMBERS` photos, their
    uncompressed total under ``limit_bytes`` and at most :data:`MAX_ZIP_RATIO` times their
    compressed size, and room on the disk; while writing, no member may grow past its header's
    size and every CRC must match. On any failure the folder is removed. Returns the written
    files, sorted by name.
    """
    dest = Path(dest_dir)
    name = Path(zip_path).name
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UploadError(f"{name}: not a readable zip file ({e})") from e
    with zf:
        members = [
            m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
        ]
        if not members:
            raise UploadError(f"{name}: no photos inside ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if len(members) > MAX_ZIP_MEMBERS:
            raise UploadError(
                f"{name}: {len(members)} photos, more than the {MAX_ZIP_MEMBERS} one zip may hold; "
                "unpack it on the server and give the folder's path"
            )
        total = sum(m.file_size for m in members)
        if total > limit_bytes:
            raise UploadError(
                f"{name}: {total / 2**20:.0f} MiB of photos uncompressed, over the limit of "
                f"{limit_bytes / 2**20:.0f} MiB; unpack it on the server and give the folder's path"
            )
        packed = sum(m.compress_size for m in members)
        if total > MAX_ZIP_RATIO * max(packed, 1) and total > 1 << 20:
            raise UploadError(
                f"{name}: its photos unpack to {total / max(packed, 1):.0f} times their packed size "
                "(photos barely compress); refused as a likely zip bomb"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        check_room(dest.parent, total, None, name)
        dest.mkdir(exist_ok=True)
        if any(dest.iterdir()):
            raise UploadError(f"{name}: {dest.name} is not empty; unpacking nothing into it")
        written: list[Path] = []
        try:
            for m in members:
                out = claim_unique(dest, sanitize_filename(m.filename), lambda p: open(p, "xb").close())
                with zf.open(m) as src, open(out, "wb") as dst:
                    copied = 0
                    while chunk := src.read(1 << 20):
                        copied += len(chunk)
                        if copied > m.file_size:  # the header lied about the size
                            raise UploadError(f"{m.filename}: larger than its zip header says")
                        dst.write(chunk)
                written.append(out)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # a bad CRC, a truncated member
            shutil.rmtree(dest, ignore_errors=True)
            raise UploadError(f"{name}: the zip is damaged ({e}); zip the photos again") from e
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    return sorted(written)


def place_upload(path: str | os.PathLike, uploads_dir: str | os.PathLike, *, limit_bytes: int) -> Path:
    """Turn a finished upload into an ingest source and return it: a video stays where it is;
    a photo moves into ``uploads/photos/`` (that folder, collecting every uploaded photo, is the
    source); a zip is unpacked into ``uploads/<zip name>/`` (a fresh folder) and removed."""
    path = Path(path)
    uploads = Path(uploads_dir)
    kind = upload_kind(path.name)
    if kind == "video":
        return path
    if kind == "image":
        folder = inside(uploads, PHOTOS_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        claim_unique(folder, path.name, lambda p: os.link(path, p))
        path.unlink()
        return folder
    try:
        dest = claim_unique(uploads, sanitize_filename(Path(path.name).stem), os.mkdir)
        unpack_photos(path, dest, limit_bytes=limit_bytes)
    finally:
        path.unlink(missing_ok=True)
    return dest


def describe_source(path: str | os.PathLike, *, shown: str | None = None) -> str:
    """What an ingest source on the server is ("video clip.mp4, 12.3 MiB" / "folder with 57
    photos"); raises UploadError saying what is wrong with it, naming it ``shown`` (default: the
    path). Callers serving the page check the path first (:class:`studio.server_paths.ServerPaths`)."""
    if not str(path).strip():
        raise UploadError("no source given: upload a file or type a path on the server")
    p = Path(path).expanduser()
    name = shown or str(p)
    try:
        if not p.exists():
            raise UploadError(f"{name} does not exist on the server")
        if p.is_file():
            if p.suffix.lower() not in VIDEO_SUFFIXES:
                raise UploadError(
                    f"{p.name}: a source file must be a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
                )
            return f"video {p.name}, {p.stat().st_size / 2**20:.1f} MiB"
        if not p.is_dir():
            raise UploadError(f"{name} is neither a video file nor a folder of photos")
        photos = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES]
    except OSError as e:
        raise UploadError(f"{name} cannot be read ({e.strerror or type(e).__name__})") from e
    if not photos:
        raise UploadError(f"{name} holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return f"folder with {len(photos)} photo{'s' if len(photos) != 1 else ''}"
