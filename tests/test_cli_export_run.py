"""``lrm-studio export-run`` as a user runs it: each format written where asked, read back by the
project's own reader, the page's in-memory export identical to the file; mistakes end in one line."""

import pytest
import torch

from pipelines.errors import InputError
from pipelines.gaussians import Gaussians, read_gaussians
from studio.exports import ExportRunOptions, export_run_bytes
from studio.workspace import write_run
from tests.test_cli_capture import _run


@pytest.fixture
def run_dir(tmp_path, gen):
    """A finished degree-0 run (as GeoLRM writes) in WS/garden/runs/geolrm-1."""
    g = Gaussians.random(64, sh_degree=0, generator=gen)
    path = tmp_path / "ws" / "garden" / "runs" / "geolrm-1"
    write_run(path, g, {"method": "geolrm"})
    return path


def test_each_format_lands_where_asked_and_reads_back(run_dir, tmp_path):
    g = read_gaussians(run_dir / "gaussians.ply")
    assert g.sh_degree == 3  # runs are written in the full layout
    for fmt in ("ply", "splat", "spz"):
        assert _run(["export-run", run_dir, "--format", fmt]) == 0
        path = run_dir / "exports" / f"garden-geolrm-1.{fmt}"
        h = read_gaussians(path)
        assert h.num == g.num and h.sh_degree == (3 if fmt == "ply" else 0)
        assert torch.allclose(h.means.sort(0).values, g.means.sort(0).values, atol=2e-4)  # spz: 12 bits
        name, data = export_run_bytes(run_dir, ExportRunOptions(format=fmt))
        assert name == path.name and data == path.read_bytes()
    out = tmp_path / "small.ply"
    assert _run(["export-run", run_dir, "--compact", "--out", out]) == 0
    assert (
        read_gaussians(out).sh_degree == 0
        and out.stat().st_size < (run_dir / "gaussians.ply").stat().st_size / 3
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--format", "splat", "--out", "x.spz"], "must end in .splat"),
        (["--format", "spz", "--compact"], "--compact is for ply"),
        (["--format", "obj"], "invalid choice"),
    ],
)
def test_mistakes_are_one_line(run_dir, capsys, args, message):
    assert _run(["export-run", run_dir, *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_not_a_run_is_one_line(tmp_path, capsys):
    assert _run(["export-run", tmp_path / "nothing"]) == 1
    err = capsys.readouterr().err
    assert "not a finished run" in err and "Traceback" not in err


def test_options_refuse_what_the_page_could_send_wrong():
    with pytest.raises(InputError, match="unknown splat format"):
        ExportRunOptions(format="obj")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--compact is for ply"):
        ExportRunOptions(format="splat", compact=True)
