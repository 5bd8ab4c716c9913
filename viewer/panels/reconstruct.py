"""Reconstruct panel: run a feed-forward model on the open capture (a job; the new run is shown
in the slot chosen in *Show as*, A or B, when done). *Model* lists the weights files found
(shipped ``assets/models/*.safetensors``, the workspace's ``weights/`` folder) and the registered
models (``studio.models``); the default is Long-LRM tiny-demo when it ships. Weights trained on
procedural scenes only (the shipped demo models) say so under the model, as the run's run.json
does. *Live* (streaming models: tttLRM) feeds the capture's frames in order, a chunk at a time,
and the splats in the chosen slot update after every chunk. Choosing GeoLRM for a capture that
is not object-centric shows a warning (and the run asks for a second click)."""

from __future__ import annotations

from dataclasses import dataclass, field

import viser

from pipelines.models.base import supports_streaming
from studio.app import SLOTS, Studio
from studio.models import ModelChoice, default_choice
from viewer.markup import md
from viewer.notify import notify

NO_MODELS = "(no models)"
LIVE_HINT = "Feed the frames in order, a chunk at a time; the splats update after every chunk"
OBJECT_MODELS = ("geolrm",)  # models that assume an object-centric capture


@dataclass
class ReconstructPanel:
    model: viser.GuiDropdownHandle  # a ModelChoice label
    preset: viser.GuiTextHandle  # preset name; empty: the choice's (or the model's default)
    views: viser.GuiNumberHandle  # input views; 0: the model's default
    live: viser.GuiCheckboxHandle  # stream chunk by chunk (streaming models only)
    chunk_views: viser.GuiNumberHandle  # views per chunk when live; 0: the model's update interval
    slot: viser.GuiDropdownHandle  # scene slot the result is shown in
    note: viser.GuiMarkdownHandle  # what the chosen weights are good for (procedural-only demo models)
    warning: viser.GuiMarkdownHandle  # why the chosen model may not suit the capture
    run: viser.GuiButtonHandle
    choices: dict[str, ModelChoice] = field(default_factory=dict)  # label -> choice
    confirmed: bool = False  # the warning was seen once: the next click runs anyway

    @property
    def choice(self) -> ModelChoice | None:
        return self.choices.get(self.model.value)

    def refresh_choices(self, studio: Studio) -> None:
        """Re-read the weights folders (new files appear after a rescan or a new capture)."""
        found = studio.model_choices()
        self.choices = {c.label: c for c in found}
        options = tuple(self.choices) or (NO_MODELS,)
        if tuple(self.model.options) != options:
            current = self.model.value
            self.model.options = options
            if current in self.choices:
                self.model.value = current
            else:
                default = default_choice(found)
                self.model.value = default.label if default else NO_MODELS

    def object_warning(self, studio: Studio) -> str:
        """The warning for an object-centric model on this capture ('' when none applies)."""
        c = self.choice
        if c is None or c.model not in OBJECT_MODELS or studio.capture is None:
            return ""
        verdict = studio.object_centric()
        if verdict.ok:
            return ""
        return (
            f"**Warning:** {md(c.model)} reconstructs one object seen from around it; "
            f"{md(studio.capture.name)} does not look object-centric: {md(verdict.reason)}. "
            "Long-LRM suits wide scenes."
        )

    def refresh(self, studio: Studio) -> None:
        c = self.choice
        streams = c is not None and supports_streaming(c.model)
        self.live.disabled = not streams
        if not streams and self.live.value:
            self.live.value = False
        self.chunk_views.disabled = not (streams and self.live.value)
        self.run.disabled = studio.capture is None or c is None
        note = c.note if c is not None else None
        self.note.content = f"*{md(note[0].upper() + note[1:])}.*" if note else ""
        self.note.visible = bool(note)
        text = self.object_warning(studio)
        self.warning.content = text
        self.warning.visible = bool(text)
        self.confirmed = False

    def submit(self, studio: Studio):
        """Queue the job the widgets describe (the Run button's action); returns its JobState."""
        c = self.choice
        if c is None:
            raise ValueError("no model to run: put a .safetensors file in the workspace's weights folder")
        return studio.submit_reconstruct(
            c.model,
            preset=self.preset.value.strip() or None,  # a file's architecture comes from its metadata
            weights=c.weights,
            views=int(self.views.value) or None,
            live=bool(self.live.value),
            chunk_views=int(self.chunk_views.value) or None,
            slot=self.slot.value,
        )


def add_reconstruct_panel(server: viser.ViserServer, studio: Studio) -> ReconstructPanel:
    """Widgets in the current GUI container; refreshed by the viewer on CAPTURE."""
    found = studio.model_choices()
    default = default_choice(found)
    options = tuple(c.label for c in found) or (NO_MODELS,)
    panel = ReconstructPanel(
        model=server.gui.add_dropdown(
            "Model", options=options, initial_value=default.label if default else NO_MODELS,
            hint=f"weights in {studio.weights_dir} and assets/models, then the registered models",
        ),
        preset=server.gui.add_text("Preset", initial_value="", hint="e.g. tiny, official-ar; empty: default"),
        views=server.gui.add_number("Views", initial_value=0, min=0, step=1, hint="0: the model's default"),
        live=server.gui.add_checkbox("Live", initial_value=False, hint=LIVE_HINT),
        chunk_views=server.gui.add_number(
            "Views per chunk", initial_value=0, min=0, step=1, hint="0: the model's update interval"
        ),
        slot=server.gui.add_dropdown("Show as", options=SLOTS, initial_value=SLOTS[0]),
        note=server.gui.add_markdown("", visible=False),
        warning=server.gui.add_markdown("", visible=False),
        run=server.gui.add_button("Reconstruct", icon=viser.Icon.PLAYER_PLAY),
        choices={c.label: c for c in found},
    )  # fmt: skip

    @panel.model.on_update
    def _(event: viser.GuiEvent) -> None:
        panel.refresh(studio)
        if panel.warning.visible and event.client is not None:
            notify(
                server,
                "Not an object-centric capture",
                panel.warning.content,
                kind="warning",
                client=event.client,
            )

    @panel.live.on_update
    def _(event: viser.GuiEvent) -> None:
        panel.refresh(studio)

    @panel.run.on_click
    def _(event: viser.GuiEvent) -> None:
        text = panel.object_warning(studio)
        if text and not panel.confirmed:
            panel.confirmed = True  # the warning was seen; a second click runs anyway
            again = text + " Click Reconstruct again to run it anyway."
            notify(server, "Not an object-centric capture", again, kind="warning", client=event.client)
            return
        panel.confirmed = False
        try:
            job = panel.submit(studio)
        except ValueError as e:
            notify(server, "Cannot reconstruct", str(e), kind="error", client=event.client)
            return
        notify(server, "Queued", job.title, kind="info", client=event.client)

    panel.refresh(studio)
    return panel
