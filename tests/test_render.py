"""Renderer: projection against gsplat's PyTorch reference, the CPU render against an independent
float64 brute-force compositor, similarity invariance, closed-form cases, dispatch, and (GPU)
gsplat against our backend."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

from pipelines.cameras import Cameras, make_K
from pipelines.gaussians import Gaussians, gsplat_available, render
from pipelines.gaussians.projection import project
from pipelines.metrics import psnr
from pipelines.transforms import Similarity, random_rotations
from tests.render_scenes import brute_force, random_cameras, random_gaussians, threshold_scene


# ------------------------------------------------------------------------------ projection
def test_projection_matches_gsplat_reference(gen):
    """means2d, depths, conics and the 3.33-sigma radii equal gsplat's _fully_fused_projection
    (float64), including Gaussians behind the camera, beyond the near plane and far off-screen
    (where the Jacobian's frustum clamp is active)."""
    f64 = torch.float64
    W, H = 96, 64
    cams = random_cameras(gen, 3, W, H, dtype=f64)
    near_g = random_gaussians(gen, 300, extent=1.5, dtype=f64)
    far_g = random_gaussians(gen, 300, extent=6.0, log_scale_range=(math.log(0.3), math.log(1.5)), dtype=f64)
    g = Gaussians.cat([near_g, far_g])  # many off-screen, behind the cameras or beyond the far plane
    scales = g.log_scales.exp()
    covars, _ = _quat_scale_to_covar_preci(g.quats, scales, compute_preci=False)
    w2c = cams.w2c()
    near, far = 0.5, 7.0
    radii_ref, m2d_ref, depth_ref, conic_ref, _ = _fully_fused_projection(
        g.means, covars, w2c, cams.K, W, H, eps2d=0.3, near_plane=near, far_plane=far
    )
    p = project(g.means, g.quats, scales, None, w2c, cams.K, W, H, eps2d=0.3, near_plane=near, far_plane=far)
    ok = (radii_ref > 0).all(-1)
    assert ok.sum() > 200 and (~ok).sum() > 50, "the scene must have both visible and culled Gaussians"
    # the frustum clamp must be exercised by some visible Gaussians
    u = (m2d_ref[..., 0] - cams.cx[:, None]) / cams.fx[:, None]
    assert ((u > (W - cams.cx[:, None]) / cams.fx[:, None] * 1.01 + 0.15) & ok).any()
    torch.testing.assert_close(p.depths, depth_ref)
    torch.testing.assert_close(p.means2d[ok], m2d_ref[ok], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(p.conics[ok], conic_ref[ok], rtol=1e-9, atol=1e-12)
    assert torch.equal(p.radii, radii_ref), "3.33-sigma radii and culling differ"


def test_opacity_aware_radii(gen):
    """With opacities, radii are ceil(k sqrt(Sigma_ii)) with k = min(3.33, sqrt(2 ln(255 o))), and
    Gaussians with o < 1/255 or boxes off-screen are culled (gsplat's CUDA rule), computed here
    independently from the reference conics."""
    f64 = torch.float64
    W, H = 80, 60
    cams = random_cameras(gen, 2, W, H, dtype=f64)
    g = Gaussians.cat([
        random_gaussians(gen, 400, extent=3.0, opacity_range=(1 / 255, 1.0), dtype=f64),
        random_gaussians(gen, 100, extent=3.0, opacity_range=(0.5 / 255, 2 / 255), dtype=f64),
    ])  # fmt: skip
    scales, o = g.log_scales.exp(), torch.sigmoid(g.opacity_logits)
    covars, _ = _quat_scale_to_covar_preci(g.quats, scales, compute_preci=False)
    _, m2d, depth, conic, _ = _fully_fused_projection(g.means, covars, cams.w2c(), cams.K, W, H)
    det = conic[..., 0] * conic[..., 2] - conic[..., 1] ** 2
    sxx, syy = conic[..., 2] / det, conic[..., 0] / det  # inverse of the conic
    k = torch.sqrt(2 * torch.log((o * 255).clamp_min(1.0))).clamp(max=3.33)[None]
    rx, ry = torch.ceil(k * sxx.sqrt()), torch.ceil(k * syy.sqrt())
    valid = (depth >= 0.01) & (o[None] >= 1 / 255)
    valid &= (m2d[..., 0] + rx > 0) & (m2d[..., 0] - rx < W) & (m2d[..., 1] + ry > 0) & (m2d[..., 1] - ry < H)
    expected = torch.stack([rx, ry], -1) * valid[..., None]
    p = project(g.means, g.quats, scales, o, cams.w2c(), cams.K, W, H)
    assert (o < 1 / 255).any() and valid.sum() > 100
    assert torch.equal(p.radii.to(f64), expected)


# --------------------------------------------------------------------- render vs brute force
@pytest.mark.parametrize(
    "sh_degree,container_degree,dtype",
    [
        (0, 0, torch.float32),
        (1, 3, torch.float32),
        (2, 2, torch.float32),
        (3, 3, torch.float32),
        (3, 3, torch.float64),
    ],
)
def test_render_matches_brute_force(gen, sh_degree, container_degree, dtype):
    """rgb, alpha and expected depth within 1e-4 of the float64 per-pixel compositor, on a scene
    with Gaussians near the skip and early-stop thresholds, a random background, 2 cameras, and
    an image size that is not a multiple of the tile size."""
    W, H = 45, 37
    cams = random_cameras(gen, 2, W, H, dtype=dtype)
    g = threshold_scene(gen, dtype=dtype).with_sh_degree(container_degree)
    bg = torch.rand(2, 3, generator=gen, dtype=dtype)
    out = render(g, cams, sh_degree=sh_degree, background=bg)
    ref = brute_force(
        g, cams, sh_degree=sh_degree, background=bg, ambiguity=1e-4 if dtype == torch.float32 else 1e-9
    )
    assert ref["n_stops"] > 20 and ref["n_near_skip"] > 20, "the scene must exercise both thresholds"
    ok = ~ref["ambiguous"]
    assert ok.float().mean() > 0.9, f"too many ambiguous pixels: {1 - ok.float().mean():.3f}"
    for key in ("rgb", "alpha", "depth"):
        got = getattr(out, key).double()
        assert got.shape == ref[key].shape, (key, got.shape, ref[key].shape)
        err = (got - ref[key]).abs()[ok].max()
        assert err < 1e-4, f"{key}: max abs error {err:.3g}"


def test_early_stop_is_exclusive_and_alpha_clamped():
    """Closed form: three wide Gaussians of opacity 0.995 at the same pixel. T goes 1 -> 0.005;
    the second would bring T to 2.5e-5 <= 1e-4, so the pixel stops before it:
    rgb = 0.995 c1 + 0.005 bg. A single one of opacity 1 is clamped to alpha 0.999."""
    f64 = torch.float64
    cams = Cameras(
        torch.eye(4, dtype=f64)[None],
        make_K(*(torch.tensor(v, dtype=f64) for v in (20.0, 20.0, 2.0, 2.0)))[None],
        4,
        4,
    )
    n = 3
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 4.0]], dtype=f64)
    sh = torch.zeros(n, 1, 3, dtype=f64)
    colors = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.3, 0.3, 0.9]], dtype=f64)
    sh[:, 0] = (colors - 0.5) / 0.28209479177387814
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=f64)
    g = Gaussians(means, quats, torch.full((n, 3), math.log(50.0), dtype=f64),
                  torch.full((n,), math.log(0.995 / 0.005), dtype=f64), sh)  # fmt: skip
    bg = torch.tensor([0.2, 0.4, 0.6], dtype=f64)
    out = render(g, cams, background=bg)
    # each alpha is 0.995 * exp(-tiny): the wide Gaussians are flat over the 4x4 image
    a1 = out.alpha[0, 1, 1, 0]
    torch.testing.assert_close(out.rgb[0, 1, 1], a1 * colors[0] + (1 - a1) * bg)
    assert 0.9949 < a1 < 0.995
    torch.testing.assert_close(out.depth[0, 1, 1, 0], torch.tensor(2.0, dtype=f64))
    one = Gaussians(means[:1], quats[:1], g.log_scales[:1], torch.tensor([40.0], dtype=f64), sh[:1])
    out1 = render(one, cams)
    torch.testing.assert_close(out1.alpha[0, 1, 1, 0], torch.tensor(0.999, dtype=f64), atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------ invariance
def test_similarity_invariance(gen):
    """render(g.transform(S), cams.transform(S)) == render(g, cams) with SH degree 3; expected
    depth scales by s."""
    f64 = torch.float64
    cams = random_cameras(gen, 2, 40, 30, dtype=f64)
    g = random_gaussians(gen, 300, dtype=f64)
    s = float(torch.empty(1).uniform_(0.5, 2.0, generator=gen))
    S = Similarity(s, random_rotations(1, gen, f64)[0], torch.randn(3, generator=gen, dtype=f64))
    bg = torch.rand(3, generator=gen, dtype=f64)
    a = render(g, cams, background=bg)
    b = render(g.transform(S), cams.transform(S), background=bg)
    assert a.alpha.max() > 0.5
    torch.testing.assert_close(b.rgb, a.rgb, atol=1e-8, rtol=0)
    torch.testing.assert_close(b.alpha, a.alpha, atol=1e-8, rtol=0)
    torch.testing.assert_close(b.depth, s * a.depth, atol=1e-7, rtol=1e-8)
    assert torch.equal(b.meta["radii"], a.meta["radii"])


# ------------------------------------------------------------------------- dispatch, meta
def test_auto_picks_cpu_backend_and_meta(gen):
    cams = random_cameras(gen, 2, 32, 24)
    g = random_gaussians(gen, 100).requires_grad_()
    out = render(g, cams, sh_degree=1)
    assert not gsplat_available("cpu")
    assert out.meta["backend"] == "torch"
    m = out.meta
    assert (
        m["means2d"].shape == (2, 100, 2)
        and m["radii"].shape == (2, 100, 2)
        and m["radii"].dtype == torch.int32
    )
    assert (m["width"], m["height"], m["n_cameras"], m["gaussian_ids"]) == (32, 24, 2, None)
    assert (
        m["depths"].shape == (2, 100)
        and m["conics"].shape == (2, 100, 3)
        and m["opacities"].shape == (2, 100)
    )
    out.rgb.sum().backward()
    grad = m["means2d"].grad
    assert grad is not None and grad.shape == (2, 100, 2)
    assert (grad[(m["radii"] == 0).any(-1)] == 0).all(), "culled Gaussians must get no gradient"
    assert grad.abs().sum() > 0
    with pytest.raises(AssertionError):
        render(g, cams, sh_degree=1, backend="gsplat")
    with pytest.raises(AssertionError):
        render(g.with_sh_degree(1), cams, sh_degree=2)


def test_cameras_batch_and_threads_agree(gen):
    """Rendering C cameras at once equals rendering each alone, and renders from several Python
    threads at once (the studio serves clients from threads) equal the sequential ones."""
    import threading

    cams = random_cameras(gen, 3, 40, 30)
    g = random_gaussians(gen, 2000, sh_degree=2)
    bg = torch.rand(3, 3, generator=gen)
    together = render(g, cams, background=bg)
    for c in range(3):
        alone = render(g, cams[c], background=bg[c])
        torch.testing.assert_close(alone.rgb[0], together.rgb[c], atol=1e-6, rtol=0)
        torch.testing.assert_close(alone.depth[0], together.depth[c], atol=1e-5, rtol=0)
        assert torch.equal(alone.meta["radii"][0], together.meta["radii"][c])
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        results[i] = render(g, cams[i % 3], background=bg[i % 3]).rgb[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        assert torch.equal(results[i], results[i % 3]), f"thread {i} differs"
        torch.testing.assert_close(results[i], together.rgb[i % 3], atol=1e-6, rtol=0)


def test_numba_cache_falls_back_to_memory():
    """A function numba cannot cache (no file to cache next to, as when no cache directory is
    writable) still compiles and runs through the kernels' decorator."""
    from pipelines.gaussians.raster_cpu import _jit

    namespace: dict = {}
    exec("def twice(x):\n    return 2 * x\n", namespace)  # source without a file: no cache locator
    assert _jit()(namespace["twice"])(21) == 42


def test_empty_and_culled_scenes(gen):
    cams = random_cameras(gen, 1, 20, 10)
    g = random_gaussians(gen, 5)
    behind = Gaussians(
        cams.centers() - 2 * cams.forward_dirs() + g.means * 0.1,
        g.quats,
        g.log_scales,
        g.opacity_logits,
        g.sh,
    )
    bg = torch.tensor([0.1, 0.2, 0.3])
    for scene in (g[:0], behind):
        out = render(scene, cams, background=bg)
        torch.testing.assert_close(out.rgb, bg.expand(1, 10, 20, 3))
        assert (out.alpha == 0).all() and (out.depth == 0).all()


# ---------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
def test_gsplat_matches_torch_backend(gen):
    """Same scene through gsplat (CUDA) and ours (CPU): images and gradients agree."""
    cams = random_cameras(gen, 2, 128, 96)
    g = random_gaussians(gen, 3000)
    bg = torch.rand(2, 3, generator=gen)
    cot = torch.randn(2, 96, 128, 3, generator=gen)  # the same cotangent for both backends
    outs, grads = {}, {}
    for backend, device in (("gsplat", "cuda"), ("torch", "cpu")):
        gd = g.clone().to(device).requires_grad_()
        out = render(gd, cams.to(device), background=bg.to(device), backend=backend)
        (out.rgb * cot.to(device)).sum().backward()
        outs[backend] = out
        grads[backend] = {k: v.grad.cpu() for k, v in gd.tensors().items()}
    a, b = outs["gsplat"], outs["torch"]
    # float32 (gsplat) and float64-inside (ours) may decide a threshold (1/255, T stop, radius ceil)
    # differently at a handful of pixels / Gaussians: compare most entries tightly, all loosely.
    err = (a.rgb.cpu() - b.rgb).abs()
    assert (err <= 2e-3).float().mean() > 0.999 and err.max() < 0.05, f"max {err.max():.3g}"
    assert ((a.alpha.cpu() - b.alpha).abs() <= 2e-3).float().mean() > 0.999
    assert ((a.depth.cpu() - b.depth).abs() <= 1e-2).float().mean() > 0.99
    img = lambda t: t.detach().cpu().permute(0, 3, 1, 2).clamp(0, 1)  # noqa: E731
    assert float(psnr(img(a.rgb), img(b.rgb)).min()) > 40
    assert (a.meta["radii"].cpu() != b.meta["radii"]).any(-1).float().mean() < 5e-3
    for k in ("means", "log_scales", "opacity_logits", "sh", "quats"):
        ga, gb = grads["gsplat"][k].flatten(), grads["torch"][k].flatten()
        rel = (ga - gb).norm() / gb.norm().clamp_min(1e-12)
        cos = torch.nn.functional.cosine_similarity(ga, gb, dim=0)
        assert rel < 5e-2 and cos > 0.995, f"{k}: relative gradient difference {rel:.3g}, cosine {cos:.5f}"
    # without depth (gsplat's RGB mode, as the optimizer renders) the same image and gradients
    for backend, device in (("gsplat", "cuda"), ("torch", "cpu")):
        gd = g.clone().to(device).requires_grad_()
        out = render(gd, cams.to(device), background=bg.to(device), backend=backend, depth=False)
        (out.rgb * cot.to(device)).sum().backward()
        assert out.depth is None
        torch.testing.assert_close(out.rgb, outs[backend].rgb, atol=1e-5, rtol=1e-5)
        for k, v in gd.tensors().items():  # gsplat's backward sums with atomics: order noise only
            ga, gb = v.grad.cpu().flatten(), grads[backend][k].flatten()
            assert (ga - gb).norm() <= 1e-4 * gb.norm() + 1e-12, (backend, k)


# ------------------------------------------------------------------ fused vs reference path
@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_fused_projection_matches_torch_reference(gen, sh_degree):
    """The fused numba projection + SH (fast path) gives the values and gradients of the PyTorch
    reference path (projection.py + sh.py + autograd), float64, with Gaussians off-screen (frustum
    clamp), behind the cameras, faint and opaque."""
    from pipelines.gaussians.render import _render_torch

    f64 = torch.float64
    cams = random_cameras(gen, 2, 48, 36, dtype=f64)
    g = Gaussians.cat([
        random_gaussians(gen, 200, dtype=f64),
        random_gaussians(gen, 100, extent=4.0, log_scale_range=(math.log(0.2), math.log(1.0)), dtype=f64),
        random_gaussians(gen, 30, opacity_range=(0.5 / 255, 3 / 255), dtype=f64),
    ])  # fmt: skip
    bg = torch.rand(2, 3, generator=gen, dtype=f64)
    w = torch.randn(2, 36, 48, 5, generator=gen, dtype=f64)
    results = []
    for fused in (True, False):
        gg = g.clone().requires_grad_()
        out = _render_torch(gg, cams, sh_degree, bg, 0.01, 1e10, 0.3, False, fused=fused)
        loss = (out.rgb * w[..., :3]).sum() + (out.alpha * w[..., 3:4]).sum()
        loss = loss + 0.1 * (out.depth * w[..., 4:]).sum()
        loss.backward()
        results.append((out, {k: v.grad for k, v in gg.tensors().items()}))
    (fa, ga), (ra, gr) = results
    assert torch.equal(fa.meta["radii"], ra.meta["radii"])
    assert (fa.meta["radii"] > 0).all(-1).sum() > 200
    for key in ("rgb", "alpha", "depth"):
        torch.testing.assert_close(getattr(fa, key), getattr(ra, key), atol=1e-10, rtol=1e-10)
    vis = (ra.meta["radii"] > 0).all(-1)
    for key in ("means2d", "conics", "depths"):
        torch.testing.assert_close(fa.meta[key][vis], ra.meta[key][vis], atol=1e-10, rtol=1e-10)
    for k in ga:
        torch.testing.assert_close(ga[k], gr[k], atol=1e-9, rtol=1e-8, msg=lambda m, k=k: f"{k}: {m}")
