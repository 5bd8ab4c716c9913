"""Errors a person can act on.

:class:`InputError` means the input (a file, a folder, a capture, an option) cannot be used. Its
message is one or two sentences: what is wrong with which file, and what to do about it. The CLI
prints it as one line and exits non-zero; the viewer shows it as a notification. Other exceptions
are bugs and keep their tracebacks.
"""

from __future__ import annotations


class InputError(ValueError):
    """Unusable input; the message says what went wrong and what to do."""
