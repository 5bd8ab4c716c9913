"""Long-LRM (Chen et al., ICCV 2025): 32 posed images -> pixel-aligned 3D Gaussians in one pass.

Modules: ``config`` (presets), ``model`` (network), ``preprocess`` (official resize, pose
normalisation, k-means views), ``weights`` (official checkpoint import), ``memory`` (estimate and
guard), ``reconstructor`` (inference pipeline).

Examples:
    >>> rec = load(preset="tiny", device="cpu")                       # doctest: +SKIP
    >>> rec = load(weights="long-lrm-official.safetensors", device="cuda")   # doctest: +SKIP
"""

from __future__ import annotations

import os

import torch

from pipelines.gaussians import WHITE
from pipelines.models.long_lrm.config import OFFICIAL_PRESET, PRESETS, LongLRMConfig
from pipelines.models.long_lrm.weights import WEIGHTS, import_official
from pipelines.models.model_weights import seeded_init
from pipelines.models.runtime import resolve_device

BACKGROUND = WHITE  # rendered on white in training and evaluation (llrm.py: backgrounds=ones)
# Presets that may run with random weights when no weights file exists (tests, smoke runs).
RANDOM_INIT_PRESETS = WEIGHTS.random_init_presets

__all__ = ["load", "import_official", "PRESETS", "LongLRMConfig", "OFFICIAL_PRESET"]


def load(
    weights: str | os.PathLike | None = None,
    preset: str | None = None,
    device: str | torch.device = "cpu",
    *,
    seed: int = 0,
):
    """A :class:`LongLRMReconstructor` from a safetensors file and/or a preset name.

    The architecture comes from ``preset`` when given, else from the file's metadata (``config``
    or ``preset``), else from matching the file's shapes against the presets. Without a file,
    the preset's shipped weights (``assets/models/long-lrm-<preset>.safetensors``) are used; a
    preset in ``RANDOM_INIT_PRESETS`` may then run with random weights (logged), others fail
    (:meth:`~pipelines.models.model_weights.ModelWeights.resolve`).
    """
    from pipelines.models.long_lrm.model import LongLRM
    from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor

    r = WEIGHTS.resolve(weights, preset)
    if r.state is not None:
        model = LongLRM(r.config)
        model.load_state_dict(r.state, strict=True)
    else:
        model = seeded_init(lambda: LongLRM(r.config), seed)
    return LongLRMReconstructor(model, device=resolve_device(device), weights=r.weights, seed=seed)
