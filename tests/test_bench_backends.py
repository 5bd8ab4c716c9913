"""Benchmarks time kernel backends side by side: ``bench long-lrm --backend a,b`` and ``bench geolrm
--deform-backend a,b`` run every case per backend and report the ones that cannot run here."""

from __future__ import annotations

import pytest

from pipelines.fileio import read_json
from studio.bench.backends import DEFORM_BACKENDS, SCAN_BACKENDS, parse_backends, side_by_side


def test_parse_backends():
    why = {"triton": "no CUDA"}.get
    assert parse_backends("torch, triton,torch", SCAN_BACKENDS, why) == (["torch"], {"triton": "no CUDA"})
    assert parse_backends("all", DEFORM_BACKENDS, lambda b: None) == (["torch", "triton"], {})
    with pytest.raises(SystemExit, match="cuda_graph"):
        parse_backends("torch,cuda_graph", SCAN_BACKENDS, why)


def test_side_by_side_table():
    rows = [
        {"views": 4, "backend": "torch", "median_s": 0.2},
        {"views": 4, "backend": "triton", "median_s": 0.05},
        {"views": 8, "backend": "torch", "median_s": 0.4},
        {"views": 8, "backend": "triton", "skipped": "out of memory"},
    ]
    cols, table = side_by_side(rows, ["torch", "triton"], backend_key="backend")
    assert cols == ["views", "torch s", "triton s", "torch / triton"]
    assert table == [[4, 0.2, 0.05, "4.00x"], [8, 0.4, "", ""]]


def test_long_lrm_bench_runs_each_backend_side_by_side(tmp_path, monkeypatch):
    """The loop over backends, the labels, the skipped backend and the side-by-side table; each
    case is stubbed (a real tiny case: tests/test_long_lrm_cli.py, test_bench_case_tiny_cpu)."""
    import studio.bench.long_lrm as bench_long_lrm

    def case(target, *, device, views, backend, **kw):
        t = {"torch": 0.2, "auto": 0.1}[backend]
        size = {"views": views, "width": kw["width"], "height": kw["height"], "tokens": 8}
        timing = {"median_s": t, "min_s": t, "max_s": t, "repeats": 1}
        return size | timing | {"estimate_gib": 0.1, "num_gaussians": 10, "peak_gib": 0.1, "scan": "torch"}

    monkeypatch.setattr(bench_long_lrm, "run_bench_case", case)
    out = tmp_path / "bench.json"
    assert bench_long_lrm.main(preset="tiny", views="2,4", height=32, width=64, device="cpu",
                               backend="torch,auto,triton", json=out) == 0  # fmt: skip
    res = read_json(out)
    assert res["backends"] == ["torch", "auto"] and set(res["skipped_backends"]) == {"triton"}
    assert [(r["backend"], r["views"]) for r in res["rows"]] == [
        ("torch", 2),
        ("torch", 4),
        ("auto", 2),
        ("auto", 4),
    ]
    assert res["side_by_side"]["rows"] == [[2, 0.2, 0.1, "2.00x"], [4, 0.2, 0.1, "2.00x"]]


def test_geolrm_bench_two_backends_cpu(tmp_path):
    from studio.bench.geolrm import main

    out = tmp_path / "bench.json"
    assert main(views="2", device="cpu", preset="tiny", repeats=1, warmup=0, isolate=False,
                deform_backend="torch,triton,auto", json=out) == 0  # fmt: skip
    res = read_json(out)
    assert res["backends"] == ["torch", "auto"] and set(res["skipped_backends"]) == {"triton"}
    assert [(r["backend"], r["deform"]) for r in res["results"]] == [("torch", "torch"), ("auto", "torch")]
    assert [row[0] for row in res["side_by_side"]["rows"]] == [2]
