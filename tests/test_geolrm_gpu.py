"""GeoLRM on CUDA: the deformable sampling and the tiny network agree with the CPU; bf16 runs.
Skipped without CUDA (scripts/gpu_checks.sh runs them)."""

from __future__ import annotations

import pytest
import torch

from pipelines.models.blocks.deformable_attention import _ms_deform_attn_reference, ms_deform_attn
from pipelines.models.geolrm.config import PRESETS
from pipelines.models.geolrm.model import GeoLRM, GeoLRMInputs
from pipelines.models.geolrm.reconstructor import precision_context

pytestmark = pytest.mark.gpu


def test_sampling_cuda_matches_cpu_reference(gen):
    values = [torch.randn(2, 4, 8, 30, 20, generator=gen), torch.randn(2, 4, 8, 9, 7, generator=gen)]
    loc = torch.rand(2, 300, 4, 2, 8, 2, generator=gen) * 1.2 - 0.1
    wts = torch.rand(2, 300, 4, 2, 8, generator=gen)
    want = _ms_deform_attn_reference([v.double() for v in values], loc.double(), wts.double())
    got = ms_deform_attn([v.cuda() for v in values], loc.cuda(), wts.cuda(), query_chunk=128)
    torch.testing.assert_close(got.cpu().double(), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attention", ["official", "global"])
def test_tiny_cuda_matches_cpu(gen, attention):
    from dataclasses import replace

    base = PRESETS["tiny"]
    cfg = replace(
        base,
        proposal=replace(base.proposal, attention=attention),
        reconstruction=replace(base.reconstruction, attention=attention),
    )
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    net = GeoLRM(cfg).eval()
    x = GeoLRMInputs.orbit(views=5, image_size=cfg.image_size, generator=gen)
    with torch.no_grad():
        logits = net.proposal(x.images, x.c2w_gl, x.K_norm)
        anchors = net.select(logits, torch.Generator().manual_seed(0)).xyz
        raw = net.reconstruction(x, anchors)
        net_gpu, xg = net.cuda(), x.to("cuda")
        logits_gpu = net_gpu.proposal(xg.images, xg.c2w_gl, xg.K_norm)
        raw_gpu = net_gpu.reconstruction(xg, anchors.cuda())  # same anchors: no threshold flips
    torch.testing.assert_close(logits_gpu.cpu(), logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(raw_gpu.cpu(), raw, atol=1e-4, rtol=1e-4)
    with torch.no_grad(), precision_context("bf16", torch.device("cuda")):
        bf = net_gpu(xg, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(bf.raw).all() and torch.isfinite(bf.occupancy_logits).all()
