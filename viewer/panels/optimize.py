"""Optimize panel: 3DGS optimization of the open capture, live.

Start from the capture's SfM points, from a run's Gaussians (refine a feed-forward result) or
continue an unfinished run; pick the preset (by device by default) and the steps; pause /
resume, stop (finish now and write the run) and cancel (keep only the checkpoint). While it
trains the splats in the chosen scene slot update (every ``snapshot_every`` steps, at most once
a second) and two uPlot charts show the training loss and the test PSNR. The work runs as a
studio job (:meth:`Studio.submit_optimize`); this module only builds widgets and forwards clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import viser
import viser.uplot

from studio.app import SLOTS, Studio, TrainingStatus
from viewer.markup import md
from viewer.notify import notify, relative_paths

SFM = "SfM points"
CONTINUE = "continue: "  # prefix of an unfinished run in the Start-from options
AUTO = "auto (by device)"
PRESETS = (AUTO, "cpu-fast", "cuda-30k")


@dataclass(repr=False)  # viser 1.1.1: repr of some handles raises
class OptimizePanel:
    start_from: viser.GuiDropdownHandle  # SfM points | continue: <unfinished run> | <run id>
    preset: viser.GuiDropdownHandle
    steps: viser.GuiNumberHandle  # 0: the preset's
    slot: viser.GuiDropdownHandle  # scene slot of the live splats
    start: viser.GuiButtonHandle
    pause: viser.GuiButtonHandle  # "Pause" / "Resume"
    stop: viser.GuiButtonHandle  # finish now, write the run
    cancel: viser.GuiButtonHandle  # cancel, keep the checkpoint
    status: viser.GuiMarkdownHandle
    loss_plot: viser.GuiUplotHandle  # (step, training loss)
    psnr_plot: viser.GuiUplotHandle  # (step, test PSNR dB)

    def refresh_options(self, studio: Studio) -> None:
        """Start-from choices: SfM points, unfinished runs to continue, finished runs (newest first)."""
        options = [SFM]
        options += [CONTINUE + r for r in studio.resumable_runs()]
        options += [r.id for r in reversed(studio.run_summaries())]
        options_t = tuple(options)
        if tuple(self.start_from.options) != options_t:
            self.start_from.options = options_t
        if self.start_from.value not in options_t:
            self.start_from.value = SFM
        self.refresh_training(studio)

    def refresh_training(self, studio: Studio) -> None:
        t = studio.training
        active = t is not None and t.active
        no_capture = studio.capture is None or not studio.capabilities.optimize
        self.start.disabled = active or no_capture
        self.pause.disabled = not active or t.state == "stopping"
        self.pause.label = "Resume" if t is not None and t.state == "paused" else "Pause"
        self.stop.disabled = not active or t.state == "stopping"
        self.cancel.disabled = not active
        self.status.content = status_markdown(t, studio)
        self.loss_plot.data = curve(t.loss_curve if t is not None else ())
        self.psnr_plot.data = curve(t.psnr_curve if t is not None else ())


def curve(points) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) float64 arrays for a uPlot chart. Never empty: a uPlot chart that once
    holds no points keeps a NaN x scale and draws nothing ever after (seen with viser 1.1.1's
    client: the charts stayed blank while training), so no points is one invisible point."""
    if not points:
        return np.zeros(1), np.full(1, np.nan)
    a = np.asarray(points, dtype=np.float64)
    return a[:, 0].copy(), a[:, 1].copy()


