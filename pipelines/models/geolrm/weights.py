"""Import of the official GeoLRM checkpoint (``geolrm.ckpt``, huggingface LinShan/GeoLRM).

The checkpoint is a state dict of the official wrapper: ``serializer.*`` (proposal network) and
``lrm_generator.*`` (reconstruction network), possibly inside a Lightning checkpoint's
``state_dict``. The key map onto our modules is a pure prefix rename:

    serializer.upsample.                    -> proposal.occupancy_head.
    serializer.                             -> proposal.
    lrm_generator.renderer.latent_decoder.  -> reconstruction.decoder.mlp.
    lrm_generator.                          -> reconstruction.

(a :class:`~pipelines.models.keymap.KeyMap`, which also gives the inverse for messages);
everything below (HF Dinov2Backbone names under ``encoder.model.``, ``transformer.layers.{i}...``)
is kept. Dropped with a note (training only): the LPIPS / SSIM loss networks (``lpips.``,
``ssim.``) and DINOv2's ``embeddings.mask_token`` (masked-image pre-training only). Every other
difference is a :class:`~pipelines.models.checkpoints.WeightsError` that names the keys:
unknown, missing or mis-shaped. Files are read with ``torch.load(weights_only=True)``
(:func:`~pipelines.models.checkpoints.read_torch_checkpoint`); nothing else in them is executed.
No tensor is transposed. Our files are written and read with the generic
:func:`~pipelines.models.checkpoints.save_weights` / ``load_weights``.

Examples:
    >>> sd = import_official("ckpts/geolrm.ckpt")                   # doctest: +SKIP
    >>> save_weights("geolrm.safetensors", sd, {"model": "geolrm", "preset": "official"})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter

from torch import Tensor

from pipelines.models.checkpoints import (
    WeightsError,
    check_keys,
    check_values,
    key_listing,
    model_shapes,
    read_torch_checkpoint,
    unwrap_state_dict,
)
from pipelines.models.keymap import KeyMap

log = logging.getLogger(__name__)

PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("serializer.upsample.", "proposal.occupancy_head."),
    ("serializer.", "proposal."),
    ("lrm_generator.renderer.latent_decoder.", "reconstruction.decoder.mlp."),
    ("lrm_generator.", "reconstruction."),
)
KEYMAP = KeyMap([(re.escape(old) + "(.*)", new + r"\1") for old, new in PREFIX_MAP])
# official keys dropped on import: (prefix or suffix, pattern, why)
TRAINING_ONLY: tuple[tuple[str, str, str], ...] = (
    ("prefix", "lpips.", "LPIPS perceptual-loss network (training only)"),
    ("prefix", "ssim.", "SSIM metric state (training only)"),
    ("suffix", ".encoder.model.embeddings.mask_token", "DINOv2 mask token (masked-image pre-training only)"),
)


def _training_only(key: str) -> str | None:
    for kind, pattern, why in TRAINING_ONLY:
        if key.startswith(pattern) if kind == "prefix" else key.endswith(pattern):
            return why
    return None


def _to_official(key: str) -> str:
    return KEYMAP.to_official(key, key)


def convert_official(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official key names -> ours. Training-only entries are dropped (logged); a key that is
    neither mapped nor training-only raises WeightsError naming it."""
    out, dropped, unknown = {}, Counter(), []
    for key, value in sd.items():
        why = _training_only(key)
        if why is not None:
            dropped[why] += 1
            continue
        new = KEYMAP.to_ours(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    for why, n in dropped.items():
        log.info("geolrm import: dropped %d tensor(s): %s", n, why)
    if unknown:
        raise WeightsError(
            f"{len(unknown)} unexpected key(s) outside serializer.* / lrm_generator.*: "
            f"{key_listing(unknown)}. "
            "Is this GeoLRM's geolrm.ckpt (huggingface LinShan/GeoLRM)?"
        )
    return out


def expected_shapes(preset: str) -> dict[str, tuple[int, ...]]:
    """Our keys and shapes for ``preset`` (built on the meta device: no memory, no initialisation)."""
    from pipelines.models.geolrm.config import PRESETS

    if preset not in PRESETS:
        raise WeightsError(f"unknown GeoLRM preset {preset!r}; available: {', '.join(PRESETS)}")
    return model_shapes("pipelines.models.geolrm.model:GeoLRM", PRESETS[preset])


def check_state(sd: dict[str, Tensor], preset: str, source: str) -> None:
    """Raise WeightsError naming every missing, unexpected and mis-shaped key of ``sd`` (our key
    names) against ``preset``; keys are shown with their official names."""
    expected = expected_shapes(preset)
    names = {k: _to_official(k) for k in (*expected, *sd)}
    check_keys(expected, sd, f"{source} (GeoLRM {preset})", names=names)


def import_official(ckpt_path: str | os.PathLike, preset: str = "official") -> dict[str, Tensor]:
    """Read the official checkpoint (a state dict, or a Lightning checkpoint's ``state_dict``)
    and return our state dict, checked key by key and shape by shape against ``preset``."""
    source = str(ckpt_path)
    sd = convert_official(unwrap_state_dict(read_torch_checkpoint(ckpt_path), ("state_dict",), source))
    check_state(sd, preset, source)
    check_values(sd, source)
    return {k: v.contiguous() for k, v in sd.items()}
