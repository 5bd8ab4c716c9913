"""Long-LRM on CUDA (skipped without it): the fused mamba-ssm path against the PyTorch scan for the
whole official-size network in bf16, CUDA bf16 inference against CPU float32, and the memory
estimate as an upper bound of the measured peak."""

from __future__ import annotations

import pytest
import torch

from pipelines.models.blocks.mamba2 import mamba_ssm_available, set_scan_backend
from pipelines.models.long_lrm.config import PRESETS
from pipelines.models.long_lrm.model import LongLRM
from pipelines.models.long_lrm.reconstructor import LongLRMReconstructor
from studio.bench.common import synthetic_views
from tests.model_helpers import bf16_errors, rel_err

pytestmark = pytest.mark.gpu


def test_official_network_fused_matches_torch_scan_bf16(gen):
    if not mamba_ssm_available("cuda"):
        pytest.skip("mamba-ssm / causal-conv1d not installed")
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = LongLRM(PRESETS["official-540p"]).cuda().eval()
    rec = LongLRMReconstructor(model, device="cuda")
    views = synthetic_views(4, 256, 160).to("cuda")
    from pipelines.models.long_lrm.preprocess import prepare

    prep = prepare(views, resize_h=160, multiple=16, scene_scale=1.35)
    args = (prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])
    outs = {}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for backend in ("torch", "mamba_ssm"):
            set_scan_backend(model, backend)
            outs[backend] = model(*args).raw.float()
    assert rel_err(outs["mamba_ssm"], outs["torch"]) < 1e-2
    assert rec.scan_backend == "mamba_ssm"


def test_cuda_bf16_matches_cpu_float32_tiny(gen):
    from pipelines.models.long_lrm.preprocess import prepare

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = LongLRM(PRESETS["tiny"]).eval()
    views = synthetic_views(4, 112, 64)
    prep = prepare(views, resize_h=64, multiple=16, scene_scale=1.35)
    args = (prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])
    cuda_err, cpu_err = bf16_errors(model, args)
    # bf16 on CUDA is as close to float32 as bf16 on the CPU (a wrong kernel is off by ~1)
    assert cuda_err < 2 * cpu_err + 1e-3, (cuda_err, cpu_err)
    rec = LongLRMReconstructor(model, device="cuda")
    g = rec(views).gaussians
    n = 4 * 112 * 64
    assert (
        g.num == int(n * 0.45) + int(n * 0.05) and g.device.type == "cuda" and torch.isfinite(g.means).all()
    )


def test_memory_estimate_bounds_the_measured_peak():
    model = LongLRM(PRESETS["official-540p"])
    rec = LongLRMReconstructor(model, device="cuda")
    views = synthetic_views(8, 960, 544).to("cuda")
    est = rec.check_memory(8, 960, 544)
    torch.cuda.reset_peak_memory_stats()
    rec(views)
    peak = torch.cuda.max_memory_allocated()
    assert peak <= est, (peak / 2**30, est / 2**30)
