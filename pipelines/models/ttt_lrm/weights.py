"""Official tttLRM checkpoints -> our state dict, and preset -> weights-file resolution.

The released files ``dl3dv_full.pt`` and ``dl3dv_ar.pt`` (HF ``chenwang/tttLRM``) are read by
the official ``inference.py`` as ``torch.load(path)["model"]`` into ``model.model.tttLRM``; both
have the same layout (the AR model is a fine-tune). Keys map onto ours as follows (no tensor is
transposed or reshaped; the tokenizer's input and the decoder's output are laid out
``(patch row, patch column, channel)`` in both codes):

    tokenizer.1.weight                          -> tokenizer.proj.weight   (Rearrange, then Linear)
    input_layernorm.weight                      -> input_norm.weight
    blocks.I.module_list.0.ln.weight            -> blocks.I.attn_norm.weight
    blocks.I.module_list.0.f.to_qkv.weight      -> blocks.I.attn.qkv.weight
    blocks.I.module_list.0.f.c_proj.weight      -> blocks.I.attn.proj.weight
    blocks.I.module_list.0.f.{q,k}_norm.weight  -> blocks.I.attn.{q,k}_norm.weight
    blocks.I.module_list.1.ln.weight            -> blocks.I.ttt_norm.weight
    blocks.I.module_list.1.f.{w0,w1,w2}         -> blocks.I.ttt.{w0,w1,w2}
    blocks.I.module_list.1.f.to_qkv.weight      -> blocks.I.ttt.qkv.weight
    blocks.I.module_list.1.f.c_proj.weight      -> blocks.I.ttt.proj.weight
    blocks.I.module_list.1.f.lr_fc.{weight,bias}-> blocks.I.ttt.lr_fc.{weight,bias}
    blocks.I.module_list.1.f.o_norm.weight      -> blocks.I.ttt.o_norm.weight
    blocks.I.module_list.2.ln.weight            -> blocks.I.mlp_norm.weight
    blocks.I.module_list.2.f.c_fc.weight        -> blocks.I.mlp.fc1.weight
    blocks.I.module_list.2.f.c_proj.weight      -> blocks.I.mlp.fc2.weight
    decoder.0.weight                            -> head.norm.weight
    decoder.1.weight                            -> head.proj.weight

Training-only modules (``depth_anything.*``: Depth-Anything-V2 for the depth loss;
``perceptual_loss_module.*``: VGG) are dropped with a logged note; a ``module.`` (DDP) or
``_orig_mod.`` (torch.compile) prefix on every key is removed with a note. Any other key, a
missing key or a wrong shape is an error that names the keys (the official loader's
``strict=False`` would silently keep random weights).

Examples:
    >>> sd = import_official("dl3dv_full.pt")                           # doctest: +SKIP
    >>> sd = import_official("dl3dv_ar.pt", preset="official-ar")      # doctest: +SKIP
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
from pipelines.models.ttt_lrm.config import OFFICIAL_PRESET, PRESETS, TTTLRMConfig

log = logging.getLogger(__name__)

DROPPED_PREFIXES = ("depth_anything.", "perceptual_loss_module.")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_RULES = [  # (official, ours) as regex patterns over whole keys; \1 is the block index
    (r"tokenizer\.1\.weight", "tokenizer.proj.weight"),
    (r"input_layernorm\.weight", "input_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.0\.ln\.weight", r"blocks.\1.attn_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.0\.f\.to_qkv\.weight", r"blocks.\1.attn.qkv.weight"),
    (r"blocks\.(\d+)\.module_list\.0\.f\.c_proj\.weight", r"blocks.\1.attn.proj.weight"),
    (r"blocks\.(\d+)\.module_list\.0\.f\.q_norm\.weight", r"blocks.\1.attn.q_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.0\.f\.k_norm\.weight", r"blocks.\1.attn.k_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.1\.ln\.weight", r"blocks.\1.ttt_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.w0", r"blocks.\1.ttt.w0"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.w1", r"blocks.\1.ttt.w1"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.w2", r"blocks.\1.ttt.w2"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.to_qkv\.weight", r"blocks.\1.ttt.qkv.weight"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.c_proj\.weight", r"blocks.\1.ttt.proj.weight"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.lr_fc\.weight", r"blocks.\1.ttt.lr_fc.weight"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.lr_fc\.bias", r"blocks.\1.ttt.lr_fc.bias"),
    (r"blocks\.(\d+)\.module_list\.1\.f\.o_norm\.weight", r"blocks.\1.ttt.o_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.2\.ln\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"blocks\.(\d+)\.module_list\.2\.f\.c_fc\.weight", r"blocks.\1.mlp.fc1.weight"),
    (r"blocks\.(\d+)\.module_list\.2\.f\.c_proj\.weight", r"blocks.\1.mlp.fc2.weight"),
    (r"decoder\.0\.weight", "head.norm.weight"),
    (r"decoder\.1\.weight", "head.proj.weight"),
]
KEY_RULES = [(re.compile(f"^{a}$"), b) for a, b in _RULES]
INVERSE_RULES = [  # ours -> official, for messages and tests
    (re.compile("^" + b.replace(".", r"\.").replace(r"blocks\.\1", r"blocks\.(\d+)") + "$"),
     a.replace(r"\.", ".").replace(r"blocks.(\d+)", r"blocks.\1"))
    for a, b in _RULES
]  # fmt: skip
ASSETS_MODELS = Path(__file__).resolve().parents[3] / "assets" / "models"


def map_key(official: str) -> str | None:
    """Our key for an official key, or None when no rule matches."""
    for pattern, repl in KEY_RULES:
        if pattern.match(official):
            return pattern.sub(repl, official)
    return None


def official_key(ours: str) -> str:
    """The official key of one of our keys."""
    for pattern, repl in INVERSE_RULES:
        if pattern.match(ours):
            return pattern.sub(repl, ours)
    raise KeyError(ours)


def expected_shapes(config: TTTLRMConfig) -> dict[str, tuple[int, ...]]:
    """Our keys and shapes for ``config`` (built on the meta device: no memory)."""
    return dict(_expected_shapes(config))


@functools.lru_cache(maxsize=8)
def _expected_shapes(config: TTTLRMConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from pipelines.models.ttt_lrm.model import TTTLRM

    with torch.device("meta"):
        model = TTTLRM(config)
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def _strip_wrappers(sd: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            log.info("%s: every key starts with %r (a wrapped model); prefix removed", source, prefix)
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def convert_official(
    state_dict: dict[str, Tensor], config: TTTLRMConfig, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Official state dict -> ours for ``config``; raises WeightsError naming every key that does
    not fit (see module doc)."""
    state_dict = _strip_wrappers(state_dict, source)
    dropped = [k for k in state_dict if k.startswith(DROPPED_PREFIXES)]
    if dropped:
        roots = sorted({k.split(".")[0] for k in dropped})
        log.info("%s: dropped %d training-only tensors (%s)", source, len(dropped), ", ".join(roots))
    out: dict[str, Tensor] = {}
    back: dict[str, str] = {}
    for k, v in state_dict.items():
        if k.startswith(DROPPED_PREFIXES):
            continue
        ours = map_key(k)
        if ours is None:  # reported as unexpected under its own name, never matched to ours
            out["\0" + k], back["\0" + k] = v, k
        else:
            out[ours], back[ours] = v, k
    expected = expected_shapes(config)
    names = {k: official_key(k) for k in expected} | back  # messages use the file's names
    check_keys(expected, out, f"{source} (tttLRM {_describe(config)})", names=names)
    return out


