"""Capture panel: choose a capture of the workspace; bring in a new one: upload a video, a
photo or a zip of photos (streamed to disk), or name a path in the workspace (or an --allow-path
folder): a video or photo folder goes through *Ingest + SfM*, a dataset with cameras (a COLMAP
model, a nerfstudio transforms.json, a Long-LRM opencv_cameras.json) through *Import cameras*,
as ``lrm-studio sfm`` / ``lrm-studio import`` do. The new capture's *Name* follows the source
until it is typed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import viser

from studio.app import Studio
from studio.captures import capture_name_for
from studio.uploads import DiskUpload, UploadError, place_upload
from viewer.markup import md
from viewer.notify import notify
from viewer.uploads import streaming_uploads

NO_CAPTURES = "(no captures)"
INGEST_PENDING_HINT = (
    "Ingest + SfM come with pipelines.sfm (frame extraction and COLMAP through pycolmap), "
    "which this build does not have yet."
)
INGEST_HINT = "Takes up to Frames frames from the source and runs COLMAP (pycolmap); progress under Jobs."
INGEST_LABEL, IMPORT_LABEL = "Ingest + SfM", "Import cameras"
IMPORT_HINT = "Imports the dataset's cameras and images into a new capture (no SfM); progress under Jobs."


@dataclass
class CapturePanel:
    capture: viser.GuiDropdownHandle  # capture folder in the workspace
    info: viser.GuiMarkdownHandle  # frames, size, splits of the open capture
    rescan: viser.GuiButtonHandle
    upload: viser.GuiUploadButtonHandle  # video / photo / zip, streamed to disk
    source: viser.GuiTextHandle  # ingest source: a video or a photo folder on the server
    source_info: viser.GuiMarkdownHandle  # what the source is, or what is wrong with it
    name: viser.GuiTextHandle  # name of the new capture folder
    frames: viser.GuiSliderHandle  # how many frames to take from the source
    ingest: viser.GuiButtonHandle  # queues ingest + SfM, or the import of a dataset (its label says which)
    clear_uploads: viser.GuiButtonHandle  # deletes uploads/ (after a confirmation)
    name_typed: bool = False  # the user typed the Name: it no longer follows the source

    def suggest_name(self, name: str) -> None:
        """Set the Name from a new source unless the user typed one."""
        if not self.name_typed:
            self.name.value = name

    def show_source(self, studio: Studio, text: str) -> tuple[Path, bool] | None:
        """Describe the source in the panel and label the button for it: (path, is a dataset),
        or None when it cannot be used (the panel says why)."""
        try:
            path, what = studio.source(text)
        except ValueError as e:
            self.source_info.content = f"⚠ {md(e)}"
            return None
        dataset = studio.dataset_format(path) is not None
        self.source_info.content = f"Source: {md(what)}"
        self.ingest.label = IMPORT_LABEL if dataset else INGEST_LABEL
        self.ingest.hint = IMPORT_HINT if dataset else ingest_hint(studio)
        return path, dataset

    def refresh(self, studio: Studio) -> None:
        names = tuple(studio.captures()) or (NO_CAPTURES,)
        if tuple(self.capture.options) != names:
            self.capture.options = names
        current = studio.capture.name if studio.capture is not None else names[0]
        if self.capture.value != current and current in names:
            self.capture.value = current
        self.capture.disabled = names == (NO_CAPTURES,)
        self.info.content = capture_markdown(studio)


def capture_markdown(studio: Studio) -> str:
    cap = studio.capture
    if cap is None:
        return f"No capture open. Workspace: {md(studio.workspace)}"
    n_test = len(cap.indices("test"))
    source = cap.meta.get("source")
    if isinstance(source, dict):  # the SfM pipeline records {"type", "path", ...}
        source = f"{source.get('type', '')} {source.get('path', '')}".strip()
    lines = [
        f"**{md(cap.name)}**: {len(cap)} frames, {cap.cameras.width}×{cap.cameras.height} px "
        f"({len(cap) - n_test} train, {n_test} test)",
        f"Workspace: {md(studio.workspace)}",
    ]
    if source:
        lines.insert(1, f"Source: {md(source)}")
    return "  \n".join(lines)


def ingest_hint(studio: Studio) -> str:
    return INGEST_HINT if studio.capabilities.sfm else INGEST_PENDING_HINT


def add_capture_panel(server: viser.ViserServer, studio: Studio) -> CapturePanel:
    """Widgets in the current GUI container; refreshed by the viewer on CAPTURES / CAPTURE."""
    config = studio.config
    capture = server.gui.add_dropdown("Capture", options=(NO_CAPTURES,))
    info = server.gui.add_markdown("")
    rescan = server.gui.add_button("Rescan workspace", icon=viser.Icon.REFRESH)
    with server.gui.add_folder("New capture"):

        def on_uploaded(client: viser.ClientHandle | None, path: Path, upload: DiskUpload) -> None:
            try:
                placed = place_upload(path, studio.uploads_dir, limit_bytes=config.upload_limit_bytes)
                shown, (_, what) = studio.server_paths.shown(placed), studio.source(placed)
            except (UploadError, OSError) as e:
                notify(server, "Upload not usable", str(e), kind="error", client=client)
                return
            source.value = shown
            panel.show_source(studio, shown)
            panel.suggest_name(capture_name_for(placed))
            notify(server, "Uploaded", f"{upload.name} → {shown} ({what})", kind="success", client=client)

        def on_failed(client: viser.ClientHandle | None, reason: str) -> None:
            notify(server, "Upload failed", reason, kind="error", client=client)

        upload = streaming_uploads(server).add_button(
            "Upload video / photos",
            uploads_dir=lambda: studio.uploads_dir,
            limit_bytes=config.upload_limit_bytes,
            quota_bytes=config.uploads_quota_bytes,
            on_uploaded=on_uploaded,
            on_failed=on_failed,
            hint=f"A video, a photo or a .zip of photos; at most {config.upload_limit_mb} MiB",
        )
        from studio.demo import DEMO_NAME, demo_video

        demo = demo_video() if studio.config.demo else None  # SfM on the demo: recover its cameras
        source = server.gui.add_text(
            "Source",
            initial_value=str(demo) if demo else "",
            hint="A video file or a folder of photos on the server",
        )
        source_info = server.gui.add_markdown(
            "Upload a video, a photo or a .zip of photos, or type a path on the server."
        )
        name = server.gui.add_text(
            "Name",
            initial_value=f"{DEMO_NAME}-sfm" if demo else "",
            hint="Folder name of the new capture in the workspace",
        )
        frames = server.gui.add_slider("Frames", min=8, max=400, step=1, initial_value=150)
        ingest = server.gui.add_button(
            INGEST_LABEL,
            icon=viser.Icon.CAMERA,
            disabled=not studio.capabilities.sfm,
            hint=ingest_hint(studio),
        )
        clear_uploads = server.gui.add_button(
            "Clear uploads...", icon=viser.Icon.TRASH, hint="Delete the files uploaded from the browser"
        )
    panel = CapturePanel(
        capture, info, rescan, upload, source, source_info, name, frames, ingest, clear_uploads
    )

    @clear_uploads.on_click
    def _(event: viser.GuiEvent) -> None:
        client = event.client
        if client is None:
            return
        with client.gui.add_modal("Delete the uploaded files?") as modal:
            client.gui.add_markdown(
                "Videos, photos and zips uploaded from the browser are removed from the workspace's "
                "uploads folder (captures made from them stay). Sources of queued Ingest + SfM jobs are kept."
            )
            confirm = client.gui.add_button("Delete uploads", color="red", icon=viser.Icon.TRASH)
            keep = client.gui.add_button("Keep them")

            @confirm.on_click
            def _(_: viser.GuiEvent) -> None:
                modal.close()
                try:
                    freed = studio.clear_uploads()
                except OSError as e:
                    notify(server, "Could not clear the uploads", str(e), kind="error", client=client)
                    return
                notify(
                    server, "Uploads cleared", f"{freed / 2**20:.1f} MiB freed", kind="success", client=client
                )

            keep.on_click(lambda _: modal.close())

    @capture.on_update
    def _(event: viser.GuiEvent) -> None:
        value = capture.value
        current = studio.capture.name if studio.capture is not None else None
        if value in (NO_CAPTURES, current):
            return
        try:
            studio.open_capture(value)
        except Exception as e:
            notify(
                server,
                f"Could not open {value}",
                f"{type(e).__name__}: {e}",
                kind="error",
                client=event.client,
            )

    @rescan.on_click
    def _(event: viser.GuiEvent) -> None:
        studio.rescan()

    @ingest.on_click
    def _(event: viser.GuiEvent) -> None:
        try:
            src, _ = studio.source(source.value)
            new_name = name.value or capture_name_for(src)
            if studio.dataset_format(src) is not None:
                job = studio.submit_import(src, name=new_name)
            else:
                job = studio.submit_sfm(src, name=new_name, max_frames=int(frames.value))
        except ValueError as e:  # InputError, UploadError and a taken name included
            notify(server, f"Cannot start {ingest.label}", str(e), kind="error", client=event.client)
            return
        notify(server, "Queued", job.title, kind="info", client=event.client)

    @source.on_update
    def _(event: viser.GuiEvent) -> None:
        found = panel.show_source(studio, source.value)
        if found is not None:
            panel.suggest_name(capture_name_for(found[0]))

    @name.on_update
    def _(event: viser.GuiEvent) -> None:
        if event.client_id is not None:  # typed in a tab (assignments here run this too, with None)
            panel.name_typed = bool(name.value.strip())  # emptied: it follows the source again

    panel.refresh(studio)
    return panel
