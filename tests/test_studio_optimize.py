"""The studio side of optimization without a browser: a job through the queue with live
splats in the scene slot, pause / resume / stop, cancel then continue, and the Optimize panel
(status, uPlot curves, buttons) following it."""

from __future__ import annotations

import time

import pytest
import viser
from studio_helpers import plain
from waits import eventually

from studio.app import TRAINING, Studio
from studio.bench.gaussian_scene import write_gaussian_capture
from studio.config import StudioConfig
from studio.workspace import list_runs
from viewer import names
from viewer.app import build_viewer
from viewer.panels.optimize import CONTINUE, SFM


@pytest.fixture
def setup(tmp_path, seed):
    ws = tmp_path / "ws"
    write_gaussian_capture(
        ws / "scene", seed=seed, num_gaussians=150, width=48, height=48, points=400, scale_range=(0.08, 0.25)
    )
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    studio = Studio(ws, config=StudioConfig(workspace=ws, browser_budget=10_000))
    studio.live_interval_s = 0.0
    studio.open_capture("scene")
    viewer = build_viewer(server, studio)
    yield studio, viewer, server
    studio.close()
    server.stop()


def wait_for(cond, timeout=60.0):
    """True once ``cond()`` holds within ``timeout`` s (stretched by the machine's load), else False."""
    try:
        eventually(cond, "condition", timeout=timeout, every=0.02)
    except AssertionError:
        return False
    return True


def test_optimize_job_shows_live_splats_pauses_and_stops(setup):
    studio, viewer, server = setup
    topics = []
    studio.subscribe(lambda t: topics.append(t) if t == TRAINING else None)
    shown_labels = []
    studio.subscribe(
        lambda t: (
            shown_labels.append(studio.shown["A"].label) if t == "scene" and "A" in studio.shown else None
        )
    )
    panel = viewer.optimize
    assert panel.start_from.value == SFM and not panel.start.disabled and panel.pause.disabled
    job = studio.submit_optimize(init="sfm", steps=100_000, slot="A")
    assert panel.start.disabled and not panel.stop.disabled
    with pytest.raises(ValueError, match="already queued or running"):
        studio.submit_optimize(init="sfm")
    # live: the splats appear in slot A while it trains, the loss curve grows
    assert wait_for(lambda: (t := studio.training) is not None and t.step >= 100 and len(t.loss_curve) >= 2)
    assert names.splats("A") in set(server.scene._handle_from_node_name)
    assert any("training, step" in label for label in shown_labels)
    t = studio.training
    assert t.state == "running" and t.preset == "cpu-fast" and "reduced preset" in (t.note or "")
    assert t.psnr_curve and t.psnr_curve[0][0] == 0  # the starting point of the PSNR curve
    # the studio's state changes before its subscribers (the panel) hear of it: wait for the panel
    assert wait_for(lambda: len(panel.loss_plot.data[0]) >= 2 and "Training" in plain(panel.status.content))
    steps, losses = panel.loss_plot.data
    assert len(steps) == len(losses) >= 2
    # pause: no progress while paused; the panel offers Resume
    panel_pause = panel.pause
    studio.pause_optimize()
    assert panel_pause.label == "Resume" and studio.training.state == "paused"
    time.sleep(0.3)
    at = studio.jobs.get(job.id).fraction
    time.sleep(0.5)
    assert studio.jobs.get(job.id).fraction == at
    studio.resume_optimize()
    assert panel.pause.label == "Pause"
    # stop: finish now, the run is written and shown in A
    studio.stop_optimize()
    final = studio.jobs.wait(job.id, 120)
    assert final.status == "done", final.error
    t = studio.training
    assert t.state == "done" and t.run_id is not None
    runs = {r.id: r for r in list_runs(studio.capture.root)}
    info = runs[t.run_id].info
    assert info["params"]["stopped_early"] and info["params"]["steps_done"] < 100_000
    assert studio.shown["A"].run_id == t.run_id
    assert (
        "Done" in plain(panel.status.content)
        and t.run_id in plain(panel.status.content)
        and not panel.start.disabled
    )
    assert t.run_id in panel.start_from.options  # a finished run can seed the next optimization
    assert topics


def test_cancel_keeps_a_checkpoint_and_continue_finishes(setup):
    studio, viewer, server = setup
    job = studio.submit_optimize(init="sfm", steps=300, slot="B")
    assert wait_for(lambda: (t := studio.training) is not None and t.step >= 50)
    studio.cancel_optimize()
    assert studio.jobs.wait(job.id, 60).status == "cancelled"
    t = studio.training
    assert t.state == "cancelled" and t.run_id in studio.resumable_runs()
    option = CONTINUE + t.run_id
    assert wait_for(lambda: option in viewer.optimize.start_from.options, 5)
    assert "Checkpoint kept" in plain(viewer.optimize.status.content)
    with pytest.raises(ValueError, match="no unfinished run"):
        studio.submit_optimize(resume="nope")
    again = studio.submit_optimize(resume=t.run_id, slot="B")
    assert studio.jobs.wait(again.id, 120).status == "done"
    assert studio.training.run_id == t.run_id and studio.resumable_runs() == []
    info = {r.id: r for r in list_runs(studio.capture.root)}[t.run_id].info
    assert info["params"]["steps_done"] == 300 and len(info["params"]["resumed_at"]) == 1


def test_failure_reaches_the_panel_with_the_reason(setup, monkeypatch):
    studio, viewer, _ = setup
    import studio.commands.optimize as cmd

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory at 2,000,000 Gaussians; lower the cap")

    monkeypatch.setattr(cmd, "optimize", broken)
    job = studio.submit_optimize(init="sfm")
    assert studio.jobs.wait(job.id, 30).status == "failed"
    assert wait_for(lambda: studio.training.state == "failed", 5)
    assert "lower the cap" in plain(viewer.optimize.status.content) and not viewer.optimize.start.disabled
