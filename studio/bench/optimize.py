"""``lrm-studio bench optimize``: the 3DGS optimizer's speed (and, on CUDA, its parity with gsplat).

CPU (always): steps per second of :class:`pipelines.optimize.Trainer` at 128x128 with a fixed
20k Gaussians (densification off, so N stays put; SH degree 3 from the start, the costliest
case): a scene of known Gaussians is rendered into 24 views in memory, 20k Gaussians sampled
from it are the init, and after ``warmup`` steps ``repeats`` windows of ``window`` steps are
timed; the median window gives steps/s. The load average is printed beside it (the development
VM is shared).

``--preset-run``: the whole ``cpu-fast`` preset (3000 steps, <= 128 px, <= 20k Gaussians) on a
capture rendered from known Gaussians (``studio.bench.gaussian_scene``, 128x128, 24 views):
wall time and test PSNR over the steps (the README's "Measured" figures).

CUDA (``--device cuda``): on the same capture (``--size``, default 512x512), ours (``Trainer``
with the cuda-30k settings, ``--steps`` steps, gsplat kernels through ``render``) against a
re-implementation of gsplat's simple_trainer loop calling gsplat directly (``rasterization``,
fused Adam, ExponentialLR on the means, ``DefaultStrategy`` with the opacity reset that gsplat
main has, fused_ssim when installed, else our torch SSIM as ours uses), in the same process,
same init and seed: time per 1k steps and final test PSNR of each, their ratio and difference
(target: time ratio <= 1.1, PSNR within 0.2 dB). Needs a GPU; run by scripts/gpu_checks.sh.

Examples:
    >>> main(device="cpu")               # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch

from pipelines.gaussians import Gaussians, render
from pipelines.optimize import Trainer, TrainingData, init_from_points, load_training_data, preset
from pipelines.transforms import quat_to_rotmat
from studio.bench.common import device_description, print_table, save_results
from studio.bench.gaussian_scene import random_scene, sphere_cameras, write_gaussian_capture


def memory_scene(
    size: int, views: int = 24, num_gt: int = 1500, seed: int = 0
) -> tuple[TrainingData, Gaussians]:
    """Views of a known-Gaussian scene rendered in memory (every 8th one held out) and the GT."""
    gen = torch.Generator().manual_seed(seed)
    gt = random_scene(num_gt, gen)
    cams = sphere_cameras(views, width=size, height=size, generator=gen)
    with torch.no_grad():
        images = torch.cat([render(gt, cams[i], backend="torch").rgb.clamp(0, 1) for i in range(views)])
    test = [i for i in range(views) if i % 8 == 0]
    train = [i for i in range(views) if i % 8 != 0]
    return TrainingData(images[train], cams[train], images[test], cams[test], all_cameras=cams), gt


def sample_init(gt: Gaussians, n: int, seed: int = 1) -> Gaussians:
    """n Gaussians at samples of the GT Gaussians (as SfM points would lie), gsplat's init."""
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, gt.num, (n,), generator=gen)
    z = torch.randn(n, 3, generator=gen) * gt.scales()[pick]
    xyz = gt.means[pick] + (quat_to_rotmat(gt.quats[pick]) @ z[:, :, None])[:, :, 0]
    return init_from_points(xyz, gt.colors_dc()[pick], generator=gen)


def cpu_steps_per_second(
    size: int = 128, num: int = 20_000, warmup: int = 10, window: int = 20, repeats: int = 5
) -> dict:
    """Median steps/s of the trainer on the CPU at ``size``^2 with ``num`` Gaussians."""
    data, gt = memory_scene(size)
    cfg = replace(
        preset("cpu-fast"),
        steps=10**9,
        sh_degree_interval=1,  # degree 3 from step 3 on
        densify=replace(preset("cpu-fast").densify, refine_start_iter=10**9),
        live_every=0,
        eval_every=0,
        checkpoint_every=0,
    )
    trainer = Trainer(data, sample_init(gt, num), cfg, device="cpu")
    for _ in range(warmup):
        trainer.train_step()
    windows, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(window):
            trainer.train_step()
        windows.append((time.perf_counter() - t0) / window)
        cpu.append((time.process_time() - c0) / window)
    step_s = statistics.median(windows)
    assert trainer.num_gaussians == num, trainer.num_gaussians
    return {
        "size": size,
        "num_gaussians": num,
        "step_s_median": step_s,
        "step_s_min": min(windows),
        "step_s_max": max(windows),
        "steps_per_s": 1.0 / step_s,
        "cpu_s_per_step_median": statistics.median(cpu),  # process CPU time, all threads
        "window": window,
        "repeats": repeats,
        "skipped": len(trainer.skipped),
    }


