"""Compare panel: results A and B of the scene against each other.

- A/B toggle: a button and the hotkey **T** (viser's command palette, ``gui.add_command`` with
  ``hotkey="T"``; also listed in the palette, Ctrl/Cmd+K): shows only A, then only B, ...;
  *Show both* puts both back.
- Side by side: B moved beside A along the capture's right axis (``studio.side_offset``).
- Split view: A | B rendered on the server (``pipelines.gaussians.render``, exact SH) from the
  view of the tab that last moved, with a draggable divider (slider 0..1), shown as an image in
  the panel. Renders run on one background thread, at most one every ``min_interval_s``, the
  latest view only; callbacks only record the request.
- Held-out views: ground truth | A | B per test frame with per-view PSNR / SSIM, means, time and
  Gaussians, the trivial baselines, and which of A and B is ahead at equal wall time (a job:
  ``studio.submit_heldout``).
- Race: a feed-forward model's result refined by 3DGS against 3DGS from the SfM points, with the
  same preset and steps, as test PSNR against wall time (log scale; a job: ``studio.submit_race``;
  the capture's latest race is shown when it opens).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import viser

from pipelines.gaussians import BLACK
from studio.app import Studio
from studio.compare import HeldOut, split_view, view_camera
from viewer.markup import md
from viewer.notify import notify
from viewer.race_chart import race_chart

log = logging.getLogger(__name__)

TOGGLE_HOTKEY = "T"


def _blank(width: int = 4, height: int = 3) -> np.ndarray:
    return np.zeros((height, width, 3), dtype=np.uint8)


@dataclass(frozen=True)
class ViewRequest:
    """A tab's view: R_world_camera wxyz [4] (OpenCV axes), position [3], vertical fov (rad),
    aspect width / height."""

    wxyz: np.ndarray
    position: np.ndarray
    fov_y_rad: float
    aspect: float


@dataclass(eq=False)
class SplitRenderer:
    """Renders the split view on a background thread: :meth:`request` records the latest view
    (any thread, returns at once); the thread renders it at ``width`` px wide, at most once per
    ``min_interval_s``, and assigns the image to ``image``."""

    studio: Studio
    image: viser.GuiImageHandle
    width: int = 256
    min_interval_s: float = 0.25
    device: str = "auto"
    renders: int = 0  # completed renders (tests read it)
    last_error: str | None = None
    _latest: ViewRequest | None = None
    _pending: bool = False
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False
    _thread: threading.Thread | None = None

    def request(self, view: ViewRequest | None = None) -> None:
        """Render ``view`` (None: the last view again, e.g. after the divider moved)."""
        with self._wake:
            if view is not None:
                self._latest = view
            if self._latest is None:
                return
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lrm-studio-split", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def _loop(self) -> None:
        last = 0.0
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
            wait = self.min_interval_s - (time.monotonic() - last)
            if wait > 0:
                time.sleep(wait)  # throttle: requests meanwhile collapse into the latest
            with self._wake:
                view, self._pending = self._latest, False
            state = self.studio.compare_state
            if view is None or not state.split_enabled:
                continue
            last = time.monotonic()
            try:
                self.image.image = self.render(view, state.split)
                self.renders += 1
                self.last_error = None
            except Exception as e:  # shown in the panel's log; the next request tries again
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("split view render failed")

    def render(self, view: ViewRequest, split: float) -> np.ndarray:
        shown = self.studio.shown
        w = int(self.width)
        h = max(2, round(w / max(view.aspect, 1e-3)))
        cam = view_camera(view.wxyz, view.position, view.fov_y_rad, w, h)
        a, b = shown.get("A"), shown.get("B")
        backgrounds = tuple(s.background if s else BLACK for s in (a, b))
        return split_view(
            a.gaussians if a else None, b.gaussians if b else None, cam, split=split,
            backgrounds=backgrounds, device=self.device,
        )  # fmt: skip


def heldout_markdown(h: HeldOut) -> str:
    """The held-out metrics: a summary table (A, B and the trivial baselines as rows: mean PSNR /
    SSIM, time, Gaussians; a result below a baseline is marked), then PSNR / SSIM per view."""
    runs = [("A", h.a)] + ([("B", h.b)] if h.b is not None else [])
    summary = ["| | result | PSNR | SSIM | time | Gaussians |", "|---|---|---|---|---|---|"]
    best_baseline = max((b.mean_psnr for b in h.baselines), default=None)
    for s, r in runs:
        t = "?" if r.total_s is None else f"{r.total_s:.1f} s"
        n = "?" if r.num_gaussians is None else f"{r.num_gaussians:,}"
        below = best_baseline is not None and r.mean_psnr < best_baseline
        summary.append(
            f"| **{s}** | {md(r.method)} {md(r.run_id)}{' (below a baseline)' if below else ''} | "
            f"{r.mean_psnr:.2f} | {r.mean_ssim:.3f} | {t} | {n} |"
        )
    for b in h.baselines:
        summary.append(f"| baseline | {md(b.method)} | {b.mean_psnr:.2f} | {b.mean_ssim:.3f} | – | – |")
    head = "| view | " + " | ".join(f"{s} PSNR | {s} SSIM" for s, _ in runs) + " |"
    sep = "|---|" + "---|---|" * len(runs)
    rows = [head, sep]
    for i, fp in enumerate(h.file_paths):
        cells = " | ".join(f"{r.psnr[i]:.2f} | {r.ssim[i]:.3f}" for _, r in runs)
        rows.append(f"| {md(Path(fp).name)} | {cells} |")
    title = f"Held-out views of **{md(h.capture)}** at {h.resolution[0]}x{h.resolution[1]}"
    lines = [title, "", *summary, ""]
    if h.ahead is not None:
        who = {"A": "**A** is ahead", "B": "**B** is ahead", "tie": "they are level"}[h.ahead["ahead"]]
        lines += [
            f"At equal wall time ({h.ahead['time_s']:.1f} s, SfM included): A {h.ahead['a_psnr']:.2f} dB, "
            f"B {h.ahead['b_psnr']:.2f} dB: {who}.",
            "",
        ]
    return "\n".join([*lines, "Per view:", "", *rows])


RACE_CONTENDERS = {"refined": "refined {model}", "sfm": "3DGS from SfM points"}


def race_markdown(race: dict) -> str:
    """A race's result in words: final PSNRs, when the refined run reached the SfM run's final
    PSNR, which was ahead at equal time."""
    s = race["summary"]
    ff = race["feed_forward"]
    lines = [
        f"**Race** on {md(race['capture'])}: {md(ff['model'])} refined against 3DGS from SfM, "
        f"{race['steps']:,} steps each ({md(race['preset'])}, {md(race['device'])})",
        f"Final test PSNR: refined {s['refined_final_psnr']:.2f} dB, from SfM {s['sfm_final_psnr']:.2f} dB",
    ]
    reach = s["refined_reaches_sfm_final_s"]
    lines.append(
        f"The refined run reached the SfM run's final PSNR at {reach:.1f} s"
        if reach is not None
        else "The refined run did not reach the SfM run's final PSNR"
    )
    if s["ahead"] is not None:
        a = s["ahead"]
        who = {"A": "the refined run", "B": "the SfM run", "tie": "neither"}[a["ahead"]]
        lines.append(f"At {a['time_s']:.1f} s: {who} ahead ({a['a_psnr']:.2f} vs {a['b_psnr']:.2f} dB)")
    return "  \n".join(lines)


def race_image(race: dict) -> np.ndarray:
    model = race["feed_forward"]["model"]
    curves = {
        RACE_CONTENDERS[k].format(model=model): [(p["time_s"], p["psnr"]) for p in c["curve"]]
        for k, c in race["contenders"].items()
    }
    return race_chart(curves)


@dataclass(repr=False)
class ComparePanel:
    status: viser.GuiMarkdownHandle
    toggle: viser.GuiButtonHandle
    both: viser.GuiButtonHandle
    toggle_command: viser.CommandHandle  # hotkey T
    side_by_side: viser.GuiCheckboxHandle
    split_enabled: viser.GuiCheckboxHandle
    divider: viser.GuiSliderHandle
    split_image: viser.GuiImageHandle
    heldout_run: viser.GuiButtonHandle
    heldout_table: viser.GuiMarkdownHandle
    heldout_image: viser.GuiImageHandle
    race_model: viser.GuiDropdownHandle
    race_steps: viser.GuiNumberHandle  # 0: the optimizer preset's
    race_run: viser.GuiButtonHandle
    race_summary: viser.GuiMarkdownHandle
    race_image: viser.GuiImageHandle
    renderer: SplitRenderer

    def refresh(self, studio: Studio) -> None:
        state = studio.compare_state
        shown = studio.shown
        names = {s: (shown[s].label if s in shown else "empty") for s in ("A", "B")}
        visible = {"both": "A and B", "A": "A only", "B": "B only"}[state.showing]
        self.status.content = (
            f"**A:** {md(names['A'])}  \n**B:** {md(names['B'])}  \nShowing **{visible}**"
            + (" side by side" if state.side_by_side else "")
            + f"  \nToggle A/B: press **{TOGGLE_HOTKEY}** in the 3D view"
        )
        if self.side_by_side.value != state.side_by_side:
            self.side_by_side.value = state.side_by_side
        if self.split_enabled.value != state.split_enabled:
            self.split_enabled.value = state.split_enabled
        if abs(self.divider.value - state.split) > 1e-6:
            self.divider.value = state.split
        self.split_image.visible = state.split_enabled
        self.heldout_run.disabled = studio.capture is None or "A" not in shown or shown["A"].run_id is None
        h = state.heldout
        if h is None:
            self.heldout_table.content = (
                "Show finished runs as A and B, then compare them on the held-out views."
            )
            self.heldout_image.visible = False
        else:
            self.heldout_table.content = heldout_markdown(h)
            self.heldout_image.image = h.image
            self.heldout_image.visible = True
        self.race_run.disabled = studio.capture is None
        if state.race is None:
            self.race_summary.content = "No race on this capture yet."
            self.race_image.visible = False
        else:
            self.race_summary.content = race_markdown(state.race)
            self.race_image.image = race_image(state.race)
            self.race_image.visible = True


def add_compare_panel(server: viser.ViserServer, studio: Studio) -> ComparePanel:
    """Widgets in the current GUI container; the viewer refreshes it on COMPARE, SCENE, RUNS."""
    status = server.gui.add_markdown("")
    toggle = server.gui.add_button(f"Toggle A/B ({TOGGLE_HOTKEY})", icon=viser.Icon.SWITCH_HORIZONTAL)
    both = server.gui.add_button("Show both")
    command = server.gui.add_command(
        "Toggle A/B", description="Show only result A, then only B", hotkey=TOGGLE_HOTKEY
    )
    side = server.gui.add_checkbox(
        "Side by side", initial_value=False, hint="B beside A along the capture's right axis"
    )
    with server.gui.add_folder("Split view (server render)"):
        split_enabled = server.gui.add_checkbox(
            "Split view",
            initial_value=False,
            hint="A left of the divider, B right; rendered on the server with SH",
        )
        divider = server.gui.add_slider("Divider", min=0.0, max=1.0, step=0.01, initial_value=0.5)
        split_image = server.gui.add_image(_blank(), label="A | B", format="jpeg", visible=False)
    with server.gui.add_folder("Held-out views"):
        heldout_run = server.gui.add_button("Compare on held-out views", icon=viser.Icon.TABLE)
        heldout_table = server.gui.add_markdown("")
        heldout_image = server.gui.add_image(
            _blank(), label="ground truth | A | B", format="jpeg", visible=False
        )
    with server.gui.add_folder("Race: refined vs 3DGS from SfM", expand_by_default=False):
        models = studio.capabilities.models
        race_model = server.gui.add_dropdown(
            "Feed-forward", options=models, initial_value="long-lrm" if "long-lrm" in models else models[0]
        )
        race_steps = server.gui.add_number(
            "Steps (0: preset)", initial_value=0, min=0, max=1_000_000, step=100
        )
        race_run = server.gui.add_button("Start race", icon=viser.Icon.CHART_LINE)
        race_summary = server.gui.add_markdown("")
        race_img = server.gui.add_image(_blank(), label="test PSNR vs wall time", format="png", visible=False)
    import torch

    renderer = SplitRenderer(studio, split_image, width=640 if torch.cuda.is_available() else 256)
    panel = ComparePanel(
        status, toggle, both, command, side, split_enabled, divider, split_image, heldout_run, heldout_table,
        heldout_image, race_model, race_steps, race_run, race_summary, race_img, renderer,
    )  # fmt: skip

    @race_run.on_click
    def _(event: viser.GuiEvent) -> None:
        from studio.race import RaceOptions

        options = RaceOptions(feed_forward=race_model.value, steps=int(race_steps.value) or None)
        try:
            job = studio.submit_race(options)
        except ValueError as e:
            notify(server, "Cannot start the race", str(e), kind="error", client=event.client)
            return
        notify(server, "Queued", job.title, kind="info", client=event.client)

    def on_view(client: viser.ClientHandle) -> None:
        if not studio.compare_state.split_enabled:
            return
        cam = client.camera
        renderer.request(
            ViewRequest(np.asarray(cam.wxyz), np.asarray(cam.position), float(cam.fov), float(cam.aspect))
        )

    @server.on_client_connect
    def _(client: viser.ClientHandle) -> None:
        @client.camera.on_update
        def _(camera) -> None:
            on_view(client)

    toggle.on_click(lambda _e: studio.toggle_ab())
    command.on_trigger(lambda _e: studio.toggle_ab())
    both.on_click(lambda _e: studio.set_showing("both"))

    @side.on_update
    def _(event: viser.GuiEvent) -> None:
        try:
            studio.set_side_by_side(bool(side.value))
        except ValueError as e:
            notify(server, "Side by side", str(e), kind="error", client=event.client)

    @split_enabled.on_update
    def _(event: viser.GuiEvent) -> None:
        studio.set_split(enabled=bool(split_enabled.value))
        if split_enabled.value and event.client is not None:
            on_view(event.client)

    @divider.on_update
    def _(event: viser.GuiEvent) -> None:
        studio.set_split(split=float(divider.value))
        renderer.request()

    @heldout_run.on_click
    def _(event: viser.GuiEvent) -> None:
        try:
            job = studio.submit_heldout()
        except ValueError as e:
            notify(server, "Cannot compare", str(e), kind="error", client=event.client)
            return
        notify(server, "Queued", job.title, kind="info", client=event.client)

    panel.refresh(studio)
    return panel
