"""``lrm-studio weights import MODEL CHECKPOINT --out FILE.safetensors``.

Each model package in ``pipelines.models.base.MODELS`` that can read its official checkpoints
exposes ``import_official(ckpt_path[, preset]) -> state_dict`` (our key names, checked strictly);
this command writes the result as safetensors with the model name in the metadata.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Annotated

import tyro

from pipelines.models.base import MODELS
from pipelines.models.checkpoints import WeightsError, save_weights
from studio.console import default_is

log = logging.getLogger(__name__)


def import_weights(model: str, checkpoint: Path, out: Path, preset: str | None = None) -> Path:
    """Convert ``checkpoint`` (official format of ``model``) into ``out`` (safetensors)."""
    if model not in MODELS:
        raise WeightsError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
    module = importlib.import_module(MODELS[model])
    importer = getattr(module, "import_official", None)
    if importer is None:
        raise WeightsError(f"model {model!r} has no importer for official checkpoints")
    state = importer(checkpoint, preset) if preset is not None else importer(checkpoint)
    meta = {"model": model, "source": Path(checkpoint).name, "format": "lrm-studio"}
    if preset is not None:
        meta["preset"] = preset
    save_weights(out, state, meta)
    n = sum(v.numel() for v in state.values())
    log.info("wrote %s: %d tensors, %.1f M parameters", out, len(state), n / 1e6)
    return Path(out)


def main(
    model: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")],
    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")],
    out: Path,
    preset: Annotated[str | None, default_is("the model's official one")] = None,
) -> int:
    """Convert an official checkpoint (read with torch.load(weights_only=True), never executing
    pickled code) into a safetensors file that `lrm-studio reconstruct --weights` loads.

    Args:
        model: registered model name, e.g. long-lrm.
        checkpoint: the official .pt / .ckpt file.
        out: destination .safetensors file (written atomically).
        preset: architecture preset to check against.
    """
    from studio.console import console, setup_logging

    setup_logging()
    try:
        path = import_weights(model, checkpoint, out, preset)
    except (ValueError, RuntimeError, OSError) as e:  # WeightsError is a ValueError
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(f"wrote {path}")
    return 0
