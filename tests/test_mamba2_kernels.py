"""Our Triton Mamba2 scan (pipelines/models/blocks/kernels/: conv + SiLU, SSD chunk scan, gated
RMSNorm, forward and backward) against a float64 step-by-step reference written here, and the
BiMamba2 block on it against the PyTorch scan.

On the CPU the kernels run in Triton's interpreter (tests/conftest.py switches it on without CUDA);
on a CUDA machine the same tests run the compiled kernels. Sizes are tiny (the interpreter is
slow): lengths not multiples of the chunk, both scan directions, groups G > 1, a dt clamp. The
gpu-marked tests compare with the PyTorch scan at Long-LRM's sizes in float32 and bfloat16.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from pipelines.models.blocks.kernels import triton_available  # noqa: E402
from pipelines.models.blocks.mamba2 import (  # noqa: E402
    NO_DT_LIMIT,
    BiMamba2,
    _scan_torch,
    mamba_split_conv1d_scan,
    mamba_ssm_available,
    resolve_scan_backend,
    scan_backend_of,
    set_scan_backend,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_kernels = pytest.mark.skipif(
    not triton_available(DEVICE), reason="Triton kernels cannot run here (no CUDA and TRITON_INTERPRET unset)"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        (a.detach().double() - b.detach().double()).norm() / b.detach().double().norm().clamp_min(1e-300)
    )


def scan_ref_f64(zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w, *, P, G, eps, dt_limit, reverse):
    """The Mamba2 branch step by step in float64, differentiable: a direct (anti-causal when
    ``reverse``) depthwise convolution, then the recurrence h = exp(dt A) h + dt x B^T walked
    forwards (or backwards), y = h C + D x, then RMSNorm(y * silu(z)) * w. No chunks, no flips."""
    zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w = (
        t.double() for t in (zxbcdt, conv_w, conv_b, dt_bias, A, D, norm_w)
    )
    H, W = A.shape[0], conv_w.shape[1]
    di = H * P
    N = (conv_w.shape[0] - di) // G // 2
    b, L, _ = zxbcdt.shape
    z, xBC, dt_raw = zxbcdt.split([di, di + 2 * G * N, H], dim=-1)
    step = -1 if reverse else 1  # output t reads inputs t, t - step, ..., t - step * (W - 1)
    conv = []
    for t in range(L):
        acc = conv_b.expand(b, -1)
        for k in range(W):
            s = t - step * (W - 1 - k)
            if 0 <= s < L:
                acc = acc + conv_w[:, k] * xBC[:, s]
        conv.append(acc)
    xBC = torch.stack(conv, dim=1)
    xBC = xBC * torch.sigmoid(xBC)
    x, Bm, Cm = xBC.split([di, G * N, G * N], dim=-1)
    x = x.reshape(b, L, H, P)
    Bh = Bm.reshape(b, L, G, N).repeat_interleave(H // G, dim=2)  # [b, L, H, N]
    Ch = Cm.reshape(b, L, G, N).repeat_interleave(H // G, dim=2)
    dt = F.softplus(dt_raw + dt_bias).clamp(*dt_limit)  # [b, L, H]
    h = torch.zeros(b, H, P, N, dtype=torch.float64)
    ys: list[torch.Tensor] = [torch.empty(0)] * L
    for t in range(L - 1, -1, -1) if reverse else range(L):
        decay = torch.exp(dt[:, t, :, None, None] * A[:, None, None])
        h = decay * h + dt[:, t, :, None, None] * x[:, t, :, :, None] * Bh[:, t, :, None, :]
        ys[t] = (h * Ch[:, t, :, None, :]).sum(-1) + D[:, None] * x[:, t]
    y = torch.stack(ys, dim=1).reshape(b, L, di) * F.silu(z)
    return y * torch.rsqrt(y.square().mean(-1, keepdim=True) + eps) * norm_w


def random_branch(gen, *, b, L, H, P, G, N, W, dtype=torch.float32):
    """zxbcdt and the branch parameters, with dt around Mamba2's initial range."""
    di = H * P
    zx = torch.randn(b, L, 2 * di + 2 * G * N + H, generator=gen)
    conv_w = torch.randn(di + 2 * G * N, W, generator=gen) * 0.5
    conv_b = torch.randn(di + 2 * G * N, generator=gen) * 0.1
    dt_bias = torch.randn(H, generator=gen) - 2.5
    A = -torch.empty(H).uniform_(1, 16, generator=gen)
    D = torch.randn(H, generator=gen)
    norm_w = torch.rand(di, generator=gen) + 0.5
    return [zx.to(dtype), conv_w, conv_b, dt_bias, A, D, norm_w]


