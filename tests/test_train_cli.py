"""`lrm-studio train`, `train export` and `train eval` end to end on the procedural stream."""

from __future__ import annotations

import json

import torch

from pipelines.models.checkpoints import load_weights
from studio.cli import main as cli


def test_train_export_eval_cli(tmp_path):
    out = tmp_path / "run"

    def train_argv(steps: int) -> list[str]:
        return ["train", "--recipe", "long-lrm-tiny", "--out", str(out), "--steps", str(steps), "--pool", "1",
                "--threads", "1", "--device", "cpu"]  # fmt: skip

    assert cli(train_argv(2)) is None
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and rows[-1]["skipped_nonfinite"] == 0 and "mse" in rows[-1]
    assert cli(train_argv(3)) is None  # resumes: one more step
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3]

    weights = tmp_path / "w.safetensors"
    assert cli(["train", "export", str(out), "--out", str(weights)]) is None
    state, meta = load_weights(weights)
    assert meta["model"] == "long-lrm" and meta["preset"] == "tiny" and meta["steps"] == "3"

    report = tmp_path / "eval.json"
    argv = ["train", "eval", "--weights", str(weights), "--procedural", "1", "--stream", "long-lrm-tiny",
            "--device", "cpu", "--json", str(report)]  # fmt: skip
    assert cli(argv) is None
    (res,) = json.loads(report.read_text())["results"].values()
    assert res["views"] == 4 and set(res["baselines"]) == {"mean_colour", "reprojection"}
    assert 0 < res["baselines"]["mean_colour"] < 60 and res["model_psnr"] > 0
    assert set(res["wins"]) == {"mean_colour", "reprojection"} and 0 <= res["wins"]["reprojection"] <= 4


def test_geolrm_two_stages_cli(tmp_path):
    """GeoLRM's stage 1 (--stage proposal), its export as stage 2's --init, and train eval on
    held-out procedural objects (targets that are not inputs)."""
    common = ["--recipe", "geolrm-tiny", "--steps", "2", "--threads", "1", "--device", "cpu"]
    assert cli(["train", *common, "--stage", "proposal", "--out", str(tmp_path / "s1")]) is None
    rows = [json.loads(line) for line in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert "occupancy" in rows[-1] and "mse" not in rows[-1] and 0 <= rows[-1]["recall"] <= 1
    assert cli(["train", "export", str(tmp_path / "s1"), "--out", str(tmp_path / "s1.safetensors")]) is None
    assert (
        cli(["train", *common, "--init", str(tmp_path / "s1.safetensors"), "--out", str(tmp_path / "s2")])
        is None
    )
    rows = [json.loads(line) for line in (tmp_path / "s2" / "log.jsonl").read_text().splitlines()]
    assert "mse" in rows[-1] and "mask" in rows[-1] and "occupancy" not in rows[-1]
    weights = tmp_path / "geo.safetensors"
    assert cli(["train", "export", str(tmp_path / "s2"), "--out", str(weights)]) is None
    assert load_weights(weights)[1]["model"] == "geolrm"
    report = tmp_path / "eval.json"
    argv = ["train", "eval", "--model", "geolrm", "--weights", str(weights), "--procedural", "1",
            "--stream", "geolrm-tiny", "--device", "cpu", "--json", str(report)]  # fmt: skip
    assert cli(argv) is None
    (res,) = json.loads(report.read_text())["results"].values()
    assert 1 <= res["views"] <= 7 and res["model_psnr"] > 0  # 8 targets, 1-7 of them inputs


def test_eval_summary_counts_the_views_the_model_wins(gen):
    """Means over views then scenes, and the paired per-view win counts, against a brute force."""
    from pipelines.train.evaluate import _summarise

    rows = [
        {
            k: (torch.rand(n, generator=gen) * 10 + 15).tolist()
            for k in ("model", "mean_colour", "reprojection")
        }
        | {"constant_depth": 1.0, "gaussians": 10, "seconds": 0.5}
        for n in (3, 5, 8)
    ]
    res = _summarise(rows, ["a", "b", "c"])
    assert res.views == 16 and res.scenes == 3
    for name in ("mean_colour", "reprojection"):
        wins = sum(m > b for r in rows for m, b in zip(r["model"], r[name], strict=True))
        assert res.wins[name] == wins
        assert abs(res.baselines[name] - sum(sum(r[name]) / len(r[name]) for r in rows) / 3) < 1e-9
    assert abs(res.model_psnr - sum(sum(r["model"]) / len(r["model"]) for r in rows) / 3) < 1e-9
