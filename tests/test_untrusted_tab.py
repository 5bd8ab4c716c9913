"""What a tab (or a script speaking viser's protocol) sends is untrusted: GUI values out of range
or of the wrong type, updates of properties the page never changes, clicks on disabled buttons,
text that is markup, paths outside the workspace. Each is sent through a real websocket
(tests/tab_client.py) to a running studio, and the server's state is checked."""

from __future__ import annotations

import math
import re
from pathlib import PurePath

import pytest
from studio_helpers import make_capture, plain
from tab_client import TabClient

from pipelines.capture.images import write_image
from studio.config import StudioConfig
from viewer import gui_input


@pytest.fixture
def running(tmp_path, gen):
    from viewer.app import start_studio

    make_capture(tmp_path / "ws" / "cap", 4, gen, points=50)
    r = start_studio(StudioConfig(workspace=tmp_path / "ws", port=0, demo=False))
    yield r
    r.stop()


def test_numbers_are_clamped_and_junk_is_dropped(running):
    v = running.viewer
    frames, height, steps = v.capture.frames, v.paths.height, v.optimize.steps
    with TabClient(running) as tab:
        for handle, sent, want in [
            (frames, -7, 8),  # min 8
            (frames, 1e9, 400),  # max 400
            (height, 100000, 2160),  # the probe's values
            (steps, 1e9, 1_000_000),
            (v.compare.divider, 7.5, 1.0),
            (v.paths.duration, -3, 0.1),
        ]:
            tab.set(handle, sent)
            tab.barrier(v.capture.name)
            assert handle.value == pytest.approx(want), (handle.label, sent)
        before = frames.value
        for junk in (float("nan"), float("inf"), "12", None, [3], True, {"a": 1}):
            tab.set(frames, junk)
        tab.barrier(v.capture.name)
        assert frames.value == before and isinstance(frames.value, int)
        # a value the dropdown does not offer; properties the page never sends
        tab.set(v.optimize.preset, "evil-preset")
        tab.update(frames, {"max": 1e9, "value": 300})
        tab.update(v.optimize.start, {"disabled": False})
        tab.update(v.optimize.preset, {"options": ["x"], "value": "x"})
        tab.set(v.paths.name, "x" * (gui_input.MAX_TEXT + 1))
        tab.barrier(v.capture.name)
        assert v.optimize.preset.value in v.optimize.preset.options and v.optimize.preset.value != "x"
        assert frames.max == 400 and frames.value == before
        assert "x" not in v.optimize.preset.options


def test_disabled_buttons_cannot_be_clicked(running):
    """Cancel job is disabled while no job runs; a click sent anyway reaches no callback (the
    callback would notify "Nothing to cancel")."""
    v = running.viewer
    clicks = []
    v.jobs.cancel.on_click(lambda e: clicks.append(e))
    assert v.jobs.cancel.disabled
    with TabClient(running) as tab:
        tab.click(v.jobs.cancel)
        tab.update(v.capture.rescan, {"value": "not-true"})
        tab.barrier(v.capture.name)
    assert clicks == []


def test_markup_in_typed_text_is_shown_as_text_and_reads_no_file(running, tmp_path, monkeypatch):
    """The probe's attack: Source = ![x](/some/file.png) made viser read that file into a data
    URL sent to every tab. Now the text is escaped; no image is read from disk at all."""
    import imageio.v3 as iio

    secret = tmp_path / "secret.png"
    write_image(secret, __import__("torch").rand(3, 8, 8))
    reads = []
    real_imread = iio.imread

    def spy(uri, *a, **k):
        reads.append(str(uri))
        return real_imread(uri, *a, **k)

    monkeypatch.setattr(iio, "imread", spy)
    v = running.viewer
    hostile = [
        f"![x]({secret})",
        f"<img src=x onerror=alert(1)>![y]({secret})",
        f"[link](javascript:alert(1)) ![z](file://{secret})",
    ]
    with TabClient(running) as tab:
        for text in hostile:  # relative paths: looked for in the workspace, not found
            v.capture.source_info.content = ""
            tab.set(v.capture.source, text)
            tab.wait(lambda: "does not exist" in plain(v.capture.source_info.content), "source refused")
            shown = v.capture.source_info.content
            assert not re.search(r"(?<!\\)[<>!\[\]()]", shown), shown  # every markup character escaped
            assert str(PurePath(text)) in plain(shown)  # and shown as the (normalised) path it was
        tab.set(v.paths.name, f"![p]({secret})")
        tab.click(v.paths.orbit)  # the path's name shows in the panel's summary
        tab.wait(lambda: "keyframes" in v.paths.summary.content, "orbit path made")
        tab.barrier(v.capture.name)
    assert not [r for r in reads if "secret" in r], reads
    for panel in (v.capture, v.paths, v.jobs, v.runs, v.compare, v.optimize, v.cameras, v.reconstruct):
        for handle in vars(panel).values():
            markdown = getattr(handle, "_markdown", None)
            assert markdown is None or "data:image" not in markdown
    # the detector works: an unescaped assignment would have read the file
    with pytest.warns(UserWarning, match="image_root"):
        v.capture.source_info.content = f"![x]({secret})"
    assert [r for r in reads if "secret" in r]


