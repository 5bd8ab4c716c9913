"""``lrm-studio bench geolrm`` runs end to end with the tiny preset on the CPU."""

from __future__ import annotations

from pipelines.fileio import read_json
from studio.bench.geolrm import main
from studio.cli import COMMANDS


def test_bench_geolrm_tiny_cpu(tmp_path):
    assert COMMANDS["bench geolrm"][0] == "studio.bench.geolrm:main"
    out = tmp_path / "bench.json"
    assert main(views="2,3", device="cpu", preset="tiny", repeats=1, warmup=0, isolate=False, json=out) == 0
    res = read_json(out)
    assert [r["views"] for r in res["results"]] == [2, 3]
    for r in res["results"]:
        assert r["anchors"] == 64 and r["gaussians"] == 64 * 4
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
