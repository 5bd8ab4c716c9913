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
``strict=False`` would silently keep random weights). The generic procedure is
:class:`~pipelines.models.model_weights.ModelWeights`; this module holds tttLRM's facts
(:data:`WEIGHTS`).

Examples:
    >>> sd = import_official("dl3dv_full.pt")                           # doctest: +SKIP
    >>> sd = import_official("dl3dv_ar.pt", preset="official-ar")      # doctest: +SKIP
"""

from __future__ import annotations

from pipelines.models.keymap import KeyMap
from pipelines.models.model_weights import ModelWeights
from pipelines.models.ttt_lrm.config import OFFICIAL_PRESET, PRESETS, TTTLRMConfig

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
KEYMAP = KeyMap(_RULES)

WEIGHTS = ModelWeights(
    model="ttt-lrm",
    title="tttLRM",
    presets=PRESETS,
    official_preset=OFFICIAL_PRESET,
    config_from_json=TTTLRMConfig.from_json,
    model_class="pipelines.models.ttt_lrm.model:TTTLRM",
    keymap=KEYMAP,
    dropped_prefixes=DROPPED_PREFIXES,
    wrapper_prefixes=WRAPPER_PREFIXES,
    random_init_presets=frozenset({"tiny", "tiny-ar"}),  # may run with random weights (tests, smoke runs)
    weights_hint=(
        "download dl3dv_full.pt / dl3dv_ar.pt (README, tttLRM), "
        "convert with `lrm-studio weights import ttt-lrm CKPT --preset official-full|official-ar "
        "--out FILE.safetensors`, then pass --weights FILE.safetensors"
    ),
    describe=lambda c: f"dim {c.dim}, {c.num_layers} layers",
)


# This module's functions are KEYMAP's and WEIGHTS' (tests and `lrm-studio weights import` use them):
map_key = KEYMAP.to_ours  # official key -> ours, or None when no rule matches
official_key = KEYMAP.to_official  # our key -> its official name; KeyError for a key of no rule
expected_shapes = WEIGHTS.expected_shapes  # config -> our keys and shapes (built on the meta device)
convert_official = WEIGHTS.convert_official  # (official state dict, config[, source]) -> ours, checked
import_official = WEIGHTS.import_official  # (dl3dv_full.pt or dl3dv_ar.pt[, preset]) -> ours, checked
