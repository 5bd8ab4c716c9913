"""Reconstruct panel: run a feed-forward model on the open capture (a job; the new run is shown
as A when done). *Live* (streaming models: tttLRM) feeds the capture's frames in order, a chunk
at a time, and the splats in slot A update after every chunk."""

from __future__ import annotations

from dataclasses import dataclass

import viser

from pipelines.models.base import supports_streaming
from studio.app import Studio
from viewer.notify import notify

NO_MODELS = "(no models)"
LIVE_HINT = "Feed the frames in order, a chunk at a time; the splats in A update after every chunk"


@dataclass
class ReconstructPanel:
    model: viser.GuiDropdownHandle  # registered model
    preset: viser.GuiTextHandle  # preset name; empty: the model's default (shipped weights)
    views: viser.GuiNumberHandle  # input views; 0: the model's default
    live: viser.GuiCheckboxHandle  # stream chunk by chunk (streaming models only)
    chunk_views: viser.GuiNumberHandle  # views per chunk when live; 0: the model's update interval
    run: viser.GuiButtonHandle

    def refresh(self, studio: Studio) -> None:
        streams = self.model.value != NO_MODELS and supports_streaming(self.model.value)
        self.live.disabled = not streams
        if not streams and self.live.value:
            self.live.value = False
        self.chunk_views.disabled = not (streams and self.live.value)
        self.run.disabled = studio.capture is None or self.model.value == NO_MODELS

    def submit(self, studio: Studio):
        """Queue the job the widgets describe (the Run button's action); returns its JobState."""
        return studio.submit_reconstruct(
            self.model.value,
            preset=self.preset.value.strip() or None,
            views=int(self.views.value) or None,
            live=bool(self.live.value),
            chunk_views=int(self.chunk_views.value) or None,
            slot="A",
        )


def add_reconstruct_panel(server: viser.ViserServer, studio: Studio) -> ReconstructPanel:
    """Widgets in the current GUI container; refreshed by the viewer on CAPTURE."""
    models = studio.capabilities.models or (NO_MODELS,)
    default = "ttt-lrm" if "ttt-lrm" in models else models[0]
    panel = ReconstructPanel(
        model=server.gui.add_dropdown("Model", options=models, initial_value=default),
        preset=server.gui.add_text("Preset", initial_value="", hint="e.g. tiny, official-ar; empty: default"),
        views=server.gui.add_number("Views", initial_value=0, min=0, step=1, hint="0: the model's default"),
        live=server.gui.add_checkbox("Live", initial_value=False, hint=LIVE_HINT),
        chunk_views=server.gui.add_number(
            "Views per chunk", initial_value=0, min=0, step=1, hint="0: the model's update interval"
        ),
        run=server.gui.add_button("Reconstruct", icon=viser.Icon.PLAYER_PLAY),
    )

    @panel.model.on_update
    def _(event: viser.GuiEvent) -> None:
        panel.refresh(studio)

    @panel.live.on_update
    def _(event: viser.GuiEvent) -> None:
        panel.refresh(studio)

    @panel.run.on_click
    def _(event: viser.GuiEvent) -> None:
        try:
            job = panel.submit(studio)
        except ValueError as e:
            notify(server, "Cannot reconstruct", str(e), kind="error", client=event.client)
            return
        notify(server, "Queued", job.title, kind="info", client=event.client)

    panel.refresh(studio)
    return panel