def draw_sizes(gen) -> dict:
    """Tiny random sizes; L is never a multiple of the chunk (chunk 8 or 16, 2-3 chunks)."""
    pick = lambda *opts: opts[int(torch.randint(len(opts), (1,), generator=gen))]  # noqa: E731
    chunk = pick(8, 16)
    L = chunk * pick(1, 2) + int(torch.randint(1, chunk, (1,), generator=gen))
    return dict(b=pick(1, 2), L=L, P=pick(4, 8), N=pick(4, 8), W=pick(2, 3, 4), chunk=chunk)


@needs_kernels
@pytest.mark.parametrize(
    "reverse,groups,dt_limit",
    [(False, 1, NO_DT_LIMIT), (True, 1, (0.02, 0.1)), (False, 2, (0.02, 0.1)), (True, 2, NO_DT_LIMIT)],
)
def test_triton_scan_matches_float64_reference(gen, reverse, groups, dt_limit):
    s = draw_sizes(gen)
    H = 2
    args = random_branch(gen, b=s["b"], L=s["L"], H=H, P=s["P"], G=groups, N=s["N"], W=s["W"])
    ins = [t.to(DEVICE).clone().requires_grad_() for t in args]
    out = mamba_split_conv1d_scan(
        *ins, headdim=s["P"], ngroups=groups, chunk_size=s["chunk"], norm_eps=1e-5, dt_limit=dt_limit,
        reverse=reverse, backend="triton",
    )  # fmt: skip
    ref_ins = [t.detach().double().requires_grad_() for t in args]
    ref = scan_ref_f64(*ref_ins, P=s["P"], G=groups, eps=1e-5, dt_limit=dt_limit, reverse=reverse)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert rel_err(out.cpu(), ref) < 1e-4, (s, rel_err(out.cpu(), ref))
    cot = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, ins, cot.float().to(DEVICE))
    want = torch.autograd.grad(ref, ref_ins, cot)
    names = ["zxbcdt", "conv_w", "conv_b", "dt_bias", "A", "D", "norm_w"]
    for name, g, w in zip(names, got, want, strict=True):
        assert g.shape == w.shape and g.dtype == torch.float32, name
        assert rel_err(g.cpu(), w) < 1e-4, (name, s, rel_err(g.cpu(), w))


@needs_kernels
def test_triton_scan_bf16_input_within_bf16_noise(gen):
    """zxbcdt in bfloat16 (as under autocast): the output in bfloat16, within bf16 rounding of the
    float64 result on the same (rounded) inputs."""
    s = draw_sizes(gen)
    args = random_branch(gen, b=1, L=s["L"], H=2, P=8, G=1, N=8, W=4, dtype=torch.bfloat16)
    for reverse in (False, True):
        out = mamba_split_conv1d_scan(
            *(t.to(DEVICE) for t in args), headdim=8, ngroups=1, chunk_size=s["chunk"], norm_eps=1e-5,
            reverse=reverse, backend="triton",
        )  # fmt: skip
        ref = scan_ref_f64(*args, P=8, G=1, eps=1e-5, dt_limit=NO_DT_LIMIT, reverse=reverse)
        assert out.dtype == torch.bfloat16
        assert rel_err(out.cpu(), ref) < 1.5e-2, rel_err(out.cpu(), ref)


