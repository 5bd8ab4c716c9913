"""Long-LRM inference: posed views in, pruned Gaussians out in the input cameras' world frame.

Pipeline (:class:`~pipelines.models.pixel_reconstructor.PixelReconstructor`, each stage timed
with CUDA synchronisation): preprocess (official resize and pose normalisation) -> network (bf16
autocast on CUDA, float32 on the CPU) -> activations -> opacity pruning (seeded) -> transform to
the world frame. A memory estimate is checked before anything runs.

Examples:
    >>> rec = LongLRMReconstructor(LongLRM(PRESETS["tiny"]), device="cpu")   # doctest: +SKIP
    >>> out = rec(views)                                                       # doctest: +SKIP
"""

from __future__ import annotations

import torch

from pipelines.gaussians import Gaussians
from pipelines.models.base import Views
from pipelines.models.blocks.gaussian_head import prune
from pipelines.models.blocks.mamba2 import scan_backend_of
from pipelines.models.long_lrm.memory import check_memory
from pipelines.models.long_lrm.model import LongLRM
from pipelines.models.long_lrm.preprocess import Prepared, model_size, prepare
from pipelines.models.pixel_reconstructor import PixelReconstructor


class LongLRMReconstructor(PixelReconstructor):
    """A loaded Long-LRM ready for inference. ``seed`` seeds the random share of pruning."""

    name = "long-lrm"
    model: LongLRM

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the network runs at for images of this size."""
        return model_size(width, height, resize_h=self.config.resize_h, multiple=self.config.patch_size_out)

    @property
    def scan_backend(self) -> str:
        """The Mamba2 scan path the model's blocks take on this device ("torch", "triton",
        "mamba_ssm"; ``set_scan_backend`` chooses, "auto" resolves by what is installed)."""
        return scan_backend_of(self.model, self.device) or "torch"

    def check_memory(self, views: int, width: int, height: int) -> int:
        """Raise InsufficientMemory if ``views`` images of width x height (before resizing) will
        not fit; returns the estimated peak bytes."""
        w, h = self.input_size(width, height)
        return check_memory(
            self.config, views=views, height=h, width=w, device=self.device, scan=self.scan_backend
        )

    def prepare(self, views: Views) -> Prepared:
        c = self.config
        return prepare(views, resize_h=c.resize_h, multiple=c.patch_size_out, scene_scale=c.scene_scale)

    def prune(self, g: Gaussians, input_views: int) -> Gaussians:
        """The official pruning: ``prune_ratio`` of the least opaque dropped, ``random_ratio`` of
        the kept share drawn at random (seeded by ``seed``)."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        return prune(g, self.config.prune_ratio, self.config.random_ratio, gen)

    def extra_info(self) -> dict:
        return {"scan_backend": self.scan_backend}
