"""``lrm-studio bench render-video``: frames per second of a video rendered along a camera path
(render + labels + H.264 encode, written to a temporary MP4), one run and two side by side
(A | B), at 480p (854x480 per run) by default, on the CPU (our numba renderer) or CUDA (gsplat).

Gaussians: a run's (``--run RUN``, along its capture's automatic orbit; with ``--compare RUN2``
the A | B case shows both runs) or, without a run, the synthetic ``objects`` scene: N Gaussians
on the surfaces of five spheres standing on a ground disk (each a flat disc tangent to its
surface, sized so the surfaces are covered about twice, bimodal opacities as after training, SH
degree 3), seen along a closed orbit at 1.6x the ground radius, 30 degrees above the ground,
fov 50 degrees (the objects and the ground fill most of the frame). Every view sees the scene,
as an orbit around a captured object does.

Each case runs in a fresh process (``run_isolated``); a small render first loads the compiled
kernels; the process's peak RSS is reset before each video (Linux clear_refs) and read after.
Reported (medians of ``--repeats`` videos): frames per second end to end, milliseconds per
frame rendering (synchronized) and composing + encoding, process CPU time per frame (all
threads; less sensitive than wall time to other jobs on a shared machine) and peak memory.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Literal

import torch

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import num_sh_bases
from pipelines.paths import CameraPath, Keyframe
from studio.bench.common import device_description, gib, peak_memory, print_table, run_isolated, save_results
from studio.console import default_is

SPHERES = (
    (0.0, 0.0, 0.8),
    (1.6, 0.4, 0.5),
    (-1.4, 0.9, 0.6),
    (0.5, -1.5, 0.45),
    (-0.8, -1.2, 0.35),
)  # x, y, r
GROUND_R = 3.0


def objects_scene(n: int, seed: int = 0) -> Gaussians:
    """N Gaussians on five spheres (resting on z = 0) and a ground disk of radius 3, z up."""
    gen = torch.Generator().manual_seed(seed)
    areas = torch.tensor([4 * math.pi * r * r for _, _, r in SPHERES] + [math.pi * GROUND_R**2])
    counts = (areas / areas.sum() * n).floor().long()
    counts[-1] += n - int(counts.sum())
    means, normals, colors = [], [], []
    for (x, y, r), k in zip(SPHERES, counts[:-1].tolist(), strict=True):
        d = torch.nn.functional.normalize(torch.randn(k, 3, generator=gen), dim=-1)
        means.append(torch.tensor([x, y, r]) + r * d)
        normals.append(d)
        colors.append(torch.rand(1, 3, generator=gen).expand(k, 3) + 0.1 * torch.randn(k, 3, generator=gen))
    k = int(counts[-1])
    rad = GROUND_R * torch.rand(k, generator=gen).sqrt()
    ang = 2 * math.pi * torch.rand(k, generator=gen)
    means.append(torch.stack([rad * torch.cos(ang), rad * torch.sin(ang), torch.zeros(k)], -1))
    normals.append(torch.tensor([0.0, 0, 1]).expand(k, 3))
    checker = ((rad * torch.cos(ang) // 0.5 + rad * torch.sin(ang) // 0.5) % 2)[:, None]
    colors.append(0.3 + 0.4 * checker.expand(k, 3) + 0.05 * torch.randn(k, 3, generator=gen))
    means, normals, colors = torch.cat(means), torch.cat(normals), torch.cat(colors).clamp(0, 1)
    s = math.sqrt(2 * float(areas.sum()) / n / math.pi) * torch.exp(0.3 * torch.randn(n, generator=gen))
    scales = torch.stack([s, s * torch.exp(0.2 * torch.randn(n, generator=gen)), 0.15 * s], -1)
    helper = torch.where(normals[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]))
    u = torch.nn.functional.normalize(torch.linalg.cross(helper, normals, dim=-1), dim=-1)
    R = torch.stack([u, torch.linalg.cross(normals, u, dim=-1), normals], -1)
    from pipelines.transforms import rotmat_to_quat

    opaque = torch.rand(n, generator=gen) < 0.7
    logits = torch.where(
        opaque, 3.0 + torch.randn(n, generator=gen), -2.0 + 1.5 * torch.randn(n, generator=gen)
    )
    sh = 0.05 * torch.randn(n, num_sh_bases(3), 3, generator=gen)
    sh[:, 0] = (colors - 0.5) / 0.28209479177387814
    return Gaussians(means, rotmat_to_quat(R), scales.log(), logits, sh)


def objects_orbit(frames: int, width: int, height: int) -> CameraPath:
    """A closed orbit of ``frames`` frames (at 30 fps) around the objects scene."""
    n_keys = 12
    theta = torch.arange(n_keys, dtype=torch.float64) * (2 * math.pi / n_keys)
    radius, elev = 1.6 * GROUND_R, math.radians(30)
    eye = torch.stack(
        [
            radius * math.cos(elev) * torch.cos(theta),
            radius * math.cos(elev) * torch.sin(theta),
            torch.full_like(theta, radius * math.sin(elev)),
        ],
        -1,
    )
    target = torch.tensor([[0.0, 0.0, 0.4]], dtype=torch.float64).expand(n_keys, 3)
    cams = Cameras.look_at(
        eye, target, fov_y_deg=50.0, width=width, height=height, up=torch.tensor([0.0, 0, 1])
    )
    return CameraPath(
        tuple(Keyframe(c.double()) for c in cams.c2w),
        duration_s=frames / 30.0,
        fps=30.0,
        loop=True,
        default_fov_deg=50.0,
        width=width,
        height=height,
    )


def run_case(
    panels: int,
    n: int,
    width: int,
    height: int,
    frames: int,
    device: str = "cpu",
    run: str | None = None,
    compare: str | None = None,
    threads: int | None = None,
    repeats: int = 3,
) -> dict:
    """One case in this process: ``repeats`` videos of ``frames`` frames with ``panels`` (1 or 2)
    columns; returns medians: fps, stage times, process CPU time and peak memory during the
    video (CUDA: the allocator's peak above the start; CPU: the process's peak RSS, Gaussians,
    interpreter and libraries included)."""
    from pipelines.gaussians import render
    from pipelines.paths import orbit_path
    from pipelines.paths.video import Panel, render_video
    from studio.workspace import Run

    if threads is not None:
        torch.set_num_threads(threads)
    if run is None:
        g = [objects_scene(n, seed=0), objects_scene(n, seed=1)][:panels]
        path = objects_orbit(frames, width, height)
        labels = ["objects A", "objects B"][:panels]
        source = f"objects {n:,}"
    else:
        runs = [Run.load(run)] + ([Run.load(compare)] if compare else [])
        runs = (runs * 2)[:panels]
        g = [r.gaussians() for r in runs]
        from pipelines.capture.folder import Capture

        capture = Capture.load(runs[0].capture_root)
        pts = capture.load_points()
        path = orbit_path(
            capture.cameras, None if pts is None else pts[0], duration_s=frames / 30.0, fps=30.0
        )
        labels = [str(r.info.get("method", "?")) for r in runs]
        source = ", ".join(f"{r.id} ({x.num:,} Gaussians)" for r, x in zip(runs, g, strict=True))
    from dataclasses import replace

    path = replace(path, width=width, height=height)
    tiny = objects_scene(500).to(device)
    warm = Cameras.look_at(torch.tensor([[6.0, 0, 2]]), torch.zeros(1, 3), fov_y_deg=50, width=32, height=32)
    with torch.no_grad():  # load the compiled kernels (or gsplat's) before timing
        render(tiny, warm.to(device))
    panels_ = [Panel(x, lab) for x, lab in zip(g, labels, strict=True)]
    rows = []
    for _ in range(repeats):
        _reset_peak_rss()
        with tempfile.TemporaryDirectory() as tmp, peak_memory(device) as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            out = Path(tmp) / "bench.mp4"
            res = render_video(panels_, path, out, height=height, width=width, device=device)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            size = out.stat().st_size
        peak = mem.bytes if torch.device(device).type == "cuda" else _peak_rss()
        rows.append((wall, cpu, res.render_s, res.encode_s, peak, size))
    wall, cpu, render_s, encode_s, peak, size = (statistics.median(c) for c in zip(*rows, strict=True))
    f = res.frames
    return {
        "panels": panels, "n": n if run is None else [x.num for x in g], "source": source,
        "width": width, "height": height, "frames": f, "device": device_description(device),
        "repeats": repeats,
        "fps": f / wall, "fps_all": [f / r[0] for r in rows], "wall_s": wall, "cpu_s": cpu,
        "render_s": render_s, "encode_s": encode_s,
        "render_ms_per_frame": 1000 * render_s / f, "encode_ms_per_frame": 1000 * encode_s / f,
        "cpu_ms_per_frame": 1000 * cpu / f, "peak_mem_gib": gib(peak), "mp4_bytes": int(size),
    }  # fmt: skip


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS (VmHWM; Linux: write 5 to clear_refs) and return the RSS
    now, in bytes, so the next reading of :func:`_peak_rss` is the peak of what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status_kib("VmRSS:") * 1024


def _peak_rss() -> int:
    return _status_kib("VmHWM:") * 1024


def main(
    n: tuple[int, ...] = (100_000, 500_000),
    height: int = 480,
    width: int = 854,
    frames: int = 24,
    panels: tuple[int, ...] = (1, 2),
    repeats: int = 3,
    device: Literal["cpu", "cuda"] = "cpu",
    run: Path | None = None,
    compare: Annotated[Path | None, default_is("the same run twice")] = None,
    threads: Annotated[int | None, default_is("torch's")] = None,
    json: Path | None = None,
) -> None:
    """Video frames per second along a path (render + labels + encode), per run and A | B.

    Args:
        n: Gaussians per run of the synthetic scene (ignored with --run).
        height: frame height per run (480: 480p).
        width: frame width per run (854 for 480p at 16:9).
        frames: frames per measured video (after a warm-up render).
        panels: 1 (one run) and/or 2 (A | B side by side).
        repeats: videos per case; medians are reported.
        device: cpu (our renderer) or cuda (gsplat).
        run: measure this run's Gaussians along its capture's orbit instead of the synthetic scene.
        compare: a second run for the A | B case.
        threads: torch threads.
        json: write the results here.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    rows, results = [], []
    sizes = (0,) if run is not None else n
    for nn in sizes:
        for p in panels:
            r = run_isolated(
                "studio.bench.render_video:run_case", panels=p, n=nn, width=width, height=height,
                frames=frames, device=device, run=None if run is None else str(run),
                compare=None if compare is None else str(compare), threads=threads, repeats=repeats,
            )  # fmt: skip
            results.append(r)
            rows.append([r["source"], "A | B" if p == 2 else "one run", f"{p * width}x{height}", r["frames"],
                         r["fps"], r["render_ms_per_frame"], r["encode_ms_per_frame"], r["cpu_ms_per_frame"],
                         r["peak_mem_gib"]])  # fmt: skip
    title = f"video along a path, {device_description(device)}"
    cols = ["Gaussians", "content", "frame", "frames", "fps", "render ms", "compose+encode ms", "CPU ms"]
    cols.append("peak GiB")
    print_table(title, cols, rows)
    from studio.console import console

    console.print(
        f"medians of {repeats} videos; fps end to end (render + labels + libx264); ms per frame; CPU ms = "
        f"process CPU time over all threads; load average {os.getloadavg()}"
    )
    save_results(
        json,
        {
            "benchmark": "render-video",
            "device": device_description(device),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg": os.getloadavg(),
            "results": results,
        },
    )
