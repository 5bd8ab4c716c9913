"""pycolmap on the CPU: features, matching, mapping; per-stage progress and cancellation.

Each pycolmap call runs in a worker thread (pycolmap releases the GIL) while the calling thread
waits on it and watches the cancel token. A cancelled token cancels pycolmap's own
``CancellationToken``, which stops extraction, matching and incremental mapping within moments
(they raise, and :class:`~pipelines.progress.Cancelled` is raised here); global mapping has no
token and is waited for.

Progress: features are extracted and pairs matched in about ``CHUNKS`` chunks (images are
imported first, so every chunk shares the one camera; the matcher's pairs are matched as
imported pairs, the same pairs ``match_sequential`` / ``match_exhaustive`` would match);
mapping counts registered images through ``next_image_callback``. The COLMAP database is never
read while pycolmap writes it: it is in WAL mode, and a second SQLite library in the same process
(Python's sqlite3) breaks its locking (observed: SIGBUS inside pycolmap).

Layout written under ``work_dir``: ``database.db`` and ``sparse/`` (the largest model, binary,
with the distorted shared camera). Other, smaller models are discarded and their images listed as
unregistered.

Examples:
    >>> result = run_sfm(frames_dir, work_dir, names, SfMConfig(), is_video=True)   # doctest: +SKIP
    >>> len(result.registered), result.unregistered                                 # doctest: +SKIP
    (58, ['000041.jpg', '000042.jpg'])
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.progress import Cancelled, CancelToken, Progress, check, no_progress, sub_progress
from pipelines.sfm.config import SfMConfig

log = logging.getLogger(__name__)

POLL_S = 0.2
CHUNKS = 8  # features and matching run in about this many chunks (progress steps)
# Fractions of SfM progress per stage (measured proportions on 2 cores, roughly).
_STAGES = {"features": (0.0, 0.35), "matching": (0.35, 0.6), "mapping": (0.6, 1.0)}


@dataclass
class SfMResult:
    """reconstruction: the largest model (pycolmap.Reconstruction); registered / unregistered:
    image names (as given) with and without a pose in it, in the order given."""

    reconstruction: Any
    registered: list[str]
    unregistered: list[str]
    matcher: str
    num_models: int
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def quiet_colmap(level: int = 2) -> Iterator[None]:
    """Silence glog INFO/WARNING output of pycolmap (to stderr) inside the block."""
    import pycolmap

    if os.environ.get("LRM_COLMAP_VERBOSE"):
        yield
        return
    previous = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = max(previous, level)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = previous


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the block's wall seconds as ``timings[name + "_s"]`` and the process's CPU seconds
    (all threads, pycolmap's included) as ``timings[name + "_cpu_s"]``. On a busy machine the CPU
    time is the steadier figure; wall time is what a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timings[f"{name}_s"] = time.perf_counter() - wall
        timings[f"{name}_cpu_s"] = time.process_time() - cpu


def run_stage(
    fn: Callable[[Any], Any],
    *,
    cancel: CancelToken | None,
    poll: Callable[[], None] | None = None,
    cancellable: bool = True,
) -> Any:
    """Run ``fn(colmap_token)`` in a worker thread; call ``poll()`` every POLL_S seconds and
    forward a cancel to pycolmap's token. Raises Cancelled when cancelled, else re-raises the
    worker's exception."""
    import pycolmap

    token = pycolmap.CancellationToken()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn(token)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    check(cancel)
    thread = threading.Thread(target=work, name="pycolmap", daemon=True)
    thread.start()
    warned = False
    while thread.is_alive():
        thread.join(POLL_S)
        if poll is not None:
            poll()
        if cancel is not None and cancel.cancelled:
            token.cancel()
            if not cancellable and not warned:
                log.warning("this stage cannot be interrupted; cancelling when it finishes")
                warned = True
    if cancel is not None and cancel.cancelled:
        raise Cancelled("cancelled by the user")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def run_sfm(
    image_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    names: list[str],
    config: SfMConfig | None = None,
    *,
    is_video: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> SfMResult:
    """SIFT with one shared ``config.camera_model`` camera, matching, mapping; keep the largest
    model. ``names``: image files in ``image_dir`` (the order defines sequential neighbours).
    Raises InputError when fewer than ``config.min_registered_for(len(names))`` images register."""
    import pycolmap

    config = config or SfMConfig()
    image_dir, work_dir = Path(image_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    db = work_dir / "database.db"
    if db.exists():
        db.unlink()
    n = len(names)
    matcher = config.resolve_matcher(n, is_video)
    timings: dict[str, float] = {}
    pycolmap.set_random_seed(config.seed)

    with quiet_colmap():
        pycolmap.Database.open(db).close()
        with timed(timings, "features"):
            octave = _extract(
                db,
                image_dir,
                names,
                config,
                sub_progress(progress, *_STAGES["features"], "features: "),
                cancel,
            )
        report = sub_progress(progress, *_STAGES["matching"], f"{matcher} matching: ")
        with timed(timings, "matching"):
            _match(db, work_dir, matcher, config, report, cancel)
        report = sub_progress(progress, *_STAGES["mapping"], f"{config.mapper} mapping: ")
        models_dir = work_dir / "models"
        shutil.rmtree(models_dir, ignore_errors=True)
        models_dir.mkdir()
        with timed(timings, "mapping"):
            recs = _map(db, image_dir, models_dir, n, config, report, cancel)

    recs = dict(recs or {})
    shutil.rmtree(models_dir, ignore_errors=True)
    if not recs:
        raise _too_few(0, n, matcher, config)
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    posed = {im.name for im in rec.images.values() if im.has_pose}
    reg = [nm for nm in names if nm in posed]
    if len(reg) < config.min_registered_for(n):
        raise _too_few(len(reg), n, matcher, config)
    sparse = work_dir / "sparse"
    sparse.mkdir(exist_ok=True)
    rec.write(sparse)
    progress(1.0, f"{len(reg)}/{n} images registered")
    stats = {
        "num_points3D": rec.num_points3D(),
        "mean_reprojection_error_px": float(rec.compute_mean_reprojection_error()),
        "mean_track_length": float(rec.compute_mean_track_length()),
        "sift_first_octave": octave,
    }
    if len(reg) < 0.8 * n:
        log.warning("SfM registered %d of %d frames; the others are listed as unregistered", len(reg), n)
    return SfMResult(rec, reg, [nm for nm in names if nm not in posed], matcher, len(recs), timings, stats)


def _extract(
    db: Path,
    image_dir: Path,
    names: list[str],
    config: SfMConfig,
    report: Progress,
    cancel: CancelToken | None,
) -> int:
    """SIFT features of ``names`` with one shared camera. The images are imported first (the
    camera is created once), then extracted in chunks: progress and cancel between chunks,
    pycolmap's token within one. Returns the SIFT first octave used."""
    import pycolmap
    from PIL import Image

    n = len(names)
    with Image.open(image_dir / names[0]) as im:
        octave = config.resolve_first_octave(max(im.size))
    reader = pycolmap.ImageReaderOptions(camera_model=config.camera_model)
    extraction = {
        "num_threads": config.num_threads,
        "sift": {"max_num_features": config.max_num_features, "first_octave": octave},
    }
    pycolmap.import_images(
        db, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, image_names=names, options=reader
    )
    done = 0
    for chunk in _chunks(names, max(4, -(-n // CHUNKS))):
        report(done / n, f"{done}/{n} images")
        run_stage(
            lambda tok, chunk=chunk: pycolmap.extract_features(
                db,
                image_dir,
                image_names=chunk,
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
                cancellation_token=tok,
            ),
            cancel=cancel,
        )
        done += len(chunk)
    report(1.0, f"{n}/{n} images")
    return octave


def _match(
    db: Path, work_dir: Path, matcher: str, config: SfMConfig, report: Progress, cancel: CancelToken | None
) -> None:
    """Match the pairs the sequential or exhaustive pair generator lists, in chunks, as imported
    pairs (the same pairs ``match_sequential`` / ``match_exhaustive`` match)."""
    import pycolmap

    with contextlib.closing(pycolmap.Database.open(db)) as d:
        id_to_name = {im.image_id: im.name for im in d.read_all_images()}
        if matcher == "sequential":
            pairing = pycolmap.SequentialPairingOptions(
                overlap=config.sequential_overlap, quadratic_overlap=config.quadratic_overlap
            )
            pairs = pycolmap.SequentialPairGenerator(pairing, d).all_pairs()
        else:
            pairs = pycolmap.ExhaustivePairGenerator(pycolmap.ExhaustivePairingOptions(), d).all_pairs()
    matching = {"num_threads": config.num_threads}
    # RANSAC of the two-view verification seeds itself randomly unless told (random_seed -1).
    verification = {"ransac": {"random_seed": config.seed}}
    pair_file = work_dir / "pairs.txt"
    done = 0
    for chunk in _chunks(pairs, max(16, -(-len(pairs) // CHUNKS))):
        report(done / max(1, len(pairs)), f"{done}/{len(pairs)} pairs")
        pair_file.write_text("".join(f"{id_to_name[a]} {id_to_name[b]}\n" for a, b in chunk))
        imported = pycolmap.ImportedPairingOptions(match_list_path=pair_file)
        run_stage(
            lambda tok, imported=imported: pycolmap.match_image_pairs(
                db,
                matching_options=matching,
                pairing_options=imported,
                verification_options=verification,
                device=pycolmap.Device.cpu,
                cancellation_token=tok,
            ),
            cancel=cancel,
        )
        done += len(chunk)
    pair_file.unlink(missing_ok=True)
    report(1.0, f"{len(pairs)}/{len(pairs)} pairs")


def _map(
    db: Path,
    image_dir: Path,
    models_dir: Path,
    n: int,
    config: SfMConfig,
    report: Progress,
    cancel: CancelToken | None,
) -> dict:
    """Incremental (per registered image progress, cancellable) or global mapping -> models."""
    import pycolmap

    registered = [0]

    def next_image() -> None:
        registered[0] += 1

    def poll() -> None:
        done = min(registered[0], n)
        report(done / n, f"{done}/{n} images registered")

    if config.mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions(
            random_seed=config.seed,
            num_threads=config.num_threads,
            # COLMAP drops models under 10 images; small photo sets need smaller ones.
            min_model_size=min(10, config.min_registered_for(n)),
            ba_global_function_tolerance=config.ba_global_function_tolerance,
        )
        return run_stage(
            lambda tok: pycolmap.incremental_mapping(
                db,
                image_dir,
                models_dir,
                options=options,
                next_image_callback=next_image,
                cancellation_token=tok,
            ),
            poll=poll,
            cancel=cancel,
        )
    report(0.0, "running (no progress until it finishes)")
    options = pycolmap.GlobalPipelineOptions(random_seed=config.seed, num_threads=config.num_threads)
    return run_stage(
        lambda tok: pycolmap.global_mapping(db, image_dir, models_dir, options=options),
        cancel=cancel,
        cancellable=False,
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _too_few(registered: int, n: int, matcher: str, config: SfMConfig) -> InputError:
    need = config.min_registered_for(n)
    hints = []
    if matcher == "sequential":
        hints.append("--matcher exhaustive")
    if config.mapper == "incremental":
        hints.append("--mapper global")
    hints.append("more frames (--max-frames) or a slower, steadier video")
    hints.append("a scene with more texture and overlap between views")
    return InputError(
        f"SfM could place only {registered} of {n} frames (at least {need} needed); try "
        + ", or ".join(hints)
    )
