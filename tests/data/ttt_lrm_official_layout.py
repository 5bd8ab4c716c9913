"""The official tttLRM checkpoint layout (key -> shape), written out from the official code.

Sources (cwchenwang/tttLRM at 855563e, 2026-03-01; released checkpoints dl3dv_full.pt and
dl3dv_ar.pt share this layout):
- configs/dl3dv_full.yaml, configs/dl3dv_ar.yaml: d 768, n_layer 24, patch_size 8, in_channels 12,
  block_config = [model.block.SelfAttention(head_dim 64, use_qk_norm), model.lact_ttt.
  FastWeightGluMLPMultihead(head_dim 768, inter_multi 4, use_o_norm), model.block.MLP(inter_multi 4)],
  gaussians.sh_degree 3;
- model/model.py (tttLRM.__init__): blocks = ModuleList of Block(dim, bias=False, block_config);
  tokenizer = Sequential(Rearrange, Linear(in_channels * p^2, d, bias=False)); input_layernorm =
  LayerNorm(d, bias=False); decoder = Sequential(LayerNorm(d, bias=False),
  Linear(d, (3 + (sh+1)^2 * 3 + 3 + 4 + 1) * p^2, bias=False)); the renderer has no parameters;
  training-only: depth_anything (DepthAnythingV2 vits), perceptual_loss_module (VGG);
- model/block.py: Block.module_list[i] = ModuleDict(ln = LayerNorm(dim, bias=False), f = module);
  SelfAttention: to_qkv Linear(d, 3d), c_proj Linear(d, d) (bias=False from the Block),
  q_norm / k_norm = RMSNorm(head_dim); MLP: c_fc Linear(d, 4d), c_proj Linear(4d, d), bias=False;
- model/lact_ttt.py (FastWeightGluMLPMultihead): w0 [heads, hd, hd*inter], w1 [heads, hd*inter, hd],
  w2 [heads, hd, hd*inter] Parameters; to_qkv Linear(d, 3d), c_proj Linear(d, d) (bias=False);
  lr_fc = Linear(d, 3 * heads) with bias; o_norm = RMSNorm(d).

Written independently of pipelines/models/ttt_lrm (only the official files above were read).
"""

from __future__ import annotations

import math


def official_table(
    *, d: int = 768, layers: int = 24, patch: int = 8, attn_head_dim: int = 64, ttt_head_dim: int = 768,
    inter_multi: int = 4, mlp_multi: int = 4, sh_degree: int = 3, in_channels: int = 12,
) -> dict[str, tuple[int, ...]]:  # fmt: skip
    heads = d // ttt_head_dim
    dh = ttt_head_dim * inter_multi
    t = {
        "tokenizer.1.weight": (d, in_channels * patch**2),
        "input_layernorm.weight": (d,),
    }
    for i in range(layers):
        p = f"blocks.{i}.module_list."
        t.update({
            p + "0.ln.weight": (d,),
            p + "0.f.to_qkv.weight": (3 * d, d),
            p + "0.f.c_proj.weight": (d, d),
            p + "0.f.q_norm.weight": (attn_head_dim,),
            p + "0.f.k_norm.weight": (attn_head_dim,),
            p + "1.ln.weight": (d,),
            p + "1.f.w0": (heads, ttt_head_dim, dh),
            p + "1.f.w1": (heads, dh, ttt_head_dim),
            p + "1.f.w2": (heads, ttt_head_dim, dh),
            p + "1.f.to_qkv.weight": (3 * d, d),
            p + "1.f.c_proj.weight": (d, d),
            p + "1.f.lr_fc.weight": (3 * heads, d),
            p + "1.f.lr_fc.bias": (3 * heads,),
            p + "1.f.o_norm.weight": (d,),
            p + "2.ln.weight": (d,),
            p + "2.f.c_fc.weight": (mlp_multi * d, d),
            p + "2.f.c_proj.weight": (d, mlp_multi * d),
        })  # fmt: skip
    channels = 3 + (sh_degree + 1) ** 2 * 3 + 3 + 4 + 1
    t["decoder.0.weight"] = (d,)
    t["decoder.1.weight"] = (channels * patch**2, d)
    return t


def num_params(table: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in table.values())


# The released architecture: 24 x 17 block tensors + 4 = 412 tensors, 399,985,224 parameters
# (the reference notes' estimate: ~400 M, of which 24 * 3 * 768 * 3072 = 169,869,312 initial fast weights).
OFFICIAL_NUM_TENSORS = 412
OFFICIAL_NUM_PARAMS = 399_985_224
