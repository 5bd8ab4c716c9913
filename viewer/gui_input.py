"""Every value a browser tab sends for a GUI input is checked on the server before viser takes it.

The browser enforces a slider's range, a dropdown's options and a disabled button, but any
client can send its own ``GuiUpdateMessage``; viser 1.1.1 then casts the value to the handle's
type and sets it, and would even set other properties (``max``, ``options``, ``disabled``) named
in the message. :func:`validate_inputs` puts a check in front of viser's handler, so that what
the callbacks read is always a value the widget could have produced:

- only ``{"value": v}`` updates (the only kind viser's own client sends) of a visible, enabled
  input; anything else is dropped;
- numbers (sliders, number fields): real and finite, clamped to the widget's min / max (a
  slider's step grid kept); checkboxes: booleans; buttons: ``True``;
- dropdowns and button groups: one of the current options; text: a string of at most
  :data:`MAX_TEXT` characters without NUL;
- every other input (progress bars, upload buttons, vectors, colours: none of them takes a
  value from the page here) refuses updates.

Dropped updates are logged with their reason. Private API of the pinned viser==1.1.1
(``GuiApi._handle_gui_updates``, ``_gui_input_handle_from_uuid``), as viewer/uploads.py;
tests/test_gui_input.py sends hostile messages through a real websocket.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers

import viser
from viser import _messages

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # characters in a text field (paths, names)


class Refused(ValueError):
    """An update no widget of the page could have sent."""


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Refused(f"not a number: {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise Refused(f"not a finite number: {value!r}")
    return x


def clean_value(handle: object, value: object) -> object:
    """The value ``handle`` takes for ``value`` sent by a page: the value itself, clamped, or
    Refused. ``handle`` is a viser GUI input handle."""
    if isinstance(handle, viser.GuiButtonHandle):
        if value is not True:
            raise Refused(f"a button only sends True, not {value!r}")
        return True
    if isinstance(handle, viser.GuiCheckboxHandle):
        if not isinstance(value, bool):
            raise Refused(f"not a boolean: {value!r}")
        return value
    if isinstance(handle, (viser.GuiSliderHandle, viser.GuiNumberHandle)):
        x = _number(value)
        lo, hi = handle.min, handle.max
        if lo is not None:
            x = max(x, float(lo))
        if hi is not None:
            x = min(x, float(hi))
        if isinstance(handle, viser.GuiSliderHandle) and handle.step and lo is not None:
            x = min(float(lo) + round((x - float(lo)) / handle.step) * handle.step, float(hi))
        return int(round(x)) if isinstance(handle.value, int) else x
    if isinstance(handle, (viser.GuiDropdownHandle, viser.GuiButtonGroupHandle)):
        if not isinstance(value, str) or value not in tuple(handle.options):
            raise Refused(f"not one of the options: {value!r}"[:200])
        return value
    if isinstance(handle, viser.GuiTextHandle):
        if not isinstance(value, str):
            raise Refused(f"not a string: {type(value).__name__}")
        if len(value) > MAX_TEXT or "\x00" in value:
            raise Refused(f"text of {len(value)} characters (at most {MAX_TEXT}, no NUL)")
        return value
    raise Refused(f"{type(handle).__name__} takes no value from the page")


def clean_update(gui: viser.GuiApi, message: _messages.GuiUpdateMessage) -> _messages.GuiUpdateMessage:
    """The message with its value cleaned (:func:`clean_value`), or Refused. A message for an
    input of another GUI passes unchanged (viser's handler ignores it)."""
    handle = gui._gui_input_handle_from_uuid.get(message.uuid)
    if handle is None:  # not this GUI's (every update reaches the server's and the tab's GUI)
        return message
    if not isinstance(message.updates, dict) or set(message.updates) != {"value"}:
        raise Refused(f"updates {sorted(map(str, message.updates))[:8]} (only 'value' is accepted)")
    if handle.disabled or not handle.visible:
        raise Refused(f"{handle.label!r} is {'disabled' if handle.disabled else 'hidden'}")
    value = clean_value(handle, message.updates["value"])
    return dataclasses.replace(message, updates={"value": value})


def validate_inputs(gui: viser.GuiApi) -> None:
    """Put :func:`clean_update` in front of ``gui``'s handler of GUI updates (a server's
    ``server.gui`` or a tab's ``client.gui``)."""
    iface = gui._websock_interface
    original = gui._handle_gui_updates
    iface.unregister_handler(_messages.GuiUpdateMessage, original)

    async def handle(client_id, message: _messages.GuiUpdateMessage) -> None:
        try:
            cleaned = clean_update(gui, message)
        except Refused as e:
            log.warning("dropped a GUI update from client %s: %s", client_id, e)
            return
        await original(client_id, cleaned)

    iface.register_handler(_messages.GuiUpdateMessage, handle)


def validate_all_inputs(server: viser.ViserServer) -> None:
    """:func:`validate_inputs` for the server's GUI and every tab's own GUI (modals)."""
    validate_inputs(server.gui)
    server.on_client_connect(lambda client: validate_inputs(client.gui))
