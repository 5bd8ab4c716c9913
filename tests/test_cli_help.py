"""`lrm-studio COMMAND --help` says each option's default once: an option whose help explains
its default in words ("default: the model's") must not also get tyro's "(default: None)"."""

from __future__ import annotations

import contextlib
import re

import pytest

from studio.cli import COMMANDS, main


def option_helps(text: str) -> dict[str, str]:
    """Option (or positional metavar) -> its help text, continuation lines joined; works on
    tyro's plain and boxed layouts."""
    out: dict[str, str] = {}
    cur = None
    for raw in text.splitlines():
        body = raw.replace("│", " ")
        if not body.strip() or "─" in raw or re.fullmatch(r"[-\s]+", raw):
            cur = None
            continue
        m = re.match(r"^ {1,4}(-\S+(?:, -\S+)?(?: \S.*?)?|[A-Z][A-Z_]+)(?:\s{2,}(.*))?$", body)
        if m and not body.startswith(" " * 6):
            cur = m.group(1).strip()
            out[cur] = (m.group(2) or "").strip()
        elif cur is not None and body.startswith(" " * 6):
            out[cur] += " " + body.strip()
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_says_each_default_once(command, capsys):
    with contextlib.suppress(SystemExit):
        main([*command.split(), "--help"])
    helps = option_helps(capsys.readouterr().out)
    assert helps, "no options parsed"
    twice = {o: h for o, h in helps.items() if len(re.findall(r"\bdefault\b", h, re.I)) > 1}
    assert not twice, twice
    empty = {o: h for o, h in helps.items() if "(default: )" in h}
    assert not empty, empty
