"""Official Long-LRM checkpoints -> our state dict, and preset -> weights-file resolution.

The official training code saves ``{"model": LongLRM.state_dict(), "optimizer", "scheduler",
"param_update_steps_done"}`` (``main.py``); the released file
``dl3dv_i540_32input_8target/checkpoint_000010000.pt`` is such a checkpoint. Its keys map onto
ours as follows (no tensor is transposed or reshaped):

    global_token_init                          -> global_tokens
    tokenizer.0.weight  (edc74bf+, Sequential) -> tokenizer.proj.weight
    tokenizer.weight    (d92dd51, Linear)      -> tokenizer.proj.weight
    input_layernorm.weight                     -> input_norm.weight
    processor.blocks.I.mamba.mamba_scans.S.*   -> blocks.I.mamba.scans.S.*
    processor.blocks.I.*                       -> blocks.I.*
    processor.resize_blocks.K.{weight,bias}    -> merges.K.global_proj.*
    processor.merge_blocks.K.{weight,bias}     -> merges.K.conv.*
    tokenDecoder.0.weight                      -> head.norm.weight
    tokenDecoder.1.weight                      -> head.proj.weight

Training-only modules (``perceptual_loss.*``: VGG19; ``depth_anything.*``: Depth Anything ViT-S)
are dropped with a logged note. Any other key, a missing key or a wrong shape is an error that
names the keys (the official loader's ``strict=False`` would silently keep random weights).

Examples:
    >>> sd = import_official("checkpoint_000010000.pt")          # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import torch
from torch import Tensor

from pipelines.models.checkpoints import WeightsError, check_keys, read_torch_checkpoint, unwrap_state_dict
from pipelines.models.long_lrm.config import OFFICIAL_PRESET, PRESETS, LongLRMConfig

log = logging.getLogger(__name__)

DROPPED_PREFIXES = ("perceptual_loss.", "depth_anything.")
KEY_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^global_token_init$", "global_tokens"),
        (r"^tokenizer\.0\.weight$", "tokenizer.proj.weight"),
        (r"^tokenizer\.weight$", "tokenizer.proj.weight"),
        (r"^input_layernorm\.weight$", "input_norm.weight"),
        (r"^processor\.blocks\.(\d+)\.mamba\.mamba_scans\.(\d+)\.(.+)$", r"blocks.\1.mamba.scans.\2.\3"),
        (r"^processor\.blocks\.(\d+)\.(.+)$", r"blocks.\1.\2"),
        (r"^processor\.resize_blocks\.(\d+)\.(weight|bias)$", r"merges.\1.global_proj.\2"),
        (r"^processor\.merge_blocks\.(\d+)\.(weight|bias)$", r"merges.\1.conv.\2"),
        (r"^tokenDecoder\.0\.weight$", "head.norm.weight"),
        (r"^tokenDecoder\.1\.weight$", "head.proj.weight"),
    ]
]
INVERSE_RULES: list[tuple[re.Pattern, str]] = [  # ours -> official (edc74bf+ names), for messages and tests
    (re.compile(p), r)
    for p, r in [
        (r"^global_tokens$", "global_token_init"),
        (r"^tokenizer\.proj\.weight$", "tokenizer.0.weight"),
        (r"^input_norm\.weight$", "input_layernorm.weight"),
        (r"^blocks\.(\d+)\.mamba\.scans\.(\d+)\.(.+)$", r"processor.blocks.\1.mamba.mamba_scans.\2.\3"),
        (r"^blocks\.(\d+)\.(.+)$", r"processor.blocks.\1.\2"),
        (r"^merges\.(\d+)\.global_proj\.(weight|bias)$", r"processor.resize_blocks.\1.\2"),
        (r"^merges\.(\d+)\.conv\.(weight|bias)$", r"processor.merge_blocks.\1.\2"),
        (r"^head\.norm\.weight$", "tokenDecoder.0.weight"),
        (r"^head\.proj\.weight$", "tokenDecoder.1.weight"),
    ]
]
ASSETS_MODELS = Path(__file__).resolve().parents[3] / "assets" / "models"


def map_key(official: str) -> str | None:
    """Our key for an official key, or None when no rule matches."""
    for pattern, repl in KEY_RULES:
        if pattern.match(official):
            return pattern.sub(repl, official)
    return None


def official_key(ours: str) -> str:
    """The official (edc74bf+) key of one of our keys."""
    for pattern, repl in INVERSE_RULES:
        if pattern.match(ours):
            return pattern.sub(repl, ours)
    raise KeyError(ours)


def expected_shapes(config: LongLRMConfig) -> dict[str, tuple[int, ...]]:
    """Our keys and shapes for ``config`` (built on the meta device: no memory)."""
    return dict(_expected_shapes(config))


@functools.lru_cache(maxsize=8)
def _expected_shapes(config: LongLRMConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from pipelines.models.long_lrm.model import LongLRM

    with torch.device("meta"):
        model = LongLRM(config)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def convert_official(
    state_dict: dict[str, Tensor], config: LongLRMConfig, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Official state dict -> ours for ``config``; raises WeightsError naming every key that does
    not fit (see module doc)."""
    dropped = [k for k in state_dict if k.startswith(DROPPED_PREFIXES)]
    if dropped:
        roots = sorted({k.split(".")[0] for k in dropped})
        log.info("%s: dropped %d training-only tensors (%s)", source, len(dropped), ", ".join(roots))
    out: dict[str, Tensor] = {}
    back: dict[str, str] = {}
    unmapped: list[str] = []
    for k, v in state_dict.items():
        if k.startswith(DROPPED_PREFIXES):
            continue
        ours = map_key(k)
        if ours is None:
            unmapped.append(k)
            continue
        if ours in out:
            raise WeightsError(
                f"{source}: both {back[ours]} and {k} map to {ours}; the file mixes two code versions"
            )
        out[ours], back[ours] = v, k
    expected = expected_shapes(config)
    for k in unmapped:  # reported as unexpected under their own names, never matched to ours
        out["\0" + k], back["\0" + k] = state_dict[k], k
    names = {k: official_key(k) for k in expected} | back  # messages use the file's names
    check_keys(expected, out, f"{source} (Long-LRM {_describe(config)})", names=names)
    return out


def _describe(config: LongLRMConfig) -> str:
    name = next((n for n, c in PRESETS.items() if c == config), None)
    return name or f"dims {config.dims}, layout {config.layout}"


def import_official(ckpt_path: str | os.PathLike, preset: str = OFFICIAL_PRESET) -> dict[str, Tensor]:
    """Read an official checkpoint (``torch.load(weights_only=True)``; the ``{"model": ...}``
    nesting of the official save code or a bare state dict) and return our state dict for
    ``preset``, float tensors kept as stored."""
    if preset not in PRESETS:
        raise WeightsError(f"unknown Long-LRM preset {preset!r}; available: {', '.join(PRESETS)}")
    source = str(ckpt_path)
    sd = unwrap_state_dict(read_torch_checkpoint(ckpt_path), ("model",), source)
    return convert_official(sd, PRESETS[preset], source)


def preset_weights(preset: str) -> Path | None:
    """The shipped weights of a preset, ``assets/models/long-lrm-<preset>.safetensors``, if present."""
    path = ASSETS_MODELS / f"long-lrm-{preset}.safetensors"
    return path if path.is_file() else None


def infer_preset(state_dict: dict[str, Tensor]) -> str | None:
    """The preset whose keys and shapes equal the state dict's, if any."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for name, config in PRESETS.items():
        if expected_shapes(config) == shapes:
            return name
    return None