def run_cpu_preset(size: int = 128, seed: int = 0) -> dict:
    """The full cpu-fast preset through ``lrm-studio optimize``'s function on a known-Gaussian
    capture; wall time and the test-PSNR curve."""
    from studio.commands.optimize import optimize
    from studio.workspace import Run

    with tempfile.TemporaryDirectory() as tmp:
        capture, _ = write_gaussian_capture(Path(tmp) / "scene", seed=seed, width=size, height=size)
        t0 = time.perf_counter()
        run = optimize(capture.root, preset="cpu-fast", device="cpu")
        wall = time.perf_counter() - t0
        info = Run.load(run).info
    return {
        "wall_s": wall,
        "train_s": info["timings"]["train_s"],
        "steps": info["params"]["steps_done"],
        "num_gaussians": info["num_gaussians"],
        "init_psnr": info["params"]["init_test"]["psnr"],
        "test": info["metrics"]["test"],
        "psnr_curve": [[s, p] for s, p, *_ in info["history"]["test"]],
        "note": info["params"]["reduced"],
    }


def _reference_simple_trainer(
    data: TrainingData, init: Gaussians, steps: int, seed: int, device: torch.device
):
    """gsplat's simple_trainer default loop, written against gsplat directly (batch size 1,
    packed=False, classic rasterization, black background). Returns (Gaussians, train seconds)."""
    import gsplat
    from gsplat.strategy import DefaultStrategy
    from gsplat.strategy.ops import reset_opa

    from pipelines.metrics import ssim as torch_ssim
    from pipelines.optimize.init import scene_scale

    try:
        from fused_ssim import fused_ssim

        def ssim_fn(a, b):
            return fused_ssim(a, b, padding="valid")
    except ImportError:

        def ssim_fn(a, b):
            return torch_ssim(a, b).mean()

    sc = scene_scale(data.all_cameras)
    splats = torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(init.means.clone()),
            "scales": torch.nn.Parameter(init.log_scales.clone()),
            "quats": torch.nn.Parameter(init.quats.clone()),
            "opacities": torch.nn.Parameter(init.opacity_logits.clone()),
            "sh0": torch.nn.Parameter(init.sh[:, :1].clone()),
            "shN": torch.nn.Parameter(init.sh[:, 1:].clone()),
        }
    ).to(device)
    lrs = {
        "means": 1.6e-4 * sc,
        "scales": 5e-3,
        "quats": 1e-3,
        "opacities": 5e-2,
        "sh0": 2.5e-3,
        "shN": 2.5e-3 / 20,
    }
    optimizers = {
        k: torch.optim.Adam(
            [{"params": splats[k], "lr": lr, "name": k}], eps=1e-15, betas=(0.9, 0.999), fused=True
        )
        for k, lr in lrs.items()
    }
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / steps))
    strategy = DefaultStrategy()
    strategy.check_sanity(splats, optimizers)
    state = strategy.initialize_state(scene_scale=sc)
    images = data.train_images.to(device)
    c2w, Ks = data.train_cameras.c2w.to(device), data.train_cameras.K.to(device)
    W, H = data.width, data.height
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for step in range(steps):
        if not order:
            order = torch.randperm(len(images), generator=gen).tolist()
        i = order.pop(0)
        colors, alphas, info = gsplat.rasterization(
            means=splats["means"],
            quats=splats["quats"],
            scales=torch.exp(splats["scales"]),
            opacities=torch.sigmoid(splats["opacities"]),
            colors=torch.cat([splats["sh0"], splats["shN"]], 1),
            viewmats=torch.linalg.inv(c2w[i : i + 1]),
            Ks=Ks[i : i + 1],
            width=W,
            height=H,
            sh_degree=min(step // 1000, 3),
            packed=False,
            rasterize_mode="classic",
        )
        strategy.step_pre_backward(splats, optimizers, state, step, info)
        gt = images[i : i + 1]
        l1 = torch.nn.functional.l1_loss(colors, gt)
        ssim_loss = 1.0 - ssim_fn(colors.permute(0, 3, 1, 2), gt.permute(0, 3, 1, 2))
        loss = torch.lerp(l1, ssim_loss, 0.2)
        loss.backward()
        loss.item()  # simple_trainer reads the loss every step for its progress bar
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        strategy.step_post_backward(splats, optimizers, state, step, info, packed=False)
        if 0 < step < strategy.refine_stop_iter and step % strategy.reset_every == 0:  # as gsplat main
            reset_opa(splats, optimizers, state, value=strategy.prune_opa * 2.0)
    torch.cuda.synchronize(device)
    train_s = time.perf_counter() - t0
    g = Gaussians(
        splats["means"].detach(),
        splats["quats"].detach(),
        splats["scales"].detach(),
        splats["opacities"].detach(),
        torch.cat([splats["sh0"], splats["shN"]], 1).detach(),
    )
    return g, train_s


def cuda_parity(size: int = 512, steps: int = 7000, seed: int = 0, num_gt: int = 5000) -> dict:
    """Ours vs the simple_trainer re-implementation on one capture (see the module docstring)."""
    from pipelines.evaluation import evaluate

    device = torch.device("cuda", torch.cuda.current_device())
    with tempfile.TemporaryDirectory() as tmp:
        capture, _ = write_gaussian_capture(
            Path(tmp) / "scene", seed=seed, width=size, height=size, num_gaussians=num_gt, points=20_000
        )
        data = load_training_data(capture)
        xyz, rgb = capture.load_points()
    init = init_from_points(
        torch.from_numpy(xyz),
        torch.from_numpy(rgb).float() / 255,
        generator=torch.Generator().manual_seed(seed),
    )
    cfg = replace(preset("cuda-30k"), steps=steps, live_every=0, eval_every=0, checkpoint_every=0, seed=seed)
    out = {}
    for name in ("ours", "simple_trainer"):
        torch.cuda.empty_cache()
        if name == "ours":
            trainer = Trainer(data, init, cfg, device=device)
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            torch.cuda.synchronize(device)
            train_s, g = time.perf_counter() - t0, trainer.gaussians().to(device)
        else:
            g, train_s = _reference_simple_trainer(data, init, steps, seed, device)
        res = evaluate(g, data.test_cameras.to(device), data.test_images.to(device)).summary()
        out[name] = {
            "per_1k_steps_s": 1000 * train_s / steps,
            "psnr": res["psnr"],
            "ssim": res["ssim"],
            "num": g.num,
        }
    out["time_ratio"] = out["ours"]["per_1k_steps_s"] / out["simple_trainer"]["per_1k_steps_s"]
    out["psnr_diff_db"] = out["ours"]["psnr"] - out["simple_trainer"]["psnr"]
    out.update(size=size, steps=steps, views=len(data.train_cameras) + len(data.test_cameras))
    return out


def main(
    device: Literal["cpu", "cuda"] = "cpu",
    size: int = 128,
    gaussians: int = 20_000,
    window: int = 20,
    repeats: int = 5,
    preset_run: bool = False,
    cuda_size: int = 512,
    steps: int = 7000,
    threads: int | None = None,
    json: Path | None = None,
) -> None:
    """Optimizer benchmark: CPU steps/s; ``--preset-run`` the whole cpu-fast preset; on
    ``--device cuda`` ours vs gsplat's simple_trainer loop (time per 1k steps, test PSNR)."""
    from studio.console import console

    if threads is not None:
        torch.set_num_threads(threads)
    payload: dict = {
        "benchmark": "optimize",
        "device": device_description(device),
        "torch_threads": torch.get_num_threads(),
    }
    speed = cpu_steps_per_second(size, gaussians, window=window, repeats=repeats)
    payload["cpu"] = speed
    print_table(
        f"optimizer step on {device_description('cpu')}",
        ["image", "Gaussians", "step s (median)", "min", "max", "steps/s", "CPU s/step"],
        [
            [
                f"{size}x{size}",
                gaussians,
                speed["step_s_median"],
                speed["step_s_min"],
                speed["step_s_max"],
                speed["steps_per_s"],
                speed["cpu_s_per_step_median"],
            ]
        ],
    )
    console.print(
        f"median of {repeats} windows of {window} steps, SH degree 3, no densification; CPU s = process "
        "CPU time over all threads (less sensitive to other load than wall time); "
        f"load average {os.getloadavg()}"
    )
    if preset_run:
        r = run_cpu_preset(size=128)
        payload["preset_run"] = r
        curve = ", ".join(f"{s}: {p:.2f}" for s, p in r["psnr_curve"])
        console.print(
            f"cpu-fast preset on a 128x128 known-Gaussian capture: {r['wall_s']:.0f} s wall "
            f"({r['train_s']:.0f} s training), {r['num_gaussians']:,} Gaussians, "
            f"test PSNR {r['init_psnr']:.2f} -> {r['test']['psnr']:.2f} dB, SSIM {r['test']['ssim']:.3f}\n"
            f"  PSNR by step: {curve}"
        )
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device")
        p = cuda_parity(size=cuda_size, steps=steps)
        payload["cuda"] = p
        print_table(
            f"ours vs gsplat simple_trainer loop, {cuda_size}x{cuda_size}, {steps} steps, "
            f"{device_description('cuda')}",
            ["trainer", "s per 1k steps", "test PSNR dB", "SSIM", "Gaussians"],
            [
                [n, p[n]["per_1k_steps_s"], p[n]["psnr"], p[n]["ssim"], p[n]["num"]]
                for n in ("ours", "simple_trainer")
            ],
        )
        ok = p["time_ratio"] <= 1.1 and abs(p["psnr_diff_db"]) <= 0.2
        console.print(
            f"time ratio {p['time_ratio']:.3f} (target <= 1.1), PSNR difference {p['psnr_diff_db']:+.2f} dB "
            f"(target within 0.2): {'met' if ok else 'NOT met'}"
        )
    payload["load_avg"] = os.getloadavg()
    save_results(json, payload)
