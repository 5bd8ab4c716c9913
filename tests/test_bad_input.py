"""Bad values are refused where they enter, with one line saying what is wrong, and leave the
workspace as it was: cameras (NaN poses, focal lengths <= 0, image paths outside the capture),
weights (integer or NaN tensors), checkpoints, run folders (unreadable run.json, no Gaussians),
JSON (no NaN tokens). The CLI commands run in-process through ``studio.cli.main``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from studio_helpers import make_capture, make_run

from pipelines.capture.folder import Capture
from pipelines.errors import InputError
from pipelines.fileio import read_json, write_json
from pipelines.gaussians import Gaussians
from studio import workspace as ws
from studio.cli import main


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``lrm-studio ARGV`` in-process: (exit status, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and err.strip(), err
    for n in needles:
        assert n in err, (n, err)


def corrupt_frame(capture_root: Path, index: int, **changes) -> None:
    """Edit one frame of cameras.json in place (a key set to None is removed)."""
    d = read_json(capture_root / "cameras.json")
    for k, v in changes.items():
        if v is None:
            d["frames"][index].pop(k)
        else:
            d["frames"][index][k] = v
    (capture_root / "cameras.json").write_text(json.dumps(d))  # NaN written as a token on purpose


# ------------------------------------------------------------------------------- cameras
@pytest.mark.parametrize(
    "change, needle",
    [
        ({"c2w": [[math.nan] * 4] * 4}, "NaN"),
        ({"fx": 0.0}, "focal length must be positive"),
        ({"fy": -5.0}, "focal length must be positive"),
        ({"fx": None}, "has no 'fx'"),
        ({"c2w": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, "not a rotation"),
        ({"file_path": "../../outside.png"}, "outside the capture folder"),
        ({"file_path": "/etc/passwd"}, "relative to the capture folder"),
        ({"split": "val"}, "neither train nor test"),
    ],
)
def test_capture_load_refuses_bad_frames(tmp_path, gen, change, needle):
    cap = make_capture(tmp_path / "cap", 4, gen, points=0)
    corrupt_frame(cap.root, 2, **change)
    with pytest.raises(InputError, match="frame 2") as e:
        Capture.load(cap.root)
    assert needle in str(e.value)


def test_commands_on_a_damaged_capture_fail_in_one_line(tmp_path, gen, capsys):
    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, points=50)
    run = make_run(cap.root, gen, n=50)
    corrupt_frame(cap.root, 3, fx=None)
    for argv in (
        ("eval", run),
        ("optimize", cap.root, "--steps", "2"),
        ("export", cap.root, "--out", tmp_path / "out"),
        ("render", run, "--path", tmp_path / "missing.json", "--out", tmp_path / "v.mp4"),
    ):
        code, err = cli(capsys, *argv)
        assert_one_line_error(code, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "v.mp4").exists()
    assert [r.id for r in ws.list_runs(cap.root)] == [run.name]  # optimize left no run folder


def test_export_never_writes_nan_tokens(tmp_path, gen, capsys):
    cap = make_capture(tmp_path / "cap", 4, gen, points=0)
    corrupt_frame(cap.root, 1, c2w=[[math.nan] * 4] * 4)
    code, err = cli(capsys, "export", cap.root, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "NaN")
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "x.json", {"a": math.nan})
    assert not (tmp_path / "x.json").exists()


def test_imports_with_bad_cameras_fail_in_one_line(tmp_path, gen, capsys):
    from pipelines.capture.images import write_image

    src = tmp_path / "scene"
    (src / "images").mkdir(parents=True)
    for i in range(3):
        write_image(src / "images" / f"{i}.png", torch.rand(3, 24, 32, generator=gen))
    eye = [[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2.0], [0, 0, 0, 1]]

    def nerfstudio(**frame_changes) -> Path:
        frames = [{"file_path": f"images/{i}.png", "transform_matrix": eye} for i in range(3)]
        frames[1].update(frame_changes)
        frames[1] = {k: v for k, v in frames[1].items() if v is not None}
        d = {"fl_x": 30.0, "fl_y": 30.0, "cx": 16, "cy": 12, "w": 32, "h": 24, "frames": frames}
        (src / "transforms.json").write_text(json.dumps(d))
        return src / "transforms.json"

    def long_lrm(**frame_changes) -> Path:
        frames = [
            {
                "file_path": f"images/{i}.png",
                "w2c": eye,
                "fx": 30.0,
                "fy": 30.0,
                "cx": 16,
                "cy": 12,
                "w": 32,
                "h": 24,
            }
            for i in range(3)
        ]
        frames[1].update(frame_changes)
        (src / "opencv_cameras.json").write_text(json.dumps({"frames": frames}))
        return src / "opencv_cameras.json"

    cases = [
        (lambda: nerfstudio(transform_matrix=[[math.nan] * 4] * 4), "NaN"),
        (lambda: nerfstudio(transform_matrix=None), "transform_matrix"),
        (lambda: nerfstudio(fl_x=0.0), "focal length must be positive"),
        (lambda: nerfstudio(fl_y=-5.0), "focal length must be positive"),
        (lambda: long_lrm(w2c=[[math.nan] * 4] * 4), "NaN"),
        (lambda: long_lrm(fx=0.0), "focal length must be positive"),
        (lambda: long_lrm(fy=-5.0), "focal length must be positive"),
        (lambda: long_lrm(w2c="identity"), "4x4"),
    ]
    for i, (write, needle) in enumerate(cases):
        path = write()
        code, err = cli(capsys, "import", path, "--workspace", tmp_path / "ws", "--name", f"c{i}")
        assert_one_line_error(code, err, needle)
        assert len(err.strip().splitlines()) == 1, err  # no progress bar before a refusal
        path.unlink()
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


# ------------------------------------------------------------------------------- weights
def tiny_long_lrm_weights(path: Path, transform) -> Path:
    from pipelines.models.checkpoints import save_weights
    from pipelines.models.long_lrm.config import PRESETS
    from pipelines.models.long_lrm.model import LongLRM

    sd = {k: transform(k, v) for k, v in LongLRM(PRESETS["tiny"]).state_dict().items()}
    save_weights(path, sd, {"model": "long-lrm", "preset": "tiny"})
    return path


def test_integer_and_nan_weights_are_refused_on_load(tmp_path, gen, capsys):
    from pipelines.models.checkpoints import WeightsError, load_weights

    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, points=50)
    int8 = tiny_long_lrm_weights(tmp_path / "int8.safetensors", lambda k, v: (v * 100).to(torch.int8))
    nan = tiny_long_lrm_weights(
        tmp_path / "nan.safetensors", lambda k, v: v * math.nan if k.endswith("weight") else v
    )
    with pytest.raises(WeightsError, match="not floating-point"):
        load_weights(int8)
    with pytest.raises(WeightsError, match="NaN"):
        load_weights(nan)
    for path, needle in ((int8, "not floating-point"), (nan, "NaN")):
        code, err = cli(
            capsys, "reconstruct", cap.root, "--model", "long-lrm", "--weights", path, "--device", "cpu"
        )
        assert_one_line_error(code, err, needle)
    assert ws.list_runs(cap.root) == []


def test_weights_of_another_model_fail_in_one_line(tmp_path, gen, capsys):
    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, points=50)
    other = tiny_long_lrm_weights(tmp_path / "ll.safetensors", lambda k, v: v)
    code, err = cli(
        capsys, "reconstruct", cap.root, "--model", "ttt-lrm", "--weights", other, "--device", "cpu"
    )
    assert_one_line_error(code, err, "long-lrm")


def test_a_model_output_without_finite_gaussians_writes_no_run():
    from studio.commands.reconstruct import checked_output

    g = Gaussians.random(20, generator=torch.Generator().manual_seed(0))
    g.means[:5] = math.nan
    assert checked_output(g, "m").num == 15
    g.means[:] = math.nan
    with pytest.raises(InputError, match="no usable Gaussians"):
        checked_output(g, "m")


# ----------------------------------------------------------------------------- runs
def test_crafted_resume_checkpoint_fails_in_one_line(tmp_path, gen, capsys):
    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, points=50)
    run = ws.new_run_dir(cap.root, "3dgs")
    for content in (b"not a checkpoint", None):
        if content is None:  # the right format, keys missing
            from pipelines.optimize.trainer import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

            torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}, run / "checkpoint.pt")
        else:
            (run / "checkpoint.pt").write_bytes(content)
        code, err = cli(capsys, "optimize", "--resume", run)
        assert_one_line_error(code, err, "checkpoint")


def test_broken_and_empty_runs_are_refused_the_others_still_work(tmp_path, gen, capsys):
    from studio.app import Studio

    cap = make_capture(tmp_path / "ws" / "cap", 9, gen, points=50)
    good = make_run(cap.root, gen, n=50)
    broken = make_run(cap.root, gen, n=50)
    (broken / "run.json").write_text("{ not json")
    empty = ws.write_new_run(cap.root, "empty", Gaussians.random(0), {"method": "empty"})
    studio = Studio(tmp_path / "ws")
    try:
        studio.open_capture("cap")
        summaries = {r.id: r for r in studio.run_summaries()}
        assert set(summaries) == {good.name, broken.name, empty.name}
        assert summaries[broken.name].method == "unreadable run.json"
        studio.show_run(good.name, "A")
        for run_id, needle in ((broken.name, "cannot be read"), (empty.name, "no Gaussians")):
            with pytest.raises(InputError, match=needle):
                studio.show_run(run_id, "B")
        studio.delete_run(broken.name)
        assert not broken.exists() and good.exists()
    finally:
        studio.close()
    code, err = cli(capsys, "eval", empty)
    assert_one_line_error(code, err, "no Gaussians")


def test_a_failed_write_leaves_no_run_folder(tmp_path, gen, monkeypatch):
    import errno

    cap = make_capture(tmp_path / "cap", 4, gen, points=0)

    def full_disk(path, g):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ws, "write_ply", full_disk)
    with pytest.raises(OSError, match="No space"):
        ws.write_new_run(cap.root, "long-lrm", Gaussians.random(10), {"method": "long-lrm"})
    assert not (cap.root / "runs").exists() or list((cap.root / "runs").iterdir()) == []


def test_leftovers_of_killed_processes_are_removed_at_start(tmp_path, gen):
    cap = make_capture(tmp_path / "ws" / "cap", 4, gen, points=0)
    good = make_run(cap.root, gen, n=10)
    empty = ws.new_run_dir(cap.root, "3dgs")  # killed before its first checkpoint
    resumable = ws.new_run_dir(cap.root, "3dgs")
    (resumable / "checkpoint.pt").write_bytes(b"x")
    staged = cap.root / "runs" / ".long-lrm-x.tmp-abc123"
    staged.mkdir()
    (staged / "gaussians.ply").write_bytes(b"half")
    half_capture = tmp_path / "ws" / ".new.tmp-a1b2c3"
    half_capture.mkdir()
    fresh = ws.new_run_dir(cap.root, "3dgs")  # another process just made it: too young to remove
    old = 1e9
    for p in (empty, staged, staged / "gaussians.ply", half_capture, resumable, good):
        os.utime(p, (old, old))
    removed = ws.remove_leftovers(tmp_path / "ws")
    assert set(removed) == {empty, staged, half_capture}
    assert good.exists() and resumable.exists() and fresh.exists()


def test_files_follow_the_umask(tmp_path):
    write_json(tmp_path / "a.json", {"a": 1})
    from pipelines.fileio import _UMASK

    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~_UMASK


def test_the_studio_starts_when_a_capture_is_damaged(tmp_path, gen):
    from studio.app import open_studio
    from studio.config import StudioConfig

    broken = make_capture(tmp_path / "ws" / "a-broken", 4, gen, points=0)
    make_capture(tmp_path / "ws" / "b-good", 4, gen, points=0)
    corrupt_frame(broken.root, 0, fx=None)
    studio = open_studio(StudioConfig(workspace=tmp_path / "ws", demo=False))
    try:
        assert studio.capture.name == "b-good" and "a-broken" in studio.captures()
        with pytest.raises(InputError, match="has no 'fx'"):
            studio.open_capture("a-broken")
        assert studio.capture.name == "b-good"
    finally:
        studio.close()
    with pytest.raises(ValueError, match="has no 'fx'"):
        open_studio(StudioConfig(workspace=tmp_path / "ws", demo=False, capture="a-broken"))
