"""`lrm-studio reconstruct` on a small synthetic capture (tiny preset), the memory guard before
any work, and one benchmark case of `lrm-studio bench long-lrm`."""

from __future__ import annotations

import torch

from pipelines.capture.folder import Capture
from pipelines.fileio import read_json
from pipelines.gaussians import read_ply
from studio.cli import main as cli
from tests.model_helpers import make_capture, reconstruct_argv


def test_reconstruct_cli_writes_a_run(tmp_path, gen):
    cap = make_capture(tmp_path / "cap", gen)
    assert cli(reconstruct_argv(cap.root, "long-lrm", "tiny", "--views", "5")) is None
    (run,) = list((cap.root / "runs").iterdir())
    info = read_json(run / "run.json")
    assert info["method"] == "long-lrm" and info["weights"] is None and info["device"].startswith("cpu")
    assert info["params"]["views"] == 5 and len(info["params"]["input_frames"]) == 5
    train = {cap.file_paths[i] for i in cap.indices("train")}
    assert set(info["params"]["input_frames"]) <= train
    assert {"total_s", "network_s", "load_images_s"} <= set(info["timings"])
    g = read_ply(run / "gaussians.ply")
    assert g.num == info["num_gaussians"] > 0 and torch.isfinite(g.means).all()
    # Gaussians are in the capture's frame: in front of the input cameras they came from
    inputs = [cap.file_paths.index(p) for p in info["params"]["input_frames"]]
    _, z = cap.cameras[inputs].project(g.means)
    assert bool((z > 0).any(dim=0).all())


def test_reconstruct_memory_guard_stops_before_work(tmp_path, gen, monkeypatch):
    import pipelines.models.long_lrm.memory as memory

    cap = make_capture(tmp_path / "cap", gen, n=6)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)  # 10 MiB free
    called = []
    monkeypatch.setattr(Capture, "load_images", lambda *a, **k: called.append(1))
    try:
        cli(["reconstruct", str(cap.root), "--preset", "tiny", "--device", "cpu"])
    except SystemExit as e:
        assert e.code == 1
    else:
        raise AssertionError("expected a non-zero exit")
    assert not called and not (cap.root / "runs").exists()


def test_bench_case_tiny_cpu():
    from pipelines.models.long_lrm.config import PRESETS, transformer_baseline
    from studio.bench.long_lrm import run_case

    for cfg in (PRESETS["tiny"], transformer_baseline(PRESETS["tiny"])):
        row = run_case(cfg.to_json(), 2, 32, 64, "cpu", 1, 1, "auto")
        assert row["num_gaussians"] == int(2 * 32 * 64 * 0.45) + int(2 * 32 * 64 * 0.05)
        assert row["tokens"] == 2 * 4 * 8 and row["median_s"] > 0 and row["estimate_gib"] > 0
