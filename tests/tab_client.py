"""A browser tab without a browser: a websocket client that speaks viser's protocol, for tests
that send what a page (or a hostile script) could send: GUI updates with any value, clicks on
disabled buttons, raw messages.

Examples:
    >>> with TabClient(running) as tab:                 # doctest: +SKIP
    ...     tab.set(panel.frames, -7)
    ...     tab.click(panel.ingest)
"""

from __future__ import annotations

import threading
import time

import msgspec.msgpack
import viser
from viser import _messages
from websockets.sync.client import connect


class TabClient:
    """Connects to a running studio (``StudioServer``) with its own Origin, registers as a
    client (its first camera message) and reads everything the server sends on a thread."""

    def __init__(self, running, *, origin: str | None = None, timeout: float = 30.0) -> None:
        self.running = running
        self.timeout = timeout
        self.received = 0
        before = set(running.server.get_clients())
        self.ws = connect(
            f"ws://127.0.0.1:{running.port}",
            subprotocols=[f"viser-v{viser.__version__}"],
            origin=origin or f"http://127.0.0.1:{running.port}",
            open_timeout=timeout,
            max_size=None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send(
            _messages.ViewerCameraMessage(
                wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, -3.0), fov=1.0, near=0.01, far=1000.0,
                image_height=480, image_width=640, look_at=(0.0, 0.0, 0.0), up_direction=(0.0, -1.0, 0.0),
            )
        )  # fmt: skip
        self.client_id = self.wait(
            lambda: (set(running.server.get_clients()) - before) or None, "tab connects"
        ).pop()

    def _read(self) -> None:
        try:
            for _ in self.ws:
                self.received += 1
        except Exception:
            pass

    @property
    def client(self) -> viser.ClientHandle:
        return self.running.server.get_clients()[self.client_id]

    def send(self, message: _messages.Message) -> None:
        self.ws.send(msgspec.msgpack.encode(message.as_serializable_dict()))

    def update(self, handle, updates: dict) -> None:
        """A raw GuiUpdateMessage for ``handle`` (any properties, any values)."""
        self.send(_messages.GuiUpdateMessage(handle._impl.uuid, updates))

    def set(self, handle, value) -> None:
        """What the page sends when the user changes an input."""
        self.update(handle, {"value": value})

    def click(self, button) -> None:
        self.update(button, {"value": True})

    def wait(self, cond, what: str, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = cond()
            if value is not None and value is not False:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: did not happen within {timeout or self.timeout:.0f} s")
            time.sleep(0.05)

    def barrier(self, text_handle) -> None:
        """Wait until the server handled everything sent so far: a tab's messages are handled
        in order, so once a fresh marker value sent to ``text_handle`` (a text input) arrived,
        so did every update before it (their callbacks run on viser's thread pool and may still
        be running)."""
        marker = f"barrier-{time.monotonic_ns()}"
        self.set(text_handle, marker)
        self.wait(lambda: text_handle.value == marker, "the server handled the tab's messages")

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> TabClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
