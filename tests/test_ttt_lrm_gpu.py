"""tttLRM on CUDA (skipped without it): NS5 in bfloat16 (the official precision) against a float64
transcription, CUDA bf16 inference against CPU float32, streaming in one chunk against the offline
full model at the official width, and the memory estimate as an upper bound of the measured peak."""

from __future__ import annotations

import pytest
import torch

from pipelines.models.blocks.fast_weight import newton_schulz5
from pipelines.models.ttt_lrm.config import PRESETS
from pipelines.models.ttt_lrm.model import TTTLRM
from pipelines.models.ttt_lrm.reconstructor import TTTLRMReconstructor
from studio.bench.common import synthetic_views
from tests.model_helpers import bf16_errors, rel_err
from tests.test_fast_weight import ns5_numpy

pytestmark = pytest.mark.gpu


def test_ns5_bf16_on_cuda_matches_float64(gen):
    G = torch.randn(2, 768, 3072, generator=gen)
    X = newton_schulz5(G.cuda())
    assert X.dtype == torch.bfloat16
    for b in range(2):
        ref = torch.from_numpy(ns5_numpy(G[b].numpy()))
        assert rel_err(X[b].float().cpu(), ref) < 3e-2


def _inputs(c, v: int, gen):
    from pipelines.models.ttt_lrm.preprocess import prepare

    views = synthetic_views(
        v, c.image_width, c.image_height, seed=int(torch.randint(0, 2**31, (1,), generator=gen))
    )
    prep = prepare(views, width=c.image_width, height=c.image_height, frame=c.frame)
    return views, (prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])


def test_cuda_bf16_matches_cpu_float32_tiny(gen):
    c = PRESETS["tiny"]
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = TTTLRM(c).eval()
    views, args = _inputs(c, 4, gen)
    cuda_err, cpu_err = bf16_errors(model, args)
    # bf16 on CUDA is as close to float32 as bf16 on the CPU (a wrong kernel is off by ~1)
    assert cuda_err < 2 * cpu_err + 1e-3, (cuda_err, cpu_err)
    g = TTTLRMReconstructor(model, device="cuda")(views).gaussians
    assert g.device.type == "cuda" and torch.isfinite(g.means).all()


def test_streaming_one_chunk_equals_offline_official_width(gen):
    c = PRESETS["official-full"].with_(image_height=128, image_width=224, num_layers=4)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = TTTLRM(c).cuda().eval()
    _, args = _inputs(c, 6, gen)
    args = tuple(a.cuda() for a in args)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        offline = model(*args).raw.float()
        streamed = model.decode(model.absorb(model.initial_state(), *args), *args).raw.float()
    assert rel_err(streamed, offline) < 1e-3


@pytest.mark.parametrize("chunk_views", [None, 4])
def test_memory_estimate_bounds_the_measured_peak(chunk_views):
    c = PRESETS["official-ar"]
    rec = TTTLRMReconstructor(TTTLRM(c), device="cuda")
    views = synthetic_views(16, c.image_width, c.image_height).to("cuda")
    est = rec.check_memory(16, c.image_width, c.image_height, chunk_views=chunk_views)
    torch.cuda.reset_peak_memory_stats()
    if chunk_views is None:
        rec(views)
    else:
        rec.reconstruct_streaming(views, chunk_views=chunk_views)
    peak = torch.cuda.max_memory_allocated()
    assert peak <= est, (peak / 2**30, est / 2**30)
