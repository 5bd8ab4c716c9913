"""Photo-folder ingest: JPEG/PNG files of one folder (not recursive), in name order, EXIF
orientation applied, resized to a maximum side, written as 000000.jpg, 000001.png, ...

Photos of different sizes: SfM here uses one shared camera, so the photos of a capture must
share an aspect ratio. Photos are grouped by aspect ratio (after EXIF rotation, within 0.5 %);
the largest group is kept and every photo in it is resized to one size: the group's aspect, its
long side the smaller of ``max_side`` and the smallest long side in the group (nothing is
upsampled more than that). Photos of other aspect ratios (say, a few portrait shots among
landscape ones) are skipped with a warning naming them. Unreadable files (corrupt or truncated
JPEGs) are skipped with a warning; the rest go on.

Examples:
    >>> result = ingest_photos("photos/", out_dir, max_side=1280)   # doctest: +SKIP
    >>> result.skipped                                              # doctest: +SKIP
    [{'source': 'IMG_0042.jpg', 'reason': 'cannot read it (image file is truncated)'}]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.capture.images import fit_max_side, read_image, resize_uint8, write_image
from pipelines.errors import InputError
from pipelines.progress import CancelToken, Progress, check, no_progress

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
ASPECT_TOLERANCE = 0.005  # relative difference of width/height treated as the same aspect


@dataclass
class PhotoFrame:
    name: str  # file name written in the output folder
    source: str  # file name in the input folder


@dataclass
class PhotoIngest:
    frames: list[PhotoFrame]
    width: int
    height: int
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}


def list_photos(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(JPEG/PNG files, other files) directly in ``folder``, each sorted by name."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    return photos, [p for p in files if p.suffix.lower() not in PHOTO_SUFFIXES]


def no_photos_error(folder: Path, others: list[Path]) -> InputError:
    what = (
        f"{len(others)} other files (e.g. {', '.join(p.name for p in others[:3])})" if others else "nothing"
    )
    return InputError(
        f"no JPEG or PNG photos in {folder} (found {what}); put the photos directly in that folder, "
        f"or pass a video file"
    )


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only (no full decode)."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _same_aspect(a: float, b: float) -> bool:
    return abs(a / b - 1.0) <= ASPECT_TOLERANCE


def ingest_photos(
    folder: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_side: int | None = None,
    max_frames: int | None = None,
    min_frames: int = 3,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> PhotoIngest:
    """Read, orient, resize and write the photos of ``folder`` into ``out_dir``; see the module
    docstring for how sizes and bad files are handled. Raises InputError when fewer than
    ``min_frames`` usable photos remain."""
    folder, out_dir = Path(folder), Path(out_dir)
    photos, others = list_photos(folder)
    if not photos:
        raise no_photos_error(folder, others)
    if others:
        log.info("%s: ignoring %d files that are not JPEG/PNG", folder, len(others))
    skipped: list[dict] = []

    sizes: dict[Path, tuple[int, int]] = {}
    for p in photos:
        try:
            sizes[p] = _header_size(p)
        except Exception as e:
            skipped.append({"source": p.name, "reason": f"not a readable image ({e})"})
    groups: list[list[Path]] = []
    for p, (w, h) in sizes.items():
        for g in groups:
            gw, gh = sizes[g[0]]
            if _same_aspect(w / h, gw / gh):
                g.append(p)
                break
        else:
            groups.append([p])
    if not groups:
        raise InputError(f"none of the {len(photos)} photos in {folder} could be read; check the files")
    keep = max(groups, key=len)
    ref_w, ref_h = max((sizes[p] for p in keep), key=lambda s: s[0] * s[1])
    for g in groups:
        if g is not keep:
            gw, gh = sizes[g[0]]
            reason = (
                f"its aspect ratio ({gw}x{gh}) differs from most photos ({ref_w}x{ref_h}); one capture "
                f"needs one camera setting: rotate or crop it, or put it in another folder"
            )
            skipped += [{"source": p.name, "reason": reason} for p in g]
    long_side = min(max(sizes[p]) for p in keep)
    w_out, h_out = fit_max_side(ref_w, ref_h, long_side if max_side is None else min(max_side, long_side))
    if len({sizes[p] for p in keep}) > 1:
        log.warning("%s: photos of different resolutions; all resized to %dx%d", folder, w_out, h_out)
    if max_frames is not None and len(keep) > max_frames:
        from pipelines.capture.sharpness import evenly_spaced

        log.info("%s: keeping %d of %d photos (max frames)", folder, max_frames, len(keep))
        keep = [keep[i] for i in evenly_spaced(len(keep), max_frames)]

    frames: list[PhotoFrame] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(keep):
        check(cancel)
        progress(i / len(keep), f"photo {i + 1}/{len(keep)}")
        try:
            img = read_image(p, apply_exif=True)
        except Exception as e:
            skipped.append({"source": p.name, "reason": f"cannot read it ({e})"})
            continue
        if img.shape[:2] != (sizes[p][1], sizes[p][0]):  # EXIF header and decoder disagree: trust pixels
            if not _same_aspect(img.shape[1] / img.shape[0], w_out / h_out):
                skipped.append(
                    {
                        "source": p.name,
                        "reason": f"decoded as {img.shape[1]}x{img.shape[0]}, not {w_out}x{h_out}",
                    }
                )
                continue
        name = f"{len(frames):06d}{'.png' if p.suffix.lower() == '.png' else '.jpg'}"
        write_image(out_dir / name, resize_uint8(img, w_out, h_out))
        frames.append(PhotoFrame(name, p.name))
    for s in skipped:
        log.warning("skipping %s: %s", s["source"], s["reason"])
    if len(frames) < min_frames:
        raise InputError(
            f"only {len(frames)} usable photo(s) in {folder} (of {len(photos)}); SfM needs at least "
            f"{min_frames} overlapping photos of the same scene from different positions"
        )
    progress(1.0, f"{len(frames)} photos")
    return PhotoIngest(frames, w_out, h_out, skipped)
