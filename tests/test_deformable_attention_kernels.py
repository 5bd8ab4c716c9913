"""Our fused multi-view deformable attention (pipelines/models/blocks/kernels/deform_attn.py,
forward and backward) against a float64 reference built from the explicit four-corner gather
(``_ms_deform_attn_reference``) and a softmax over views written out; and GeoLRM's cross-attention
module on it against its PyTorch path.

On the CPU the kernel runs in Triton's interpreter (tests/conftest.py), on CUDA compiled. Tiny
random shapes: channels per head not a power of two, locations partly outside the maps, several
views and levels. gpu-marked tests: GeoLRM's sizes in float32 and bf16 against the PyTorch path.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from pipelines.models.blocks.deformable_attention import (  # noqa: E402
    MultiViewDeformableAttention,
    _ms_deform_attn_reference,
    deform_backend_of,
    multiview_deform_attn,
    resolve_deform_backend,
    set_deform_backend,
    split_levels,
)
from pipelines.models.blocks.kernels import triton_available  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_kernels = pytest.mark.skipif(
    not triton_available(DEVICE), reason="Triton kernels cannot run here (no CUDA and TRITON_INTERPRET unset)"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        (a.detach().double() - b.detach().double()).norm() / b.detach().double().norm().clamp_min(1e-300)
    )


def fused_reference(values, shapes, reference, offsets, weights, view_w, view_b):
    """Per view: explicit bilinear gather at reference_v + offsets; then softmax over views of
    out_v . view_w + view_b and the weighted sum. values [B, V, S, C] -> [B, Q, C]."""
    b, v, _, c = values.shape
    _, nq, h = offsets.shape[:3]
    outs = []
    for i in range(v):
        levels = split_levels(values[:, i], shapes, h)  # per level [B, H, Dh, h, w]
        loc = reference[:, i, :, None, None, None, :] + offsets  # [B, Q, H, L, P, 2]
        outs.append(_ms_deform_attn_reference(levels, loc, weights))  # [B, Q, C]
    out = torch.stack(outs, dim=1)  # [B, V, Q, C]
    logit = (out * view_w).sum(-1) + view_b  # [B, V, Q]
    p = torch.exp(logit - logit.amax(1, keepdim=True))
    p = p / p.sum(1, keepdim=True)
    return (out * p[..., None]).sum(1)


def random_inputs(gen, dtype=torch.float64):
    pick = lambda *opts: opts[int(torch.randint(len(opts), (1,), generator=gen))]  # noqa: E731
    b, v, nq, h, dh, p = pick(1, 2), pick(1, 3, 4), pick(3, 7, 9), pick(1, 2), pick(2, 3, 5), pick(1, 2, 3)
    shapes = [tuple(int(s) for s in torch.randint(2, 8, (2,), generator=gen)) for _ in range(pick(1, 2))]
    s = sum(hh * ww for hh, ww in shapes)
    values = torch.randn(b, v, s, h * dh, generator=gen, dtype=dtype)
    reference = torch.rand(b, v, nq, 2, generator=gen, dtype=dtype) * 1.2 - 0.1  # some outside
    offsets = (torch.rand(b, nq, h, len(shapes), p, 2, generator=gen, dtype=dtype) - 0.5) * 0.6
    weights = torch.rand(b, nq, h, len(shapes), p, generator=gen, dtype=dtype)
    view_w = torch.randn(h * dh, generator=gen, dtype=dtype)
    view_b = torch.randn(1, generator=gen, dtype=dtype)
    return shapes, [values, reference, offsets, weights, view_w, view_b]


@needs_kernels
@pytest.mark.parametrize("case", range(2))
def test_fused_kernel_matches_float64_reference(gen, case):
    del case  # two fresh draws of shapes per run
    shapes, args = random_inputs(gen)
    ref_ins = [t.clone().requires_grad_() for t in args]
    want = fused_reference(ref_ins[0], shapes, *ref_ins[1:])
    ins = [t.float().to(DEVICE).requires_grad_() for t in args]
    got = multiview_deform_attn(ins[0], shapes, *ins[1:], backend="triton")
    assert got.shape == want.shape and got.dtype == torch.float32
    assert rel_err(got.cpu(), want) < 1e-5, (shapes, rel_err(got.cpu(), want))
    cot = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    g_want = torch.autograd.grad(want, ref_ins, cot)
    g_got = torch.autograd.grad(got, ins, cot.float().to(DEVICE))
    names = ["values", "reference", "offsets", "weights", "view_w"]
    for name, g, w in zip(names, g_got, g_want, strict=False):
        assert g.shape == w.shape, name
        assert rel_err(g.cpu(), w) < 1e-4, (name, shapes, rel_err(g.cpu(), w))
    # a bias shared by every view cancels in the softmax: its gradient is zero
    assert g_got[5].abs().item() == 0 and g_want[5].abs().item() < 1e-9


@needs_kernels
def test_sample_on_a_pixel_centre_reads_that_pixel(gen):
    """One view, one point with weight 1 exactly on pixel (i, j)'s centre: the output is that pixel."""
    values = torch.randn(1, 1, 5 * 4, 6, generator=gen)  # one level 5 x 4, H = 2, Dh = 3
    i, j = 3, 1  # row, column
    reference = torch.tensor([[[[(j + 0.5) / 4, (i + 0.5) / 5]]]])  # [1, 1, 1, 2]
    offsets = torch.zeros(1, 1, 2, 1, 1, 2)
    weights = torch.ones(1, 1, 2, 1, 1)
    out = multiview_deform_attn(
        values.to(DEVICE), [(5, 4)], reference.to(DEVICE), offsets.to(DEVICE), weights.to(DEVICE),
        torch.randn(6, generator=gen).to(DEVICE), torch.zeros(1).to(DEVICE), backend="triton",
    )  # fmt: skip
    torch.testing.assert_close(out.cpu()[0, 0], values[0, 0, i * 4 + j], rtol=1e-6, atol=1e-6)