@needs_kernels
def test_bimamba_block_triton_matches_torch(gen):
    """The whole bidirectional block (shared in/out projections, the reversed branch through
    ``reverse=True``, G = 2) on our kernels against the PyTorch scan: output, input gradient and
    every parameter's gradient."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    m = BiMamba2(16, d_state=8, headdim=8, ngroups=2, chunk_size=16).to(DEVICE)
    x = torch.randn(2, 29, 16, generator=gen).to(DEVICE)
    cot = torch.randn(2, 29, 16, generator=gen).to(DEVICE)
    res = {}
    for backend in ("torch", "triton"):
        set_scan_backend(m, backend)
        xg = x.clone().requires_grad_()
        out = m(xg)
        params = list(m.parameters())
        grads = torch.autograd.grad(out, [xg, *params], cot)
        res[backend] = (out, grads)
    assert scan_backend_of(m, DEVICE) == "triton"
    assert rel_err(res["triton"][0], res["torch"][0]) < 1e-5
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for name, g, w in zip(names, res["triton"][1], res["torch"][1], strict=True):
        assert rel_err(g, w) < 1e-4, (name, rel_err(g, w))


def test_auto_backend_and_refusals(monkeypatch):
    """auto is the PyTorch scan on the CPU; an explicit "triton" without CUDA or the interpreter
    is refused with a clear message; no kernel runs here."""
    assert resolve_scan_backend("auto", "cpu") == "torch"
    assert resolve_scan_backend("triton", "cpu") == "triton"
    m = BiMamba2(16, d_state=8, headdim=8, chunk_size=8)
    assert scan_backend_of(m, "cpu") == "torch"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not triton_available("cpu")
    z = torch.zeros(1, 4, 2 * 16 + 2 * 4 + 1)
    with pytest.raises(RuntimeError, match="Triton"):
        mamba_split_conv1d_scan(
            z, torch.zeros(24, 4), None, torch.zeros(1), -torch.ones(1), torch.ones(1), torch.ones(16),
            headdim=16, ngroups=1, chunk_size=8, norm_eps=1e-5, backend="triton",
        )  # fmt: skip


def test_importing_the_models_imports_no_triton():
    """STYLE.md section 2: importing pipelines (models and blocks included) loads no kernel module."""
    mods = "pipelines.models.blocks.mamba2 pipelines.models.blocks.deformable_attention"
    mods += " pipelines.models.long_lrm.model pipelines.models.geolrm.model"
    code = (
        f"import sys, pipelines, {', '.join(mods.split())}\n"
        "bad = [m for m in sys.modules if m == 'triton'\n"
        "       or m.startswith(('triton.', 'pipelines.models.blocks.kernels.'))]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------- GPU
def _official_branch(gen, d: int, L: int, dtype: torch.dtype):
    H = 2 * d // 64
    args = random_branch(gen, b=1, L=L, H=H, P=64, G=1, N=256, W=4, dtype=dtype)
    return [t.cuda() for t in args], dict(headdim=64, ngroups=1, chunk_size=256, norm_eps=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("reverse", [False, True])
def test_gpu_triton_scan_matches_torch_fp32_official_sizes(gen, reverse):
    """Long-LRM's two widths (d_state 256, headdim 64, chunk 256), several chunks and a partial
    one: float32 output and every gradient against the PyTorch scan."""
    for d, L in ((256, 4099), (1024, 1027)):
        args, kw = _official_branch(gen, d, L, torch.float32)
        outs, grads = {}, {}
        cot = torch.randn(1, L, 2 * d, generator=gen).cuda()
        for backend in ("torch", "triton"):
            ins = [t.clone().requires_grad_() for t in args]
            outs[backend] = mamba_split_conv1d_scan(*ins, **kw, reverse=reverse, backend=backend)
            grads[backend] = torch.autograd.grad(outs[backend], ins, cot)
        assert rel_err(outs["triton"], outs["torch"]) < 1e-4, (d, rel_err(outs["triton"], outs["torch"]))
        for i, (g, w) in enumerate(zip(grads["triton"], grads["torch"], strict=True)):
            assert rel_err(g, w) < 1e-3, (d, i, rel_err(g, w))


@pytest.mark.gpu
def test_gpu_triton_scan_bf16_as_close_as_the_torch_scan(gen):
    """bfloat16 zxbcdt: our output's error against float64 (same rounded inputs, the float64 scan
    on the GPU) is within twice the PyTorch scan's bf16 error, plus 1e-3."""
    for d, L in ((256, 2051), (1024, 517)):
        args, kw = _official_branch(gen, d, L, torch.bfloat16)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            torch_out = mamba_split_conv1d_scan(*args, **kw, backend="torch")
        ours = mamba_split_conv1d_scan(*args, **kw, backend="triton")
        truth = _scan_torch(*(t.double() for t in args), **kw)
        assert ours.dtype == torch.bfloat16
        assert rel_err(ours, truth) < 2 * rel_err(torch_out, truth) + 1e-3, (d, rel_err(ours, truth))


@pytest.mark.gpu
def test_gpu_triton_scan_matches_mamba_ssm_bf16(gen):
    if not mamba_ssm_available("cuda"):
        pytest.skip("mamba-ssm not installed")
    args, kw = _official_branch(gen, 1024, 3001, torch.bfloat16)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = mamba_split_conv1d_scan(*args, **kw, backend="mamba_ssm")
        ours = mamba_split_conv1d_scan(*args, **kw, backend="triton")
    assert rel_err(ours, ref) < 1e-2


@pytest.mark.gpu
def test_gpu_official_network_triton_matches_torch_scan_bf16(gen):
    from pipelines.models.long_lrm.config import PRESETS
    from pipelines.models.long_lrm.model import LongLRM
    from pipelines.models.long_lrm.preprocess import prepare
    from studio.bench.common import synthetic_views

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = LongLRM(PRESETS["official-540p"]).cuda().eval()
    prep = prepare(synthetic_views(4, 256, 160).to("cuda"), resize_h=160, multiple=16, scene_scale=1.35)
    args = (prep.images[None], prep.cameras.c2w[None], prep.cameras.K[None])
    outs = {}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for backend in ("torch", "triton"):
            set_scan_backend(model, backend)
            outs[backend] = model(*args).raw.float()
    assert rel_err(outs["triton"], outs["torch"]) < 1e-2
    set_scan_backend(model, "auto")
    assert scan_backend_of(model, "cuda") in ("triton", "mamba_ssm")
