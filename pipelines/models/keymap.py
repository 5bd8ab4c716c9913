r"""Official checkpoint key names <-> ours, as whole-key regex rules (every model's weights.py).

A :class:`KeyMap` holds rules ``(official pattern, our template)``: the pattern is a regular
expression over the whole key in which dots are escaped and the variable parts are plain,
non-nested groups (``(\d+)``, ``(.+)``, ``(weight|bias)``); the template is our key with ``\1``,
``\2``, ... for those groups. The first matching rule wins. The inverse (ours -> official, for
messages and tests) comes from the same rules: the template becomes the pattern (each ``\i``
turns into group i's regex) and the pattern's literal text the template; where several official
names map onto one of ours, the first rule's name is the one given back.

:func:`convert_state_dict` applies a map to a whole official state dict: wrapper prefixes
stripped, training-only entries dropped (logged), two official keys landing on one of ours an
error, then a strict check against the model's keys and shapes whose message names every key by
the file's name (:func:`~pipelines.models.checkpoints.check_keys`).

Examples:
    >>> km = KeyMap([(r"processor\.blocks\.(\d+)\.(.+)", r"blocks.\1.\2")])
    >>> km.to_ours("processor.blocks.3.norm.weight")
    'blocks.3.norm.weight'
    >>> km.to_official("blocks.3.norm.weight")
    'processor.blocks.3.norm.weight'
    >>> km.to_ours("decoder.weight") is None
    True
    >>> km.to_official("decoder.weight", "decoder.weight")   # a default instead of KeyError
    'decoder.weight'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from pipelines.models.checkpoints import WeightsError, check_keys

log = logging.getLogger(__name__)

_GROUP = re.compile(r"\(([^()]*)\)")
_REF = re.compile(r"\\(\d+)")
_REGEX_SPECIALS = set(".^$*+?{}[]|()\\")
_RAISE = object()


def _pattern_parts(pattern: str) -> tuple[list[str], list[str]]:
    """A rule's pattern -> (literal text between groups [k + 1], group regexes [k])."""
    literals, groups, pos = [], [], 0
    for m in _GROUP.finditer(pattern):
        literals.append(_unescape(pattern[pos : m.start()], pattern))
        groups.append(m.group(1))
        pos = m.end()
    literals.append(_unescape(pattern[pos:], pattern))
    return literals, groups


def _unescape(text: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            assert i + 1 < len(text) and not text[i + 1].isalnum(), f"{pattern!r}: only escaped punctuation"
            out.append(text[i + 1])
            i += 2
            continue
        assert ch not in _REGEX_SPECIALS, f"{pattern!r}: regex syntax outside a group ({ch!r}); escape it"
        out.append(ch)
        i += 1
    return "".join(out)


def _inverse(pattern: str, template: str) -> tuple[str, str]:
    """(our pattern, official template) of one rule (see module doc)."""
    literals, groups = _pattern_parts(pattern)
    refs = [int(r) for r in _REF.findall(template)]
    assert sorted(refs) == list(range(1, len(groups) + 1)), (
        f"rule {pattern!r} -> {template!r}: the template must use each of the {len(groups)} groups once"
    )
    ours, pos = [], 0
    for m in _REF.finditer(template):
        ours += [re.escape(template[pos : m.start()]), f"({groups[int(m.group(1)) - 1]})"]
        pos = m.end()
    ours.append(re.escape(template[pos:]))
    back = [literals[0]]
    for i, lit in enumerate(literals[1:], start=1):
        back += [f"\\{refs.index(i) + 1}", lit]
    return "".join(ours), "".join(back)


class KeyMap:
    """Whole-key rename rules, official -> ours, and their inverse (see module doc)."""

    def __init__(self, rules: Sequence[tuple[str, str]]) -> None:
        self.rules = tuple(rules)
        self._forward = [(re.compile(f"^{p}$"), t) for p, t in self.rules]
        self._inverse = [(re.compile(f"^{p}$"), t) for p, t in (_inverse(*r) for r in self.rules)]

    def to_ours(self, official: str) -> str | None:
        """Our key for an official key, or None when no rule matches."""
        return _apply(self._forward, official)

    def to_official(self, ours: str, default: Any = _RAISE) -> str:
        """The official key of one of our keys (the first rule's name); when no rule matches,
        ``default`` if given, else KeyError."""
        name = _apply(self._inverse, ours)
        if name is not None:
            return name
        if default is _RAISE:
            raise KeyError(ours)
        return default


def _apply(rules: list[tuple[re.Pattern, str]], key: str) -> str | None:
    for pattern, repl in rules:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return None


def strip_wrappers(sd: dict[str, Tensor], prefixes: Sequence[str], source: str) -> dict[str, Tensor]:
    """Remove each of ``prefixes`` in turn when every key starts with it (``module.`` of DDP,
    ``_orig_mod.`` of torch.compile), with a logged note."""
    for prefix in prefixes:
        if sd and all(k.startswith(prefix) for k in sd):
            log.info("%s: every key starts with %r (a wrapped model); prefix removed", source, prefix)
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def convert_state_dict(
    state_dict: dict[str, Tensor],
    keymap: KeyMap,
    expected: Mapping[str, tuple[int, ...]],
    *,
    dropped_prefixes: tuple[str, ...],
    wrapper_prefixes: tuple[str, ...] = (),
    source: str = "checkpoint",
    label: str,
) -> dict[str, Tensor]:
    """Official state dict -> ours (tensors as stored), checked against ``expected`` (our keys and
    shapes). Keys starting with one of ``dropped_prefixes`` (training-only modules) are dropped
    with a logged note; an official key no rule maps is reported as unexpected under its own name.
    Raises :class:`WeightsError` naming every key that does not fit; ``label`` says what the
    file was checked against (e.g. ``"Long-LRM tiny"``)."""
    state_dict = strip_wrappers(state_dict, wrapper_prefixes, source)
    dropped = [k for k in state_dict if k.startswith(dropped_prefixes)]
    if dropped:
        roots = sorted({k.split(".")[0] for k in dropped})
        log.info("%s: dropped %d training-only tensors (%s)", source, len(dropped), ", ".join(roots))
    out: dict[str, Tensor] = {}
    back: dict[str, str] = {}
    unmapped: list[str] = []
    for k, v in state_dict.items():
        if k.startswith(dropped_prefixes):
            continue
        ours = keymap.to_ours(k)
        if ours is None:
            unmapped.append(k)
            continue
        if ours in out:
            raise WeightsError(
                f"{source}: both {back[ours]} and {k} map to {ours}; the file mixes two code versions"
            )
        out[ours], back[ours] = v, k
    for k in unmapped:  # reported as unexpected under their own names, never matched to ours
        out["\0" + k], back["\0" + k] = state_dict[k], k
    names = {k: keymap.to_official(k) for k in expected} | back  # messages use the file's names
    check_keys(expected, out, f"{source} ({label})", names=names)
    return out
