"""GeoLRM (arXiv 2406.15333): geometry-aware large reconstruction model, our implementation.

Two networks, each with its own DINOv2 ViT-B/14 hierarchical image encoder: a proposal
transformer over 16^3 tokens predicts 128^3 occupancy; a reconstruction transformer over the
occupied voxels (anchors; 8192 by default, 16384 allowed) decodes 32 Gaussians per anchor.

Files: config.py (presets ``official``, ``tiny``), encoder.py, transformer.py, proposal.py,
decoder.py, model.py, preprocess.py (capture <-> cube), reconstructor.py (the studio
interface), weights.py (official checkpoint import). Shared blocks: ``blocks/dinov2.py``,
``blocks/rope3d.py``, ``blocks/deformable_attention.py``.

Examples:
    >>> rec = load(preset="tiny")                                  # random weights
    >>> rec = load("geolrm.safetensors", device="cuda")            # doctest: +SKIP
    >>> out = rec(Views(images, cameras, points))                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from pipelines.gaussians import WHITE
from pipelines.models.checkpoints import WeightsError, load_weights, shipped_weights
from pipelines.models.geolrm.config import PRESETS, GeoLRMConfig
from pipelines.models.geolrm.model import GeoLRM, GeoLRMInputs
from pipelines.models.geolrm.preprocess import judge_object_centric, normalize_to_cube, select_views
from pipelines.models.geolrm.reconstructor import GeoLRMReconstructor, Precision
from pipelines.models.geolrm.weights import check_state, import_official
from pipelines.models.runtime import resolve_device

BACKGROUND = WHITE  # trained and tested on white (its dataset composites RGBA on white)

__all__ = [
    "PRESETS",
    "GeoLRM",
    "GeoLRMConfig",
    "GeoLRMInputs",
    "GeoLRMReconstructor",
    "import_official",
    "judge_object_centric",
    "load",
    "normalize_to_cube",
    "select_views",
]

log = logging.getLogger(__name__)


def load(
    weights: str | os.PathLike | None = None,
    preset: str | None = None,
    device: str | torch.device = "cpu",
    *,
    precision: Precision = "fp32",
    seed: int = 0,
) -> GeoLRMReconstructor:
    """A GeoLRM reconstructor from our safetensors file (``lrm-studio weights import geolrm``)
    or, without weights, the preset's shipped weights (``assets/models/geolrm-<preset>.safetensors``)
    when there are some, else random ones (logged). The preset defaults to the one stored with the
    weights, else ``official``."""
    if weights is None and preset is not None:
        weights = shipped_weights("geolrm", preset)
    meta = {}
    if weights is not None:
        sd, meta = load_weights(weights)
        if meta.get("model", "geolrm") != "geolrm":
            raise WeightsError(f"{weights} holds weights for model {meta['model']!r}, not geolrm")
    name = preset or meta.get("preset") or "official"
    if name not in PRESETS:
        raise ValueError(f"unknown GeoLRM preset {name!r}; available: {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    if weights is None:
        log.warning("GeoLRM %s: no weights given, parameters are random", name)
        model = GeoLRM(cfg)
    else:
        check_state(sd, name, str(weights))
        with torch.device("meta"):
            model = GeoLRM(cfg)
        model.load_state_dict(sd, strict=True, assign=True)
    return GeoLRMReconstructor(
        model.to(resolve_device(device)).eval(),
        precision=precision,
        seed=seed,
        weights=None if weights is None else Path(weights),
    )