def _describe(config: TTTLRMConfig) -> str:
    name = next((n for n, c in PRESETS.items() if c == config), None)
    return name or f"dim {config.dim}, {config.num_layers} layers"


def import_official(ckpt_path: str | os.PathLike, preset: str = OFFICIAL_PRESET) -> dict[str, Tensor]:
    """Read an official checkpoint (``torch.load(weights_only=True)``; the ``{"model": ...}``
    nesting of the official code or a bare state dict) and return our state dict for ``preset``
    (``official-full`` for dl3dv_full.pt, ``official-ar`` for dl3dv_ar.pt), tensors as stored."""
    if preset not in PRESETS:
        raise WeightsError(f"unknown tttLRM preset {preset!r}; available: {', '.join(PRESETS)}")
    source = str(ckpt_path)
    sd = unwrap_state_dict(read_torch_checkpoint(ckpt_path), ("model",), source)
    return convert_official(sd, PRESETS[preset], source)


def preset_weights(preset: str) -> Path | None:
    """The shipped weights of a preset, ``assets/models/ttt-lrm-<preset>.safetensors``, if present."""
    path = ASSETS_MODELS / f"ttt-lrm-{preset}.safetensors"
    return path if path.is_file() else None


def infer_preset(state_dict: dict[str, Tensor]) -> str | None:
    """The first preset whose keys and shapes equal the state dict's (official-full and
    official-ar share a layout: the first is returned; files from ``weights import`` name theirs)."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for name, config in PRESETS.items():
        if expected_shapes(config) == shapes:
            return name
    return None
