"""Long-LRM (Chen et al., ICCV 2025): 32 posed images -> pixel-aligned 3D Gaussians in one pass.

Modules: ``config`` (presets), ``model`` (network), ``preprocess`` (official resize, pose
normalisation, k-means views), ``weights`` (official checkpoint import), ``memory`` (estimate and
guard), ``reconstructor`` (inference pipeline).

Examples:
    >>> rec = load(preset="tiny", device="cpu")                       # doctest: +SKIP
    >>> rec = load(weights="long-lrm-official.safetensors", device="cuda")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from pipelines.models.checkpoints import WeightsError, check_keys, load_weights
from pipelines.models.long_lrm.config import OFFICIAL_PRESET, PRESETS, LongLRMConfig
from pipelines.models.long_lrm.weights import expected_shapes, import_official, infer_preset, preset_weights

log = logging.getLogger(__name__)

# Presets that may run with random weights when no weights file exists (tests, smoke runs).
RANDOM_INIT_PRESETS = frozenset({"tiny"})

__all__ = ["load", "import_official", "PRESETS", "LongLRMConfig", "OFFICIAL_PRESET"]


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    preset in ``RANDOM_INIT_PRESETS`` may then run with random weights (logged), others fail.
    """
    from pipelines.models.long_lrm.model import LongLRM
    from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor

    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown Long-LRM preset {preset!r}; available: {', '.join(PRESETS)}")
    if weights is None and preset is not None:
        weights = preset_weights(preset)
    state, meta = load_weights(weights) if weights is not None else (None, {})
    if meta.get("model", "long-lrm") != "long-lrm":
        raise WeightsError(f"{weights} holds weights of {meta['model']!r}, not long-lrm")
    if preset is not None:
        config = PRESETS[preset]
    elif "config" in meta:
        config = LongLRMConfig.from_json(meta["config"])
    elif meta.get("preset") in PRESETS:
        config = PRESETS[meta["preset"]]
    elif state is not None:
        name = infer_preset(state)
        if name is None:
            raise WeightsError(
                f"{weights}: its keys and shapes match no Long-LRM preset ({', '.join(PRESETS)}); "
                "pass --preset"
            )
        config = PRESETS[name]
    else:
        config = PRESETS[OFFICIAL_PRESET]
        preset = OFFICIAL_PRESET
    if state is not None:
        check_keys(expected_shapes(config), state, str(weights))
        model = LongLRM(config)
        model.load_state_dict(state, strict=True)
    elif preset in RANDOM_INIT_PRESETS:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(seed)
            model = LongLRM(config)
        log.warning(
            "Long-LRM preset %r has no weights file: running with random weights (output is not meaningful)",
            preset,
        )
    else:
        raise WeightsError(
            f"Long-LRM preset {preset!r} needs weights: download the official checkpoint "
            "(README, Long-LRM), convert it with "
            "`lrm-studio weights import long-lrm CKPT --out FILE.safetensors`, "
            "then pass --weights FILE.safetensors"
        )
    return LongLRMReconstructor(
        model, device=_resolve_device(device), weights=Path(weights) if weights else None, seed=seed
    )
