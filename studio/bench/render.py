"""``lrm-studio bench render``: the renderer's median forward and forward+backward times and peak
memory, CPU backend (ours) and, with ``--device cuda``, gsplat plus the agreement of the two.

Scenes (float32, SH degree 3, one camera, fov 60 deg, built once per N in world units, so the
512x512 render sees the same Gaussians twice as large in pixels):

- ``surface`` (what a trained scene looks like to the renderer): 85% of the Gaussians lie on the
  visible surfaces of a room (box walls, floor, ceiling) with three spheres in it, sampled
  uniformly in image space by casting rays through random pixels; each is flattened along the
  surface (normal-axis scale 0.2x) with a tangential scale set so that on average the
  Gaussians tile the 256x256 image once (projected sigma ~ sqrt(pixels / N)) with a log-normal
  spread (sigma 0.5); 15% are floaters spread through the view volume (depth 1..8) with the same
  pixel-size rule. Opacities are bimodal as after training: 60% around 0.95, 40% around 0.12.
- ``overlap`` (the hard case): Gaussians.random in the cube [-1, 1]^3 seen from 3 to 5 units
  away, scales log-uniform in [0.01, 0.1], random opacities (alpha mean ~0.4): a cluster in the
  image centre whose tiles list thousands of Gaussians (up to 3.8k per 16x16 tile at 50k and
  256x256, where the reference notes' clustered scene had 2,086), mostly semi-transparent, so
  pixels rarely reach the early stop.

Each case runs in a fresh process (``run_isolated``) so its peak RSS growth is honest; a tiny
render first loads the compiled kernels, so compile memory is not counted. Timings are medians
of ``repeats`` calls after a warm-up; forward is measured without autograd (viewer use) and
forward+backward with gradients of every parameter (training use; loss = L1 to a target).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Literal

import torch

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import num_sh_bases
from studio.bench.common import (
    Timing,
    device_description,
    gib,
    peak_memory,
    print_table,
    run_isolated,
    save_results,
    time_calls,
)

Scene = Literal["surface", "overlap"]
_REF_PIXELS = 256 * 256  # the scene's Gaussian sizes are set for a 256x256 view


def bench_camera(size: int) -> Cameras:
    return Cameras.look_at(
        torch.tensor([[0.0, -0.3, -1.8]]),
        torch.tensor([[0.0, 0.1, 1.0]]),
        fov_y_deg=60.0,
        width=size,
        height=size,
    )


def _room_hits(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First hit of rays (origins o [M,3], unit dirs d [M,3]) inside the box [-2,2]^3 with three
    spheres: points [M, 3] and unit normals [M, 3]."""
    half = 2.0
    t_box = torch.where(d > 0, (half - o) / d, (-half - o) / d).clamp_min(0)  # [M, 3] exit per axis
    t, axis = t_box.min(dim=-1)
    n = torch.zeros_like(d)
    n.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))
    spheres = torch.tensor([[0.0, 0.8, 0.8, 0.7], [-1.0, 0.3, 1.2, 0.5], [1.1, 1.0, 0.4, 0.6]])
    for cx, cy, cz, r in spheres.tolist():
        c = torch.tensor([cx, cy, cz])
        oc = o - c
        b = (oc * d).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        ts = -b - disc.clamp_min(0).sqrt()
        hit = (disc > 0) & (ts > 0) & (ts < t)
        t = torch.where(hit, ts, t)
        n = torch.where(hit[:, None], torch.nn.functional.normalize(o + ts[:, None] * d - c, dim=-1), n)
    return o + t[:, None] * d, n


def _frame_from_normals(n: torch.Tensor) -> torch.Tensor:
    """Rotations [M, 3, 3] whose third column is n [M, 3]."""
    helper = torch.where((n[:, :1].abs() < 0.9), torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]))
    u = torch.nn.functional.normalize(torch.linalg.cross(helper, n, dim=-1), dim=-1)
    v = torch.linalg.cross(n, u, dim=-1)
    return torch.stack([u, v, n], dim=-1)


