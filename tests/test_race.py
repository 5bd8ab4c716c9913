"""Quality against wall time (studio/curves.py) and the race (studio/race.py): the bookkeeping of
the curves (times add up, they only grow), interpolation against a float64 brute force, and a
whole race on a small capture whose file loads."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
from studio_helpers import make_capture, make_run

from pipelines.capture.folder import Capture
from pipelines.fileio import write_json
from studio.curves import ahead_at_equal_time, initialisation_time, psnr_at, quality_curve, time_to_reach
from studio.race import RaceOptions, list_races, race, read_race
from studio.workspace import Run


def random_curve(rng: random.Random, start: float, n: int) -> list[dict]:
    t = start
    out = []
    for k in range(n):
        t += rng.uniform(0.1, 5.0)
        out.append({"step": 10 * k, "time_s": t, "psnr": rng.uniform(10, 35), "ssim": 0.5, "lpips": None})
    return out


def test_curve_times_add_up_and_only_grow(seed):
    rng = random.Random(seed)
    start = rng.uniform(0, 100)
    train = np.cumsum([rng.uniform(0.01, 3) for _ in range(8)])
    history = [[10 * k, 20 + k, 0.8, None, float(train[k])] for k in rng.sample(range(8), 8)]  # any order
    history.append([99, 30.0, 0.9, None])  # a row of a run written before times were recorded
    curve = quality_curve(history, start_s=start)
    assert [p["step"] for p in curve] == [10 * k for k in range(8)]
    np.testing.assert_allclose([p["time_s"] for p in curve], start + train)
    assert all(a["time_s"] < b["time_s"] for a, b in zip(curve, curve[1:], strict=False))


def test_interpolation_against_brute_force(seed):
    rng = random.Random(seed)
    a, b = random_curve(rng, rng.uniform(0, 20), 7), random_curve(rng, rng.uniform(0, 20), 5)
    for _ in range(50):
        t = rng.uniform(0, 60)
        ts, ps = [p["time_s"] for p in a], [p["psnr"] for p in a]
        want = float(np.interp(t, ts, ps)) if ts[0] <= t <= ts[-1] else None
        got = psnr_at(a, t)
        assert (got is None and want is None) or got == pytest.approx(want, abs=1e-9)
    # the first time a target PSNR is reached, by a fine float64 scan of the interpolated curve
    target = rng.uniform(10, 35)
    scan = np.linspace(a[0]["time_s"], a[-1]["time_s"], 200_001)
    values = np.interp(scan, [p["time_s"] for p in a], [p["psnr"] for p in a])
    hit = scan[np.argmax(values >= target)] if (values >= target).any() else None
    got = time_to_reach(a, target)
    if hit is None:
        assert got is None
    elif a[0]["psnr"] >= target:
        assert got == a[0]["time_s"]
    else:
        assert got == pytest.approx(hit, abs=(scan[1] - scan[0]) * 2)
    ahead = ahead_at_equal_time(a, b)
    t = min(a[-1]["time_s"], b[-1]["time_s"])
    if psnr_at(a, t) is None or psnr_at(b, t) is None:
        assert ahead is None
    else:
        assert ahead["time_s"] == t and ahead["ahead"] == ("A" if psnr_at(a, t) > psnr_at(b, t) else "B")


def test_initialisation_counts_sfm_and_the_starting_run(tmp_path, gen):
    cap = make_capture(tmp_path / "cap", 9, gen, points=50)
    gt = initialisation_time(Capture.load(cap.root), "sfm")
    assert gt["total_s"] == 0.0 and "no SfM time" in gt["note"]
    cap.meta = {**cap.meta, "sfm": {"camera": {}}, "timings": {"total_s": 12.5}}
    cap.save()
    run = make_run(cap.root, gen, method="long-lrm", info={"timings": {"total_s": 0.7, "command_s": 3.9}})
    refined = initialisation_time(Capture.load(cap.root), f"run:{run.name}")
    assert (refined["sfm_s"], refined["feed_forward_s"]) == (12.5, 0.7)
    assert refined["total_s"] == pytest.approx(13.2) and refined["note"] is None


@pytest.mark.slow
def test_a_race_on_a_small_capture(tmp_path, gen):
    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, width=64, height=48, points=200)
    cap.meta = {**cap.meta, "sfm": {"camera": {}}, "timings": {"total_s": 5.0}}  # as if SfM took 5 s
    cap.save()
    from pipelines.optimize.config import PRESETS

    assert PRESETS["cpu-fast"].steps > 30
    path = race(cap.root, replace(RaceOptions(), steps=30, evaluations=3, device="cpu"))
    assert list_races(cap.root) == [path]
    d = read_race(path)
    refined, sfm = d["contenders"]["refined"], d["contenders"]["sfm"]
    ff = Run.load(cap.root / "runs" / d["feed_forward"]["run"])
    assert refined["init_time"]["total_s"] == pytest.approx(5.0 + ff.info["timings"]["total_s"])
    assert sfm["init_time"]["total_s"] == 5.0
    for c in (refined, sfm):
        times = [p["time_s"] for p in c["curve"]]
        assert len(times) >= 3 and all(x < y for x, y in zip(times, times[1:], strict=False))
        assert times[0] >= c["init_time"]["total_s"]
        run = Run.load(cap.root / "runs" / c["run"])
        t = run.info["timings"]
        # the last point: the final evaluation, after every step
        assert times[-1] == pytest.approx(c["init_time"]["total_s"] + t["load_s"] + t["train_s"])
        assert run.info["curve"] == c["curve"]
    s = d["summary"]
    assert s["sfm_final_psnr"] == sfm["curve"][-1]["psnr"]
    assert s["refined_reaches_sfm_final_s"] == time_to_reach(refined["curve"], s["sfm_final_psnr"])
    assert s["ahead"] == ahead_at_equal_time(refined["curve"], sfm["curve"])
    assert all(math.isfinite(p["psnr"]) for p in refined["curve"] + sfm["curve"])


@pytest.mark.slow
def test_the_page_runs_a_race_and_shows_its_curves(tmp_path, gen):
    import viser

    from studio.app import Studio
    from studio.jobs import JobQueue
    from viewer.app import build_viewer
    from viewer.panels.compare import race_markdown

    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, width=64, height=48, points=200)
    studio = Studio(tmp_path / "ws", jobs=JobQueue())
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        studio.open_capture(cap.name)
        viewer = build_viewer(server, studio)
        assert studio.compare_state.race is None and not viewer.compare.race_image.visible
        job = studio.submit_race(replace(RaceOptions(), steps=20, evaluations=2, device="cpu"))
        assert studio.jobs.wait(job.id, timeout=300).status == "done"
        race_ = studio.compare_state.race
        assert race_ is not None and viewer.compare.race_image.visible
        assert viewer.compare.race_summary.content == race_markdown(race_)
        for bad in (replace(RaceOptions(), feed_forward="nope"), replace(RaceOptions(), steps=-5)):
            with pytest.raises(ValueError):
                studio.submit_race(bad)
        studio.open_capture(cap.name)  # reopened: the latest race comes back from disk
        assert studio.compare_state.race == race_
    finally:
        studio.close()
        server.stop()


def test_a_damaged_race_file_is_one_line(tmp_path):
    from pipelines.errors import InputError

    bad = tmp_path / "r.json"
    write_json(bad, {"contenders": {"refined": {"curve": [{"time_s": "x"}]}}})
    with pytest.raises(InputError, match="not a race file"):
        read_race(bad)
