"""``lrm-studio bench geolrm``: GeoLRM inference time and peak memory against the number of views.

One case per view count: SV3D-like orbit cameras, random images, randomly initialised weights
(time and memory do not depend on the values), the anchor count forced to ``--anchors`` (the
highest occupancy logits, threshold ignored). The timed call is the whole network: both
encoders, the proposal transformer, anchor selection, the reconstruction transformer and the
Gaussian decoding. Synchronised timing after warm-up; peak memory from the CUDA allocator (total,
weights included, and above the weights), or on the CPU the peak-RSS growth in a fresh process.

Target (issue [geolrm], H100): 21 views, 16384 anchors, at most 6 GB peak and 0.5 s.

``--deform-backend`` picks the deformable cross-attention path (auto, torch, triton: our fused
kernel); several, comma separated, or ``all`` are timed side by side in one run
(``studio/bench/backends.py``).

Examples:
    lrm-studio bench geolrm --views 6,12,21                      # official size on CUDA
    lrm-studio bench geolrm --views 6,12,21 --precision bf16 --deform-backend torch,triton
    lrm-studio bench geolrm --device cpu --views 2,4             # tiny preset on the CPU
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import torch

from pipelines.models.runtime import resolve_device
from studio.bench.backends import (
    DEFORM_BACKENDS,
    deform_why_not,
    parse_backends,
    print_unavailable,
    side_by_side,
)
from studio.bench.common import (
    Timing,
    device_description,
    gib,
    peak_memory,
    print_table,
    run_bench_case,
    save_results,
    synchronize,
    time_calls,
    view_counts,
)
from studio.console import default_is

TARGET = {"views": 21, "anchors": 16384, "peak_gib": 6e9 / 2**30, "seconds": 0.5}


def _case(
    preset: str,
    views: int,
    anchors: int,
    device: str,
    precision: str,
    attention: str,
    image_size: int | None,
    warmup: int,
    repeats: int,
    seed: int = 0,
    deform_backend: str = "auto",
) -> dict:
    from pipelines.models.blocks.deformable_attention import deform_backend_of, set_deform_backend
    from pipelines.models.geolrm.config import PRESETS
    from pipelines.models.geolrm.model import GeoLRM, GeoLRMInputs
    from pipelines.models.geolrm.proposal import select_anchors
    from pipelines.models.geolrm.reconstructor import precision_context

    base = PRESETS[preset]
    cfg = replace(
        base,
        image_size=image_size or base.image_size,
        proposal=replace(base.proposal, attention=attention),
        reconstruction=replace(base.reconstruction, attention=attention),
    )
    anchors = min(anchors, cfg.grid_size**3)
    dev = torch.device(device)
    torch.manual_seed(seed)
    with torch.device(dev):
        net = GeoLRM(cfg).eval()
    set_deform_backend(net, deform_backend)  # type: ignore[arg-type]
    x = GeoLRMInputs.orbit(views, cfg.image_size, generator=torch.Generator().manual_seed(seed)).to(dev)
    stages: dict[str, float] = {}

    def run() -> int:
        with torch.no_grad(), precision_context(precision, dev):
            t0 = time.perf_counter()
            logits = net.proposal(x.images, x.c2w_gl, x.K_norm)
            sel = select_anchors(
                logits, max_anchors=anchors, cube_half=cfg.cube_half, threshold=float("-inf"), selection="top"
            )
            synchronize(dev)
            t1 = time.perf_counter()
            raw = net.reconstruction(x, sel.xyz)
            g = net.reconstruction.decoder.to_gaussians(sel.xyz[0], raw[0])
            synchronize(dev)
            stages["proposal_s"], stages["reconstruction_s"] = t1 - t0, time.perf_counter() - t1
        return g.num

    n_gaussians = run()
    times = time_calls(run, device=dev, warmup=warmup, repeats=repeats)
    total_peak = None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with peak_memory(dev) as peak:
        run()
    if dev.type == "cuda":
        total_peak = torch.cuda.max_memory_allocated(dev)
    t = Timing.of(times)
    return {
        "views": views,
        "backend": deform_backend,
        "deform": deform_backend_of(net, dev),
        "anchors": anchors,
        "image_size": cfg.image_size,
        "gaussians": n_gaussians,
        "median_s": t.median_s,
        "min_s": t.min_s,
        "max_s": t.max_s,
        "repeats": t.repeats,
        "proposal_s": stages["proposal_s"],
        "reconstruction_s": stages["reconstruction_s"],
        "peak_above_weights_bytes": peak.bytes,
        "peak_total_bytes": total_peak,
        "weights_bytes": sum(p.numel() * p.element_size() for p in net.parameters()),
    }


def main(
    views: str = "6,12,21",
    anchors: Annotated[int | None, default_is("16384 for official, the preset's cap otherwise")] = None,
    preset: Annotated[str | None, default_is("official on CUDA, tiny on the CPU")] = None,
    device: str = "auto",
    precision: Literal["fp32", "tf32", "bf16"] = "fp32",
    attention: Literal["official", "global"] = "official",
    image_size: Annotated[int | None, default_is("the preset's")] = None,
    warmup: int = 1,
    repeats: int = 5,
    isolate: bool = True,
    deform_backend: str = "auto",
    json: Path | None = None,
) -> int:
    """GeoLRM time and peak memory per number of input views.

    Args:
        views: comma-separated view counts.
        anchors: anchors (voxels) per case.
        preset: ``official`` or ``tiny``.
        device: ``cuda``, ``cpu`` or ``auto``.
        precision: fp32 (official), tf32 or bf16 (autocast).
        attention: ``official`` (the released code's path) or ``global`` (RoPE attention over anchors).
        image_size: square input side (official 448; the paper's 21-view
            SV3D path used 560).
        isolate: on the CPU, run each case in a fresh process so peak RSS is honest.
        deform_backend: deformable cross-attention path: auto, torch, triton (our fused kernel);
            several comma-separated (torch,triton) or ``all`` are timed side by side; one that
            cannot run on the device is reported as skipped.
        json: write the results here.
    """
    dev = str(resolve_device(device))
    preset = preset or ("official" if dev.startswith("cuda") else "tiny")
    if anchors is None:
        from pipelines.models.geolrm.config import PRESETS

        anchors = 16384 if preset == "official" else PRESETS[preset].max_anchors
    backends, unavailable = parse_backends(deform_backend, DEFORM_BACKENDS, lambda b: deform_why_not(b, dev))
    rows, results = [], []
    for backend, v in ((b, v) for b in backends for v in view_counts(views)):
        r = run_bench_case(
            "studio.bench.geolrm:_case", device=dev, isolate=isolate, preset=preset, views=v, anchors=anchors,
            precision=precision, attention=attention, image_size=image_size, warmup=warmup, repeats=repeats,
            deform_backend=backend,
        )  # fmt: skip
        results.append(r)
        peak = r["peak_total_bytes"] if r["peak_total_bytes"] is not None else r["peak_above_weights_bytes"]
        rows.append(
            [
                v,
                r["deform"],
                r["anchors"],
                r["image_size"],
                r["gaussians"],
                r["median_s"],
                r["min_s"],
                r["max_s"],
                r["proposal_s"],
                r["reconstruction_s"],
                gib(peak),
            ]
        )
    title = f"GeoLRM {preset}, {precision}, attention {attention}, {device_description(dev)}"
    peak_col = "peak GiB (total)" if dev.startswith("cuda") else "peak RSS growth GiB"
    print_table(
        title,
        [
            "views",
            "deform",
            "anchors",
            "image",
            "Gaussians",
            "median s",
            "min s",
            "max s",
            "proposal s",
            "reconstruction s",
            peak_col,
        ],
        rows,
    )
    comparison = None
    if len(backends) > 1:
        cols, table = side_by_side(results, backends, backend_key="backend")
        print_table("Deformable attention backends side by side (median s, whole network)", cols, table)
        comparison = {"columns": cols, "rows": table}
    print_unavailable(unavailable)
    payload = {
        "device": device_description(dev),
        "preset": preset,
        "precision": precision,
        "attention": attention,
        "backends": backends,
        "skipped_backends": unavailable,
        "target": TARGET,
        "results": results,
    }
    if comparison is not None:
        payload["side_by_side"] = comparison
    for r in results:
        if (
            preset == "official"
            and dev.startswith("cuda")
            and r["views"] == TARGET["views"]
            and r["anchors"] == TARGET["anchors"]
        ):
            met = {
                "peak": gib(r["peak_total_bytes"]) <= TARGET["peak_gib"],
                "time": r["median_s"] <= TARGET["seconds"],
            }
            if len(backends) == 1:
                payload["target_met"] = met
            else:
                payload.setdefault("target_met", {})[r["backend"]] = met
    save_results(json, payload)
    return 0
