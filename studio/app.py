"""The studio's state, independent of the browser: workspace, current capture, its runs, the
results shown in the scene, and the job queue.

The viewer (viser) only reads this state and calls its methods; every browser tab shares one
:class:`Studio`, so every tab sees the same state. Changes are announced to subscribers by
topic (:data:`CAPTURES`, :data:`CAPTURE`, :data:`RUNS`, :data:`SCENE`, :data:`TRAINING`,
:data:`PATH`); job changes come from ``studio.jobs.add_listener``. Methods are thread-safe: viser
callbacks run on a thread pool and jobs on the job worker.

Examples:
    >>> studio = open_studio(StudioConfig(workspace=Path("ws")))      # doctest: +SKIP
    >>> [r.method for r in studio.run_summaries()]                     # doctest: +SKIP
    >>> studio.show_run(studio.run_summaries()[0].id, slot="A")       # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipelines.capture.folder import Capture
from pipelines.capture.images import read_image, resize, to_tensor, to_uint8
from pipelines.gaussians import BLACK, Background, Gaussians
from pipelines.progress import CancelToken, Progress
from studio import workspace as ws
from studio.checks import check_choice, check_range
from studio.compare import CompareState, HeldOut, heldout_compare, side_offset
from studio.config import StudioConfig
from studio.demo import DEMO_NAME, demo_video, install_demo
from studio.jobs import JobQueue, JobState
from studio.server_paths import ServerPaths
from studio.uploads import describe_source, inside, sanitize_filename

log = logging.getLogger(__name__)

# Topics announced to subscribers.
CAPTURES = "captures"  # the list of captures in the workspace changed
CAPTURE = "capture"  # another capture was opened (or the open one was reloaded)
RUNS = "runs"  # runs of the open capture were added or deleted
SCENE = "scene"  # results shown in the scene changed (studio.shown)
TRAINING = "training"  # the optimization's live status changed (studio.training)
PATH = "path"  # the camera path being edited (studio.paths), its files or its last video changed
COMPARE = "compare"  # the compare panel's state changed (studio.compare_state)

SLOTS = ("A", "B")  # result slots of the scene: the compare panel puts A against B
MAX_FRAMES = 2000  # frames one Ingest + SfM takes at most
DATASET_NAMES = {"colmap": "COLMAP model", "nerfstudio": "nerfstudio dataset", "long-lrm": "Long-LRM dataset"}
MAX_VIEWS = 4096  # input views of one feed-forward reconstruction


@dataclass(frozen=True)
class Capabilities:
    """Which pipelines this build has; panels disable what is missing and say why."""

    sfm: bool  # ingest video/photos + SfM (pipelines.sfm, through studio.captures.sfm_to_workspace)
    render: bool  # pipelines.gaussians.render: server-side renders, held-out metrics
    optimize: bool  # pipelines.optimize: gsplat-style training
    models: tuple[str, ...]  # registered feed-forward models (pipelines.models.base.MODELS)

    @staticmethod
    def detect() -> Capabilities:
        from pipelines.models.base import MODELS

        def has(module: str) -> bool:
            if module in sys.modules:  # loaded (find_spec raises on a module without __spec__)
                return True
            try:
                return importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                return False

        import pipelines.gaussians

        return Capabilities(
            sfm=has("pipelines.sfm") and has("studio.captures"),
            render=has("pipelines.gaussians.render") or hasattr(pipelines.gaussians, "render"),
            optimize=has("pipelines.optimize"),
            models=tuple(sorted(MODELS)),
        )


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table: run.json's headline fields (None where absent).

    total_s: the whole job (run.json ``timings.total_s``; a feed-forward run's ``command_s``);
    compute_s with compute_what: the part spent in the method itself ("model": a feed-forward
    network's inference, ``timings.total_s`` of those runs; "train": an optimization's steps).
    resolution: (W, H) the metrics were computed at. source: what it started from ("SfM points",
    a run id for a refined run, "N views" for a feed-forward run)."""

    id: str
    method: str
    total_s: float | None
    num_gaussians: int | None
    psnr: float | None
    ssim: float | None
    device: str | None
    compute_s: float | None = None
    compute_what: str | None = None
    resolution: tuple[int, int] | None = None
    source: str | None = None

    @staticmethod
    def of(run: ws.Run) -> RunSummary:
        info = run.info
        metrics = info.get("metrics") or {}
        test = metrics.get("test") or {}
        timings = info.get("timings") or {}
        params = info.get("params") or {}

        def num(x) -> float | None:
            return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None

        if "command_s" in timings:  # a feed-forward run: the model's time inside the job's
            total, compute, what = num(timings.get("command_s")), num(timings.get("total_s")), "model"
        else:
            total, compute = num(timings.get("total_s")), num(timings.get("train_s"))
            what = "train" if compute is not None else None
        res = metrics.get("resolution")
        resolution = (int(res[0]), int(res[1])) if isinstance(res, list) and len(res) == 2 else None
        init, views = params.get("init"), params.get("views")
        if isinstance(init, str):
            source = "SfM points" if init == "sfm" else init.removeprefix("run:")
        else:
            source = f"{views} views" if isinstance(views, int) else None
        return RunSummary(
            id=run.id,
            method="unreadable run.json" if run.error else str(info.get("method", "?")),
            total_s=total,
            num_gaussians=int(info["num_gaussians"]) if isinstance(info.get("num_gaussians"), int) else None,
            psnr=num(test.get("psnr")),
            ssim=num(test.get("ssim")),
            device=info.get("device"),
            compute_s=compute,
            compute_what=what,
            resolution=resolution,
            source=source,
        )


