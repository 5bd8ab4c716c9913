"""Official checkpoint import: strict key and shape rules, training-only entries dropped with a
note, torch.load(weights_only=True), and the safetensors file loading strictly."""

from __future__ import annotations

import logging

import pytest
import torch

from pipelines.models.checkpoints import WeightsError, save_weights
from pipelines.models.geolrm import load
from pipelines.models.geolrm.config import PRESETS
from pipelines.models.geolrm.model import GeoLRM
from pipelines.models.geolrm.weights import import_official

# our prefixes -> official ones, written out independently of weights.PREFIX_MAP
TO_OFFICIAL = (
    ("proposal.occupancy_head.", "serializer.upsample."),
    ("proposal.", "serializer."),
    ("reconstruction.decoder.mlp.", "lrm_generator.renderer.latent_decoder."),
    ("reconstruction.", "lrm_generator."),
)


def _official_tiny(seed: int) -> tuple[GeoLRM, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = GeoLRM(PRESETS["tiny"])
    sd = {}
    for k, v in model.state_dict().items():
        for ours, theirs in TO_OFFICIAL:
            if k.startswith(ours):
                sd[theirs + k[len(ours) :]] = v.clone()
                break
    dim = PRESETS["tiny"].dino.dim
    sd["serializer.encoder.model.embeddings.mask_token"] = torch.zeros(1, dim)
    sd["lrm_generator.encoder.model.embeddings.mask_token"] = torch.zeros(1, dim)
    sd["lpips.net.slice1.0.weight"] = torch.randn(4, 3, 3, 3)
    return model, sd


def test_import_roundtrip(tmp_path, seed, caplog):
    model, sd = _official_tiny(seed)
    path = tmp_path / "geolrm.ckpt"
    torch.save(sd, path)
    with caplog.at_level(logging.INFO, logger="pipelines.models.geolrm.weights"):
        ours = import_official(path, preset="tiny")
    notes = caplog.text
    assert "LPIPS" in notes and "mask token" in notes
    ref = model.state_dict()
    assert ours.keys() == ref.keys()
    for k in ref:
        assert torch.equal(ours[k], ref[k]), k
    out = tmp_path / "geolrm.safetensors"
    save_weights(out, ours, {"model": "geolrm", "preset": "tiny"})
    rec = load(out)  # the preset comes from the file's metadata
    for k, v in rec.model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_lightning_checkpoint_is_unwrapped(tmp_path, seed):
    model, sd = _official_tiny(seed)
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, tmp_path / "last.ckpt")
    assert import_official(tmp_path / "last.ckpt", preset="tiny").keys() == model.state_dict().keys()


@pytest.mark.parametrize("case", ["missing", "unexpected", "foreign", "shape"])
def test_mismatches_are_errors_that_name_the_keys(tmp_path, seed, case):
    _, sd = _official_tiny(seed)
    key = "lrm_generator.transformer.layers.1.cross_attention.cross_view_weight.weight"
    if case == "missing":
        del sd[key]
        name = key
    elif case == "unexpected":
        name = "serializer.transformer.layers.0.extra_gate.weight"
        sd[name] = torch.zeros(3)
    elif case == "foreign":
        name = "ema_model.decoder.weight"
        sd[name] = torch.zeros(3)
    else:
        sd[key] = torch.zeros(2, 5)
        name = key
    torch.save(sd, tmp_path / "bad.ckpt")
    with pytest.raises(WeightsError) as err:
        import_official(tmp_path / "bad.ckpt", preset="tiny")
    assert name in str(err.value)
    if case == "shape":
        assert "(2, 5)" in str(err.value)


class _NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"serializer.x": _NotATensor()}, tmp_path / "evil.ckpt")
    with pytest.raises(WeightsError, match="execute code"):
        import_official(tmp_path / "evil.ckpt", preset="tiny")


def test_load_rejects_a_file_for_another_preset(tmp_path, seed):
    model, _ = _official_tiny(seed)
    save_weights(tmp_path / "tiny.safetensors", model.state_dict(), {"model": "geolrm", "preset": "tiny"})
    with pytest.raises(WeightsError, match="mis-shaped"):
        load(tmp_path / "tiny.safetensors", preset="official")
