"""Text from anywhere but this code, made safe to put into a viser markdown widget.

viser renders markdown with raw HTML enabled and unsanitized, and before sending it, replaces
every ``![alt](path)`` with the image file at ``path`` read from the server's disk (a data URL
sent to every tab). Any text that a user, a file or an exception supplies (capture and run
names, paths, run.json fields, error messages, typed names) must therefore never reach markdown
as markup: :func:`md` escapes every ASCII punctuation character with a backslash (CommonMark
allows that for all of them), so ``![x](/etc/...)`` becomes the literal text it was, ``<img ...>``
is text, not HTML, and ``http://...`` no autolink; line breaks become spaces so that the text
cannot start a block of its own. Markup written by this code goes around it.

Examples:
    >>> md("![x](/home/me/secret.png)")
    '\\\\!\\\\[x\\\\]\\\\(\\\\/home\\\\/me\\\\/secret\\\\.png\\\\)'
    >>> f"**Capture:** {md('my_scan <1>')}"
    '**Capture:** my\\\\_scan \\\\<1\\\\>'
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def md(text: object) -> str:
    """``text`` (str() of it) as literal markdown text: punctuation escaped, one line."""
    return _PUNCT.sub(r"\\\1", " ".join(str(text).splitlines()))
