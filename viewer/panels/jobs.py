"""Jobs panel: the running job's progress, the queue, cancel; finished jobs as notifications
in every tab (failures stay until closed and say why)."""

from __future__ import annotations

from dataclasses import dataclass

import viser

from studio.app import Studio
from studio.jobs import JobState
from viewer.markup import md
from viewer.notify import notify, relative_paths

NO_JOBS = "(no active jobs)"


@dataclass(repr=False)  # viser 1.1.1: repr of a progress bar handle raises
class JobsPanel:
    status: viser.GuiMarkdownHandle  # running job: title, message, time
    progress: viser.GuiProgressBarHandle  # running job's fraction, 0..100
    queue: viser.GuiMarkdownHandle  # pending jobs and the last finished ones
    job: viser.GuiDropdownHandle  # active job to cancel ("#<id> <title>")
    cancel: viser.GuiButtonHandle
    cancel_pending: viser.GuiButtonHandle  # every job that has not started

    def refresh(self, studio: Studio) -> None:
        """Write the queue's current state into the handles."""
        active = studio.jobs.active()
        running = next((s for s in active if s.status == "running"), None)
        if running is None:
            self.status.content = (
                "**Idle.** GPU work (SfM, reconstruct, optimize) runs here one job at a time."
            )
            self.progress.value = 0.0
        else:
            note = " (cancelling)" if running.cancel_requested else ""
            self.status.content = (
                f"**Running:** {md(running.title)}{note}  \n{md(running.message or '...')}  \n"
                f"{100 * running.fraction:.0f}% · {running.elapsed_s or 0:.1f} s"
            )
            self.progress.value = round(100.0 * running.fraction, 1)
        recent = [s for s in studio.jobs.jobs() if s.finished][-5:]
        lines = [f"- {md(s.title)}: running" for s in active if s.status == "running"]
        lines += [f"- {md(s.title)}: pending" for s in active if s.status == "pending"]
        lines += [f"- {md(s.title)}: {_outcome(s, studio.workspace)}" for s in reversed(recent)]
        self.queue.content = "\n".join(lines) if lines else "No jobs yet."
        options = tuple(job_label(s) for s in active) or (NO_JOBS,)
        if tuple(self.job.options) != options:
            self.job.options = options
        if self.job.value not in options:
            self.job.value = options[0]
        self.cancel.disabled = not active
        self.cancel_pending.disabled = not any(s.status == "pending" for s in active)


def job_label(state: JobState) -> str:
    return f"#{state.id} {state.title} ({state.status})"


def job_id_of(label: str) -> int | None:
    """The job id in a :func:`job_label`, None for the placeholder."""
    if not label.startswith("#"):
        return None
    head = label[1:].split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _outcome(s: JobState, workspace) -> str:
    took = f" in {s.elapsed_s:.1f} s" if s.elapsed_s is not None else ""
    if s.status == "failed":
        return f"**failed**{took}: {md(relative_paths(s.error or 'unknown error', workspace))}"
    return f"{s.status}{took}"


def add_jobs_panel(server: viser.ViserServer, studio: Studio) -> JobsPanel:
    """Widgets in the current GUI container; follows ``studio.jobs`` from now on."""
    panel = JobsPanel(
        status=server.gui.add_markdown(""),
        progress=server.gui.add_progress_bar(0.0, animated=False),
        queue=server.gui.add_markdown(""),
        job=server.gui.add_dropdown("Job", options=(NO_JOBS,)),
        cancel=server.gui.add_button("Cancel job", icon=viser.Icon.PLAYER_STOP, color="red", disabled=True),
        cancel_pending=server.gui.add_button("Cancel all pending", icon=viser.Icon.X, disabled=True),
    )

    @panel.cancel_pending.on_click
    def _(event: viser.GuiEvent) -> None:
        n = studio.jobs.cancel_pending()
        notify(
            server, "Cancelled", f"{n} pending job{'s' if n != 1 else ''}", kind="info", client=event.client
        )

    @panel.cancel.on_click
    def _(event: viser.GuiEvent) -> None:
        job_id = job_id_of(panel.job.value)
        if job_id is None or not studio.jobs.cancel(job_id):
            notify(
                server, "Nothing to cancel", "That job already finished.", kind="warning", client=event.client
            )

    def on_job(state: JobState) -> None:
        panel.refresh(studio)
        if state.status == "failed":
            notify(server, f"{state.title} failed", state.error or "unknown error", kind="error")
        elif state.status == "cancelled":
            notify(server, f"{state.title} cancelled", state.message or "cancelled", kind="warning")
        elif state.status == "done":
            notify(server, f"{state.title} done", f"finished in {state.elapsed_s or 0:.1f} s", kind="success")

    studio.jobs.add_listener(on_job)
    panel.refresh(studio)
    return panel