@dataclass(frozen=True)
class Shown:
    """A result shown in a scene slot. run_id is None for live results (e.g. while training).
    background: RGB in [0, 1] it is rendered on everywhere (its run's, :attr:`ws.Run.background`)."""

    slot: str
    gaussians: Gaussians
    run_id: str | None
    label: str
    background: Background = BLACK


@dataclass(frozen=True)
class TrainingStatus:
    """The live state of the studio's 3DGS optimization (one at a time).

    state: "queued" -> "running" <-> "paused" -> "stopping" (finishing early) -> "done" |
    "failed" | "cancelled". loss_curve / psnr_curve: (step, value) points for the plots.
    note: the reduced-preset sentence (None for the standard schedule). run_id: the run folder
    (known once training starts; the finished run's id when done)."""

    job_id: int
    state: str
    init: str
    slot: str
    steps: int = 0
    step: int = 0
    loss: float | None = None
    step_time_s: float | None = None
    num_gaussians: int | None = None
    psnr: float | None = None
    skipped: int = 0
    preset: str | None = None
    note: str | None = None
    run_id: str | None = None
    error: str | None = None
    loss_curve: tuple[tuple[int, float], ...] = ()
    psnr_curve: tuple[tuple[int, float], ...] = ()
    pause: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    stop: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "paused", "stopping")


Subscriber = Callable[[str], None]


