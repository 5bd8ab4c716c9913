"""Import of the official GeoLRM checkpoint (``geolrm.ckpt``, huggingface LinShan/GeoLRM).

The checkpoint is a state dict of the official wrapper: ``serializer.*`` (proposal network) and
``lrm_generator.*`` (reconstruction network), possibly inside a Lightning checkpoint's
``state_dict``. The key map onto our modules is a pure prefix rename:

    serializer.upsample.                    -> proposal.occupancy_head.
    serializer.                             -> proposal.
    lrm_generator.renderer.latent_decoder.  -> reconstruction.decoder.mlp.
    lrm_generator.                          -> reconstruction.

everything below (HF Dinov2Backbone names under ``encoder.model.``, ``transformer.layers.{i}...``)
is kept. Dropped with a note (training only): the LPIPS / SSIM loss networks (``lpips.``,
``ssim.``) and DINOv2's ``embeddings.mask_token`` (masked-image pre-training only). Every other
difference is an error that names the keys: unknown, missing or mis-shaped. Files are read with
``torch.load(weights_only=True)``; nothing else in them is executed. No tensor is transposed.

Examples:
    >>> sd = import_official("ckpts/geolrm.ckpt")                   # doctest: +SKIP
    >>> save_weights(sd, "geolrm.safetensors")                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import Counter

import torch
from torch import Tensor, nn

from pipelines.fileio import atomic_path

log = logging.getLogger(__name__)

PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("serializer.upsample.", "proposal.occupancy_head."),
    ("serializer.", "proposal."),
    ("lrm_generator.renderer.latent_decoder.", "reconstruction.decoder.mlp."),
    ("lrm_generator.", "reconstruction."),
)
# official keys dropped on import: (prefix or suffix, pattern, why)
TRAINING_ONLY: tuple[tuple[str, str, str], ...] = (
    ("prefix", "lpips.", "LPIPS perceptual-loss network (training only)"),
    ("prefix", "ssim.", "SSIM metric state (training only)"),
    ("suffix", ".encoder.model.embeddings.mask_token", "DINOv2 mask token (masked-image pre-training only)"),
)


class CheckpointMismatch(ValueError):
    """The checkpoint's keys or shapes differ from the model's; the message names them."""


def _training_only(key: str) -> str | None:
    for kind, pattern, why in TRAINING_ONLY:
        if key.startswith(pattern) if kind == "prefix" else key.endswith(pattern):
            return why
    return None


def _rename(key: str) -> str | None:
    for old, new in PREFIX_MAP:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _to_official(key: str) -> str:
    for old, new in PREFIX_MAP:
        if key.startswith(new):
            return old + key[len(new) :]
    return key


def _list(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def convert_official(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official key names -> ours. Training-only entries are dropped (logged); a key that is
    neither mapped nor training-only raises CheckpointMismatch naming it."""
    out, dropped, unknown = {}, Counter(), []
    for key, value in sd.items():
        why = _training_only(key)
        if why is not None:
            dropped[why] += 1
            continue
        new = _rename(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    for why, n in dropped.items():
        log.info("geolrm import: dropped %d tensor(s): %s", n, why)
    if unknown:
        raise CheckpointMismatch(
            f"{len(unknown)} unexpected key(s) outside serializer.* / lrm_generator.*: {_list(unknown)}. "
            "Is this GeoLRM's geolrm.ckpt (huggingface LinShan/GeoLRM)?"
        )
    return out


def check_layout(sd: dict[str, Tensor], model: nn.Module, what: str = "checkpoint") -> None:
    """Raise CheckpointMismatch naming every missing, unexpected and mis-shaped key of ``sd``
    against ``model.state_dict()`` (keys shown with their official names)."""
    ref = model.state_dict()
    missing = [k for k in ref if k not in sd]
    unexpected = [k for k in sd if k not in ref]
    shaped = [k for k in sd if k in ref and tuple(sd[k].shape) != tuple(ref[k].shape)]
    if not (missing or unexpected or shaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {_list([_to_official(k) for k in missing])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {_list([_to_official(k) for k in unexpected])}")
    if shaped:
        desc = [f"{_to_official(k)} ({list(sd[k].shape)} vs model {list(ref[k].shape)})" for k in shaped]
        parts.append(f"{len(shaped)} mis-shaped: {_list(desc)}")
    raise CheckpointMismatch(f"{what} does not match the model: " + "; ".join(parts))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """torch.load(weights_only=True) on the CPU; unwraps a Lightning checkpoint's state_dict."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path}: refused to unpickle (torch.load weights_only=True): it holds Python objects besides "
            f"tensors. Re-save only its state dict. Details: {str(e).splitlines()[0]}"
        ) from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        log.info("geolrm import: %s is a training checkpoint; using its state_dict", path)
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {_list([str(k) for k in bad])}")
    return obj


def import_official(ckpt_path: str | os.PathLike, preset: str = "official") -> dict[str, Tensor]:
    """Read the official checkpoint and return our state dict, checked key by key and shape by
    shape against ``preset`` (built on the meta device: no memory, no initialisation)."""
    from pipelines.models.geolrm.config import PRESETS
    from pipelines.models.geolrm.model import GeoLRM

    sd = convert_official(read_checkpoint(ckpt_path))
    with torch.device("meta"):
        model = GeoLRM(PRESETS[preset])
    check_layout(sd, model, what=f"{ckpt_path}")
    return {k: v.contiguous() for k, v in sd.items()}


def save_weights(sd: dict[str, Tensor], path: str | os.PathLike, preset: str = "official") -> None:
    """Write a state dict as safetensors, atomically; the preset is kept in the metadata."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in sd.items()},
            str(tmp),
            metadata={"model": "geolrm", "preset": preset},
        )


def load_weights(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read our safetensors file (see ``save_weights``): (state dict, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("model", "geolrm") != "geolrm":
        raise ValueError(f"{path} holds weights for model {meta['model']!r}, not geolrm")
    return load_file(str(path), device="cpu"), meta
