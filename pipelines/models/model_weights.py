"""What a model package says about its weights, and the two procedures built on it: importing an
official checkpoint, and resolving ``load(weights, preset)`` (Long-LRM, tttLRM).

:class:`ModelWeights` names the presets, the official key map, the training-only modules dropped
on import, the presets that may run with random weights and the hint for a user without weights.

- :meth:`ModelWeights.import_official`: ``torch.load(weights_only=True)``, the ``{"model": ...}``
  nesting or a bare state dict, then :func:`~pipelines.models.keymap.convert_state_dict` against
  the preset's keys and shapes.
- :meth:`ModelWeights.resolve`: the architecture comes from ``preset`` when given, else from the
  file's metadata (``config`` or ``preset``), else from matching the file's shapes against the
  presets; without a file, the preset's shipped weights (``assets/models/<model>-<preset>
  .safetensors``) are used; a preset in ``random_init_presets`` may then run with random weights
  (logged), others fail with ``weights_hint``. A state dict is checked key by key and shape by
  shape before any model is built.

Examples:
    >>> from pipelines.models.long_lrm.weights import WEIGHTS
    >>> sd = WEIGHTS.import_official("checkpoint_000010000.pt", "official-540p")   # doctest: +SKIP
    >>> WEIGHTS.resolve(weights=None, preset="tiny").state is None                  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from pipelines.models.checkpoints import (
    WeightsError,
    check_keys,
    check_values,
    load_weights,
    model_shapes,
    read_torch_checkpoint,
    shipped_weights,
    unwrap_state_dict,
)
from pipelines.models.keymap import KeyMap, convert_state_dict

log = logging.getLogger(__name__)

M = TypeVar("M")


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """A model's weights facts (see module doc). ``model``: registry name, metadata ``model`` and
    shipped-file prefix; ``title``: the name in messages; ``model_class``: ``"module:Class"``;
    ``describe``: a config that is no preset, in messages."""

    model: str
    title: str
    presets: Mapping[str, Any]
    official_preset: str
    config_from_json: Callable[[str], Any]
    model_class: str
    keymap: KeyMap
    dropped_prefixes: tuple[str, ...]
    random_init_presets: frozenset[str]
    weights_hint: str
    describe: Callable[[Any], str]
    wrapper_prefixes: tuple[str, ...] = ()

    def expected_shapes(self, config: Any) -> dict[str, tuple[int, ...]]:
        """Our keys and shapes for ``config`` (built on the meta device: no memory)."""
        return model_shapes(self.model_class, config)

    def infer_preset(self, state_dict: Mapping[str, Tensor]) -> str | None:
        """The first preset whose keys and shapes equal the state dict's, if any."""
        shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
        for name, config in self.presets.items():
            if self.expected_shapes(config) == shapes:
                return name
        return None

    def label(self, config: Any) -> str:
        name = next((n for n, c in self.presets.items() if c == config), None)
        return f"{self.title} {name or self.describe(config)}"

    # ------------------------------------------------------------------ import
    def convert_official(
        self, state_dict: dict[str, Tensor], config: Any, source: str = "checkpoint"
    ) -> dict[str, Tensor]:
        """Official state dict -> ours for ``config``; raises WeightsError naming every key that
        does not fit."""
        return convert_state_dict(
            state_dict, self.keymap, self.expected_shapes(config), dropped_prefixes=self.dropped_prefixes,
            wrapper_prefixes=self.wrapper_prefixes, source=source, label=self.label(config),
        )  # fmt: skip

    def import_official(self, ckpt_path: str | os.PathLike, preset: str | None = None) -> dict[str, Tensor]:
        """Read an official checkpoint (``torch.load(weights_only=True)``; the ``{"model": ...}``
        nesting of the official code or a bare state dict) and return our state dict for
        ``preset`` (default: the official one), tensors as stored."""
        preset = self.official_preset if preset is None else preset
        if preset not in self.presets:
            raise WeightsError(
                f"unknown {self.title} preset {preset!r}; available: {', '.join(self.presets)}"
            )
        source = str(ckpt_path)
        sd = unwrap_state_dict(read_torch_checkpoint(ckpt_path), ("model",), source)
        out = self.convert_official(sd, self.presets[preset], source)
        check_values(out, source)
        return out

    # ------------------------------------------------------------------ load
    def resolve(self, weights: str | os.PathLike | None, preset: str | None) -> Resolved:
        """The config and checked state dict ``load(weights, preset)`` builds (see module doc)."""
        presets = self.presets
        if preset is not None and preset not in presets:
            raise ValueError(f"unknown {self.title} preset {preset!r}; available: {', '.join(presets)}")
        if weights is None and preset is not None:
            weights = shipped_weights(self.model, preset)
        state, meta = load_weights(weights) if weights is not None else (None, {})
        if meta.get("model", self.model) != self.model:
            raise WeightsError(f"{weights} holds weights of {meta['model']!r}, not {self.model}")
        if preset is not None:
            config = presets[preset]
        elif "config" in meta:
            config = self.config_from_json(meta["config"])
        elif meta.get("preset") in presets:
            config = presets[meta["preset"]]
        elif state is not None:
            name = self.infer_preset(state)
            if name is None:
                raise WeightsError(
                    f"{weights}: its keys and shapes match no {self.title} preset ({', '.join(presets)}); "
                    "pass --preset"
                )
            log.info("%s: no preset recorded; its layout is that of %s", weights, name)
            config = presets[name]
        else:
            config, preset = presets[self.official_preset], self.official_preset
        if state is not None:
            check_keys(self.expected_shapes(config), state, str(weights))
        elif preset in self.random_init_presets:
            log.warning(
                "%s preset %r has no weights file: running with random weights (output is not meaningful)",
                self.title, preset,
            )  # fmt: skip
        else:
            raise WeightsError(f"{self.title} preset {preset!r} needs weights: {self.weights_hint}")
        return Resolved(config, state, Path(weights) if weights else None)


@dataclass
class Resolved:
    """config: the architecture; state: our state dict, checked against it (None: random init,
    allowed for this preset); weights: the file it came from."""

    config: Any
    state: dict[str, Tensor] | None
    weights: Path | None


def seeded_init(build: Callable[[], M], seed: int) -> M:
    """``build()`` with torch's RNG seeded by ``seed``, the global RNG left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
