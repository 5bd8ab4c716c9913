"""Official checkpoint import: fake official checkpoints at tiny size (built from the official key
layout, not from our model), the round trip through `lrm-studio weights import` and `load`, and
the errors that name the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.models.base import load_model
from pipelines.models.checkpoints import WeightsError
from pipelines.models.long_lrm import import_official
from pipelines.models.long_lrm.config import PRESETS
from pipelines.models.long_lrm.weights import map_key
from studio.cli import main as cli
from tests.long_lrm_official import official_table
from tests.model_helpers import (
    assert_bad_checkpoints_refused,
    assert_cli_import_fails,
    assert_import_round_trip,
    assert_mismatch_named,
)

TINY = PRESETS["tiny"]


def tiny_official_state(gen, *, old_tokenizer=False) -> dict[str, torch.Tensor]:
    c = TINY
    table = official_table(
        dims=c.dims, layout=c.layout, merge_at=c.merge_at, patch_size=c.patch_size,
        num_global=c.num_global_tokens, d_state=c.d_state, ssm_head_dim=c.ssm_head_dim,
        old_tokenizer=old_tokenizer,
    )  # fmt: skip
    return {k: torch.randn(shape, generator=gen) for k, shape in table.items()}


def save_official(path: Path, sd: dict, *, extras=True) -> Path:
    """The official save layout (main.py): model, optimizer, scheduler, step; frozen loss nets inside."""
    model = dict(sd)
    if extras:
        model["perceptual_loss.blocks.0.0.weight"] = torch.zeros(64, 3, 3, 3)
        model["perceptual_loss.mean"] = torch.zeros(1, 3, 1, 1)
        model["depth_anything.pretrained.cls_token"] = torch.zeros(1, 1, 384)
        model["depth_anything.depth_head.scratch.output_conv2.0.weight"] = torch.zeros(32, 64, 3, 3)
    ckpt = {
        "model": model,
        "optimizer": {
            "state": {0: {"step": torch.tensor(10000.0), "exp_avg": torch.zeros(3)}},
            "param_groups": [{"lr": 4e-5, "betas": (0.9, 0.95), "weight_decay": 0.05, "params": [0]}],
        },
        "scheduler": {"base_lrs": [4e-5], "last_epoch": 10000, "_step_count": 10001, "lr_lambdas": [{}]},
        "param_update_steps_done": 10000,
    }  # fmt: skip
    torch.save(ckpt, path)
    return path


def test_import_round_trip_through_cli(tmp_path, gen, caplog):
    sd = tiny_official_state(gen)
    ckpt = save_official(tmp_path / "checkpoint_000010000.pt", sd)
    assert_import_round_trip(
        tmp_path, caplog, model="long-lrm", preset="tiny", ckpt=ckpt, sd=sd, map_key=map_key,
        dropped=("perceptual_loss", "depth_anything"), bare_config=TINY,
    )  # fmt: skip


def test_old_tokenizer_name_and_bare_state_dict(tmp_path, gen):
    sd = tiny_official_state(gen, old_tokenizer=True)  # d92dd51: tokenizer.weight
    torch.save(sd, tmp_path / "bare.pt")
    ours = import_official(tmp_path / "bare.pt", preset="tiny")
    assert torch.equal(ours["tokenizer.proj.weight"], sd["tokenizer.weight"])
    both = dict(sd, **{"tokenizer.0.weight": sd["tokenizer.weight"]})
    torch.save(both, tmp_path / "both.pt")
    with pytest.raises(WeightsError, match="tokenizer"):
        import_official(tmp_path / "both.pt", preset="tiny")


def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path, gen):
    sd = tiny_official_state(gen)
    del sd["processor.blocks.3.mamba.mamba_scans.1.A_log"]
    sd["processor.blocks.5.mamba.extra_scale"] = torch.zeros(3)
    sd["some_new_head.weight"] = torch.zeros(2)
    sd["processor.merge_blocks.0.weight"] = torch.zeros(64, 1, 3, 3)
    assert_mismatch_named(
        import_official, save_official(tmp_path / "bad.pt", sd), "tiny",
        missing="processor.blocks.3.mamba.mamba_scans.1.A_log",
        unexpected=("processor.blocks.5.mamba.extra_scale", "some_new_head.weight"),
        misshaped="processor.merge_blocks.0.weight (64, 1, 3, 3) (expected (64, 1, 2, 2))",
    )  # fmt: skip


def test_wrong_model_checkpoint(tmp_path, gen):
    """An official-size checkpoint against the tiny preset, and another model's checkpoint."""
    other = {"encoder.layers.0.weight": torch.zeros(4, 4), "decoder.out.bias": torch.zeros(4)}
    torch.save({"state_dict": other}, tmp_path / "geolrm.ckpt")
    with pytest.raises(WeightsError) as e:
        import_official(tmp_path / "geolrm.ckpt", preset="tiny")
    assert "encoder.layers.0.weight" in str(e.value) and "'model'" in str(e.value)
    torch.save(other, tmp_path / "flat.pt")  # a flat state dict of another model
    with pytest.raises(WeightsError) as e:
        import_official(tmp_path / "flat.pt", preset="tiny")
    assert "unexpected 2 keys: decoder.out.bias, encoder.layers.0.weight" in str(e.value)
    assert "missing all" in str(e.value)
    sd = tiny_official_state(gen)
    sd["tokenizer.0.weight"] = torch.zeros(256, 576)  # official width
    torch.save({"model": sd}, tmp_path / "wrong_size.pt")
    with pytest.raises(WeightsError, match=r"tokenizer\.0\.weight \(256, 576\) \(expected \(32, 576\)\)"):
        import_official(tmp_path / "wrong_size.pt", preset="tiny")


def test_corrupted_and_unsafe_checkpoints(tmp_path, gen):
    good = save_official(tmp_path / "good.pt", tiny_official_state(gen))
    truncated = assert_bad_checkpoints_refused(import_official, good, tmp_path, "tiny")
    with pytest.raises(WeightsError, match="does not exist"):
        import_official(tmp_path / "missing.pt")
    # the CLI reports the error and exits non-zero, writing nothing
    assert_cli_import_fails("long-lrm", truncated, tmp_path, "tiny")


def test_official_preset_without_weights_is_an_error():
    with pytest.raises(WeightsError, match="weights import"):
        load_model("long-lrm", preset="official-540p")


def test_weights_import_dispatches_to_other_models(tmp_path, seed):
    """The command is a registry over MODELS: GeoLRM's importer plugs in unchanged."""
    from pipelines.models.geolrm import load as load_geolrm
    from tests.test_geolrm_weights import _official_tiny

    model, sd = _official_tiny(seed)
    torch.save(sd, tmp_path / "geolrm.ckpt")
    out = tmp_path / "geolrm.safetensors"
    assert (
        cli(
            [
                "weights",
                "import",
                "geolrm",
                str(tmp_path / "geolrm.ckpt"),
                "--out",
                str(out),
                "--preset",
                "tiny",
            ]
        )
        is None
    )
    rec = load_geolrm(out)
    for k, v in model.state_dict().items():
        assert torch.equal(rec.model.state_dict()[k], v), k
    with pytest.raises(SystemExit):
        cli(["weights", "import", "no-such-model", str(tmp_path / "geolrm.ckpt"), "--out", str(out)])
