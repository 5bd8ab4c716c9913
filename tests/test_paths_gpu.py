"""Videos along a path rendered with gsplat on CUDA match our CPU renderer's (frames before
encoding) and encode to the same MP4 layout. Skipped without CUDA (scripts/gpu_checks.sh)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pipelines.paths import sample_cameras
from pipelines.paths.video import Panel, render_frames, render_video
from studio.bench.render_video import objects_orbit, objects_scene

pytestmark = pytest.mark.gpu


def test_cuda_frames_match_the_cpu_renderer(tmp_path):
    g = objects_scene(20_000)
    path = objects_orbit(6, 128, 72)
    cams = sample_cameras(path, 128, 72)
    panels = [Panel(g, "objects")]
    cpu = np.stack(list(render_frames(panels, cams, device="cpu")))
    cuda = np.stack(list(render_frames(panels, cams, device="cuda", batch=4)))
    assert cpu.shape == cuda.shape == (len(cams), 72, 128, 3)
    mse = ((cpu.astype(np.float64) - cuda.astype(np.float64)) / 255) ** 2
    psnr = 10 * np.log10(1 / max(mse.mean(), 1e-12))
    assert psnr > 35, psnr  # fp32 sort ties and the 8-bit rounding of both
    res = render_video([Panel(g.to("cuda"), "A"), Panel(g, "B")], path, tmp_path / "ab.mp4", height=72, device="cuda")
    assert res.device == "cuda" and res.frames == len(cams)
    assert iio.imread(tmp_path / "ab.mp4", plugin="pyav").shape == (len(cams), 72, 256, 3)
    assert torch.cuda.is_available()