@needs_kernels
def test_module_fused_matches_pytorch_path(gen):
    """GeoLRM's cross-attention module: fused kernel vs its PyTorch path (chunked views, online
    softmax): output and the gradient of the query, the features and every parameter."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    d, cv, h, nl, p, v, nq = 12, 5, 2, 2, 3, 3, 6
    m = MultiViewDeformableAttention(d, cv, h, nl, p).to(DEVICE)
    for lin in (
        m.deformable_attention.sampling_offsets,
        m.deformable_attention.attention_weights,
        m.cross_view_weight,
    ):
        torch.nn.init.normal_(lin.weight, std=0.5)
    query = torch.randn(1, nq, d, generator=gen).to(DEVICE)
    feats = [
        torch.randn(1, v, cv, 6, 5, generator=gen).to(DEVICE),
        torch.randn(1, v, cv, 3, 3, generator=gen).to(DEVICE),
    ]
    ref = torch.rand(1, v, nq, 2, generator=gen).to(DEVICE)
    cot = torch.randn(1, nq, d, generator=gen).to(DEVICE)
    res = {}
    for backend in ("torch", "triton"):
        set_deform_backend(m, backend)
        ins = [query.clone().requires_grad_(), *(f.clone().requires_grad_() for f in feats)]
        out = m(ins[0], ins[1:], ref, view_chunk=2)
        res[backend] = (out, torch.autograd.grad(out, [*ins, *m.parameters()], cot))
    assert deform_backend_of(m, DEVICE) == "triton"
    assert rel_err(res["triton"][0], res["torch"][0]) < 1e-5
    names = ["query", "feat0", "feat1"] + [n for n, _ in m.named_parameters()]
    for name, g, w in zip(names, res["triton"][1], res["torch"][1], strict=True):
        if name == "cross_view_weight.bias":  # zero on both paths (cancels in the softmax)
            assert g.abs().max() == 0 and w.abs().max() < 1e-6, (g, w)
            continue
        assert rel_err(g, w) < 1e-4, (name, rel_err(g, w))


def test_auto_backend_on_cpu_is_pytorch():
    assert resolve_deform_backend("auto", "cpu") == "torch"
    assert deform_backend_of(MultiViewDeformableAttention(8, 4, 2, 1, 1), "cpu") == "torch"


# --------------------------------------------------------------------------------------- GPU
def _geolrm_inputs(gen, views: int, queries: int, dtype: torch.dtype):
    shapes = [(32, 32), (16, 16)]
    h, dh, nl, p = 16, 48, 2, 8
    s = sum(a * b for a, b in shapes)
    values = torch.randn(1, views, s, h * dh, generator=gen).to("cuda", dtype)
    reference = (torch.rand(1, views, queries, 2, generator=gen) * 1.1 - 0.05).cuda()
    offsets = (torch.randn(1, queries, h, nl, p, 2, generator=gen) * 0.05).cuda()
    weights = torch.rand(1, queries, h, nl, p, generator=gen).softmax(-1).cuda()
    view_w = (torch.randn(h * dh, generator=gen) * 0.05).cuda()
    view_b = torch.zeros(1).cuda()
    return shapes, [values, reference, offsets, weights, view_w, view_b]


@pytest.mark.gpu
def test_gpu_fused_matches_pytorch_path_fp32_geolrm_sizes(gen):
    """GeoLRM's sizes (16 heads x 48, 2 levels x 8 points, 32^2 and 16^2 maps), 6 views, 2048
    queries: float32 output and every gradient against the PyTorch path."""
    shapes, args = _geolrm_inputs(gen, 6, 2048, torch.float32)
    res = {}
    cot = torch.randn(1, 2048, 768, generator=gen).cuda()
    for backend in ("torch", "triton"):
        ins = [t.clone().requires_grad_() for t in args]
        out = multiview_deform_attn(ins[0], shapes, *ins[1:], backend=backend)
        res[backend] = (out, torch.autograd.grad(out, ins[:5], cot))
    assert rel_err(res["triton"][0], res["torch"][0]) < 1e-5
    for i, (g, w) in enumerate(zip(res["triton"][1], res["torch"][1], strict=True)):
        assert rel_err(g, w) < 1e-3, (i, rel_err(g, w))


@pytest.mark.gpu
def test_gpu_fused_bf16_values_within_bf16_noise(gen):
    """bf16 values (as under autocast), 21 views: within 1e-2 of the float64 result."""
    shapes, args = _geolrm_inputs(gen, 21, 1024, torch.bfloat16)
    got = multiview_deform_attn(args[0], shapes, *args[1:], backend="triton")
    want = multiview_deform_attn(args[0].double(), shapes, *(t.double() for t in args[1:]), backend="torch")
    assert rel_err(got, want) < 1e-2


@pytest.mark.gpu
def test_gpu_geolrm_tiny_network_fused_matches_pytorch(gen):
    from pipelines.models.geolrm.config import PRESETS
    from pipelines.models.geolrm.model import GeoLRM, GeoLRMInputs

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    net = GeoLRM(PRESETS["tiny"]).eval()
    x = GeoLRMInputs.orbit(views=5, image_size=PRESETS["tiny"].image_size, generator=gen)
    with torch.no_grad():  # anchors chosen on the CPU, then the same anchors on CUDA
        anchors = net.select(net.proposal(x.images, x.c2w_gl, x.K_norm), torch.Generator().manual_seed(0)).xyz
        net, x = net.cuda(), x.to("cuda")
        raws = {}
        for backend in ("torch", "triton"):
            set_deform_backend(net, backend)
            raws[backend] = net.reconstruction(x, anchors.cuda())
    assert rel_err(raws["triton"], raws["torch"]) < 1e-4
