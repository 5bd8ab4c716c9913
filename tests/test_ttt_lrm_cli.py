"""`lrm-studio reconstruct --model ttt-lrm [--stream]` on a small synthetic capture (tiny presets),
the memory guard before any work, and `lrm-studio bench ttt-lrm` cases (offline and streaming)."""

from __future__ import annotations

import pytest

from pipelines.capture.folder import Capture
from pipelines.fileio import read_json
from pipelines.gaussians import read_ply
from pipelines.models.blocks.gaussian_head import keep_counts
from studio.cli import main as cli
from tests.model_helpers import make_capture, reconstruct_argv


def test_reconstruct_stream_prints_chunk_timing_and_writes_a_run(tmp_path, gen, capsys):
    cap = make_capture(tmp_path / "cap", gen, n=12, width=160, height=90)
    args = reconstruct_argv(cap.root, "ttt-lrm", "tiny-ar", "--views", "7", "--stream", "--chunk-views", "3")
    assert cli(args) is None
    err = capsys.readouterr().err
    assert "absorb s" in err and "streaming" in err
    (run,) = list((cap.root / "runs").iterdir())
    info = read_json(run / "run.json")
    assert info["method"] == "ttt-lrm" and info["params"]["chunk_views"] == 3
    assert [r["views"] for r in info["stream"]] == [3, 6, 7]
    assert [r["chunk_tokens"] for r in info["stream"]] == [3 * 112, 3 * 112, 112]
    assert all(r["absorb_s"] > 0 and r["preview_gaussians"] > 0 for r in info["stream"])
    g = read_ply(run / "gaussians.ply")
    assert g.num == info["num_gaussians"] and 0 < g.num <= sum(keep_counts(7 * 64 * 112, 0.4, 0.1))
    inputs = [cap.file_paths.index(p) for p in info["params"]["input_frames"]]
    _, z = cap.cameras[inputs].project(g.means)
    assert bool((z > 0).any(dim=0).all())  # in the capture's frame, in front of the input cameras


def test_reconstruct_offline_and_errors(tmp_path, gen, monkeypatch):
    cap = make_capture(tmp_path / "cap", gen, n=6, width=160, height=90)
    assert cli(reconstruct_argv(cap.root, "ttt-lrm", "tiny")) is None
    (run,) = list((cap.root / "runs").iterdir())
    info = read_json(run / "run.json")
    assert info["params"]["schedule"] == "full" and "stream" not in info and info["params"]["views"] == 5
    with pytest.raises(SystemExit) as e:  # only tttLRM streams
        cli(reconstruct_argv(cap.root, "long-lrm", "tiny", "--stream"))
    assert e.value.code == 1
    import pipelines.models.ttt_lrm.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**20)  # 1 MiB free
    called = []
    monkeypatch.setattr(Capture, "load_images", lambda *a, **k: called.append(1))
    for extra in ([], ["--stream"]):
        with pytest.raises(SystemExit) as e:
            cli(reconstruct_argv(cap.root, "ttt-lrm", "tiny", *extra))
        assert e.value.code == 1
    assert not called and len(list((cap.root / "runs").iterdir())) == 1


def test_bench_cases_tiny_cpu():
    from pipelines.models.ttt_lrm.config import PRESETS
    from studio.bench.ttt_lrm import long_lrm_case, run_case, run_stream

    c = PRESETS["tiny"]
    row = run_case(c.to_json(), 2, "cpu", 1, 1)
    assert row["tokens"] == 2 * 8 * 14 and row["num_gaussians"] == sum(keep_counts(2 * 64 * 112, 0.4, 0.1))
    assert row["median_s"] > 0 and row["estimate_gib"] > 0
    ll = long_lrm_case("tiny", 2, c, "cpu", 1, 1)
    assert ll["model"] == "long-lrm" and (ll["width"], ll["height"]) == (112, 64) and ll["median_s"] > 0
    res = run_stream(c.to_json(), chunks=4, chunk_views=1, device="cpu", repeats=1)
    assert [r["chunk"] for r in res["rows"]] == [1, 2, 3, 4]
    assert [r["views_before"] for r in res["rows"]] == [0, 1, 2, 3]
    assert {r["chunk_tokens"] for r in res["rows"]} == {112} and res["state_numel"] == [c.state_numel]
    assert res["absorb_last_over_first_quarter"] > 0
