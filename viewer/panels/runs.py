"""Runs panel: every run of the open capture with method, time, size and test metrics; show a
run in scene slot A or B, download its PLY, delete it (after a confirmation in that tab)."""

from __future__ import annotations

from dataclasses import dataclass

import viser

from studio.app import SLOTS, RunSummary, Studio
from viewer.markup import md
from viewer.notify import notify

NO_RUNS = "(no runs)"


@dataclass
class RunsPanel:
    table: viser.GuiMarkdownHandle  # the runs and what the scene shows
    run: viser.GuiDropdownHandle  # run id
    show: dict[str, viser.GuiButtonHandle]  # slot -> "Show as <slot>"
    clear: viser.GuiButtonHandle  # remove all results from the scene
    download: viser.GuiButtonHandle
    delete: viser.GuiButtonHandle

    def refresh(self, studio: Studio) -> None:
        rows = studio.run_summaries()
        self.table.content = runs_markdown(rows, studio)
        options = tuple(r.id for r in reversed(rows)) or (NO_RUNS,)  # newest first
        if tuple(self.run.options) != options:
            self.run.options = options
        if self.run.value not in options:
            self.run.value = options[0]
        for button in (*self.show.values(), self.download, self.delete):
            button.disabled = not rows
        self.clear.disabled = not studio.shown


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def time_cell(r: RunSummary) -> str:
    """"0.3 s model, 3.9 s job" / "112 s train, 130 s job" / "1.5 s job" / "–"."""
    parts = []
    if r.compute_s is not None:
        parts.append(f"{r.compute_s:.1f} s {r.compute_what}")
    if r.total_s is not None:
        parts.append(f"{r.total_s:.1f} s job")
    return ", ".join(parts) or "–"


def runs_markdown(rows: list[RunSummary], studio: Studio) -> str:
    """The runs table (newest first) and a line per shown slot. Time says which (the method's
    own and the whole job's); the metrics say at which resolution they were computed."""
    if studio.capture is None:
        return "No capture open."
    if not rows:
        text = f"No runs of **{md(studio.capture.name)}** yet."
    else:
        lines = [
            "| Run | Method | From | Time | Gaussians | PSNR | SSIM | at |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in reversed(rows):
            n = "–" if r.num_gaussians is None else f"{r.num_gaussians:,}"
            psnr, ssim = _fmt(r.psnr, ".2f"), _fmt(r.ssim, ".3f")
            at = "–" if r.resolution is None else f"{r.resolution[0]}×{r.resolution[1]}"
            source = md(r.source) if r.source else "–"
            lines.append(
                f"| {md(r.id)} | {md(r.method)} | {source} | {time_cell(r)} | {n} | {psnr} | {ssim} | {at} |"
            )
        text = "\n".join(lines)
    shown = studio.shown
    if shown:
        text += "\n\n" + "  \n".join(
            f"**{slot}:** {md(shown[slot].label)}" for slot in SLOTS if slot in shown
        )
    return text


def add_runs_panel(server: viser.ViserServer, studio: Studio) -> RunsPanel:
    """Widgets in the current GUI container; refreshed by the viewer on RUNS / SCENE."""
    panel = RunsPanel(
        table=server.gui.add_markdown(""),
        run=server.gui.add_dropdown("Run", options=(NO_RUNS,)),
        show={slot: server.gui.add_button(f"Show as {slot}", icon=viser.Icon.EYE) for slot in SLOTS},
        clear=server.gui.add_button("Clear scene", icon=viser.Icon.EYE_OFF),
        download=server.gui.add_button("Download PLY", icon=viser.Icon.DOWNLOAD),
        delete=server.gui.add_button("Delete run...", icon=viser.Icon.TRASH, color="red"),
    )

    def selected(event: viser.GuiEvent) -> str | None:
        run_id = panel.run.value
        if run_id == NO_RUNS:
            notify(
                server,
                "No run selected",
                "This capture has no runs yet.",
                kind="warning",
                client=event.client,
            )
            return None
        return run_id

    def show_in(slot: str):
        def on_click(event: viser.GuiEvent) -> None:
            run_id = selected(event)
            if run_id is None:
                return
            try:
                studio.show_run(run_id, slot)
            except Exception as e:
                notify(
                    server,
                    f"Could not load {run_id}",
                    f"{type(e).__name__}: {e}",
                    kind="error",
                    client=event.client,
                )

        return on_click

    for slot, button in panel.show.items():
        button.on_click(show_in(slot))

    @panel.clear.on_click
    def _(event: viser.GuiEvent) -> None:
        for slot in SLOTS:
            studio.hide(slot)

    @panel.download.on_click
    def _(event: viser.GuiEvent) -> None:
        run_id = selected(event)
        if run_id is None or event.client is None:
            return
        try:
            path = studio.run_ply(run_id)
            capture = studio.capture.name if studio.capture is not None else "capture"
            event.client.send_file_download(f"{capture}-{run_id}.ply", path.read_bytes())
        except Exception as e:
            notify(
                server,
                f"Could not download {run_id}",
                f"{type(e).__name__}: {e}",
                kind="error",
                client=event.client,
            )

    @panel.delete.on_click
    def _(event: viser.GuiEvent) -> None:
        run_id = selected(event)
        if run_id is None or event.client is None:
            return
        client = event.client
        with client.gui.add_modal(f"Delete run {run_id}?") as modal:
            client.gui.add_markdown(
                "Its folder (PLY, metrics, renders) is removed from the workspace. This cannot be undone."
            )
            confirm = client.gui.add_button("Delete", color="red", icon=viser.Icon.TRASH)
            cancel = client.gui.add_button("Keep it")

            @confirm.on_click
            def _(_: viser.GuiEvent) -> None:
                modal.close()
                try:
                    studio.delete_run(run_id)
                    notify(server, "Run deleted", run_id, kind="success", client=client)
                except Exception as e:
                    notify(
                        server,
                        f"Could not delete {run_id}",
                        f"{type(e).__name__}: {e}",
                        kind="error",
                        client=client,
                    )

            @cancel.on_click
            def _(_: viser.GuiEvent) -> None:
                modal.close()

    panel.refresh(studio)
    return panel
