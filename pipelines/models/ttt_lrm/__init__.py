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

import os

import torch

from pipelines.gaussians import WHITE
from pipelines.models.model_weights import seeded_init
from pipelines.models.runtime import resolve_device
from pipelines.models.ttt_lrm.config import OFFICIAL_PRESET, PRESETS, TTTLRMConfig
from pipelines.models.ttt_lrm.weights import WEIGHTS, import_official

BACKGROUND = WHITE  # the official renderer's white background
STREAMING = True  # the reconstructor has reconstruct_streaming / start_stream (base.supports_streaming)

# Presets that may run with random weights when no weights file exists (tests, smoke runs).
RANDOM_INIT_PRESETS = WEIGHTS.random_init_presets

__all__ = ["load", "import_official", "PRESETS", "TTTLRMConfig", "OFFICIAL_PRESET"]


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
    are used; a preset in ``RANDOM_INIT_PRESETS`` may then run with random weights (logged)
    (:meth:`~pipelines.models.model_weights.ModelWeights.resolve`).
    """
    from pipelines.models.ttt_lrm.model import TTTLRM
    from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor

    r = WEIGHTS.resolve(weights, preset)
    if r.state is not None:
        with torch.device("meta"):  # no random init of 400 M parameters only to overwrite them
            model = TTTLRM(r.config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in r.state.items()}  # fp32 parameters
        model.load_state_dict(state, strict=True, assign=True)
    else:
        model = seeded_init(lambda: TTTLRM(r.config), seed)
    return TTTLRMReconstructor(model, device=resolve_device(device), weights=r.weights, seed=seed)
