"""The studio page: panels on one viser server, wired to one shared Studio.

Layout: a Jobs folder on top (progress of the running job is visible from every tab), then a
tab group with one tab per panel. A new panel is one ``add_<name>_panel(server, studio, ...)``
call inside its tab here, plus its refresh in :meth:`Viewer.on_change` for the topics it shows.

Examples:
    >>> running = start_studio(StudioConfig(workspace=Path("ws"), port=0))    # doctest: +SKIP
    >>> running.url                                                           # doctest: +SKIP
    'http://127.0.0.1:40123/'
    >>> running.stop()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

import viser

from studio.app import CAPTURE, CAPTURES, COMPARE, PATH, RUNS, SCENE, TRAINING, Studio, open_studio
from studio.config import StudioConfig
from viewer.access import TOKEN_PARAM, AccessPolicy, is_loopback_host, start_guarded_viser
from viewer.gui_input import validate_all_inputs
from viewer.notify import paths_relative_to
from viewer.panels.cameras import CamerasPanel, add_cameras_panel
from viewer.panels.capture import CapturePanel, add_capture_panel
from viewer.panels.compare import ComparePanel, add_compare_panel
from viewer.panels.jobs import JobsPanel, add_jobs_panel
from viewer.panels.optimize import OptimizePanel, add_optimize_panel
from viewer.panels.paths import PathsPanel, add_paths_panel
from viewer.panels.reconstruct import ReconstructPanel, add_reconstruct_panel
from viewer.panels.runs import RunsPanel, add_runs_panel
from viewer.scene import SceneView

log = logging.getLogger(__name__)


@dataclass(repr=False)  # viser 1.1.1: repr of a progress bar handle raises
class Viewer:
    server: viser.ViserServer
    studio: Studio
    scene: SceneView
    tabs: viser.GuiTabGroupHandle
    jobs: JobsPanel
    capture: CapturePanel
    cameras: CamerasPanel
    runs: RunsPanel
    reconstruct: ReconstructPanel
    optimize: OptimizePanel
    paths: PathsPanel
    compare: ComparePanel

    def apply_compare_layout(self) -> None:
        """Slot visibility (A/B toggle), B's offset (side by side) and the view's background (the
        first visible result's) from the compare state."""
        state = self.studio.compare_state
        visible = {"A": state.showing in ("both", "A"), "B": state.showing in ("both", "B")}
        offsets = {}
        if state.side_by_side and self.studio.capture is not None:
            offsets["B"] = self.studio.side_offset()
        self.scene.set_layout(visible, offsets)
        shown = self.studio.shown
        first = next((shown[s] for s in ("A", "B") if s in shown and visible[s]), None)
        self.scene.set_background(first.background if first is not None else None)

    def on_change(self, topic: str) -> None:
        """Bring handles and scene nodes up to date after a studio change (any thread)."""
        studio = self.studio
        if topic == CAPTURES:
            self.capture.refresh(studio)
            self.reconstruct.refresh_choices(studio)  # Rescan also finds new weights files
            self.reconstruct.refresh(studio)
        elif topic == CAPTURE:
            capture = studio.capture
            thumbs = studio.thumbnails(studio.config.thumbnail_px) if capture is not None else None
            self.scene.set_capture(capture, thumbs)
            self.capture.refresh(studio)
            self.cameras.refresh(studio, self.scene)
            self.reconstruct.refresh(studio)
            self.optimize.refresh_options(studio)
            self.paths.refresh(studio)  # a new capture starts an empty path in its world
            self.compare.refresh(studio)
        elif topic == RUNS:
            self.runs.refresh(studio)
            self.optimize.refresh_options(studio)
        elif topic == SCENE:
            self.scene.set_results(studio.shown)
            self.apply_compare_layout()
            self.runs.refresh(studio)
            self.compare.refresh(studio)
            if studio.compare_state.split_enabled:
                self.compare.renderer.request()
        elif topic == COMPARE:
            self.apply_compare_layout()
            self.compare.refresh(studio)
            if studio.compare_state.split_enabled:
                self.compare.renderer.request()
        elif topic == TRAINING:
            self.optimize.refresh_training(studio)
        elif topic == PATH:
            self.paths.refresh(studio)


def build_viewer(server: viser.ViserServer, studio: Studio) -> Viewer:
    """Add the studio's panels to ``server`` and follow ``studio`` from now on."""
    server.gui.configure_theme(
        control_width="large", show_share_button=False
    )  # local studio: no public tunnel
    validate_all_inputs(server)  # every value a tab sends is checked before a callback reads it
    paths_relative_to(server, studio.workspace)  # toasts never show where the workspace lives
    scene = SceneView(server, budget=studio.config.browser_budget)
    with server.gui.add_folder("Jobs"):
        jobs = add_jobs_panel(server, studio)
    tabs = server.gui.add_tab_group()
    with tabs.add_tab("Capture", icon=viser.Icon.VIDEO):
        capture = add_capture_panel(server, studio)
    with tabs.add_tab("Cameras", icon=viser.Icon.CAMERA):
        cameras = add_cameras_panel(server, studio, scene)
    with tabs.add_tab("Runs", icon=viser.Icon.LIST):
        runs = add_runs_panel(server, studio)
    with tabs.add_tab("Reconstruct", icon=viser.Icon.PLAYER_PLAY):
        reconstruct = add_reconstruct_panel(server, studio)
    with tabs.add_tab("Optimize", icon=viser.Icon.CHART_LINE):
        optimize = add_optimize_panel(server, studio)
    with tabs.add_tab("Path", icon=viser.Icon.ROUTE):
        paths = add_paths_panel(server, studio, scene)
    with tabs.add_tab("Compare", icon=viser.Icon.SWITCH_HORIZONTAL):
        compare = add_compare_panel(server, studio)
    viewer = Viewer(
        server, studio, scene, tabs, jobs, capture, cameras, runs, reconstruct, optimize, paths, compare
    )
    studio.subscribe(viewer.on_change)
    for topic in (CAPTURE, RUNS, SCENE):
        viewer.on_change(topic)
    return viewer


@dataclass
class StudioServer:
    """A running studio: the viser server, the shared state, the page and who may open it."""

    server: viser.ViserServer
    studio: Studio
    viewer: Viewer
    access: AccessPolicy

    @property
    def port(self) -> int:
        return self.server.get_port()

    def url_for(self, host: str | None = None, **params: object) -> str:
        """The page's URL on ``host`` (a name or address of this machine; default: its loopback
        address) with the token when one is required, and ``params`` in the query (viser's
        page options, e.g. ``fixedDpr=0.5``)."""
        if host is None:
            bound = self.server.get_host()
            host = bound if is_loopback_host(bound) else "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        query = {TOKEN_PARAM: self.access.token} if self.access.token else {}
        query.update({k: str(v) for k, v in params.items()})
        return f"http://{shown}:{self.port}/" + (f"?{urlencode(query)}" if query else "")

    @property
    def url(self) -> str:
        """The URL to open on this machine."""
        return self.url_for()

    def stop(self) -> None:
        """Cancel jobs, stop the worker, close the port."""
        self.viewer.compare.renderer.close()
        self.studio.close()
        self.server.stop()


def start_studio(config: StudioConfig) -> StudioServer:
    """Open the workspace (demo on first start), bind ``config.host``:``config.port`` (the next
    free port when taken) and build the page."""
    studio = open_studio(config)
    access = AccessPolicy.for_host(config.host, config.token)
    try:
        server = start_guarded_viser(config.host, config.port, access)
    except BaseException:
        studio.close()
        raise
    try:
        viewer = build_viewer(server, studio)
    except BaseException:
        studio.close()
        server.stop()
        raise
    studio.watch_runs()  # run.json rewritten outside the studio (a CLI eval) shows in the Runs table
    return StudioServer(server, studio, viewer, access)