def status_markdown(t: TrainingStatus | None, studio: Studio) -> str:
    if studio.capture is None:
        return "No capture open."
    if not studio.capabilities.optimize:
        return "This build has no optimizer (pipelines.optimize)."
    if t is None:
        return "Optimizes 3D Gaussians on this capture (gsplat's recipe); the splats update live."
    head = {
        "queued": "Queued",
        "running": "Training",
        "paused": "Paused",
        "stopping": "Finishing",
        "done": "Done",
        "failed": "Failed",
        "cancelled": "Cancelled",
    }[t.state]
    lines = [f"**{head}** from {md(t.init)}" + (f", preset {md(t.preset)}" if t.preset else "")]
    if t.steps:
        lines.append(f"Step {t.step:,} / {t.steps:,}")
    if t.state == "running" and t.step == 0:
        lines.append("*Starting: loading the images and the renderer (on the CPU its kernels are compiled "
                     "on first use, once per install: about half a minute).*")  # fmt: skip
    facts = []
    if t.loss is not None:
        facts.append(f"loss {t.loss:.4f}")
    if t.psnr is not None:
        facts.append(f"test PSNR {t.psnr:.2f} dB")
    if t.num_gaussians is not None:
        facts.append(f"{t.num_gaussians:,} Gaussians")
    if t.step_time_s:
        facts.append(f"{1.0 / t.step_time_s:.1f} steps/s")
    if facts:
        lines.append(", ".join(facts))
    if t.skipped:
        lines.append(f"{t.skipped} steps skipped (NaN or exploding loss)")
    if t.note:
        lines.append(f"*{md(t.note)}*")
    if t.state == "failed" and t.error:
        lines.append(f"Why: {md(relative_paths(t.error, studio.workspace))}")
    if t.state == "cancelled" and t.run_id:
        lines.append(f"Checkpoint kept: choose *{md(CONTINUE + t.run_id)}* to continue.")
    if t.state == "done" and t.run_id:
        lines.append(f"Run {md(t.run_id)} (in Runs, shown as {md(t.slot)}).")
    return "  \n".join(lines)


def _chart(server: viser.ViserServer, title: str, label: str, color: str) -> viser.GuiUplotHandle:
    return server.gui.add_uplot(
        data=curve(()),
        series=(viser.uplot.Series(label="step"), viser.uplot.Series(label=label, stroke=color, width=2)),
        title=title,
        scales={"x": viser.uplot.Scale(time=False, auto=True), "y": viser.uplot.Scale(auto=True)},
        legend=viser.uplot.Legend(show=False),
        aspect=2.0,
    )


def add_optimize_panel(server: viser.ViserServer, studio: Studio) -> OptimizePanel:
    """Widgets in the current GUI container; refreshed by the viewer on CAPTURE / RUNS / TRAINING."""
    panel = OptimizePanel(
        start_from=server.gui.add_dropdown("Start from", options=(SFM,)),
        preset=server.gui.add_dropdown("Preset", options=PRESETS, initial_value=AUTO),
        steps=server.gui.add_number("Steps (0: preset)", initial_value=0, min=0, max=1_000_000, step=100),
        slot=server.gui.add_dropdown("Show as", options=SLOTS, initial_value=SLOTS[0]),
        start=server.gui.add_button("Start", icon=viser.Icon.PLAYER_PLAY),
        pause=server.gui.add_button("Pause", icon=viser.Icon.PLAYER_PAUSE, disabled=True),
        stop=server.gui.add_button("Stop and save", icon=viser.Icon.PLAYER_STOP, disabled=True),
        cancel=server.gui.add_button(
            "Cancel (keep checkpoint)", icon=viser.Icon.X, color="red", disabled=True
        ),
        status=server.gui.add_markdown(""),
        loss_plot=_chart(server, "Training loss", "loss", "#e8590c"),
        psnr_plot=_chart(server, "Test PSNR (dB)", "PSNR", "#1c7ed6"),
    )

    def fail(event: viser.GuiEvent, title: str, e: Exception) -> None:
        notify(server, title, f"{e}", kind="warning", client=event.client)

    @panel.start.on_click
    def _(event: viser.GuiEvent) -> None:
        choice = panel.start_from.value
        preset = None if panel.preset.value == AUTO else panel.preset.value
        steps = int(panel.steps.value) or None
        try:
            if choice.startswith(CONTINUE):
                studio.submit_optimize(resume=choice[len(CONTINUE) :], slot=panel.slot.value)
            else:
                init = "sfm" if choice == SFM else choice
                studio.submit_optimize(init=init, preset=preset, steps=steps, slot=panel.slot.value)
        except ValueError as e:
            fail(event, "Could not start", e)

    @panel.pause.on_click
    def _(event: viser.GuiEvent) -> None:
        t = studio.training
        try:
            if t is not None and t.state == "paused":
                studio.resume_optimize()
            else:
                studio.pause_optimize()
        except ValueError as e:
            fail(event, "Nothing to pause", e)

    @panel.stop.on_click
    def _(event: viser.GuiEvent) -> None:
        try:
            studio.stop_optimize()
        except ValueError as e:
            fail(event, "Nothing to stop", e)

    @panel.cancel.on_click
    def _(event: viser.GuiEvent) -> None:
        try:
            studio.cancel_optimize()
        except ValueError as e:
            fail(event, "Nothing to cancel", e)

    panel.refresh_options(studio)
    return panel
