"""Toasts in the browser. viser notifications belong to one tab; the studio's state is shared,
so job results go to every tab and replies to one tab's action go to that tab. Paths inside the
workspace are shown relative to it (:func:`relative_paths`, once :func:`paths_relative_to` named
the server's workspace): a toast never shows where the workspace lives on the disk."""

from __future__ import annotations

import logging
import re
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
            c.add_notification(
                title,
                body,
                color=_COLORS[kind],
                auto_close_seconds=_AUTO_CLOSE_S[kind],
                with_close_button=True,
            )
        except Exception:  # the tab went away meanwhile
            log.debug("could not notify client %s", getattr(c, "client_id", "?"), exc_info=True)