def make_scene(scene: Scene, n: int, seed: int = 0) -> Gaussians:
    """The benchmark's Gaussians (see the module docstring), SH degree 3, float32."""
    gen = torch.Generator().manual_seed(seed)
    if scene == "overlap":
        g = Gaussians.random(n, sh_degree=3, extent=1.0, scale_range=(0.01, 0.1), generator=gen)
        g.means[:, 2] += 2.2  # in front of the bench camera (at z = -1.8)
        return g
    from pipelines.transforms import rotmat_to_quat

    cam = bench_camera(256)
    n_surf = int(0.85 * n)
    px = torch.rand(n, 2, generator=gen) * 1.1 - 0.05  # slightly beyond the image
    x = (px[:, 0] * 256 - cam.cx) / cam.fx
    y = (px[:, 1] * 256 - cam.cy) / cam.fy
    d_cam = torch.nn.functional.normalize(torch.stack([x, y, torch.ones_like(x)], -1), dim=-1)
    R = cam.c2w[0, :3, :3]
    d = d_cam @ R.T
    o = cam.centers().expand(n, 3)
    pts, normals = _room_hits(o[:n_surf], d[:n_surf])
    depth_f = 1.0 + 7.0 * torch.rand(n - n_surf, generator=gen)
    floaters = o[n_surf:] + depth_f[:, None] * d[n_surf:] / d_cam[n_surf:, 2:3]
    means = torch.cat([pts, floaters])
    z = ((means - cam.centers()) @ R[:, 2]).clamp_min(0.2)  # camera depth
    sigma_px = math.sqrt(_REF_PIXELS / n) * torch.exp(0.5 * torch.randn(n, generator=gen))
    s = sigma_px * z / float(cam.fx[0])  # world-space tangential scale
    scales = torch.stack([s, s * torch.exp(0.3 * torch.randn(n, generator=gen)), 0.2 * s], -1)
    rot = torch.cat(
        [_frame_from_normals(normals), torch.linalg.qr(torch.randn(n - n_surf, 3, 3, generator=gen))[0]]
    )
    quats = rotmat_to_quat(rot * torch.sign(torch.linalg.det(rot))[:, None, None])
    opaque = torch.rand(n, generator=gen) < 0.6
    logits = torch.where(
        opaque, 3.0 + torch.randn(n, generator=gen), -2.0 + 1.5 * torch.randn(n, generator=gen)
    )
    sh = 0.1 * torch.randn(n, num_sh_bases(3), 3, generator=gen)
    sh[:, 0] = torch.randn(n, 3, generator=gen)
    return Gaussians(means, quats, scales.log(), logits, sh)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_case(
    scene: Scene, n: int, size: int, device: str = "cpu", backend: str = "torch", repeats: int = 5
) -> dict:
    """One (scene, N, size) case in this process; returns timings (s), peak memory and counts."""
    from pipelines.gaussians import render
    from pipelines.gaussians.raster_cpu import first_call_seconds

    torch.manual_seed(0)
    g = make_scene(scene, n).to(device)
    cams = bench_camera(size).to(device)
    tiny = make_scene(scene, 200).to(device)
    render(
        tiny.requires_grad_(), bench_camera(32).to(device), backend=backend
    ).rgb.sum().backward()  # load kernels
    with torch.no_grad():
        target = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1)).to(device)
    params = g.requires_grad_()

    def fwd():
        with torch.no_grad():
            return render(g, cams, backend=backend)

    def fwd_bwd():
        out = render(params, cams, backend=backend)
        (out.rgb - target).abs().mean().backward()
        for t in params.tensors().values():
            t.grad = None
        return out

    cpu_times: dict[str, list[float]] = {"fwd": [], "fwd_bwd": []}

    def cpu_timed(fn, key):
        def call():
            t0 = time.process_time()
            fn()
            cpu_times[key].append(time.process_time() - t0)

        return call

    base_rss = _rss_bytes()
    with peak_memory(device) as mem:
        t_fwd = Timing.of(time_calls(cpu_timed(fwd, "fwd"), device=device, warmup=1, repeats=repeats))
        t_fb = Timing.of(time_calls(cpu_timed(fwd_bwd, "fwd_bwd"), device=device, warmup=1, repeats=repeats))
    out = fwd()
    visible = int((out.meta["radii"] > 0).all(-1).sum())
    return {
        "scene": scene, "n": n, "size": size, "backend": backend, "device": device_description(device),
        "forward_s": t_fwd.median_s, "forward_min_s": t_fwd.min_s,
        "forward_backward_s": t_fb.median_s, "forward_backward_min_s": t_fb.min_s,
        "forward_cpu_s": statistics.median(cpu_times["fwd"][1:]),
        "forward_backward_cpu_s": statistics.median(cpu_times["fwd_bwd"][1:]),
        "peak_mem_gib": gib(mem.bytes), "rss_before_gib": gib(base_rss), "visible": visible,
        "alpha_mean": float(out.alpha.mean()), "first_call_s": first_call_seconds(),
        "rgb": out.rgb.detach().cpu() if device != "cpu" else None,
    }  # fmt: skip


