"""tttLRM (Wang et al., CVPR 2026): test-time-trained fast weights as the memory of a scene
reconstructor; posed views in, pixel-aligned 3D Gaussians out, offline or streaming.

Modules: ``config`` (presets official-full, official-ar, tiny, tiny-ar), ``model`` (network and
streaming state), ``preprocess`` (official size and pose frames), ``weights`` (official checkpoint
import), ``memory`` (estimate and guard), ``reconstructor`` (offline and streaming inference).
The fast-weight layer is the shared block ``pipelines/models/blocks/fast_weight.py``.

Examples:
    >>> rec = load(preset="tiny", device="cpu")                               # doctest: +SKIP
    >>> rec = load(weights="ttt-lrm-full.safetensors", device="cuda")         # doctest: +SKIP
    >>> out = rec.reconstruct_streaming(views, chunk_views=4)                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from pipelines.models.checkpoints import WeightsError, check_keys, load_weights
from pipelines.models.ttt_lrm.config import OFFICIAL_PRESET, PRESETS, TTTLRMConfig
from pipelines.models.ttt_lrm.weights import expected_shapes, import_official, infer_preset, preset_weights

log = logging.getLogger(__name__)

STREAMING = True  # the reconstructor has reconstruct_streaming / start_stream (base.supports_streaming)

# Presets that may run with random weights when no weights file exists (tests, smoke runs).
RANDOM_INIT_PRESETS = frozenset({"tiny", "tiny-ar"})

__all__ = ["load", "import_official", "PRESETS", "TTTLRMConfig", "OFFICIAL_PRESET"]


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
    """A :class:`TTTLRMReconstructor` from a safetensors file and/or a preset name.

    The architecture comes from ``preset`` when given, else from the file's metadata (``config``
    or ``preset``), else from matching the file's shapes against the presets (official-full for
    the official layout: pass ``--preset official-ar`` for the AR checkpoint converted without
    one). Without a file, the preset's shipped weights (``assets/models/ttt-lrm-<preset>.safetensors``)
    are used; a preset in ``RANDOM_INIT_PRESETS`` may then run with random weights (logged).
    """
    from pipelines.models.ttt_lrm.model import TTTLRM
    from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown tttLRM preset {preset!r}; available: {', '.join(PRESETS)}")
    if weights is None and preset is not None:
        weights = preset_weights(preset)
    state, meta = load_weights(weights) if weights is not None else (None, {})
    if meta.get("model", "ttt-lrm") != "ttt-lrm":
        raise WeightsError(f"{weights} holds weights of {meta['model']!r}, not ttt-lrm")
    if preset is not None:
        config = PRESETS[preset]
    elif "config" in meta:
        config = TTTLRMConfig.from_json(meta["config"])
    elif meta.get("preset") in PRESETS:
        config = PRESETS[meta["preset"]]
    elif state is not None:
        name = infer_preset(state)
        if name is None:
            raise WeightsError(
                f"{weights}: its keys and shapes match no tttLRM preset ({', '.join(PRESETS)}); pass --preset"
            )
        log.info("%s: no preset recorded; its layout is that of %s", weights, name)
        config = PRESETS[name]
    else:
        config, preset = PRESETS[OFFICIAL_PRESET], OFFICIAL_PRESET
    if state is not None:
        check_keys(expected_shapes(config), state, str(weights))
        with torch.device("meta"):  # no random init of 400 M parameters only to overwrite them
            model = TTTLRM(config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # fp32 parameters
        model.load_state_dict(state, strict=True, assign=True)
    elif preset in RANDOM_INIT_PRESETS:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(seed)
            model = TTTLRM(config)
        log.warning(
            "tttLRM preset %r has no weights file: running with random weights (output is not meaningful)",
            preset,
        )
    else:
        raise WeightsError(
            f"tttLRM preset {preset!r} needs weights: download dl3dv_full.pt / dl3dv_ar.pt (README, tttLRM), "
            "convert with `lrm-studio weights import ttt-lrm CKPT --preset official-full|official-ar "
            "--out FILE.safetensors`, then pass --weights FILE.safetensors"
        )
    return TTTLRMReconstructor(
        model, device=_resolve_device(device), weights=Path(weights) if weights else None, seed=seed
    )
