"""What a model package says about its official weights, and the import built on it (Long-LRM,
tttLRM).

:class:`ModelWeights` names the presets, the official key map, the training-only modules dropped
on import and the wrapper prefixes removed. :meth:`ModelWeights.import_official`:
``torch.load(weights_only=True)``, the ``{"model": ...}`` nesting or a bare state dict, then
:func:`~pipelines.models.keymap.convert_state_dict` against the preset's keys and shapes.

Examples:
    >>> from pipelines.models.long_lrm.weights import WEIGHTS
    >>> sd = WEIGHTS.import_official("checkpoint_000010000.pt", "official-540p")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from pipelines.models.checkpoints import WeightsError, model_shapes, read_torch_checkpoint, unwrap_state_dict
from pipelines.models.keymap import KeyMap, convert_state_dict


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

    def import_official(self, ckpt_path: str | os.PathLike, preset: str) -> dict[str, Tensor]:
        """Read an official checkpoint (``torch.load(weights_only=True)``; the ``{"model": ...}``
        nesting of the official code or a bare state dict) and return our state dict for
        ``preset``, tensors as stored."""
        if preset not in self.presets:
            raise WeightsError(
                f"unknown {self.title} preset {preset!r}; available: {', '.join(self.presets)}"
            )
        source = str(ckpt_path)
        sd = unwrap_state_dict(read_torch_checkpoint(ckpt_path), ("model",), source)
        return self.convert_official(sd, self.presets[preset], source)
