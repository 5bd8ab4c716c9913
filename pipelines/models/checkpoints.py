"""Reading official checkpoints safely and storing our weights as safetensors (all models).

- :func:`read_torch_checkpoint` loads a PyTorch pickle with ``weights_only=True``: tensors and
  plain containers only, never arbitrary pickled code; failures become :class:`WeightsError` with
  a message saying what is wrong.
- :func:`check_keys` compares a state dict with the expected keys and shapes and raises a
  :class:`WeightsError` that names every missing, unexpected and mis-shaped key.
- :func:`save_weights` / :func:`load_weights`: safetensors files with string metadata
  (``model``, ``preset``, ``source``, optionally ``config``); what is loaded is checked by
  :func:`check_values` (floating-point and finite, integers only for step counters).
- :func:`model_shapes`: a model's keys and shapes for a config, from the model built on the meta
  device; :func:`shipped_weights`: a preset's weights under ``assets/models`` if present.

Examples:
    >>> save_weights("m.safetensors", {"w": torch.zeros(2)}, {"model": "long-lrm"})  # doctest: +SKIP
    >>> sd, meta = load_weights("m.safetensors")                                      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipelines.errors import InputError
from pipelines.fileio import atomic_path

MAX_LISTED = 20
INTEGER_KEYS = ("num_batches_tracked",)  # the only integer tensors of our models (batch-norm counters)
ASSETS_MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"


class WeightsError(InputError):
    """A checkpoint that cannot be read or does not fit the model; the message names the keys."""


def read_torch_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with readable errors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path} holds pickled objects other than tensors and plain containers; it is not loaded "
            f"because that would execute code from the file ({str(e).splitlines()[0]})"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(
            f"cannot read {path}: corrupted, truncated or not a PyTorch checkpoint ({e})"
        ) from e


def unwrap_state_dict(obj: Any, nest_keys: tuple[str, ...], source: str) -> dict[str, Tensor]:
    """The state dict inside a checkpoint: ``obj[k]`` for the first of ``nest_keys`` present, or
    ``obj`` itself when it is a flat mapping of tensors."""
    if isinstance(obj, Mapping):
        for k in nest_keys:
            if k in obj and isinstance(obj[k], Mapping):
                obj = obj[k]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(
            f"{source}: no state dict found (expected a dict with one of {list(nest_keys)} or of tensors)"
        )
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        hints = [
            f"'{k}' holds keys {key_listing([str(x) for x in v])}"
            for k, v in obj.items()
            if isinstance(v, Mapping) and v and all(isinstance(x, Tensor) for x in v.values())
        ]
        raise WeightsError(
            f"{source}: not a checkpoint of this model: top-level entries {key_listing(not_tensors)} are not "
            f"tensors and none of {list(nest_keys)} is present" + ("; " + "; ".join(hints) if hints else "")
        )
    return dict(obj)


def key_listing(keys: list[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")


def check_keys(
    expected: Mapping[str, tuple[int, ...]],
    got: Mapping[str, Tensor],
    source: str,
    *,
    names: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`WeightsError` unless ``got`` has exactly the keys of ``expected`` with those
    shapes. ``names`` maps our keys back to the file's keys for the message."""
    names = names or {}
    missing = [names.get(k, k) for k in expected if k not in got]
    unexpected = [names.get(k, k) for k in got if k not in expected]
    misshaped = [
        f"{names.get(k, k)} {tuple(got[k].shape)} (expected {tuple(expected[k])})"
        for k in got
        if k in expected and tuple(got[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or misshaped:
        parts = []
        if missing and len(missing) == len(expected):
            parts.append(f"missing all {len(missing)} keys of the model (none of the file's keys is its)")
        elif missing:
            parts.append(f"missing {len(missing)} keys: {key_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {key_listing(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped {len(misshaped)} keys: {key_listing(misshaped)}")
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(parts))


def check_values(state_dict: Mapping[str, Tensor], source: str) -> None:
    """Raise :class:`WeightsError` unless every tensor is floating-point (integers only for the
    keys ending in :data:`INTEGER_KEYS`) and every floating-point value is finite: a file of
    another precision kind (e.g. int8-quantised) or with NaN / inf values would load and then
    give a meaningless result."""
    wrong = [
        f"{k} ({str(v.dtype).replace('torch.', '')})"
        for k, v in state_dict.items()
        if not v.is_floating_point() and not (k.endswith(INTEGER_KEYS) and not v.is_complex())
    ]
    if wrong:
        raise WeightsError(
            f"{source}: {len(wrong)} tensors are not floating-point ({key_listing(wrong)}); quantised or "
            "foreign files cannot be used: convert the official checkpoint with `lrm-studio weights import`"
        )
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(
            f"{source}: {len(bad)} tensors hold NaN or infinite values ({key_listing(bad)}); the file is "
            "damaged or comes from a diverged training run"
        )


def save_weights(
    path: str | os.PathLike, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str]
) -> None:
    """Write a safetensors file atomically (contiguous, unshared copies of the tensors)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})


def load_weights(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(state dict on the CPU, metadata) of a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise WeightsError(
            f"cannot read {path} as safetensors ({e}); official .pt checkpoints must first be converted "
            f"with `lrm-studio weights import`"
        ) from e
    check_values(state, str(path))
    return state, meta


TRAIN_SOURCE = "lrm-studio train"  # the ``source`` metadata of weights this project trained


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A safetensors file's string metadata ({} when it has none or cannot be read)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}


def procedural_only(meta: dict[str, str]) -> bool:
    """True for weights this project trained on procedural scenes only (``lrm-studio train``
    without a dataset; files made before ``data`` was recorded were all procedural): on real
    captures such a model can score below a flat mean-colour image."""
    return meta.get("source") == TRAIN_SOURCE and meta.get("data", "procedural") == "procedural"


def shipped_weights(model: str, preset: str) -> Path | None:
    """The shipped weights of a preset, ``assets/models/<model>-<preset>.safetensors``, if present."""
    path = ASSETS_MODELS / f"{model}-{preset}.safetensors"
    return path if path.is_file() else None


def model_shapes(model_class: str, config: Any) -> dict[str, tuple[int, ...]]:
    """Our keys and shapes of ``model_class`` (``"module:Class"``, its constructor taking the
    config only) for ``config``: built on the meta device (no memory, no initialisation), cached."""
    return dict(_model_shapes(model_class, config))


@functools.lru_cache(maxsize=16)
def _model_shapes(model_class: str, config: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    module, name = model_class.split(":")
    cls = getattr(importlib.import_module(module), name)
    with torch.device("meta"):
        model = cls(config)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
