"""GeoLRM as a studio ``Reconstructor``: capture views in, Gaussians in the capture's world out.

Steps: normalise the capture into the cube (preprocess.py; a warning and ``info`` entry when
the capture is not object-centric), prepare square white-background inputs, run the proposal
network, choose anchors, run the reconstruction network, decode Gaussians, drop the padding
anchors' Gaussians and (as the official PLY export) those with opacity < ``min_opacity``, map
back to the world frame. Each stage is timed with CUDA synchronised.

Precision: "fp32" (the official setting), "tf32" (fp32 storage, TF32 matmuls on CUDA),
"bf16" (autocast; the deformable sampling follows the value dtype).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from pipelines.gaussians import Gaussians
from pipelines.models.base import Reconstruction, Views
from pipelines.models.geolrm.model import GeoLRM
from pipelines.models.geolrm.preprocess import Background, normalize_to_cube, prepare_inputs
from pipelines.models.runtime import LapTimer
from pipelines.progress import CancelToken, Progress, check, no_progress

log = logging.getLogger(__name__)

Precision = Literal["fp32", "tf32", "bf16"]


@contextlib.contextmanager
def precision_context(precision: Precision, device: torch.device) -> Iterator[None]:
    """Autocast for bf16; TF32 matmul flags for tf32 (restored afterwards); nothing for fp32."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32" and device.type == "cuda":
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    else:
        yield


class GeoLRMReconstructor:
    name = "geolrm"

    def __init__(
        self,
        model: GeoLRM,
        *,
        precision: Precision = "fp32",
        seed: int = 0,
        min_opacity: float = 0.005,
        background: Background = "white_outside_cube",
        fill: float = 0.9,
        weights: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.weights = weights  # the file the parameters came from (None: random), for run.json
        self.cfg = model.cfg
        self.precision, self.seed, self.min_opacity = precision, seed, min_opacity
        self.background, self.fill = background, fill

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(
        self, views: Views, *, progress: Progress = no_progress, cancel: CancelToken | None = None
    ) -> Reconstruction:
        cfg, dev = self.cfg, self.device
        timings: dict[str, float] = {}
        clock = LapTimer(dev)

        progress(0.0, "normalising the capture into GeoLRM's cube")
        cams = views.cameras.to("cpu")
        points = None if views.points is None else views.points.detach().cpu()
        norm = normalize_to_cube(cams, points, cube_half=cfg.cube_half, fill=self.fill)
        if not norm.judgement.object_centric:
            log.warning(
                "GeoLRM expects an object-centric capture (cameras around one object): %s",
                norm.judgement.reason,
            )
        inputs, _ = prepare_inputs(
            views.images.detach().cpu().float(),
            cams,
            norm,
            image_size=cfg.image_size,
            cube_half=cfg.cube_half,
            background=self.background,
        )
        inputs = inputs.to(dev)
        timings["preprocess_s"] = clock.lap()
        check(cancel)

        n_layers = cfg.proposal.layers + cfg.reconstruction.layers

        def after(offset: int):
            def cb(i: int) -> None:
                check(cancel)
                progress(
                    0.05 + 0.9 * (offset + i + 1) / n_layers, f"transformer layer {offset + i + 1}/{n_layers}"
                )

            return cb

        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad(), precision_context(self.precision, dev):
            clock.lap()  # from here
            logits = self.model.proposal(inputs.images, inputs.c2w_gl, inputs.K_norm, after_layer=after(0))
            anchors = self.model.select(logits, generator)
            timings["proposal_s"] = clock.lap()
            n_valid = int(anchors.valid.sum())
            if n_valid == 0:
                log.warning(
                    "GeoLRM: no voxel is occupied; the object may lie outside the cube "
                    "or the capture may not be object-centric"
                )
                raw = None
            else:
                clock.lap()  # from here
                raw = self.model.reconstruction(inputs, anchors.xyz, after_layer=after(cfg.proposal.layers))
                timings["reconstruction_s"] = clock.lap()

        if raw is None:
            g = Gaussians.from_points(
                torch.zeros(0, 3, device=dev),
                torch.zeros(0, 3, device=dev),
                log_scales=torch.zeros(0, device=dev),
                sh_degree=0,
            )
        else:
            keep = anchors.valid[0]
            g = self.model.reconstruction.decoder.to_gaussians(anchors.xyz[0][keep], raw[0][keep])
        n_decoded = g.num
        g = g.prune_opacity(self.min_opacity).transform(norm.to_world)
        timings["total_s"] = clock.total()
        progress(1.0, f"{g.num} Gaussians")
        info = {
            "object_centric": norm.judgement.to_dict(),
            "normalization": {
                "source": norm.source,
                "center": norm.center.tolist(),
                "radius": norm.radius,
                "to_cube": norm.to_cube.to_dict(),
            },
            "occupied_voxels": int(anchors.occupied[0]),
            "anchors": n_valid,
            "gaussians_decoded": n_decoded,
            "precision": self.precision,
            "attention": cfg.reconstruction.attention,
            "views": len(views.cameras),
        }
        return Reconstruction(gaussians=g, to_world=norm.to_world, timings=timings, info=info)
