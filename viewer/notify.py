"""Toasts in the browser. viser notifications belong to one tab; the studio's state is shared,
so job results go to every tab and replies to one tab's action go to that tab."""

from __future__ import annotations

import logging
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


def notify(server: viser.ViserServer, title: str, body: str, *, kind: Kind = "info",
           client: viser.ClientHandle | None = None) -> None:  # fmt: skip
    """Show a toast in ``client``'s tab, or in every tab when client is None. Errors stay
    until closed; the rest close on their own. Also logged."""
    level = {"error": logging.ERROR, "warning": logging.WARNING}.get(kind, logging.INFO)
    log.log(level, "%s: %s", title, body)
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
