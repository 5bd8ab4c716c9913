"""Path panel: the camera-path editor, playback, automatic paths, camera_path.json files and
videos. The path itself is studio state (``studio.paths``); this panel edits it, draws it
(viewer.path_scene) and plays it back.

- Keyframes: add one at the clicking tab's view or at an input camera; select one (dropdown or
  click its frustum) to go to it, move it earlier / later, delete it or give it its own
  vertical field of view; "Move keyframes" shows a transform gizmo on every keyframe.
- Timing: duration, frames per second, loop, default field of view.
- Playback: the time slider puts every tab's view on the path (and the green playhead frustum);
  Play advances it in real time, Pause stops.
- Automatic: an orbit over the range the capture covered (a circle only for a capture all
  around; the input cameras for a walk-through), or the input cameras in order.
- Files: save / load CAPTURE/paths/<name>.json (nerfstudio's camera_path.json), import one from
  this computer, download the current path.
- Video: A, B or A | B side by side at a chosen height on the server (a job: progress and cancel
  under Jobs and here), then download the MP4.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import viser

from studio.app import Studio
from studio.paths import MAX_VIDEO_HEIGHT, MIN_VIDEO_HEIGHT, VIDEO_CONTENTS, VIDEO_DEVICES
from studio.uploads import JSON_SUFFIXES, DiskUpload
from viewer.markup import md
from viewer.notify import notify
from viewer.path_scene import PathScene, c2w_of, follow
from viewer.scene import SceneView
from viewer.uploads import streaming_uploads

log = logging.getLogger(__name__)

NO_KEYFRAMES = "(no keyframes)"
NO_SAVED = "(none saved)"
PATH_UPLOADS = "paths"  # uploaded camera_path.json files wait here (uploads/paths/) until imported
PATH_UPLOAD_LIMIT = 8 << 20  # bytes of an uploaded camera_path.json


def keyframe_label(index: int, time_s: float) -> str:
    return f"#{index + 1} at {time_s:.2f} s"


def keyframe_index(label: str) -> int | None:
    """The index in a :func:`keyframe_label`, None for the placeholder."""
    if not label.startswith("#"):
        return None
    head = label[1:].split(" ", 1)[0]
    return int(head) - 1 if head.isdigit() else None


class Player:
    """Advances the time slider in real time on a thread while playing (wrapping at the end)."""

    def __init__(
        self,
        *,
        get_time: Callable[[], float],
        set_time: Callable[[float], None],
        duration: Callable[[], float],
        fps: Callable[[], float],
    ) -> None:
        self._get, self._set, self._duration, self._fps = get_time, set_time, duration, fps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def playing(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def play(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="lrm-studio-path-player", daemon=True
            )
            self._thread.start()

    def pause(self) -> None:
        with self._lock:
            self._stop.set()

    def _run(self, stop: threading.Event) -> None:
        start_wall, start_t = time.monotonic(), self._get()
        while not stop.is_set():
            duration = max(self._duration(), 1e-6)
            t = (start_t + time.monotonic() - start_wall) % duration
            try:
                self._set(t)
            except Exception:  # the page went away; stop quietly
                log.debug("path playback stopped", exc_info=True)
                return
            stop.wait(1.0 / max(self._fps(), 1.0))


@dataclass(repr=False)  # viser 1.1.1: repr of some handles raises
class PathsPanel:
    server: viser.ViserServer
    studio: Studio
    scene: SceneView
    path_scene: PathScene
    summary: viser.GuiMarkdownHandle
    add_view: viser.GuiButtonHandle
    input_frame: viser.GuiNumberHandle
    add_input: viser.GuiButtonHandle
    keyframe: viser.GuiDropdownHandle
    go_to: viser.GuiButtonHandle
    earlier: viser.GuiButtonHandle
    later: viser.GuiButtonHandle
    delete: viser.GuiButtonHandle
    own_fov: viser.GuiCheckboxHandle
    fov: viser.GuiSliderHandle
    move: viser.GuiCheckboxHandle
    clear: viser.GuiButtonHandle
    duration: viser.GuiNumberHandle
    fps: viser.GuiNumberHandle
    loop: viser.GuiCheckboxHandle
    default_fov: viser.GuiSliderHandle
    orbit: viser.GuiButtonHandle
    inputs: viser.GuiButtonHandle
    time: viser.GuiSliderHandle
    follow: viser.GuiCheckboxHandle
    play: viser.GuiButtonHandle
    pause: viser.GuiButtonHandle
    name: viser.GuiTextHandle
    save: viser.GuiButtonHandle
    saved: viser.GuiDropdownHandle
    load: viser.GuiButtonHandle
    upload: viser.GuiUploadButtonHandle
    download: viser.GuiButtonHandle
    content: viser.GuiDropdownHandle
    height: viser.GuiNumberHandle
    device: viser.GuiDropdownHandle
    render: viser.GuiButtonHandle
    cancel: viser.GuiButtonHandle
    download_video: viser.GuiButtonHandle
    selected: int | None = None
    video_job: int | None = None
    player: Player | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _local: threading.local = field(default_factory=threading.local)

    # ---------------------------------------------------------------- state
    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        """Handle values set inside are the state's echo: their callbacks (which viser runs at
        once, on this thread) must not edit the state again."""
        self._local.updating = True
        try:
            yield
        finally:
            self._local.updating = False

    @property
    def is_updating(self) -> bool:
        return getattr(self._local, "updating", False)

    def frustum_size(self) -> float:
        return 1.2 * self.scene.frustum_scale * self.scene.extent

    def refresh(self, studio: Studio) -> None:
        """Write the path's state into the handles and the scene (any thread)."""
        editor = studio.paths
        path = editor.path
        n = len(path)
        with self._lock, self.updating():
            if self.selected is not None and self.selected >= n:
                self.selected = n - 1 if n else None
            if self.selected is None and n:
                self.selected = 0
            times = path.keyframe_times().tolist() if n else []
            options = tuple(keyframe_label(i, t) for i, t in enumerate(times)) or (NO_KEYFRAMES,)
            if tuple(self.keyframe.options) != options:
                self.keyframe.options = options
            self.keyframe.value = options[self.selected] if self.selected is not None else options[0]
            for b in (self.go_to, self.earlier, self.later, self.delete, self.own_fov, self.clear):
                b.disabled = n == 0
            if self.selected is not None:
                k = path.keyframes[self.selected]
                self.own_fov.value = k.fov_y_deg is not None
                self.fov.value = float(path.fovs_deg()[self.selected])
                self.fov.disabled = k.fov_y_deg is None
            else:
                self.fov.disabled = True
            self.duration.value = round(path.duration_s, 3)
            self.fps.value = round(path.fps, 3)
            self.loop.value = path.loop
            self.default_fov.value = round(path.default_fov_deg, 1)
            self.time.max = round(path.duration_s, 3)
            self.time.step = max(0.001, round(1.0 / path.fps, 3))
            if self.time.value > path.duration_s:
                self.time.value = 0.0
            capture = studio.capture
            frames = len(capture) if capture is not None else 0
            self.input_frame.max = max(0, frames - 1)
            self.add_input.disabled = frames == 0
            self.add_view.disabled = capture is None
            self.orbit.disabled = self.inputs.disabled = capture is None
            self.play.disabled = self.pause.disabled = n == 0
            saved = tuple(editor.saved()) or (NO_SAVED,)
            if tuple(self.saved.options) != saved:
                self.saved.options = saved
            if self.saved.value not in saved:
                self.saved.value = saved[0]
            self.load.disabled = saved == (NO_SAVED,)
            self.save.disabled = self.download.disabled = self.render.disabled = n == 0
            self.name.value = editor.name
            self.download_video.disabled = editor.last_video is None
            self.cancel.disabled = not (self._known_job() and not studio.jobs.get(self.video_job).finished)
            self.summary.content = summary_markdown(studio)
            self.path_scene.draw(path, selected=self.selected, size=self.frustum_size())
            self.show_time(self.time.value, move_views=False)

    def _known_job(self) -> bool:
        if self.video_job is None:
            return False
        try:
            self.studio.jobs.get(self.video_job)
        except KeyError:
            return False
        return True

    def show_time(self, t: float, *, move_views: bool = True) -> None:
        """The playhead at time ``t``; every tab's view follows when asked (and enabled)."""
        path = self.studio.paths.path
        pose = self.studio.paths.pose_at(t)
        if pose is None:
            self.path_scene.set_playhead(None, 0.0, 1.0)
            return
        c2w, fov = pose
        self.path_scene.set_playhead(c2w, fov, path.aspect)
        if move_views and self.follow.value:
            follow(self.server, c2w, fov)

    def select(self, index: int) -> None:
        with self._lock:
            self.selected = index
        self.refresh(self.studio)


