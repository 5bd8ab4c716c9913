import torch

from pipelines.gaussians import Gaussians
from studio.workspace import Run, delete_run, list_runs, new_run_dir, update_run_info, write_run


def test_run_lifecycle(tmp_path, gen):
    cap = tmp_path / "cap"
    unfinished = new_run_dir(cap, "3dgs")  # a crash before run.json: never listed
    d = new_run_dir(cap, "long-lrm")
    g = Gaussians.random(7, generator=gen)
    write_run(d, g, {"method": "long-lrm", "params": {"views": 4}, "timings": {"total_s": 1.0}})
    runs = list_runs(cap)
    assert [r.id for r in runs] == [d.name] and unfinished.exists()
    assert runs[0].info["num_gaussians"] == 7
    assert torch.equal(runs[0].gaussians().means, g.means)
    update_run_info(d, metrics={"test": {"psnr": 30.0}})
    assert Run.load(d).info["metrics"]["test"]["psnr"] == 30.0
    delete_run(d)
    assert list_runs(cap) == []