class Studio:
    """Workspace state shared by every browser tab. ``workspace`` is created if missing."""

    def __init__(
        self, workspace: str | Path, *, config: StudioConfig | None = None, jobs: JobQueue | None = None
    ):
        self.workspace = Path(workspace).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.config = config or StudioConfig(workspace=self.workspace)
        demo = demo_video() if self.config.demo else None
        # paths the page may name: the workspace, --allow-path folders, the bundled demo video
        self.server_paths = ServerPaths.of(
            self.workspace, self.config.allow_path, files=[demo] if demo is not None else []
        )
        self.jobs = jobs or JobQueue()
        self.capabilities = Capabilities.detect()
        self._lock = threading.RLock()
        self._capture: Capture | None = None
        self._shown: dict[str, Shown] = {}
        self._thumbs: dict[tuple[Path, int], list[np.ndarray]] = {}
        self._subscribers: list[Subscriber] = []
        self._training: TrainingStatus | None = None
        self.live_interval_s = 1.0  # live splats reach the scene at most this often
        self._compare = CompareState()
        self._layouts: dict[Path, object] = {}
        self._sources: dict[int, Path] = {}  # job id -> the source an SfM job reads
        self._closing = threading.Event()
        from studio.paths import PathEditor

        self.paths = PathEditor(self)  # the camera path edited in the page (topic PATH)

    # ----------------------------------------------------------- subscribers
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(topic)`` after each change; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def announce(self, topic: str) -> None:
        """Tell subscribers that ``topic`` changed (for state kept beside the studio, e.g.
        ``studio.paths``)."""
        self._emit(topic)

    def _emit(self, topic: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(topic)
            except Exception:
                log.exception("subscriber %r failed on %r", fn, topic)

    # ------------------------------------------------------------- workspace
    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    def clear_uploads(self) -> int:
        """Delete what was uploaded from the browser (``uploads/``), except the sources of queued
        or running jobs and uploads still in progress; returns the bytes freed."""
        from studio.uploads import PART_SUFFIX, folder_bytes

        with self._lock:
            in_use = [p for job_id, p in self._sources.items() if self._job_active(job_id)]
        freed = 0
        if not self.uploads_dir.is_dir():
            return 0
        for entry in self.uploads_dir.iterdir():
            if entry.name.endswith(PART_SUFFIX) or any(
                entry.resolve() == p or p.is_relative_to(entry.resolve()) for p in in_use
            ):
                continue
            size = folder_bytes(entry) if entry.is_dir() else entry.stat().st_size
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            freed += size
        return freed

    def _job_active(self, job_id: int) -> bool:
        try:
            return self.jobs.get(job_id).active
        except KeyError:
            return False

    def captures(self) -> list[str]:
        """Names of the capture folders in the workspace (those with a cameras.json)."""
        return [p.name for p in ws.list_captures(self.workspace)]

    def rescan(self) -> None:
        """Announce that the workspace may have changed on disk (new captures, new runs)."""
        self._emit(CAPTURES)
        self._emit(RUNS)

    @property
    def capture(self) -> Capture | None:
        with self._lock:
            return self._capture

    def open_capture(self, name: str) -> Capture:
        """Open a capture of the workspace by folder name; results shown in the scene are
        cleared (they belong to the previous capture's world frame)."""
        if name not in self.captures():
            raise ValueError(
                f"no capture {name!r} in {self.workspace}; captures: {', '.join(self.captures()) or 'none'}"
            )
        capture = Capture.load(self.workspace / name)
        race = self._latest_race(capture)
        with self._lock:
            self._capture = capture
            self._shown.clear()
            self._compare = replace(self._compare, heldout=None, race=race)
        self._emit(CAPTURE)
        self._emit(RUNS)
        self._emit(SCENE)
        return capture

    def new_capture_dir(self, name: str) -> Path:
        """Where a new capture named ``name`` (typed in the browser) goes: its sanitized name
        directly under the workspace. Raises ValueError if that folder exists already."""
        folder = inside(self.workspace, sanitize_filename(name))
        if folder.exists():
            raise ValueError(f"{folder.name!r} exists in the workspace already; choose another name")
        return folder

    def source(self, text: str | Path) -> tuple[Path, str]:
        """A source named in the page: a video, a photo folder, or a dataset with cameras (a
        COLMAP model, a nerfstudio transforms.json, a Long-LRM opencv_cameras.json, or a folder
        holding one): its allowed, resolved path and what it is ("video clip.mp4, 12.3 MiB",
        "nerfstudio dataset transforms.json"). InputError saying what is wrong; every path
        outside the workspace and the --allow-path folders gets the same "not allowed", whether
        it exists or not (:class:`studio.server_paths.ServerPaths`)."""
        path = self.server_paths.resolve(text)
        dataset = self.dataset_format(path)
        if dataset is not None:
            fmt, found = dataset
            return path, f"{DATASET_NAMES[fmt]} {self.server_paths.shown(found)}: its cameras are imported"
        return path, describe_source(path, shown=self.server_paths.shown(path))

    @staticmethod
    def dataset_format(path: Path) -> tuple[str, Path] | None:
        """(format, file or model folder) when ``path`` is a dataset with cameras, else None."""
        from pipelines.sfm.imports import detect_format

        if path.is_file() and path.suffix.lower() != ".json":
            return None
        try:
            return detect_format(path)
        except (ValueError, OSError):
            return None

    def submit_import(self, source: str | Path, *, name: str) -> JobState:
        """Queue the import of a dataset's cameras and images (:meth:`source` says which; as
        ``lrm-studio import`` does) into a new capture ``name`` (sanitized) of the workspace; it
        opens when the job is done. ValueError at once for a source not allowed or not a
        dataset, or a taken name."""
        from studio.captures import import_to_workspace

        if not self.capabilities.sfm:
            raise ValueError("this build has no SfM pipeline (pipelines.sfm), which imports datasets")
        path = self.server_paths.resolve(source)
        if self.dataset_format(path) is None:
            raise ValueError(
                f"{self.server_paths.shown(path)} is not a COLMAP, nerfstudio or Long-LRM dataset"
            )
        dest = self.new_capture_dir(name)

        def run(progress: Progress, cancel: CancelToken) -> Capture:
            return import_to_workspace(path, self.workspace, name=dest.name, progress=progress, cancel=cancel)

        def done(capture: Capture) -> None:
            self._emit(CAPTURES)
            self.open_capture(capture.root.name)

        return self.jobs.submit(
            f"Import: {dest.name}", run, kind="import", on_done=done, key=("import", dest)
        )

    def submit_sfm(
        self, source: str | Path, *, name: str, max_frames: int, max_side: int | None = None
    ) -> JobState:
        """Queue ingest + SfM of a video or photo folder into a new capture ``name``
        (sanitized) of the workspace; the new capture opens when the job is done. ``source``
        must be allowed (:meth:`source`). ``max_frames`` in 1..MAX_FRAMES, ``max_side``:
        longest frame side (None: the ingest default). Raises ValueError at once for a source
        not allowed, a taken name, bad numbers or when this build has no SfM."""
        if not self.capabilities.sfm:
            raise ValueError("this build has no SfM pipeline (pipelines.sfm)")
        from pipelines.capture.ingest import IngestConfig
        from studio.captures import sfm_to_workspace

        source = self.server_paths.resolve(source)
        check_range("frames", max_frames, 1, MAX_FRAMES)
        if max_side is not None:
            check_range("longest side", max_side, 16, 16384)
        dest = self.new_capture_dir(name)
        config = (
            IngestConfig(max_frames=max_frames) if max_side is None else IngestConfig(max_frames, max_side)
        )

        def run(progress: Progress, cancel: CancelToken) -> Capture:
            return sfm_to_workspace(
                source, self.workspace, name=dest.name, ingest_config=config, progress=progress, cancel=cancel
            )

        def done(capture: Capture) -> None:
            self._emit(CAPTURES)
            self.open_capture(capture.root.name)

        title = f"Ingest + SfM: {dest.name}"
        state = self.jobs.submit(title, run, kind="sfm", on_done=done, key=("sfm", dest))
        with self._lock:
            self._sources = {i: p for i, p in self._sources.items() if self._job_active(i)}
            self._sources[state.id] = source
        return state

    def require_capture(self) -> Capture:
        """The open capture; ValueError saying what to do when none is open."""
        return self._require_capture()

    def submit_reconstruct(
        self,
        model: str,
        *,
        preset: str | None = None,
        weights: Path | None = None,
        views: int | None = None,
        live: bool = False,
        chunk_views: int | None = None,
        device: str = "auto",
        slot: str = "A",
    ) -> JobState:
        """Queue a feed-forward reconstruction of the open capture into a new run, shown in
        ``slot`` when done. ``live`` (models that stream: tttLRM): the views are fed in frame
        order ``chunk_views`` at a time and the Gaussians decoded after each chunk replace the
        slot's content, so the reconstruction is seen growing chunk by chunk. Raises ValueError
        at once when nothing is open, the model is unknown or cannot stream."""
        from pipelines.models.base import model_background, supports_streaming
        from studio.commands.reconstruct import ReconstructOptions, reconstruct

        capture = self._require_capture()
        if model not in self.capabilities.models:
            raise ValueError(f"unknown model {model!r}; available: {', '.join(self.capabilities.models)}")
        if slot not in SLOTS:
            raise ValueError(f"unknown slot {slot!r}; slots: {', '.join(SLOTS)}")
        if live and not supports_streaming(model):
            raise ValueError(f"{model} does not stream; live reconstruction needs a streaming model: ttt-lrm")
        for what, n in (("views", views), ("views per chunk", chunk_views)):
            if n is not None:
                check_range(what, n, 1, MAX_VIEWS)

        def still_open() -> bool:
            current = self.capture
            return current is not None and current.root == capture.root

        def on_chunk(step) -> None:  # on the job's thread, after every absorbed chunk
            if step.gaussians is not None and still_open():
                label = f"{model} live: {step.views} views (chunk {step.index + 1})"
                g = step.gaussians.detach().to("cpu")
                self.show(slot, g, label=label, background=model_background(model))

        def run(progress: Progress, cancel: CancelToken) -> Path:
            options = ReconstructOptions(
                model=model, preset=preset, weights=weights, views=views, device=device, stream=live,
                chunk_views=chunk_views,
            )  # fmt: skip
            return reconstruct(
                capture.root, options, on_chunk=on_chunk if live else None, progress=progress, cancel=cancel
            )

        def done(run_dir: Path) -> None:
            self._emit(RUNS)
            if still_open():
                self.show_run(Path(run_dir).name, slot)

        title = f"{model}{' live' if live else ''}: {capture.name}"
        key = ("reconstruct", capture.root, model, preset, weights, views, live, chunk_views, device, slot)
        return self.jobs.submit(title, run, kind="reconstruct", on_done=done, key=key)

    def _require_capture(self) -> Capture:
        capture = self.capture
        if capture is None:
            raise ValueError("no capture is open; choose one in the Capture panel")
        return capture

    def thumbnails(self, max_side: int) -> list[np.ndarray]:
        """Thumbnails (uint8 [h, w, 3], longer side ``max_side``) of the open capture's frames,
        in frame order; cached per capture."""
        capture = self._require_capture()
        key = (capture.root, max_side)
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
        w, h = capture.cameras.width, capture.cameras.height
        s = max_side / max(w, h)
        tw, th = max(1, round(w * s)), max(1, round(h * s))
        thumbs = [
            to_uint8(resize(to_tensor(read_image(capture.root / fp, apply_exif=False)), tw, th))
            for fp in capture.file_paths
        ]
        with self._lock:
            self._thumbs[key] = thumbs
        return thumbs

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[ws.Run]:
        """Finished runs of the open capture (oldest first); [] when none is open."""
        capture = self.capture
        return ws.list_runs(capture.root) if capture is not None else []

    def run_summaries(self) -> list[RunSummary]:
        return [RunSummary.of(r) for r in self.runs()]

    def run(self, run_id: str) -> ws.Run:
        """A finished run of the open capture by id (ids come from :meth:`runs`; anything else,
        a path in particular, is refused)."""
        for r in self.runs():
            if r.id == run_id:
                return r
        raise ValueError(f"no finished run {run_id!r} in capture {self._require_capture().name!r}")

    def run_ply(self, run_id: str) -> Path:
        """The run's gaussians.ply (full set, standard 3DGS layout)."""
        path = self.run(run_id).path / ws.GAUSSIANS_PLY
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id} has no {ws.GAUSSIANS_PLY}")
        return path

    def delete_run(self, run_id: str) -> None:
        """Delete a run folder (the viewer confirms first); it leaves the scene if shown."""
        run = self.run(run_id)
        with self._lock:
            slots = [s for s, v in self._shown.items() if v.run_id == run_id]
            for s in slots:
                del self._shown[s]
        ws.delete_run(run.path)
        self._emit(RUNS)
        if slots:
            self._emit(SCENE)

    def runs_changed(self) -> None:
        """Announce new or updated runs (jobs call this after writing one)."""
        self._emit(RUNS)

    def _runs_signature(self) -> tuple:
        """(run folder, run.json mtime) of the open capture's runs: changes when a run is added,
        deleted or its run.json rewritten, by the studio or by anything else (a CLI eval)."""
        capture = self.capture
        if capture is None or not capture.runs_dir.is_dir():
            return (None if capture is None else capture.root,)
        out = [capture.root]
        for p in sorted(capture.runs_dir.iterdir()):
            try:
                out.append((p.name, (p / ws.RUN_JSON).stat().st_mtime_ns))
            except OSError:
                out.append((p.name, None))
        return tuple(out)

    def watch_runs(self, interval_s: float = 2.0) -> None:
        """Check the open capture's runs on disk every ``interval_s`` seconds on a thread and
        announce :data:`RUNS` when they changed (stops with :meth:`close`)."""

        def loop() -> None:
            last = self._runs_signature()
            while not self._closing.wait(interval_s):
                now = self._runs_signature()
                if now != last:
                    last = now
                    self._emit(RUNS)

        threading.Thread(target=loop, name="lrm-studio-runs-watch", daemon=True).start()

    # ----------------------------------------------------------------- scene
    @property
    def shown(self) -> dict[str, Shown]:
        with self._lock:
            return dict(self._shown)

    def show(
        self,
        slot: str,
        gaussians: Gaussians,
        *,
        run_id: str | None = None,
        label: str = "",
        background: Background = BLACK,
    ) -> None:
        """Put Gaussians (full set, in the capture's world frame) in a scene slot, to be
        rendered on ``background``."""
        if slot not in SLOTS:
            raise ValueError(f"unknown slot {slot!r}; slots: {', '.join(SLOTS)}")
        with self._lock:
            self._shown[slot] = Shown(slot, gaussians, run_id, label or (run_id or slot), background)
        self._emit(SCENE)

    def show_run(self, run_id: str, slot: str = "A") -> Shown:
        """Load a run's Gaussians (CPU) into a slot, on the run's background."""
        run = self.run(run_id)
        label = f"{run.info.get('method', '?')} {run_id}"
        self.show(slot, run.gaussians(), run_id=run_id, label=label, background=run.background)
        return self._shown[slot]

    def hide(self, slot: str) -> None:
        with self._lock:
            removed = self._shown.pop(slot, None)
        if removed is not None:
            self._emit(SCENE)

    # --------------------------------------------------------------- compare
    @property
    def compare_state(self) -> CompareState:
        with self._lock:
            return self._compare

    def _set_compare(self, **changes) -> CompareState:
        with self._lock:
            self._compare = replace(self._compare, **changes)
            state = self._compare
        self._emit(COMPARE)
        return state

    def toggle_ab(self) -> CompareState:
        """The A/B toggle: show only A, then only B, then A, ... (see :class:`CompareState`)."""
        with self._lock:
            showing = self._compare.toggled().showing
        return self._set_compare(showing=showing)

    def set_showing(self, showing: str) -> CompareState:
        if showing not in ("both", "A", "B"):
            raise ValueError(f"showing must be both, A or B, not {showing!r}")
        return self._set_compare(showing=showing)

    def set_side_by_side(self, on: bool) -> CompareState:
        return self._set_compare(side_by_side=bool(on))

    def set_split(self, *, enabled: bool | None = None, split: float | None = None) -> CompareState:
        changes: dict = {}
        if enabled is not None:
            changes["split_enabled"] = bool(enabled)
        if split is not None:
            if not 0.0 <= split <= 1.0:
                raise ValueError(f"split must be in [0, 1], got {split}")
            changes["split"] = float(split)
        return self._set_compare(**changes)

    def side_offset(self) -> np.ndarray:
        """Where B goes in side-by-side mode: [3] world offset (:func:`studio.compare.side_offset`)."""
        capture = self._require_capture()
        a = self.shown.get("A")
        return side_offset(capture.cameras, a.gaussians if a is not None else None)

    def submit_heldout(self, run_a: str | None = None, run_b: str | None = None) -> JobState:
        """Queue the held-out comparison of runs A and B (default: the runs shown in slots A and
        B) on the open capture's test frames; the result lands in ``compare_state.heldout``."""
        capture = self._require_capture()
        shown = self.shown
        run_a = run_a or (shown["A"].run_id if "A" in shown else None)
        run_b = run_b or (shown["B"].run_id if "B" in shown else None)
        if run_a is None:
            raise ValueError("show a finished run as A first (Runs tab), or pick runs to compare")
        a = self.run(run_a).path
        b = self.run(run_b).path if run_b is not None else None

        def job(progress: Progress, cancel: CancelToken) -> HeldOut:
            return heldout_compare(capture.root, a, b, progress=progress, cancel=cancel)

        def done(result: HeldOut) -> None:
            current = self.capture
            if current is not None and current.root == capture.root:
                self._set_compare(heldout=result)

        title = f"Compare on held-out views: {run_a}" + (f" vs {run_b}" if run_b else "")
        return self.jobs.submit(title, job, kind="compare", on_done=done, key=("compare", capture.root, a, b))

    @staticmethod
    def _latest_race(capture: Capture) -> dict | None:
        """The capture's newest readable race file (studio/race.py), or None."""
        from studio.race import list_races, read_race

        for path in reversed(list_races(capture.root)):
            try:
                return read_race(path)
            except ValueError:
                log.warning("skipping %s: not a readable race file", path)
        return None

    def submit_race(self, options) -> JobState:
        """Queue a race on the open capture (studio/race.py, ``options`` a RaceOptions): the
        feed-forward model, its refinement and 3DGS from the sparse points, as curves of test
        PSNR against wall time; the result lands in ``compare_state.race``. One optimization
        at a time: refused while one runs."""
        from studio.race import race, read_race

        capture = self._require_capture()
        check_choice("model", options.feed_forward, self.capabilities.models)
        if options.steps is not None:
            check_range("steps", options.steps, 2, 1_000_000)
        check_range("evaluations", options.evaluations, 2, 100)
        current = self.training
        if current is not None and current.active:
            raise ValueError("an optimization is queued or running; let it finish first")

        def job(progress: Progress, cancel: CancelToken) -> dict:
            return read_race(race(capture.root, options, progress=progress, cancel=cancel))

        def done(result: dict) -> None:
            self._emit(RUNS)
            if self.capture is not None and self.capture.root == capture.root:
                self._set_compare(race=result)

        title = f"Race: {options.feed_forward} refined vs 3DGS from SfM on {capture.name}"
        return self.jobs.submit(title, job, kind="race", on_done=done, key=("race", capture.root, options))

    def object_centric(self):
        """Whether the open capture suits object-centric models (GeoLRM):
        :class:`pipelines.capture.layout.ObjectCentric`, cached per capture."""
        from pipelines.capture.layout import object_centric

        capture = self._require_capture()
        with self._lock:
            if capture.root in self._layouts:
                return self._layouts[capture.root]
        pts = capture.load_points()
        verdict = object_centric(capture.cameras, None if pts is None else pts[0])
        with self._lock:
            self._layouts[capture.root] = verdict
        return verdict

    # ---------------------------------------------------------------- models
    @property
    def weights_dir(self) -> Path:
        """The workspace's weights folder (safetensors files the Reconstruct panel lists)."""
        from studio.models import WEIGHTS_DIR

        return self.workspace / WEIGHTS_DIR

    def model_choices(self):
        """Models the Reconstruct panel offers (:func:`studio.models.model_choices`)."""
        from studio.models import model_choices

        return [c for c in model_choices(self.weights_dir) if c.model in self.capabilities.models]

    # -------------------------------------------------------------- optimize
    @property
    def training(self) -> TrainingStatus | None:
        """The current (or last) optimization's status; None before the first."""
        with self._lock:
            return self._training

    def _set_training(self, **changes) -> None:
        with self._lock:
            if self._training is None:
                return
            self._training = replace(self._training, **changes)
        self._emit(TRAINING)

    def resumable_runs(self) -> list[str]:
        """Unfinished optimization runs of the open capture that left a checkpoint (cancelled
        or crashed): ids for :meth:`submit_optimize` ``resume``."""
        from studio.commands.optimize import CHECKPOINT

        capture = self.capture
        if capture is None or not capture.runs_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in capture.runs_dir.iterdir()
            if (p / CHECKPOINT).is_file() and not (p / ws.RUN_JSON).is_file()
        )

    def submit_optimize(
        self,
        *,
        init: str = "sfm",
        preset: str | None = None,
        steps: int | None = None,
        resume: str | None = None,
        slot: str = "A",
        device: str = "auto",
    ) -> JobState:
        """Queue a 3DGS optimization of the open capture: from its SfM points ("sfm"), from a
        run's Gaussians (a run id: refine a feed-forward result), or continuing an unfinished
        run (``resume``, an id from :meth:`resumable_runs`). The Gaussians appear in scene slot
        ``slot`` as they train; the finished run replaces them there. One optimization at a time."""
        if not self.capabilities.optimize:
            raise ValueError("this build has no optimizer (pipelines.optimize)")
        capture = self._require_capture()
        if slot not in SLOTS:
            raise ValueError(f"unknown slot {slot!r}; slots: {', '.join(SLOTS)}")
        current = self.training
        if current is not None and current.active:
            raise ValueError("an optimization is already queued or running; stop it first")
        if resume is not None and resume not in self.resumable_runs():
            raise ValueError(f"no unfinished run {resume!r} with a checkpoint in {capture.name!r}")
        if resume is None and init != "sfm":
            self.run(init)  # refuses unknown ids and paths
        from studio.commands.optimize import optimize

        label = f"continue {resume}" if resume is not None else ("SfM points" if init == "sfm" else init)
        status = TrainingStatus(job_id=0, state="queued", init=label, slot=slot)
        last_shown = [0.0]
        background = [BLACK]  # the run's, known once it starts

        def still_open() -> bool:  # live splats belong to this capture's world frame only
            current = self.capture
            return current is not None and current.root == capture.root

        def on_start(run_dir: Path, cfg) -> None:
            background[0] = tuple(cfg.background)
            t = self.training
            now = "stopping" if status.stop.is_set() else ("paused" if status.pause.is_set() else "running")
            self._set_training(
                state=now if t is None or t.state != "stopping" else "stopping",
                run_id=run_dir.name,
                steps=cfg.steps,
                preset=cfg.preset,
                note=cfg.reduced_note,
            )

        def on_update(u) -> None:
            t = self.training
            if t is None:
                return
            changes: dict = {"step": u.step, "num_gaussians": u.num_gaussians, "skipped": u.skipped_steps}
            if u.test is not None and u.test.get("psnr") is not None:
                changes["psnr"] = u.test["psnr"]
                changes["psnr_curve"] = (*t.psnr_curve, (u.step, float(u.test["psnr"])))
            elif u.loss is not None:
                curve = (*t.loss_curve, (u.step, u.loss))
                changes.update(loss=u.loss, step_time_s=u.step_time_s, loss_curve=curve)
            self._set_training(**changes)
            now = time.monotonic()
            due = now - last_shown[0] >= self.live_interval_s or u.step >= u.steps
            if u.gaussians is not None and due and still_open():
                last_shown[0] = now
                label = f"3dgs (training, step {u.step:,})"
                self.show(slot, u.gaussians, label=label, background=background[0])

        def job(progress: Progress, cancel: CancelToken) -> Path:
            return optimize(
                None if resume is not None else capture.root,
                init=init, resume=(capture.runs_dir / resume) if resume is not None else None, preset=preset,
                steps=steps if resume is None else None, device=device, progress=progress, cancel=cancel,
                pause=status.pause, stop=status.stop, on_update=on_update, on_start=on_start,
            )  # fmt: skip

        def done(run_dir: Path) -> None:
            self._emit(RUNS)
            if still_open():
                self.show_run(run_dir.name, slot)
            self._set_training(state="done", run_id=run_dir.name)

        with self._lock:
            self._training = status
            state = self.jobs.submit(f"Optimize: {capture.name}", job, kind="optimize", on_done=done)
            self._training = replace(self._training, job_id=state.id)
        remove: list[Callable[[], None]] = []

        def on_job(js: JobState) -> None:
            if js.id != state.id or not js.finished:
                return
            if js.status == "failed":
                self._set_training(state="failed", error=js.error)
            elif js.status == "cancelled":
                self._set_training(state="cancelled")
                self._emit(RUNS)  # the unfinished run is resumable now
            if remove:
                remove[0]()

        remove.append(self.jobs.add_listener(on_job))
        if self.jobs.get(state.id).finished:  # finished before the listener was in place
            on_job(self.jobs.get(state.id))
        self._emit(TRAINING)
        return state

    def pause_optimize(self) -> None:
        """Pause the running optimization (it waits between steps)."""
        t = self.training
        if t is None or t.state not in ("queued", "running"):
            raise ValueError("no optimization is running")
        t.pause.set()
        self._set_training(state="paused")

    def resume_optimize(self) -> None:
        t = self.training
        if t is None or t.state != "paused":
            raise ValueError("no optimization is paused")
        t.pause.clear()
        self._set_training(state="running")

    def stop_optimize(self) -> None:
        """Finish the optimization now: it evaluates and writes its run with the steps done."""
        t = self.training
        if t is None or not t.active:
            raise ValueError("no optimization is running")
        t.stop.set()
        t.pause.clear()
        self._set_training(state="stopping")

    def cancel_optimize(self) -> None:
        """Cancel: nothing is written but its checkpoint (continue it later from the panel)."""
        t = self.training
        if t is None or not t.active:
            raise ValueError("no optimization is running")
        t.pause.clear()
        self.jobs.cancel(t.job_id)

    # ----------------------------------------------------------------- close
    def close(self) -> None:
        """Cancel queued and running jobs, stop the worker and the runs watcher."""
        self._closing.set()
        self.jobs.shutdown(cancel=True)


