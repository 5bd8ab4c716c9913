"""The capture commands as a user runs them: one clear error line and a non-zero exit, or files."""

import json

import numpy as np
import pytest

from pipelines.capture.images import write_image
from studio.cli import main
from tests.test_sfm_imports import make_colmap_scene


def _run(argv):
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        return e.code
    return 0


def test_sfm_empty_folder_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert _run(["sfm", tmp_path / "photos", "--workspace", tmp_path / "ws"]) == 1
    err = capsys.readouterr().err
    assert "error: no JPEG or PNG photos" in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


def test_sfm_refuses_to_replace_a_capture(tmp_path, capsys):
    (tmp_path / "ws" / "photos").mkdir(parents=True)
    (tmp_path / "ws" / "photos" / "cameras.json").write_text("keep")
    write_image(tmp_path / "photos" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert _run(["sfm", tmp_path / "photos", "--workspace", tmp_path / "ws"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "ws" / "photos" / "cameras.json").read_text() == "keep"


def test_import_and_export_commands(tmp_path, gen, capsys):
    make_colmap_scene(tmp_path, gen, n=4)
    assert _run(["import", tmp_path / "scene" / "sparse" / "0", "--workspace", tmp_path / "ws"]) == 0
    cap_dir = tmp_path / "ws" / "scene"  # named after the scene folder, not "0" or "sparse"
    assert (cap_dir / "cameras.json").is_file()
    assert _run(["export", cap_dir, "--format", "long-lrm", "--out", tmp_path / "out"]) == 0
    d = json.loads((tmp_path / "out" / "opencv_cameras.json").read_text())
    assert len(d["frames"]) == 4 and (tmp_path / "out" / d["frames"][0]["file_path"]).is_file()
    assert _run(["export", cap_dir]) == 0  # nerfstudio, into the capture folder
    assert (cap_dir / "transforms.json").is_file() and (cap_dir / "sparse_pc.ply").is_file()
    assert _run(["export", cap_dir, "--out", tmp_path / "ds", "--images", "link"]) == 0
    d = json.loads((tmp_path / "ds" / "transforms.json").read_text())
    assert all((tmp_path / "ds" / f["file_path"]).is_file() for f in d["frames"])
    assert d["test_filenames"] == [d["frames"][0]["file_path"]]  # every 8th frame, from the first
    assert _run(["import", tmp_path / "nothing", "--workspace", tmp_path / "ws"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert _run(["export", tmp_path / "nothing"]) == 1


@pytest.mark.parametrize("cmd", ["sfm", "import", "export"])
def test_help_lists_options(cmd, capsys):
    assert _run([cmd, "--help"]) == 0
    assert "--workspace" in capsys.readouterr().out or cmd == "export"
