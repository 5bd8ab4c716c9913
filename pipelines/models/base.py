"""The interface every feed-forward model implements, and the registry of models.

A model package ``pipelines.models.<name>`` exposes ``load(weights, preset, device) ->
Reconstructor``. A Reconstructor maps posed views to Gaussians in the world frame of the input
cameras; the similarity between its own normalized frame and that world frame is kept with the
result.

Examples:
    >>> rec = load_model("long-lrm", preset="tiny", device="cpu")        # doctest: +SKIP
    >>> out = rec(Views(images, cameras))                                # doctest: +SKIP
    >>> out.gaussians.num, out.to_world                                  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.gaussians import BLACK, Background, Gaussians
from pipelines.progress import CancelToken, Progress, no_progress
from pipelines.transforms import Similarity

# model name -> module that provides `load(weights, preset, device) -> Reconstructor`
MODELS: dict[str, str] = {
    "geolrm": "pipelines.models.geolrm",
    "long-lrm": "pipelines.models.long_lrm",
    "ttt-lrm": "pipelines.models.ttt_lrm",
}


@dataclass
class Views:
    """Posed input views. images [V, 3, H, W] float32 in [0, 1]; cameras [V] OpenCV c2w, K.
    points [P, 3]: optional sparse SfM points in the same world frame (object-centric models
    such as GeoLRM use them to find the object's centre and size)."""

    images: Tensor
    cameras: Cameras
    points: Tensor | None = None

    def __post_init__(self) -> None:
        v = len(self.cameras)
        assert self.images.ndim == 4 and self.images.shape[:2] == (v, 3), (
            f"images must be [V,3,H,W] with V={v}, got {tuple(self.images.shape)}"
        )
        assert self.images.shape[2:] == (self.cameras.height, self.cameras.width), (
            f"images are {self.images.shape[3]}x{self.images.shape[2]}, cameras "
            f"{self.cameras.width}x{self.cameras.height}"
        )

    def to(self, device: torch.device | str) -> Views:
        points = None if self.points is None else self.points.to(device)
        return Views(self.images.to(device), self.cameras.to(device), points)


@dataclass
class Reconstruction:
    """gaussians: in the world frame of the input cameras. to_world: the model's normalized
    frame -> that world frame (the Gaussians were mapped through it). timings: seconds per
    stage, synchronized."""

    gaussians: Gaussians
    to_world: Similarity
    timings: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


class Reconstructor(Protocol):
    """Views in, Reconstruction out. Optional planning members that ``lrm-studio reconstruct``
    uses when present: ``default_views`` (int), ``select_views(cameras, n, candidates) ->
    list[int]``, ``check_memory(views, width, height)`` (raises before any work when it will not
    fit), ``weights`` (path or None), ``seed``. Streaming models (:func:`supports_streaming`) also
    have ``reconstruct_streaming(views, *, chunk_views, preview, on_chunk, progress, cancel)`` and
    ``stream_chunk_views(n)`` (tttLRM: pipelines/models/ttt_lrm/reconstructor.py)."""

    name: str

    def __call__(
        self, views: Views, *, progress: Progress = no_progress, cancel: CancelToken | None = None
    ) -> Reconstruction: ...


def model_background(name: str) -> Background:
    """The RGB in [0, 1] a registered model renders its Gaussians on, in training and in its
    official evaluation (its package's ``BACKGROUND``; black when it says nothing). A run keeps
    it (run.json ``params.background``) and every renderer of the run uses it."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return tuple(float(c) for c in getattr(importlib.import_module(MODELS[name]), "BACKGROUND", BLACK))


def supports_streaming(name: str) -> bool:
    """Whether a registered model reconstructs chunk by chunk (its package sets ``STREAMING = True``
    and its reconstructor has ``reconstruct_streaming``: tttLRM)."""
    return name in MODELS and bool(getattr(importlib.import_module(MODELS[name]), "STREAMING", False))


def load_model(
    name: str, *, weights: Path | None = None, preset: str | None = None, device: str = "cpu"
) -> Reconstructor:
    """Instantiate a registered model from a weights file (safetensors) or a named preset."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS)) or 'none'}")
    return importlib.import_module(MODELS[name]).load(weights=weights, preset=preset, device=device)
