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
names the keys (the official loader's ``strict=False`` would silently keep random weights). The
generic procedure is :class:`~pipelines.models.model_weights.ModelWeights`; this module holds
Long-LRM's facts (:data:`WEIGHTS`).

Examples:
    >>> sd = import_official("checkpoint_000010000.pt")          # doctest: +SKIP
"""

from __future__ import annotations

from pipelines.models.keymap import KeyMap
from pipelines.models.long_lrm.config import OFFICIAL_PRESET, PRESETS, LongLRMConfig
from pipelines.models.model_weights import ModelWeights

KEYMAP = KeyMap(  # official -> ours; the inverse gives the edc74bf+ names (listed first)
    [
        (r"global_token_init", "global_tokens"),
        (r"tokenizer\.0\.weight", "tokenizer.proj.weight"),
        (r"tokenizer\.weight", "tokenizer.proj.weight"),
        (r"input_layernorm\.weight", "input_norm.weight"),
        (r"processor\.blocks\.(\d+)\.mamba\.mamba_scans\.(\d+)\.(.+)", r"blocks.\1.mamba.scans.\2.\3"),
        (r"processor\.blocks\.(\d+)\.(.+)", r"blocks.\1.\2"),
        (r"processor\.resize_blocks\.(\d+)\.(weight|bias)", r"merges.\1.global_proj.\2"),
        (r"processor\.merge_blocks\.(\d+)\.(weight|bias)", r"merges.\1.conv.\2"),
        (r"tokenDecoder\.0\.weight", "head.norm.weight"),
        (r"tokenDecoder\.1\.weight", "head.proj.weight"),
    ]
)
DROPPED_PREFIXES = ("perceptual_loss.", "depth_anything.")

WEIGHTS = ModelWeights(
    model="long-lrm",
    title="Long-LRM",
    presets=PRESETS,
    official_preset=OFFICIAL_PRESET,
    config_from_json=LongLRMConfig.from_json,
    model_class="pipelines.models.long_lrm.model:LongLRM",
    keymap=KEYMAP,
    dropped_prefixes=DROPPED_PREFIXES,
    random_init_presets=frozenset({"tiny"}),  # may run with random weights (tests, smoke runs)
    weights_hint=(
        "download the official checkpoint (README, Long-LRM), convert it with "
        "`lrm-studio weights import long-lrm CKPT --out FILE.safetensors`, "
        "then pass --weights FILE.safetensors"
    ),
    describe=lambda c: f"dims {c.dims}, layout {c.layout}",
)


# This module's functions are KEYMAP's and WEIGHTS' (tests and `lrm-studio weights import` use them):
map_key = KEYMAP.to_ours  # official key -> ours, or None when no rule matches
official_key = KEYMAP.to_official  # our key -> its official (edc74bf+) name; KeyError for a key of no rule
expected_shapes = WEIGHTS.expected_shapes  # config -> our keys and shapes (built on the meta device)
convert_official = WEIGHTS.convert_official  # (official state dict, config[, source]) -> ours, checked
import_official = WEIGHTS.import_official  # (checkpoint_000010000.pt[, preset]) -> our state dict, checked
