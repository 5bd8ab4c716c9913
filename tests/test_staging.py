import pytest

from pipelines.capture.staging import staged_folder
from pipelines.errors import InputError


def _hidden(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_success_moves_into_place(tmp_path):
    dest = tmp_path / "cap"
    with staged_folder(dest) as tmp:
        assert tmp.parent == tmp_path and not dest.exists()
        (tmp / "a.txt").write_text("new")
    assert (dest / "a.txt").read_text() == "new" and not _hidden(tmp_path)


def test_failure_leaves_existing_capture_untouched(tmp_path):
    dest = tmp_path / "cap"
    dest.mkdir()
    (dest / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(dest, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("boom")
    assert (dest / "a.txt").read_text() == "old" and not _hidden(tmp_path)


def test_existing_needs_overwrite(tmp_path):
    dest = tmp_path / "cap"
    dest.mkdir()
    (dest / "a.txt").write_text("old")
    with pytest.raises(InputError, match="--overwrite"):
        with staged_folder(dest):
            pass
    assert (dest / "a.txt").read_text() == "old"
    with staged_folder(dest, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("new")
    assert not (dest / "a.txt").exists() and (dest / "b.txt").read_text() == "new" and not _hidden(tmp_path)