def _cpu_render_rgb(scene: Scene, n: int, size: int) -> torch.Tensor:
    from pipelines.gaussians import render

    with torch.no_grad():
        return render(make_scene(scene, n), bench_camera(size), backend="torch").rgb


def main(
    n: tuple[int, ...] = (10_000, 100_000),
    size: tuple[int, ...] = (256, 512),
    scene: tuple[Scene, ...] = ("surface", "overlap"),
    device: Literal["cpu", "cuda"] = "cpu",
    repeats: int = 5,
    threads: int | None = None,
    json: Path | None = None,
) -> None:
    """Renderer timings. ``--device cuda`` times gsplat and reports PSNR(gsplat, ours) per scene."""
    from pipelines.metrics import psnr

    if threads is not None:
        torch.set_num_threads(threads)
    rows, results = [], []
    for sc in scene:
        for nn in n:
            for sz in size:
                if device == "cpu":
                    r = run_isolated("studio.bench.render:run_case", scene=sc, n=nn, size=sz, repeats=repeats)
                else:
                    r = run_case(sc, nn, sz, device="cuda", backend="gsplat", repeats=repeats)
                    ours = run_isolated("studio.bench.render:_cpu_render_rgb", scene=sc, n=nn, size=sz)
                    to_img = lambda t: t.permute(0, 3, 1, 2).clamp(0, 1)  # noqa: E731
                    r["psnr_vs_torch_db"] = float(psnr(to_img(r["rgb"]), to_img(ours)).min())
                r.pop("rgb", None)
                results.append(r)
                row = [sc, nn, f"{sz}x{sz}", r["forward_s"], r["forward_backward_s"],
                       r["forward_backward_cpu_s"], r["peak_mem_gib"], r["visible"]]  # fmt: skip
                if device == "cuda":
                    row.append(r["psnr_vs_torch_db"])
                rows.append(row)
    cols = ["scene", "N", "image", "fwd s", "fwd+bwd s", "fwd+bwd CPU s", "peak GiB", "visible"]
    cols += ["PSNR vs ours dB"] if device == "cuda" else []
    backend = "gsplat" if device == "cuda" else "torch (CPU)"
    title = f"render, backend {backend} on {device_description(device)}"
    print_table(title, cols, rows)
    from studio.console import console

    console.print(f"medians of {repeats} calls; CPU s = process CPU time (all threads); "
                  f"load average {os.getloadavg()}")  # fmt: skip
    save_results(json, {
        "benchmark": "render", "device": device_description(device), "machine": _cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
        "repeats": repeats, "results": results,
    })  # fmt: skip