def open_studio(config: StudioConfig) -> Studio:
    """A Studio on the config's workspace: leftovers of interrupted operations removed
    (:func:`studio.workspace.remove_leftovers`), the demo installed on first start
    (``config.demo``) and a capture opened: ``config.capture`` (ValueError when it cannot be
    opened), else the demo, else the first capture that opens (broken ones are skipped with a
    warning in the log; the page says why when one is chosen)."""
    studio = Studio(config.resolved_workspace(), config=config)
    try:
        ws.remove_leftovers(studio.workspace)
    except OSError:  # a leftover that cannot be removed must not keep the studio from starting
        log.warning("could not remove leftovers in %s", studio.workspace, exc_info=True)
    if config.demo:
        try:
            install_demo(studio.workspace)
        except Exception:  # the studio still starts; the log says why the demo is missing
            log.exception("could not make the demo capture in %s", studio.workspace)
    captures = studio.captures()
    if config.capture is not None:
        try:
            studio.open_capture(config.capture)
        except (OSError, ValueError) as e:
            studio.close()
            raise ValueError(str(e)) from e
        return studio
    for name in ([DEMO_NAME] if DEMO_NAME in captures else []) + [c for c in captures if c != DEMO_NAME]:
        try:
            studio.open_capture(name)
            break
        except (OSError, ValueError) as e:  # InputError included: a damaged cameras.json
            log.warning("capture %s cannot be opened: %s", name, e)
    return studio
