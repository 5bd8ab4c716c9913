"""The official Long-LRM state-dict layout, as data (for tests).

Source: arthurhero/Long-LRM at edc74bf (2025-10-19; the code of the checkpoint release 4c39584):
model/llrm.py (LongLRM.__init__: global_token_init, tokenizer = Sequential(Linear), input_layernorm,
tokenDecoder = Sequential(LayerNorm(bias=False), Linear(bias=False)); Processor: blocks,
resize_blocks = Linear(d, d'), merge_blocks = Conv2d(d, d', 2, 2, groups=d)), model/mamba2.py
(Mamba2Block: norm = mamba_ssm RMSNorm (weight only), mamba = Mamba2MultiScan: in_proj, out_proj
(bias=False), mamba_scans[0..1] = Mamba2SingleScan: conv1d (depthwise, bias), dt_bias, A_log, D,
norm = gated RMSNorm (weight only)), model/transformer.py (TransformerBlock: norm1, norm2 =
LayerNorm(bias=False), attn.qkv, attn.proj, mlp.fc1, mlp.fc2, all bias=False), configs/7m1t_tm.yaml.
Anchors from the reference notes: in_proj 1544 @256 / 4640 @1024, tokenizer (256, 576),
tokenDecoder.1 (15104, 1024), merge conv (1024, 1, 2, 2), 141,918,160 trainable parameters.
"""

from __future__ import annotations

import math

# ---- the released architecture (7m1t_tm.yaml), written out
OFFICIAL_TOP = {
    "global_token_init": (1, 2, 256),
    "tokenizer.0.weight": (256, 576),
    "input_layernorm.weight": (256,),
    "processor.resize_blocks.0.weight": (1024, 256),
    "processor.resize_blocks.0.bias": (1024,),
    "processor.merge_blocks.0.weight": (1024, 1, 2, 2),
    "processor.merge_blocks.0.bias": (1024,),
    "tokenDecoder.0.weight": (1024,),
    "tokenDecoder.1.weight": (15104, 1024),
}
OFFICIAL_MAMBA = {  # per block, by width
    256: {
        "norm.weight": (256,),
        "mamba.in_proj.weight": (1544, 256),
        "mamba.out_proj.weight": (256, 512),
        **{f"mamba.mamba_scans.{s}.{k}": shape for s in (0, 1) for k, shape in {
            "conv1d.weight": (1024, 1, 4), "conv1d.bias": (1024,), "dt_bias": (8,), "A_log": (8,),
            "D": (8,), "norm.weight": (512,)}.items()},
    },
    1024: {
        "norm.weight": (1024,),
        "mamba.in_proj.weight": (4640, 1024),
        "mamba.out_proj.weight": (1024, 2048),
        **{f"mamba.mamba_scans.{s}.{k}": shape for s in (0, 1) for k, shape in {
            "conv1d.weight": (2560, 1, 4), "conv1d.bias": (2560,), "dt_bias": (32,), "A_log": (32,),
            "D": (32,), "norm.weight": (2048,)}.items()},
    },
}  # fmt: skip
OFFICIAL_TRANSFORMER = {
    256: {"norm1.weight": (256,), "attn.qkv.weight": (768, 256), "attn.proj.weight": (256, 256),
          "norm2.weight": (256,), "mlp.fc1.weight": (1024, 256), "mlp.fc2.weight": (256, 1024)},
    1024: {"norm1.weight": (1024,), "attn.qkv.weight": (3072, 1024), "attn.proj.weight": (1024, 1024),
           "norm2.weight": (1024,), "mlp.fc1.weight": (4096, 1024), "mlp.fc2.weight": (1024, 4096)},
}  # fmt: skip
OFFICIAL_BLOCKS = [("m" if i % 8 != 7 else "t", 256 if i < 8 else 1024) for i in range(24)]
OFFICIAL_NUM_PARAMS = 141_918_160


def official_540p_table() -> dict[str, tuple[int, ...]]:
    table = dict(OFFICIAL_TOP)
    for i, (kind, width) in enumerate(OFFICIAL_BLOCKS):
        block = OFFICIAL_MAMBA[width] if kind == "m" else OFFICIAL_TRANSFORMER[width]
        table.update({f"processor.blocks.{i}.{k}": v for k, v in block.items()})
    return table


# ---- the same rules as formulas, for other sizes (fake official checkpoints at tiny size)
def official_table(
    *, dims, layout, merge_at, patch_size=8, num_global=2, d_state=256, ssm_head_dim=64,
    expand=2, d_conv=4, sh_degree=3, mlp_ratio=4, old_tokenizer=False,
) -> dict[str, tuple[int, ...]]:  # fmt: skip
    t = {
        "global_token_init": (1, num_global, dims[0]),
        ("tokenizer.weight" if old_tokenizer else "tokenizer.0.weight"): (dims[0], 9 * patch_size**2),
        "input_layernorm.weight": (dims[0],),
    }
    k, width = 0, dims[0]
    for i, kind in enumerate(layout):
        if i in merge_at:
            nxt = dims[k + 1]
            t[f"processor.resize_blocks.{k}.weight"] = (nxt, width)
            t[f"processor.resize_blocks.{k}.bias"] = (nxt,)
            t[f"processor.merge_blocks.{k}.weight"] = (nxt, 1, 2, 2)
            t[f"processor.merge_blocks.{k}.bias"] = (nxt,)
            k, width = k + 1, nxt
        pre = f"processor.blocks.{i}."
        if kind == "t":
            h = mlp_ratio * width
            t.update({pre + "norm1.weight": (width,), pre + "attn.qkv.weight": (3 * width, width),
                      pre + "attn.proj.weight": (width, width), pre + "norm2.weight": (width,),
                      pre + "mlp.fc1.weight": (h, width), pre + "mlp.fc2.weight": (width, h)})  # fmt: skip
        else:
            di = expand * width
            heads, conv = di // ssm_head_dim, di + 2 * d_state
            t[pre + "norm.weight"] = (width,)
            t[pre + "mamba.in_proj.weight"] = (2 * di + 2 * d_state + heads, width)
            t[pre + "mamba.out_proj.weight"] = (width, di)
            for s in (0, 1):
                q = f"{pre}mamba.mamba_scans.{s}."
                t.update({q + "conv1d.weight": (conv, 1, d_conv), q + "conv1d.bias": (conv,),
                          q + "dt_bias": (heads,), q + "A_log": (heads,), q + "D": (heads,),
                          q + "norm.weight": (di,)})  # fmt: skip
    channels = 3 + 3 * (sh_degree + 1) ** 2 + 3 + 4 + 1
    p_out = patch_size * 2 ** len(merge_at)
    t["tokenDecoder.0.weight"] = (dims[-1],)
    t["tokenDecoder.1.weight"] = (channels * p_out**2, dims[-1])
    return t


def num_params(table: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in table.values())
