"""Studio state without a browser: workspace listing, opening captures, runs, scene slots,
thumbnails, the demo install and the topics subscribers hear."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from studio_helpers import make_capture, make_run

from pipelines.capture.images import read_image
from studio.app import CAPTURE, CAPTURES, RUNS, SCENE, Studio, open_studio
from studio.config import WORKSPACE_ENV, StudioConfig, default_workspace
from studio.demo import install_demo
from studio.workspace import new_run_dir, update_run_info


@pytest.fixture
def studio(tmp_path):
    s = Studio(tmp_path / "ws")
    yield s
    s.close()


def test_workspace_listing(studio, gen, seed):
    rng = random.Random(seed)
    names = rng.sample(["alpha", "beta", "kitchen", "garden", "z-last", "0first"], rng.randint(2, 5))
    for name in names:
        make_capture(studio.workspace / name, rng.randint(2, 4), gen, points=0)
    # Not captures: uploads, a folder without cameras.json, a stray file.
    (studio.workspace / "uploads").mkdir()
    (studio.workspace / "half-copied").mkdir()
    (studio.workspace / "half-copied" / "images").mkdir()
    (studio.workspace / "notes.txt").write_text("x")
    assert studio.captures() == sorted(names)


def test_runs_listing_with_method_time_metrics(studio, gen):
    make_capture(studio.workspace / "cap", 3, gen, points=0)
    studio.open_capture("cap")
    assert studio.runs() == []
    a = make_run(studio.workspace / "cap", gen, method="long-lrm", n=20,
                 info={"timings": {"total_s": 2.25}, "device": "cpu"})  # fmt: skip
    time.sleep(0.01)
    b = make_run(studio.workspace / "cap", gen, method="3dgs", n=30)
    update_run_info(b, metrics={"test": {"psnr": 27.5, "ssim": 0.875, "lpips": None}})
    new_run_dir(studio.workspace / "cap", "geolrm")  # unfinished: no run.json, never listed
    rows = {r.id: r for r in studio.run_summaries()}
    assert set(rows) == {a.name, b.name}
    ra, rb = rows[a.name], rows[b.name]
    assert (ra.method, ra.total_s, ra.num_gaussians, ra.psnr, ra.ssim, ra.device) == (
        "long-lrm",
        2.25,
        20,
        None,
        None,
        "cpu",
    )
    assert (rb.method, rb.num_gaussians, rb.psnr, rb.ssim) == ("3dgs", 30, 27.5, 0.875)
    assert studio.run_ply(b.name) == b / "gaussians.ply"


def test_unknown_capture_and_run_ids_are_refused(studio, gen):
    make_capture(studio.workspace / "cap", 2, gen, points=0)
    outside = studio.workspace.parent / "outside"
    make_capture(outside, 2, gen, points=0)
    for bad in ["nope", "../outside", str(outside), "cap/.."]:
        with pytest.raises(ValueError, match="no capture"):
            studio.open_capture(bad)
    with pytest.raises(ValueError, match="no capture is open"):
        studio.run_ply("x")
    studio.open_capture("cap")
    run = make_run(studio.workspace / "cap", gen, n=5)
    for bad in ["nope", "../runs/" + run.name, str(run)]:
        with pytest.raises(ValueError, match="no finished run"):
            studio.delete_run(bad)
    assert run.exists()


def test_new_capture_names_stay_in_the_workspace(studio, gen):
    assert studio.new_capture_dir("../../etc/My Garden") == studio.workspace / "My_Garden"
    assert studio.new_capture_dir("..") == studio.workspace / "upload"
    make_capture(studio.workspace / "kitchen", 2, gen, points=0)
    with pytest.raises(ValueError, match="exists in the workspace"):
        studio.new_capture_dir("kitchen")


def test_scene_slots_and_topics(studio, gen):
    heard: list[str] = []
    studio.subscribe(heard.append)
    make_capture(studio.workspace / "one", 2, gen, points=0)
    make_capture(studio.workspace / "two", 2, gen, points=0)
    studio.open_capture("one")
    assert heard == [CAPTURE, RUNS, SCENE]
    r1 = make_run(studio.workspace / "one", gen, n=11)
    r2 = make_run(studio.workspace / "one", gen, n=13)
    heard.clear()
    shown = studio.show_run(r1.name, "A")
    studio.show_run(r2.name, "B")
    assert heard == [SCENE, SCENE]
    assert shown.gaussians.num == 11 and studio.shown["B"].gaussians.num == 13
    assert studio.shown["A"].run_id == r1.name and "3dgs" in studio.shown["A"].label
    with pytest.raises(ValueError, match="unknown slot"):
        studio.show_run(r1.name, "C")
    heard.clear()
    studio.delete_run(r2.name)  # shown in B: leaves the scene
    assert heard == [RUNS, SCENE] and set(studio.shown) == {"A"} and not r2.exists()
    heard.clear()
    studio.hide("B")  # nothing there: silent
    studio.hide("A")
    assert heard == [SCENE] and studio.shown == {}
    studio.show_run(r1.name, "A")
    studio.open_capture("two")  # another world frame: slots cleared
    assert studio.shown == {}
    heard.clear()
    studio.rescan()
    assert heard == [CAPTURES, RUNS]


def test_thumbnails_keep_aspect_and_content(studio, gen):
    cap = make_capture(studio.workspace / "cap", 3, gen, width=96, height=64, points=0)
    studio.open_capture("cap")
    thumbs = studio.thumbnails(48)
    assert len(thumbs) == 3
    for fp, t in zip(cap.file_paths, thumbs, strict=True):
        assert t.shape == (32, 48, 3) and t.dtype == np.uint8
        full = read_image(cap.root / fp).astype(np.float64)
        # Antialiased downsampling keeps the mean colour.
        np.testing.assert_allclose(t.reshape(-1, 3).mean(0), full.reshape(-1, 3).mean(0), atol=2.0)
    assert studio.thumbnails(48) is thumbs  # cached


def test_demo_is_installed_once_and_opened(tmp_path, gen):
    source = tmp_path / "assets-demo"
    make_capture(source, 3, gen)
    make_run(source, gen, n=4)  # runs of the asset folder are not copied
    ws = tmp_path / "ws"
    target = install_demo(ws, source=source)
    assert target == ws / "demo"
    assert sorted(p.name for p in target.iterdir()) == [
        "cameras.json",
        "capture.json",
        "images",
        "points.ply",
    ]
    assert (target / "images" / "000000.png").read_bytes() == (source / "images" / "000000.png").read_bytes()
    (target / "marker").write_text("kept")
    assert install_demo(ws, source=source) == target and (target / "marker").exists()  # not copied again
    assert install_demo(tmp_path / "ws2", source=tmp_path / "missing") is None
    assert not [p for p in ws.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_open_studio_picks_capture(tmp_path, gen, monkeypatch):
    ws = tmp_path / "ws"
    make_capture(ws / "b", 2, gen, points=0)
    make_capture(ws / "a", 2, gen, points=0)
    s = open_studio(StudioConfig(workspace=ws, demo=False))
    assert s.capture is not None and s.capture.name == "a"
    s.close()
    s = open_studio(StudioConfig(workspace=ws, demo=False, capture="b"))
    assert s.capture.name == "b"
    s.close()
    make_capture(ws / "demo", 2, gen, points=0)
    s = open_studio(StudioConfig(workspace=ws))
    assert s.capture.name == "demo"
    s.close()
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "from-env"))
    assert default_workspace() == tmp_path / "from-env"
    monkeypatch.delenv(WORKSPACE_ENV)
    monkeypatch.chdir(tmp_path)
    assert StudioConfig().resolved_workspace() == (tmp_path / "lrm-studio-workspace").resolve()


def test_job_results_are_written_back_as_runs(studio, gen):
    """The pattern every pipeline job follows: compute in the job, write the run in on_done,
    announce it; all tabs hear RUNS."""
    make_capture(studio.workspace / "cap", 2, gen, points=0)
    studio.open_capture("cap")
    heard: list[str] = []
    studio.subscribe(heard.append)

    from pipelines.gaussians import Gaussians
    from studio.workspace import write_run

    def compute(progress, cancel):
        progress(0.5, "computing")
        return Gaussians.random(9, generator=torch.Generator().manual_seed(1))

    def write_back(g):
        write_run(new_run_dir(studio.capture.root, "test"), g, {"method": "test"})
        studio.runs_changed()

    job = studio.jobs.submit("test run", compute, on_done=write_back)
    assert studio.jobs.wait(job.id, 10).status == "done"
    assert heard == [RUNS]
    assert [r.num_gaussians for r in studio.run_summaries()] == [9]


@pytest.fixture
def standin_sfm(monkeypatch, gen):
    """Stand-ins for the SfM pipeline's studio entry (studio.captures.sfm_to_workspace) and
    its IngestConfig, with the same signatures: they build a small capture folder with stage
    progress, so the studio's wiring (job, progress, write-back, opening) is tested here; the
    pipeline itself is tested with pycolmap in its own tests."""
    import sys
    import types
    from dataclasses import dataclass

    calls = []

    @dataclass(frozen=True)
    class IngestConfig:
        max_frames: int = 150

    def sfm_to_workspace(
        input, workspace, *, name=None, ingest_config=None, progress=None, cancel=None, **kw
    ):
        calls.append(
            {"input": input, "workspace": workspace, "name": name, "max_frames": ingest_config.max_frames}
        )
        for i, stage in enumerate(["ingest: frames", "SfM features", "SfM matching", "SfM mapping"]):
            cancel.check()
            if "fail" in str(input):
                raise ValueError(f"{input}: only 2 of 30 frames registered; film with more overlap")
            progress(i / 4, stage)
        return make_capture(Path(workspace) / name, 3, gen, points=10)

    ingest = types.ModuleType("pipelines.capture.ingest")
    ingest.IngestConfig = IngestConfig
    captures = types.ModuleType("studio.captures")
    captures.sfm_to_workspace = sfm_to_workspace
    monkeypatch.setitem(sys.modules, "pipelines.capture.ingest", ingest)
    monkeypatch.setitem(sys.modules, "studio.captures", captures)
    return calls


def test_ingest_and_sfm_job_opens_the_new_capture(tmp_path, standin_sfm, gen):
    from dataclasses import replace

    from studio.jobs import JobQueue

    ws = tmp_path / "ws"
    config = StudioConfig(workspace=ws, allow_path=(Path("/data"),))  # the stand-in's "videos"
    studio = Studio(
        ws, config=config, jobs=JobQueue(progress_interval_s=0.0)
    )  # every stage reaches listeners
    make_capture(studio.workspace / "old", 2, gen, points=0)
    studio.open_capture("old")
    studio.capabilities = replace(studio.capabilities, sfm=True)
    heard = []
    studio.subscribe(heard.append)
    seen = []
    studio.jobs.add_listener(lambda s: seen.append(s.message))
    job = studio.submit_sfm("/data/walk.mp4", name="My Walk!", max_frames=42)
    assert job.title == "Ingest + SfM: My_Walk_"
    final = studio.jobs.wait(job.id, 10)
    assert final.status == "done", final.error
    assert standin_sfm == [
        {"input": Path("/data/walk.mp4"), "workspace": studio.workspace, "name": "My_Walk_", "max_frames": 42}
    ]
    assert studio.capture.name == "My_Walk_" and "My_Walk_" in studio.captures()
    assert heard[:2] == [CAPTURES, CAPTURE]
    assert [m for m in seen if m.startswith(("ingest", "SfM"))] == [
        "ingest: frames",
        "SfM features",
        "SfM matching",
        "SfM mapping",
    ]
    with pytest.raises(ValueError, match="exists in the workspace"):
        studio.submit_sfm("/data/walk.mp4", name="My_Walk_", max_frames=42)

    bad = studio.jobs.wait(studio.submit_sfm("/data/fail.mp4", name="bad", max_frames=10).id, 10)
    assert bad.status == "failed" and "only 2 of 30 frames registered" in bad.error
    assert studio.capture.name == "My_Walk_" and "bad" not in studio.captures()
    studio.close()


def test_sfm_is_refused_without_the_pipeline(studio):
    from dataclasses import replace

    studio.capabilities = replace(studio.capabilities, sfm=False)
    with pytest.raises(ValueError, match="no SfM pipeline"):
        studio.submit_sfm("/data/walk.mp4", name="x", max_frames=10)


def test_runs_table_shows_which_time_where_from_and_the_metrics_size(studio, gen):
    make_capture(studio.workspace / "cap", 3, gen, points=0)
    studio.open_capture("cap")
    ff = make_run(studio.workspace / "cap", gen, method="long-lrm", n=20,
                  info={"timings": {"total_s": 0.3, "command_s": 3.9}, "params": {"views": 8}})  # fmt: skip
    time.sleep(0.01)
    refined = {"timings": {"total_s": 130.0, "train_s": 112.0}, "params": {"init": f"run:{ff.name}"}}
    opt = make_run(studio.workspace / "cap", gen, method="3dgs", n=30, info=refined)
    update_run_info(opt, metrics={"test": {"psnr": 27.5, "ssim": 0.875}, "resolution": [72, 128]})
    rows = {r.id: r for r in studio.run_summaries()}
    a, b = rows[ff.name], rows[opt.name]
    assert (a.compute_s, a.compute_what, a.total_s, a.source) == (0.3, "model", 3.9, "8 views")
    assert (b.compute_s, b.compute_what, b.total_s, b.source, b.resolution) == (
        112.0,
        "train",
        130.0,
        ff.name,
        (72, 128),
    )
    from viewer.panels.runs import time_cell

    assert time_cell(a) == "0.3 s model, 3.9 s job" and time_cell(b) == "112.0 s train, 130.0 s job"


def test_a_run_json_rewritten_on_disk_is_announced(studio, gen):
    make_capture(studio.workspace / "cap", 3, gen, points=0)
    studio.open_capture("cap")
    run = make_run(studio.workspace / "cap", gen, n=10)
    heard = []
    studio.subscribe(lambda t: heard.append(t) if t == RUNS else None)
    studio.watch_runs(interval_s=0.05)
    time.sleep(0.2)
    assert heard == []
    update_run_info(run, metrics={"test": {"psnr": 30.0}})  # what `lrm-studio eval` does from a terminal
    deadline = time.monotonic() + 10
    while not heard and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heard and studio.run_summaries()[0].psnr == 30.0
