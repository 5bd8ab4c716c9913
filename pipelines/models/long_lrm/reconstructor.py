"""Long-LRM inference: posed views in, pruned Gaussians out in the input cameras' world frame.

Pipeline (each stage timed with CUDA synchronisation): preprocess (official resize and pose
normalisation) -> network (bf16 autocast on CUDA, float32 on the CPU) -> activations ->
opacity pruning (seeded) -> transform to the world frame. A memory estimate is checked before
anything runs.

Examples:
    >>> rec = LongLRMReconstructor(LongLRM(PRESETS["tiny"]), device="cpu")   # doctest: +SKIP
    >>> out = rec(views)                                                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipelines.cameras import Cameras
from pipelines.models.base import Reconstruction, Views
from pipelines.models.blocks.gaussian_head import prune
from pipelines.models.blocks.mamba2 import mamba_ssm_available
from pipelines.models.long_lrm.memory import check_memory
from pipelines.models.long_lrm.model import LongLRM
from pipelines.models.long_lrm.preprocess import model_size, prepare, select_views_kmeans
from pipelines.models.runtime import LapTimer, bf16_autocast, precision_label
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress


class LongLRMReconstructor:
    """A loaded Long-LRM ready for inference. ``seed`` seeds the random share of pruning."""

    name = "long-lrm"

    def __init__(
        self,
        model: LongLRM,
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

    # ------------------------------------------------------------------ planning
    @property
    def default_views(self) -> int:
        return self.config.num_views

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the network runs at for images of this size."""
        return model_size(width, height, resize_h=self.config.resize_h, multiple=self.config.patch_size_out)

    def select_views(self, cameras: Cameras, n: int, candidates: list[int] | None = None) -> list[int]:
        """k-means view selection of the official evaluation (see preprocess)."""
        return select_views_kmeans(cameras, n, candidates)

    @property
    def scan_backend(self) -> str:
        return "mamba_ssm" if mamba_ssm_available(self.device) else "torch"

    def check_memory(self, views: int, width: int, height: int) -> int:
        """Raise InsufficientMemory if ``views`` images of width x height (before resizing) will
        not fit; returns the estimated peak bytes."""
        w, h = self.input_size(width, height)
        return check_memory(
            self.config, views=views, height=h, width=w, device=self.device, scan=self.scan_backend
        )

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def __call__(
        self, views: Views, *, progress: Progress = no_progress, cancel: CancelToken | None = None
    ) -> Reconstruction:
        dev, c = self.device, self.config
        self.check_memory(len(views.cameras), views.cameras.width, views.cameras.height)
        timings: dict[str, float] = {}
        clock = LapTimer(dev)
        progress(0.0, "preparing views")
        prep = prepare(
            views.to(dev), resize_h=c.resize_h, multiple=c.patch_size_out, scene_scale=c.scene_scale
        )
        timings["preprocess_s"] = clock.lap()
        check(cancel)
        images = prep.images[None]  # [1, V, 3, H, W]
        c2w, K = prep.cameras.c2w[None], prep.cameras.K[None]
        with bf16_autocast(dev):
            out = self.model(
                images, c2w, K, progress=sub_progress(progress, 0.02, 0.9, "network: "), cancel=cancel
            )
        timings["network_s"] = clock.lap()
        progress(0.9, "decoding Gaussians")
        g = out.to_gaussians()[0]
        del out
        n_pixels = g.num
        gen = torch.Generator(device=dev).manual_seed(self.seed)
        g = prune(g, c.prune_ratio, c.random_ratio, gen)
        timings["gaussians_s"] = clock.lap()
        g = g.transform(prep.to_world)
        timings["to_world_s"] = clock.lap()
        timings["total_s"] = clock.total()
        progress(1.0, f"{g.num:,} Gaussians")
        info = {
            "model_size": [prep.cameras.width, prep.cameras.height],
            "num_views": len(prep.cameras),
            "num_pixel_gaussians": n_pixels,
            "scan_backend": self.scan_backend,
            "precision": precision_label(dev),
        }
        return Reconstruction(gaussians=g, to_world=prep.to_world, timings=timings, info=info)
