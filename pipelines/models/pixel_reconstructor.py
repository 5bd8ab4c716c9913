"""The offline inference both pixel-aligned models run (Long-LRM, tttLRM): posed views in, pruned
Gaussians out in the input cameras' world frame.

Pipeline (each stage timed with CUDA synchronisation): memory check before anything runs ->
the model's preprocessing (resize, pose normalisation) -> network (bf16 autocast on CUDA,
float32 on the CPU) -> activations (one Gaussian per pixel) -> the model's pruning (seeded) ->
transform to the world frame. A subclass sets ``name`` and supplies ``prepare``, ``prune``,
``check_memory``, ``input_size`` and its own ``extra_info`` entries.

Examples:
    >>> rec = LongLRMReconstructor(LongLRM(PRESETS["tiny"]), device="cpu")   # doctest: +SKIP
    >>> out = rec(views)                                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.models.base import Reconstruction, Views
from pipelines.models.long_lrm.preprocess import Prepared, select_views_kmeans
from pipelines.models.runtime import LapTimer, bf16_autocast, precision_label
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress


class PixelReconstructor:
    """A loaded pixel-aligned model ready for inference. ``seed`` seeds the random share of
    pruning; ``weights``: the file it was loaded from (None: random weights)."""

    name: str

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "cpu",
        weights: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.weights = weights
        self.seed = seed

    # ------------------------------------------------------------------ the model's part
    def prepare(self, views: Views) -> Prepared:
        """Views on the device -> images at the model size, cameras in the normalised frame."""
        raise NotImplementedError

    def prune(self, g: Gaussians, input_views: int) -> Gaussians:
        """The model's official pruning of the per-pixel Gaussians, seeded by ``seed``."""
        raise NotImplementedError

    def check_memory(self, views: int, width: int, height: int) -> int:
        """Raise InsufficientMemory if ``views`` images of width x height will not fit; returns the
        estimated peak bytes."""
        raise NotImplementedError

    def extra_info(self) -> dict:
        """The model's own entries of ``Reconstruction.info``."""
        return {}

    # ------------------------------------------------------------------ planning
    @property
    def default_views(self) -> int:
        return self.config.num_views

    def select_views(self, cameras: Cameras, n: int, candidates: list[int] | None = None) -> list[int]:
        """k-means view selection of the official evaluation (sorted: the order frames stream in;
        see :func:`pipelines.models.long_lrm.preprocess.select_views_kmeans`)."""
        return select_views_kmeans(cameras, n, candidates)

    def autocast(self) -> contextlib.AbstractContextManager:
        return bf16_autocast(self.device)

    @property
    def precision(self) -> str:
        return precision_label(self.device)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def __call__(
        self, views: Views, *, progress: Progress = no_progress, cancel: CancelToken | None = None
    ) -> Reconstruction:
        self.check_memory(len(views.cameras), views.cameras.width, views.cameras.height)
        timings: dict[str, float] = {}
        clock = LapTimer(self.device)
        progress(0.0, "preparing views")
        prep = self.prepare(views.to(self.device))
        timings["preprocess_s"] = clock.lap()
        check(cancel)
        with self.autocast():
            out = self.model(
                prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None],
                progress=sub_progress(progress, 0.02, 0.9, "network: "), cancel=cancel,
            )  # fmt: skip
        timings["network_s"] = clock.lap()
        progress(0.9, "decoding Gaussians")
        g = out.to_gaussians()[0]
        del out
        n_pixels = g.num
        g = self.prune(g, len(prep.cameras))
        timings["gaussians_s"] = clock.lap()
        g = g.transform(prep.to_world)
        timings["to_world_s"] = clock.lap()
        timings["total_s"] = clock.total()
        progress(1.0, f"{g.num:,} Gaussians")
        info = {
            "model_size": [prep.cameras.width, prep.cameras.height],
            "num_views": len(prep.cameras),
            "num_pixel_gaussians": n_pixels,
            **self.extra_info(),
            "precision": self.precision,
        }
        return Reconstruction(gaussians=g, to_world=prep.to_world, timings=timings, info=info)
