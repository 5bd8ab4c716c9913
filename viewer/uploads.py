"""Upload buttons whose files stream to disk instead of into memory.

viser 1.1.1's upload button collects every 512 KiB part in memory and hands the joined bytes
to ``on_upload`` (``GuiApi._finish_file_upload``), with no size limit: a multi-GB video would
sit in RAM twice, and any page could fill the memory. :class:`StreamingUploads` takes over the
two upload messages (``FileTransferStartUpload``, ``FileTransferPart``): uploads for the buttons
it created are written part by part to disk through :class:`studio.uploads.DiskUpload` (size
limit, uploads quota, free disk, accepted suffixes, sanitized names); uploads for any other
button are refused, so viser's in-memory path is never used. At most :data:`MAX_PER_CLIENT`
transfers per tab and :data:`MAX_TOTAL` in all are open at once (each holds a file
descriptor): more are refused. This replaces viser's registered message handlers, private API of
the pinned viser==1.1.1 (``server._websock_server``, ``GuiApi._handle_file_*``);
tests/test_viewer.py and the browser test exercise it.

The done/failed callbacks run on a fresh thread (never on viser's event loop), with the
uploading tab's ClientHandle (None if it disconnected) and the final path or the reason.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import viser
from viser import _messages

from studio.uploads import MEDIA_SUFFIXES, DiskUpload, UploadError

log = logging.getLogger(__name__)

MAX_PER_CLIENT = 4  # transfers one tab may have open at once
MAX_TOTAL = 16  # transfers open at once, all tabs together

OnUploaded = Callable[[viser.ClientHandle | None, Path, DiskUpload], None]
OnFailed = Callable[[viser.ClientHandle | None, str], None]


@dataclass
class _Button:
    uploads_dir: Callable[[], Path]
    limit_bytes: int
    on_uploaded: OnUploaded
    on_failed: OnFailed
    quota_bytes: int | None = None
    suffixes: frozenset[str] = MEDIA_SUFFIXES


@dataclass
class _Transfer:
    client_id: int
    button_uuid: str
    upload: DiskUpload


class StreamingUploads:
    """Per-server router of upload messages; use :func:`streaming_uploads` to get it."""

    def __init__(self, server: viser.ViserServer) -> None:
        self._server = server
        self._buttons: dict[str, _Button] = {}
        self._transfers: dict[str, _Transfer] = {}
        self._lock = threading.Lock()
        iface = server._websock_server
        gui = server.gui
        iface.unregister_handler(_messages.FileTransferStartUpload, gui._handle_file_transfer_start)
        iface.unregister_handler(_messages.FileTransferPart, gui._handle_file_transfer_part)
        iface.register_handler(_messages.FileTransferStartUpload, self._on_start)
        iface.register_handler(_messages.FileTransferPart, self._on_part)
        server.on_client_disconnect(self._on_disconnect)

    def add_button(
        self,
        label: str,
        *,
        uploads_dir: Callable[[], Path],
        limit_bytes: int,
        on_uploaded: OnUploaded,
        on_failed: OnFailed,
        suffixes: frozenset[str] = MEDIA_SUFFIXES,
        quota_bytes: int | None = None,
        hint: str | None = None,
        disabled: bool = False,
    ) -> viser.GuiUploadButtonHandle:
        """An upload button in the current GUI container (server-wide: every tab sees it) for
        files with one of ``suffixes`` (also the browser's file dialog filter), at most
        ``limit_bytes`` each, with ``uploads_dir()`` holding at most ``quota_bytes``."""
        handle = self._server.gui.add_upload_button(
            label, mime_type=",".join(sorted(suffixes)), hint=hint, disabled=disabled, icon=viser.Icon.UPLOAD
        )
        with self._lock:
            self._buttons[handle._impl.uuid] = _Button(
                uploads_dir, limit_bytes, on_uploaded, on_failed, quota_bytes, suffixes
            )
        return handle

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._transfers)

    # ------------------------------------------------------------- messages
    def _ack(self, button_uuid: str, transfer_uuid: str, done: int, total: int) -> None:
        self._server._websock_server.queue_message(
            _messages.FileTransferPartAck(
                source_component_uuid=button_uuid,
                transfer_uuid=transfer_uuid,
                transferred_bytes=done,
                total_bytes=total,
            )
        )

    def _on_start(self, client_id: int, message: _messages.FileTransferStartUpload) -> None:
        with self._lock:
            button = self._buttons.get(message.source_component_uuid)
            mine = sum(t.client_id == client_id for t in self._transfers.values())
            total = len(self._transfers)
        if button is None:
            log.warning("refused an upload from client %s for an unknown button", client_id)
            return
        try:
            if mine >= MAX_PER_CLIENT or total >= MAX_TOTAL:
                raise UploadError(
                    f"{message.filename!r}: {mine} uploads from this tab and {total} in all are in "
                    "progress already; wait for them to finish"
                )
            upload = DiskUpload(
                button.uploads_dir(),
                message.filename,
                size_bytes=message.size_bytes,
                part_count=message.part_count,
                limit_bytes=button.limit_bytes,
                quota_bytes=button.quota_bytes,
                suffixes=button.suffixes,
            )
        except (UploadError, OSError) as e:
            # Refused before any byte is kept; the ack ends the browser's upload spinner (its
            # remaining parts are ignored) and the notification says why.
            self._ack(
                message.source_component_uuid, message.transfer_uuid, message.size_bytes, message.size_bytes
            )
            self._callback(button.on_failed, client_id, f"Upload refused: {e}")
            return
        with self._lock:
            self._transfers[message.transfer_uuid] = _Transfer(
                client_id, message.source_component_uuid, upload
            )
        if message.part_count == 0:
            self._complete(message.transfer_uuid)

    def _on_part(self, client_id: int, message: _messages.FileTransferPart) -> None:
        with self._lock:
            transfer = self._transfers.get(message.transfer_uuid)
        if transfer is None or transfer.client_id != client_id:
            return  # a refused, finished or unknown transfer, or another tab's
        upload = transfer.upload
        try:
            complete = upload.write_part(message.part_index, message.content)
        except (UploadError, OSError) as e:
            with self._lock:
                self._transfers.pop(message.transfer_uuid, None)
            upload.abort()
            self._ack(transfer.button_uuid, message.transfer_uuid, upload.size_bytes, upload.size_bytes)
            self._fail(transfer, f"Upload failed: {e}")
            return
        self._ack(transfer.button_uuid, message.transfer_uuid, upload.received_bytes, upload.size_bytes)
        if complete:
            self._complete(message.transfer_uuid)

    def _complete(self, transfer_uuid: str) -> None:
        with self._lock:
            transfer = self._transfers.pop(transfer_uuid, None)
            button = self._buttons.get(transfer.button_uuid) if transfer is not None else None
        if transfer is None or button is None:
            return

        def finish() -> None:
            try:
                path = transfer.upload.finish()
            except (UploadError, OSError) as e:
                transfer.upload.abort()
                button.on_failed(self._client(transfer.client_id), f"Upload failed: {e}")
                return
            button.on_uploaded(self._client(transfer.client_id), path, transfer.upload)

        threading.Thread(target=self._guarded(finish), name="lrm-studio-upload", daemon=True).start()

    def _on_disconnect(self, client: viser.ClientHandle) -> None:
        with self._lock:
            gone = [u for u, t in self._transfers.items() if t.client_id == client.client_id]
            transfers = [self._transfers.pop(u) for u in gone]
        for t in transfers:
            t.upload.abort()
            log.info("upload of %s dropped: its browser tab disconnected", t.upload.name)

    # --------------------------------------------------------------- helpers
    def _client(self, client_id: int) -> viser.ClientHandle | None:
        return self._server.get_clients().get(client_id)

    def _fail(self, transfer: _Transfer, reason: str) -> None:
        with self._lock:
            button = self._buttons.get(transfer.button_uuid)
        if button is not None:
            self._callback(button.on_failed, transfer.client_id, reason)

    def _callback(self, fn: OnFailed, client_id: int, reason: str) -> None:
        threading.Thread(
            target=self._guarded(lambda: fn(self._client(client_id), reason)), daemon=True
        ).start()

    @staticmethod
    def _guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("upload callback failed")

        return run


_INSTANCES: weakref.WeakKeyDictionary[viser.ViserServer, StreamingUploads] = weakref.WeakKeyDictionary()


def streaming_uploads(server: viser.ViserServer) -> StreamingUploads:
    """The server's upload router (installed on first use)."""
    if server not in _INSTANCES:
        _INSTANCES[server] = StreamingUploads(server)
    return _INSTANCES[server]
