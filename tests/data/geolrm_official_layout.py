"""The official GeoLRM checkpoint layout (key -> shape), written out from the official code.

Sources (alibaba-yuanjing-aigclab/GeoLRM at da3f30fb6a52, 2024-09-30):
- configs/geolrm.yaml: serializer (TransformerSerializer: encoder_feat_dim 384, transformer_dim 384,
  6 layers, 16 heads, grid_size 128, token_res 8, 8 deform points) and lrm_generator (GeoLRM:
  encoder_feat_dim 384, transformer_dim 768, 16 layers, 16 heads, 32 Gaussians per token,
  use_sh false);
- src/models/encoder/dino2_wrapper.py (DinoWrapper: ``model`` = transformers Dinov2Backbone
  'facebook/dinov2-base', ``deconv`` = ConvTranspose2d(768, C, 4, 2, 1, bias=False) + BatchNorm2d,
  ``low_level_encoder`` = Conv2d(9, C, 4, 4, bias=False) + BatchNorm2d);
- transformers models/dinov2/modeling_dinov2.py (Dinov2Backbone module names) with the
  facebook/dinov2-base config (hidden 768, 12 layers, mlp_ratio 4, image 518, patch 14);
- src/models/decoder/geo_transformer.py (GeoTransformer: query_token [1, 1, dim - 3]; layers.i:
  self_attention.{wq,wk,wv,wo} bias-free, FeedForward w1/w2/w3 bias-free with hidden
  256 * ceil(int(2 * 4 dim / 3) / 256), three RMSNorm weights; final norm);
- src/models/decoder/deformable_cross_attention.py (MSDCAWrapper: output_proj Linear(d, d),
  cross_view_weight Linear(d, 1), deformable_attention = MSDeformableAttention3D with
  sampling_offsets Linear(d, H*L*P*2), attention_weights Linear(d, H*L*P), value_proj Linear(C, d));
- src/serializers/geo_srl.py (upsample Linear(384, 8^3));
- src/models/renderer/gaussian_renderer.py (latent_decoder Linear(768, 14*32), SiLU, Linear(448, 448)).

Written independently of pipelines/models/geolrm (only the official files above were read).
"""

from __future__ import annotations


def _dinov2_base(prefix: str) -> dict[str, tuple[int, ...]]:
    d, mlp = 768, 3072
    out = {
        f"{prefix}embeddings.cls_token": (1, 1, d),
        f"{prefix}embeddings.mask_token": (1, d),
        f"{prefix}embeddings.position_embeddings": (1, 37 * 37 + 1, d),
        f"{prefix}embeddings.patch_embeddings.projection.weight": (d, 3, 14, 14),
        f"{prefix}embeddings.patch_embeddings.projection.bias": (d,),
        f"{prefix}layernorm.weight": (d,),
        f"{prefix}layernorm.bias": (d,),
    }
    for i in range(12):
        p = f"{prefix}encoder.layer.{i}."
        for name in ("norm1", "norm2"):
            out[p + name + ".weight"] = (d,)
            out[p + name + ".bias"] = (d,)
        for name in ("query", "key", "value"):
            out[p + f"attention.attention.{name}.weight"] = (d, d)
            out[p + f"attention.attention.{name}.bias"] = (d,)
        out[p + "attention.output.dense.weight"] = (d, d)
        out[p + "attention.output.dense.bias"] = (d,)
        out[p + "layer_scale1.lambda1"] = (d,)
        out[p + "layer_scale2.lambda1"] = (d,)
        out[p + "mlp.fc1.weight"] = (mlp, d)
        out[p + "mlp.fc1.bias"] = (mlp,)
        out[p + "mlp.fc2.weight"] = (d, mlp)
        out[p + "mlp.fc2.bias"] = (d,)
    return out


def _batchnorm(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        prefix + "weight": (c,),
        prefix + "bias": (c,),
        prefix + "running_mean": (c,),
        prefix + "running_var": (c,),
        prefix + "num_batches_tracked": (),
    }


def _dino_wrapper(prefix: str, feat: int = 384) -> dict[str, tuple[int, ...]]:
    out = _dinov2_base(prefix + "model.")
    out[prefix + "deconv.0.weight"] = (768, feat, 4, 4)  # ConvTranspose2d weight: [in, out, k, k]
    out.update(_batchnorm(prefix + "deconv.1.", feat))
    out[prefix + "low_level_encoder.0.weight"] = (feat, 9, 4, 4)
    out.update(_batchnorm(prefix + "low_level_encoder.1.", feat))
    return out


def _geo_transformer(
    prefix: str, dim: int, layers: int, heads: int, feat: int = 384, levels: int = 2, points: int = 8
):
    hidden = int(2 * 4 * dim / 3)
    hidden = 256 * ((hidden + 255) // 256)
    out = {prefix + "query_token": (1, 1, dim - 3), prefix + "norm.weight": (dim,)}
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        for w in ("wq", "wk", "wv", "wo"):
            out[p + f"self_attention.{w}.weight"] = (dim, dim)
        out[p + "cross_attention.output_proj.weight"] = (dim, dim)
        out[p + "cross_attention.output_proj.bias"] = (dim,)
        out[p + "cross_attention.cross_view_weight.weight"] = (1, dim)
        out[p + "cross_attention.cross_view_weight.bias"] = (1,)
        da = p + "cross_attention.deformable_attention."
        out[da + "sampling_offsets.weight"] = (heads * levels * points * 2, dim)
        out[da + "sampling_offsets.bias"] = (heads * levels * points * 2,)
        out[da + "attention_weights.weight"] = (heads * levels * points, dim)
        out[da + "attention_weights.bias"] = (heads * levels * points,)
        out[da + "value_proj.weight"] = (dim, feat)
        out[da + "value_proj.bias"] = (dim,)
        out[p + "feed_forward.w1.weight"] = (hidden, dim)
        out[p + "feed_forward.w2.weight"] = (dim, hidden)
        out[p + "feed_forward.w3.weight"] = (hidden, dim)
        for n in ("self_attention_norm", "cross_attention_norm", "ffn_norm"):
            out[p + n + ".weight"] = (dim,)
    return out


def official_layout() -> dict[str, tuple[int, ...]]:
    """Every tensor of the official model's state dict (serializer + lrm_generator)."""
    out = {}
    out.update(_dino_wrapper("serializer.encoder."))
    out.update(_geo_transformer("serializer.transformer.", dim=384, layers=6, heads=16))
    out["serializer.upsample.weight"] = (8**3, 384)
    out["serializer.upsample.bias"] = (8**3,)
    out.update(_dino_wrapper("lrm_generator.encoder."))
    out.update(_geo_transformer("lrm_generator.transformer.", dim=768, layers=16, heads=16))
    gs = 14 * 32
    out["lrm_generator.renderer.latent_decoder.0.weight"] = (gs, 768)
    out["lrm_generator.renderer.latent_decoder.0.bias"] = (gs,)
    out["lrm_generator.renderer.latent_decoder.2.weight"] = (gs, gs)
    out["lrm_generator.renderer.latent_decoder.2.bias"] = (gs,)
    return out
