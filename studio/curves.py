"""Quality against wall time: the curve every optimization run records, and what it started from.

An optimization's run.json holds ``curve``: its test PSNR / SSIM / LPIPS at every evaluation,
each with the step and ``time_s``, the seconds a user would have waited for that result from
the capture onwards:

    time_s = init_s + load_s + optimization seconds up to that step

- ``init_s`` (run.json ``init_time``): what the starting point cost. Cameras and sparse points
  from SfM cost the capture's SfM time (capture.json ``timings.total_s``: ingest + COLMAP; 0 for
  cameras from elsewhere: ground truth or an import, said in ``note``); a refined run also costs
  the run it starts from: a feed-forward model's inference (its run.json ``timings.total_s``) or,
  for a 3DGS run, its own ``total_s``.
- ``load_s``: the optimizer's loading of the images before its first step.
- optimization seconds: the steps only (the trainer's ``train_s``), not the evaluations,
  checkpoints and live updates, which only measure and show.

Examples:
    >>> init = initialisation_time(capture, "run:long-lrm-20260101-120000-ab12")     # doctest: +SKIP
    >>> curve = quality_curve(history["test"], start_s=init["total_s"] + load_s)       # doctest: +SKIP
    >>> psnr_at(curve, 30.0)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from pipelines.capture.folder import Capture
from studio.workspace import Run


def sfm_time(capture: Capture) -> tuple[float, str | None]:
    """(seconds SfM took for the capture's cameras and points, a note when that is not known)."""
    meta = capture.meta or {}
    total = (meta.get("timings") or {}).get("total_s")
    if meta.get("sfm") and isinstance(total, (int, float)):
        return float(total), None
    where = "ground truth" if meta.get("cameras") == "ground truth" else "made elsewhere (imported)"
    return 0.0, f"the capture's cameras are {where}: no SfM time counted"


def initialisation_time(capture: Capture, init: str) -> dict[str, Any]:
    """What a run starting from ``init`` ("sfm", "random" or "run:<id>") cost before its first
    step: {"sfm_s", "feed_forward_s" (the starting run's time, 0 for none), "total_s", "note"}."""
    sfm_s, note = sfm_time(capture)
    start_s = 0.0
    if init.startswith("run:"):
        run = Run.load(capture.runs_dir / init.removeprefix("run:"))
        t = (run.info.get("timings") or {}).get("total_s")
        start_s = float(t) if isinstance(t, (int, float)) else 0.0
    return {"sfm_s": sfm_s, "feed_forward_s": start_s, "total_s": sfm_s + start_s, "note": note}


def quality_curve(test_history: list[list], start_s: float) -> list[dict[str, Any]]:
    """run.json ``curve`` from the trainer's test history ([step, psnr, ssim, lpips, train_s]
    rows; rows of older runs without train_s are left out): points sorted by step with
    ``time_s = start_s + train_s``."""
    points = []
    for row in sorted(test_history, key=lambda r: r[0]):
        if len(row) < 5 or not isinstance(row[4], (int, float)):
            continue
        step, psnr, ssim, lpips, train_s = row[:5]
        time_s = float(start_s) + float(train_s)
        points.append({"step": int(step), "time_s": time_s, "psnr": psnr, "ssim": ssim, "lpips": lpips})
    return points


def psnr_at(curve: list[dict[str, Any]], time_s: float) -> float | None:
    """The curve's PSNR at ``time_s``, linearly interpolated between its points (None before its
    first point or after its last: the run was not there yet, or had ended)."""
    times = [p["time_s"] for p in curve]
    if not curve or time_s < times[0] or time_s > times[-1]:
        return None
    i = bisect.bisect_left(times, time_s)
    if times[i] == time_s:
        return float(curve[i]["psnr"])
    t0, t1 = times[i - 1], times[i]
    p0, p1 = float(curve[i - 1]["psnr"]), float(curve[i]["psnr"])
    return p0 + (p1 - p0) * (time_s - t0) / (t1 - t0)


def time_to_reach(curve: list[dict[str, Any]], psnr: float) -> float | None:
    """The first time the curve reaches ``psnr`` dB (interpolated between points), None if never."""
    for prev, p in zip([None, *curve], curve, strict=False):
        if float(p["psnr"]) >= psnr:
            if prev is None or not math.isfinite(float(prev["psnr"])):
                return float(p["time_s"])
            t0, p0, t1, p1 = prev["time_s"], float(prev["psnr"]), p["time_s"], float(p["psnr"])
            return t0 + (t1 - t0) * (psnr - p0) / (p1 - p0) if p1 > p0 else float(t1)
    return None


def ahead_at_equal_time(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Which of two curves is ahead at the latest time both reached (the earlier of their ends,
    when both had started by then): {"time_s", "a_psnr", "b_psnr", "ahead": "A" | "B" | "tie"},
    None when they never overlap in time."""
    if not a or not b:
        return None
    t = min(a[-1]["time_s"], b[-1]["time_s"])
    pa, pb = psnr_at(a, t), psnr_at(b, t)
    if pa is None or pb is None:
        return None
    ahead = "tie" if abs(pa - pb) < 0.01 else ("A" if pa > pb else "B")
    return {"time_s": t, "a_psnr": pa, "b_psnr": pb, "ahead": ahead}
