"""tttLRM official checkpoints: the official key layout (written out from the official code) equals
our ``official-*`` presets' through the key map, on the meta device; fake official checkpoints at
tiny size (built from that layout, not from our model) round-trip through `lrm-studio weights
import` and `load`; mismatches are errors naming the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.models.base import load_model
from pipelines.models.checkpoints import WeightsError, save_weights
from pipelines.models.ttt_lrm import import_official
from pipelines.models.ttt_lrm.config import PRESETS
from pipelines.models.ttt_lrm.memory import num_params
from pipelines.models.ttt_lrm.model import TTTLRM
from pipelines.models.ttt_lrm.weights import expected_shapes, map_key, official_key
from tests.data.ttt_lrm_official_layout import (
    OFFICIAL_NUM_PARAMS,
    OFFICIAL_NUM_TENSORS,
    official_table,
)
from tests.data.ttt_lrm_official_layout import num_params as table_params
from tests.model_helpers import (
    assert_bad_checkpoints_refused,
    assert_cli_import_fails,
    assert_import_round_trip,
    assert_mismatch_named,
)

TINY = PRESETS["tiny"]


def tiny_table() -> dict[str, tuple[int, ...]]:
    c = TINY
    return official_table(
        d=c.dim, layers=c.num_layers, patch=c.patch_size, attn_head_dim=c.attn_head_dim,
        ttt_head_dim=c.ttt_head_dim, inter_multi=int(c.ttt_inter_multi),
    )  # fmt: skip


@pytest.mark.parametrize("preset", ["official-full", "official-ar"])
def test_official_presets_have_the_checkpoint_layout(preset):
    table = official_table()
    assert len(table) == OFFICIAL_NUM_TENSORS and table_params(table) == OFFICIAL_NUM_PARAMS
    ours = expected_shapes(PRESETS[preset])  # meta device
    mapped = {map_key(k): s for k, s in table.items()}
    assert None not in mapped
    assert mapped == ours
    assert {official_key(k) for k in ours} == set(table)
    assert num_params(PRESETS[preset]) == OFFICIAL_NUM_PARAMS
    with torch.device("meta"):
        assert sum(p.numel() for p in TTTLRM(PRESETS[preset]).parameters()) == OFFICIAL_NUM_PARAMS


def test_num_params_formula_matches_the_tiny_model():
    assert num_params(TINY) == sum(p.numel() for p in TTTLRM(TINY).parameters())
    assert {map_key(k): s for k, s in tiny_table().items()} == expected_shapes(TINY)


def fake_official(gen) -> dict[str, torch.Tensor]:
    return {k: torch.randn(s, generator=gen) for k, s in tiny_table().items()}


def save_official(path: Path, sd: dict, *, extras: bool = True) -> Path:
    """The layout the official inference.py reads: {"model": state dict with the frozen loss nets}."""
    model = dict(sd)
    if extras:
        model["depth_anything.pretrained.cls_token"] = torch.zeros(1, 1, 384)
        model["depth_anything.depth_head.scratch.output_conv2.0.weight"] = torch.zeros(32, 64, 3, 3)
        model["perceptual_loss_module.vgg.0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(
        {"model": model, "optimizer": {"state": {}, "param_groups": []}, "fwdbwd_pass_step": 1000}, path
    )
    return path


def test_import_round_trip_through_cli(tmp_path, gen, caplog):
    sd = fake_official(gen)
    ckpt = save_official(tmp_path / "dl3dv_ar.pt", sd)
    rec = assert_import_round_trip(
        tmp_path, caplog, model="ttt-lrm", preset="tiny-ar", ckpt=ckpt, sd=sd, map_key=map_key,
        dropped=("depth_anything", "perceptual_loss_module"), bare_config=TINY,
    )  # fmt: skip
    assert rec.config == PRESETS["tiny-ar"]  # preset from the metadata


def test_wrapped_and_bare_state_dicts(tmp_path, gen):
    sd = fake_official(gen)
    torch.save(
        {f"_orig_mod.{k}": v for k, v in sd.items()}, tmp_path / "compiled.pt"
    )  # torch.compile'd model
    ours = import_official(tmp_path / "compiled.pt", preset="tiny")
    assert torch.equal(ours["blocks.1.ttt.w1"], sd["blocks.1.module_list.1.f.w1"])
    assert torch.equal(ours["head.proj.weight"], sd["decoder.1.weight"])
    assert torch.equal(ours["tokenizer.proj.weight"], sd["tokenizer.1.weight"])
    assert torch.equal(ours["blocks.0.mlp.fc2.weight"], sd["blocks.0.module_list.2.f.c_proj.weight"])
    assert torch.equal(ours["blocks.0.attn.proj.weight"], sd["blocks.0.module_list.0.f.c_proj.weight"])


def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path, gen):
    sd = fake_official(gen)
    del sd["blocks.1.module_list.1.f.lr_fc.bias"]
    sd["blocks.0.module_list.1.f.anchor_w0"] = torch.zeros(3)
    sd["triplane_tokens"] = torch.zeros(2)
    sd["blocks.0.module_list.1.f.w0"] = torch.zeros(1, 64, 128)
    assert_mismatch_named(
        import_official, save_official(tmp_path / "bad.pt", sd), "tiny",
        missing="blocks.1.module_list.1.f.lr_fc.bias",
        unexpected=("blocks.0.module_list.1.f.anchor_w0", "triplane_tokens"),
        misshaped="blocks.0.module_list.1.f.w0 (1, 64, 128) (expected (1, 64, 256))",
    )  # fmt: skip


def test_wrong_checkpoints(tmp_path, gen):
    """Official size against the tiny preset, another model's checkpoint, truncated, unsafe."""
    with pytest.raises(WeightsError, match=r"tokenizer\.1\.weight \(768, 768\) \(expected \(64, 768\)\)"):
        sd = fake_official(gen)
        sd["tokenizer.1.weight"] = torch.zeros(768, 768)
        import_official(save_official(tmp_path / "big.pt", sd), preset="tiny")
    long_lrm = {"global_token_init": torch.zeros(1, 2, 8), "tokenDecoder.1.weight": torch.zeros(4, 8)}
    torch.save({"model": long_lrm}, tmp_path / "llrm.pt")
    with pytest.raises(WeightsError) as e:
        import_official(tmp_path / "llrm.pt", preset="tiny")
    assert "missing all" in str(e.value) and "global_token_init" in str(e.value)
    assert_bad_checkpoints_refused(import_official, save_official(tmp_path / "good.pt", fake_official(gen)),
                                   tmp_path, "tiny")  # fmt: skip
    assert_cli_import_fails("ttt-lrm", tmp_path / "llrm.pt", tmp_path, "tiny")
    with pytest.raises(WeightsError, match="weights import ttt-lrm"):
        load_model("ttt-lrm", preset="official-full")
    save_weights(tmp_path / "geo.safetensors", {"x": torch.zeros(1)}, {"model": "geolrm"})
    with pytest.raises(WeightsError, match="not ttt-lrm"):
        load_model("ttt-lrm", weights=tmp_path / "geo.safetensors")
