"""Toasts in the browser. viser notifications belong to one tab; the studio's state is shared,
so job results go to every tab and replies to one tab's action go to that tab. Paths inside the
workspace are shown relative to it (:func:`relative_paths`, once :func:`paths_relative_to` named
the server's workspace): a toast never shows where the workspace lives on the disk. Errors stay
until closed, but a tab never holds two identical ones: the same error again replaces the one
shown; the other kinds close by themselves."""

from __future__ import annotations

import logging
import re
import threading
import weakref
from pathlib import Path
from typing import Literal

import viser

log = logging.getLogger(__name__)

Kind = Literal["info", "success", "warning", "error"]
_COLORS: dict[Kind, str] = {"info": "blue", "success": "green", "warning": "yellow", "error": "red"}
_AUTO_CLOSE_S: dict[Kind, float | None] = {
    "info": 6.0,
    "success": 6.0,
    "warning": 10.0,
    "error": None,
}  # errors stay


_ROOTS: weakref.WeakKeyDictionary[viser.ViserServer, Path] = weakref.WeakKeyDictionary()
# server -> (client id, title, body) -> the error toast shown in that tab
_ERRORS: weakref.WeakKeyDictionary[viser.ViserServer, dict[tuple[int, str, str], object]] = (
    weakref.WeakKeyDictionary()
)
_ERRORS_LOCK = threading.Lock()


def paths_relative_to(server: viser.ViserServer, workspace: Path) -> None:
    """Show paths inside ``workspace`` relative to it in this server's toasts."""
    _ROOTS[server] = Path(workspace)


def relative_paths(text: str, root: Path | None) -> str:
    """``text`` with ``root/...`` written as ``...`` and ``root`` itself as ``workspace``."""
    if root is None:
        return text
    prefix = re.escape(str(root).rstrip("/"))
    text = re.sub(prefix + "/", "", text)
    return re.sub(prefix + r"(?![\w-]|\.\w)", "workspace", text)


def notify(server: viser.ViserServer, title: str, body: str, *, kind: Kind = "info",
           client: viser.ClientHandle | None = None) -> None:  # fmt: skip
    """Show a toast in ``client``'s tab, or in every tab when client is None. Errors stay
    until closed; the rest close on their own. Also logged (with the full paths)."""
    level = {"error": logging.ERROR, "warning": logging.WARNING}.get(kind, logging.INFO)
    log.log(level, "%s: %s", title, body)
    root = _ROOTS.get(server)
    title, body = relative_paths(title, root), relative_paths(body, root)
    clients = [client] if client is not None else list(server.get_clients().values())
    for c in clients:
        try:
            if kind == "error":
                _replace_error(server, c, title, body)
                continue
            c.add_notification(
                title,
                body,
                color=_COLORS[kind],
                auto_close_seconds=_AUTO_CLOSE_S[kind],
                with_close_button=True,
            )
        except Exception:  # the tab went away meanwhile
            log.debug("could not notify client %s", getattr(c, "client_id", "?"), exc_info=True)


def _replace_error(server: viser.ViserServer, client: viser.ClientHandle, title: str, body: str) -> None:
    """Show an error toast in ``client``'s tab, removing an identical one shown before."""
    key = (client.client_id, title, body)
    with _ERRORS_LOCK:
        shown = _ERRORS.setdefault(server, {})
        old = shown.pop(key, None)
        if len(shown) > 200:  # forget the oldest (closed long ago, most likely)
            for k in list(shown)[:100]:
                shown.pop(k)
    if old is not None:
        try:
            old.remove()
        except Exception:  # closed by the user already
            pass
    handle = client.add_notification(
        title, body, color=_COLORS["error"], auto_close_seconds=None, with_close_button=True
    )
    with _ERRORS_LOCK:
        _ERRORS.setdefault(server, {})[key] = handle