def summary_markdown(studio: Studio) -> str:
    path = studio.paths.path
    if studio.capture is None:
        return "No capture open."
    if len(path) == 0:
        return "No keyframes. Add some at the current view or at input cameras, or make an automatic path."
    kind = "loop" if path.loop else "open path"
    video = studio.paths.last_video
    lines = [
        f"**{md(studio.paths.name)}**: {len(path)} keyframes, {kind}, {path.duration_s:.2f} s at "
        f"{path.fps:g} fps ({path.num_frames()} frames)",
    ]
    if video is not None:
        lines.append(f"Last video: {md(video.name)}")
    return "  \n".join(lines)


def add_paths_panel(server: viser.ViserServer, studio: Studio, scene: SceneView) -> PathsPanel:
    """Widgets in the current GUI container and the path's scene nodes; refreshed by the
    viewer on PATH, CAPTURE and SCENE."""
    gui = server.gui
    panel_ref: list[PathsPanel] = []

    def on_select(i: int) -> None:
        panel_ref[0].select(i)

    def on_move(i: int, c2w) -> None:
        try:
            studio.paths.move_keyframe(i, c2w)
        except (IndexError, AssertionError):  # a gizmo of a keyframe deleted meanwhile
            log.debug("ignored a move of keyframe %d", i, exc_info=True)

    path_scene = PathScene(server, on_select=on_select, on_move=on_move)
    summary = gui.add_markdown("")
    with gui.add_folder("Keyframes"):
        add_view = gui.add_button("Add at current view", icon=viser.Icon.PLUS)
        input_frame = gui.add_number("Input camera", initial_value=0, min=0, max=0, step=1)
        add_input = gui.add_button("Add at input camera", icon=viser.Icon.CAMERA)
        keyframe = gui.add_dropdown("Keyframe", options=(NO_KEYFRAMES,))
        go_to = gui.add_button("Go to keyframe", icon=viser.Icon.EYE)
        earlier = gui.add_button("Earlier", icon=viser.Icon.ARROW_UP)
        later = gui.add_button("Later", icon=viser.Icon.ARROW_DOWN)
        own_fov = gui.add_checkbox("Own field of view", initial_value=False)
        fov = gui.add_slider(
            "Keyframe FOV (deg)", min=5.0, max=150.0, step=0.5, initial_value=60.0, disabled=True
        )
        move = gui.add_checkbox("Move keyframes (gizmos)", initial_value=False)
        delete = gui.add_button("Delete keyframe", icon=viser.Icon.TRASH, color="red")
        clear = gui.add_button("Clear path", icon=viser.Icon.TRASH)
    with gui.add_folder("Timing"):
        duration = gui.add_number("Duration (s)", initial_value=6.0, min=0.1, max=3600.0, step=0.1)
        fps = gui.add_number("FPS", initial_value=30.0, min=1.0, max=120.0, step=1.0)
        loop = gui.add_checkbox("Loop", initial_value=False)
        default_fov = gui.add_slider("Default FOV (deg)", min=5.0, max=150.0, step=0.5, initial_value=60.0)
    with gui.add_folder("Automatic paths"):
        orbit = gui.add_button(
            "Orbit the scene",
            icon=viser.Icon.ROTATE_360,
            hint="From the first camera: a circle for a capture all around, an arc over the captured "
            "range otherwise, the input cameras for a walk-through",
        )
        inputs = gui.add_button("Through input cameras", icon=viser.Icon.ROUTE)
    with gui.add_folder("Playback"):
        time_slider = gui.add_slider("Time (s)", min=0.0, max=6.0, step=1 / 30, initial_value=0.0)
        follow_box = gui.add_checkbox("Views follow the path", initial_value=True)
        play = gui.add_button("Play", icon=viser.Icon.PLAYER_PLAY)
        pause = gui.add_button("Pause", icon=viser.Icon.PLAYER_PAUSE)
    with gui.add_folder("Files", expand_by_default=False):
        name = gui.add_text("Name", initial_value="path")
        save = gui.add_button("Save", icon=viser.Icon.DEVICE_FLOPPY)
        saved = gui.add_dropdown("Saved paths", options=(NO_SAVED,))
        load = gui.add_button("Load", icon=viser.Icon.FOLDER_OPEN)
        upload = streaming_uploads(server).add_button(
            "Import camera_path.json",
            uploads_dir=lambda: studio.uploads_dir / PATH_UPLOADS,
            limit_bytes=PATH_UPLOAD_LIMIT,
            quota_bytes=studio.config.uploads_quota_bytes,
            suffixes=JSON_SUFFIXES,
            on_uploaded=lambda client, file, up: on_upload(client, file, up),
            on_failed=lambda client, reason: notify(
                server, "Importing the path failed", reason, kind="error", client=client
            ),
            hint=f"nerfstudio's camera_path.json, at most {PATH_UPLOAD_LIMIT >> 20} MiB",
        )
        download = gui.add_button("Download camera_path.json", icon=viser.Icon.DOWNLOAD)
    with gui.add_folder("Video"):
        content = gui.add_dropdown("Content", options=VIDEO_CONTENTS, initial_value=VIDEO_CONTENTS[0])
        height = gui.add_number(
            "Height (px)", initial_value=480, min=MIN_VIDEO_HEIGHT, max=MAX_VIDEO_HEIGHT, step=2
        )
        device = gui.add_dropdown("Device", options=VIDEO_DEVICES, initial_value="auto")
        render = gui.add_button("Render video", icon=viser.Icon.MOVIE)
        cancel = gui.add_button("Cancel video", icon=viser.Icon.PLAYER_STOP, color="red", disabled=True)
        download_video = gui.add_button("Download video", icon=viser.Icon.DOWNLOAD, disabled=True)

    panel = PathsPanel(
        server,
        studio,
        scene,
        path_scene,
        summary,
        add_view,
        input_frame,
        add_input,
        keyframe,
        go_to,
        earlier,
        later,
        delete,
        own_fov,
        fov,
        move,
        clear,
        duration,
        fps,
        loop,
        default_fov,
        orbit,
        inputs,
        time_slider,
        follow_box,
        play,
        pause,
        name,
        save,
        saved,
        load,
        upload,
        download,
        content,
        height,
        device,
        render,
        cancel,
        download_video,
    )
    panel_ref.append(panel)
    panel.player = Player(
        get_time=lambda: float(time_slider.value),
        set_time=lambda t: setattr(time_slider, "value", t),
        duration=lambda: studio.paths.path.duration_s,
        fps=lambda: studio.paths.path.fps,
    )

    def guarded(what: str, fn: Callable[[viser.GuiEvent], None]) -> Callable[[viser.GuiEvent], None]:
        """A callback that skips the state's own echoes and turns failures into a toast."""

        def cb(event: viser.GuiEvent) -> None:
            if panel.is_updating:
                return
            try:
                fn(event)
            except Exception as e:
                log.debug("%s failed", what, exc_info=True)
                notify(
                    server, f"{what} failed", f"{type(e).__name__}: {e}", kind="error", client=event.client
                )

        return cb

    def current() -> int:
        if panel.selected is None:
            raise ValueError("no keyframe selected; add one first")
        return panel.selected

    def on_add_view(event: viser.GuiEvent) -> None:
        if event.client is None:
            return
        cam = event.client.camera
        c2w = c2w_of(cam.wxyz, cam.position)
        fov_deg = float(np.rad2deg(cam.fov))
        own = fov_deg if abs(fov_deg - studio.paths.path.default_fov_deg) > 1e-3 else None
        after = None if panel.selected is None else panel.selected + 1
        panel.selected = studio.paths.add_keyframe(c2w, own, after)
        panel.refresh(studio)

    def on_add_input(event: viser.GuiEvent) -> None:
        after = None if panel.selected is None else panel.selected + 1
        panel.selected = studio.paths.add_input_camera(int(input_frame.value), after)
        panel.refresh(studio)

    def on_keyframe(event: viser.GuiEvent) -> None:
        i = keyframe_index(keyframe.value)
        if i is not None:
            panel.select(i)

    def on_go_to(event: viser.GuiEvent) -> None:
        i = current()
        path = studio.paths.path
        t = float(path.keyframe_times()[i])
        with panel.updating():
            time_slider.value = min(t, path.duration_s)
        follow(server, path.keyframes[i].c2w, float(path.fovs_deg()[i]))
        panel.show_time(t, move_views=False)

    def on_reorder(step: int) -> Callable[[viser.GuiEvent], None]:
        def fn(event: viser.GuiEvent) -> None:
            panel.selected = studio.paths.reorder(current(), step)
            panel.refresh(studio)

        return fn

    def on_delete(event: viser.GuiEvent) -> None:
        studio.paths.delete_keyframe(current())

    def on_own_fov(event: viser.GuiEvent) -> None:
        i = current()
        studio.paths.set_keyframe_fov(i, float(fov.value) if own_fov.value else None)

    def on_fov(event: viser.GuiEvent) -> None:
        if own_fov.value:
            studio.paths.set_keyframe_fov(current(), float(fov.value))

    def on_move_toggle(event: viser.GuiEvent) -> None:
        path_scene.set_moving(bool(move.value), studio.paths.path)

    def on_duration(event: viser.GuiEvent) -> None:
        studio.paths.set_timing(duration_s=float(duration.value))

    def on_fps(event: viser.GuiEvent) -> None:
        studio.paths.set_timing(fps=float(fps.value))

    def on_loop(event: viser.GuiEvent) -> None:
        studio.paths.set_timing(loop=bool(loop.value))

    def on_default_fov(event: viser.GuiEvent) -> None:
        studio.paths.set_timing(default_fov_deg=float(default_fov.value))

    def on_orbit(event: viser.GuiEvent) -> None:
        studio.paths.orbit()
        panel.selected = 0

    def on_inputs(event: viser.GuiEvent) -> None:
        studio.paths.through_inputs()
        panel.selected = 0

    def on_time(event: viser.GuiEvent) -> None:
        panel.show_time(float(time_slider.value), move_views=True)

    def on_save(event: viser.GuiEvent) -> None:
        file = studio.paths.save(name.value)
        notify(server, "Path saved", str(file), kind="success", client=event.client)

    def on_load(event: viser.GuiEvent) -> None:
        studio.paths.load(saved.value)
        panel.selected = 0

    def on_upload(client: viser.ClientHandle | None, file: Path, up: DiskUpload) -> None:
        try:
            saved = studio.paths.import_json(up.name, file.read_bytes())
        except (ValueError, OSError) as e:
            notify(server, "Importing the path failed", str(e), kind="error", client=client)
            return
        finally:
            file.unlink(missing_ok=True)
        panel.selected = 0
        shown = studio.server_paths.shown(saved)
        notify(server, "Path imported", shown, kind="success", client=client)

    def on_download(event: viser.GuiEvent) -> None:
        if event.client is not None:
            event.client.send_file_download(f"{studio.paths.name}.json", studio.paths.export_json())

    def on_render(event: viser.GuiEvent) -> None:
        job = studio.paths.submit_video(content.value, height=int(height.value), device=device.value)
        panel.video_job = job.id
        cancel.disabled = False

    def on_cancel(event: viser.GuiEvent) -> None:
        if panel.video_job is None or not studio.jobs.cancel(panel.video_job):
            notify(
                server,
                "Nothing to cancel",
                "No video is being rendered.",
                kind="warning",
                client=event.client,
            )

    def on_download_video(event: viser.GuiEvent) -> None:
        video = studio.paths.last_video
        if video is None:
            raise ValueError("no video yet; render one first")
        if event.client is not None:
            event.client.send_file_download(video.name, video.read_bytes())

    wiring: list[tuple[object, str, Callable]] = [
        (add_view, "Adding a keyframe", on_add_view),
        (add_input, "Adding a keyframe", on_add_input),
        (go_to, "Go to keyframe", on_go_to),
        (earlier, "Reordering", on_reorder(-1)),
        (later, "Reordering", on_reorder(+1)),
        (delete, "Deleting a keyframe", on_delete),
        (clear, "Clearing the path", lambda e: studio.paths.clear()),
        (orbit, "Orbit", on_orbit),
        (inputs, "Path through the input cameras", on_inputs),
        (play, "Play", lambda e: panel.player.play()),
        (pause, "Pause", lambda e: panel.player.pause()),
        (save, "Saving the path", on_save),
        (load, "Loading the path", on_load),
        (download, "Download", on_download),
        (render, "Video", on_render),
        (cancel, "Cancel", on_cancel),
        (download_video, "Download", on_download_video),
    ]
    for handle, what, fn in wiring:
        handle.on_click(guarded(what, fn))  # type: ignore[attr-defined]
    for handle, what, fn in [
        (keyframe, "Selecting a keyframe", on_keyframe),
        (own_fov, "Keyframe FOV", on_own_fov),
        (fov, "Keyframe FOV", on_fov),
        (move, "Move keyframes", on_move_toggle),
        (duration, "Timing", on_duration),
        (fps, "Timing", on_fps),
        (loop, "Timing", on_loop),
        (default_fov, "Timing", on_default_fov),
        (time_slider, "Playback", on_time),
    ]:
        handle.on_update(guarded(what, fn))  # type: ignore[attr-defined]

    def on_job(state) -> None:
        if panel.video_job is not None and state.id == panel.video_job and state.finished:
            panel.refresh(studio)

    studio.jobs.add_listener(on_job)
    panel.refresh(studio)
    return panel