def test_paths_outside_the_workspace_are_not_allowed_whatever_they_are(running, tmp_path):
    v = running.viewer
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.jpg").write_bytes(b"x")
    messages = {}
    with TabClient(running) as tab:
        for text in (str(outside), str(tmp_path / "missing"), "/dev/null", "/etc", "../outside", "~"):
            tab.set(v.capture.source, text)
            tab.barrier(v.capture.name)
            messages[text] = plain(v.capture.source_info.content)
        inside = running.studio.workspace / "uploads" / "clip.mp4"
        inside.parent.mkdir(parents=True)
        inside.write_bytes(b"\0" * 1024)
        tab.set(v.capture.source, "uploads/clip.mp4")
        tab.barrier(v.capture.name)
        assert "video clip.mp4" in plain(v.capture.source_info.content)
        tab.set(v.capture.source, "uploads/nope.mp4")
        tab.barrier(v.capture.name)
        assert "uploads/nope.mp4 does not exist" in plain(v.capture.source_info.content)
    refusals = set(messages.values())
    assert len(refusals) == 1 and "not allowed" in refusals.pop(), messages  # one answer for all
    with pytest.raises(ValueError, match="not allowed"):
        running.studio.submit_sfm(str(outside), name="x", max_frames=10)


def test_studio_operations_check_numbers_themselves(running):
    """The page is not the only caller: the studio's own methods refuse bad numbers."""
    studio = running.studio
    from dataclasses import replace

    studio.capabilities = replace(studio.capabilities, sfm=True)
    for bad in (-7, 0, 10**9, math.nan, True):
        with pytest.raises(ValueError, match="frames"):
            studio.submit_sfm(str(studio.workspace), name=f"n{bad}", max_frames=bad)


def test_identical_error_toasts_collapse_into_one(running):
    from viewer import notify as notify_mod

    with TabClient(running) as tab:
        for _ in range(5):
            notify_mod.notify(running.server, "Upload failed", "same reason", kind="error", client=tab.client)
        notify_mod.notify(running.server, "Upload failed", "another reason", kind="error", client=tab.client)
        shown = notify_mod._ERRORS[running.server]
        live = [h for (cid, _, _), h in shown.items() if cid == tab.client_id and not h._impl.removed]
        assert sorted(h._impl.props.body for h in live) == ["another reason", "same reason"]


def test_the_capture_name_follows_the_source_until_typed(running):
    v = running.viewer
    uploads = running.studio.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    for name in ("walk.mp4", "desk.mp4"):
        (uploads / name).write_bytes(b"\0" * 100)
    with TabClient(running) as tab:
        tab.set(v.capture.source, "uploads/walk.mp4")
        tab.wait(lambda: v.capture.name.value == "walk", "the name follows the source")
        tab.set(v.capture.name, "my scan")
        tab.barrier(v.paths.name)
        tab.set(v.capture.source, "uploads/desk.mp4")
        tab.wait(lambda: "desk.mp4" in plain(v.capture.source_info.content), "the source is described")
        assert v.capture.name.value == "my scan"  # typed: kept
        tab.set(v.capture.name, "")
        tab.set(v.capture.source, "uploads/walk.mp4")
        tab.wait(lambda: v.capture.name.value == "walk", "an emptied name follows the source again")


def test_a_dataset_is_imported_from_the_page(running, gen):
    """A nerfstudio dataset in the workspace: the panel says so, the button imports it."""
    import json

    from pipelines.capture.images import write_image as write

    v = running.viewer
    src = running.studio.workspace / "uploads" / "scene"
    (src / "images").mkdir(parents=True)
    frames = []
    for i in range(9):
        write(src / "images" / f"{i:02d}.png", __import__("torch").rand(3, 24, 32, generator=gen))
        a = 2 * math.pi * i / 9
        cos, sin = math.cos(a), math.sin(a)
        c2w = [[cos, 0, sin, 3 * sin], [0, 1, 0, 0], [-sin, 0, cos, 3 * cos], [0, 0, 0, 1]]
        frames.append({"file_path": f"images/{i:02d}.png", "transform_matrix": c2w})
    meta = {"fl_x": 30.0, "fl_y": 30.0, "cx": 16, "cy": 12, "w": 32, "h": 24, "frames": frames}
    (src / "transforms.json").write_text(json.dumps(meta))
    with TabClient(running) as tab:
        tab.set(v.capture.source, "uploads/scene")
        tab.wait(lambda: "nerfstudio dataset" in plain(v.capture.source_info.content), "dataset recognised")
        assert v.capture.ingest.label == "Import cameras" and v.capture.name.value == "scene"
        tab.click(v.capture.ingest)
        tab.wait(
            lambda: running.studio.capture is not None and running.studio.capture.name == "scene", "imported"
        )
    cap = running.studio.capture
    assert len(cap) == 9 and cap.meta["source"]["type"] == "nerfstudio"
