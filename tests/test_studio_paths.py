"""The studio's camera path (studio.paths) and the Path panel without a browser: edits and
topics, files under CAPTURE/paths/, video jobs with progress and cancel, the panel's scene nodes
following the state, and ``lrm-studio render``."""

from __future__ import annotations

import json
import threading

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import viser
from path_captures import frontal_arc
from studio_helpers import make_capture, make_run

from pipelines.paths import (
    CameraPath,
    Keyframe,
    even_size,
    from_nerfstudio,
    interpolate,
    sample_cameras,
    to_nerfstudio,
)
from pipelines.transforms import random_rotations
from studio.app import PATH, Studio
from studio.config import StudioConfig
from viewer import names
from viewer.app import build_viewer
from viewer.panels.paths import keyframe_index


@pytest.fixture
def studio(tmp_path, gen):
    ws = tmp_path / "ws"
    make_capture(ws / "garden", 12, gen, width=96, height=64, points=100)
    make_capture(ws / "other", 3, gen, points=0)
    s = Studio(ws, config=StudioConfig(workspace=ws, browser_budget=500))
    s.open_capture("garden")
    yield s
    s.close()


def random_c2w(gen) -> torch.Tensor:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = random_rotations(1, gen, torch.float64)[0]
    c2w[:3, 3] = torch.randn(3, generator=gen, dtype=torch.float64)
    return c2w


def test_editor_edits_announce_and_follow_the_capture(studio, gen):
    topics: list[str] = []
    studio.subscribe(topics.append)
    editor = studio.paths
    cams = studio.capture.cameras
    assert len(editor.path) == 0 and (editor.path.width, editor.path.height) == (96, 64)
    assert editor.path.default_fov_deg == pytest.approx(50.0, abs=1e-3)  # the capture's fov
    assert editor.add_input_camera(3) == 0
    torch.testing.assert_close(editor.path.keyframes[0].c2w, cams.c2w[3].double(), atol=1e-6, rtol=0)
    assert editor.path.keyframes[0].fov_y_deg is None  # same as the default
    a, b = random_c2w(gen), random_c2w(gen)
    assert editor.add_keyframe(a, 35.0) == 1
    assert editor.add_keyframe(b, index=0) == 0  # before the input camera
    torch.testing.assert_close(editor.path.c2ws()[[0, 2]], torch.stack([b, a]), atol=1e-12, rtol=0)
    assert editor.reorder(2, -1) == 1 and editor.path.keyframes[1].fov_y_deg == 35.0
    assert editor.reorder(0, -1) == 0  # clamped at the start
    editor.set_keyframe_fov(1, None)
    editor.set_timing(duration_s=3.0, fps=12.0, loop=True, default_fov_deg=40.0)
    p = editor.path
    assert (p.duration_s, p.fps, p.loop, p.default_fov_deg) == (3.0, 12.0, True, 40.0)
    torch.testing.assert_close(p.keyframe_times(), torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    editor.delete_keyframe(0)
    assert len(editor.path) == 2
    c2w, fov = editor.pose_at(0.0)
    torch.testing.assert_close(c2w, editor.path.keyframes[0].c2w, atol=1e-10, rtol=0)
    assert topics == [PATH] * 7  # one per edit (the clamped reorder changed nothing)
    # Another capture: another world, an empty path (CAPTURE is announced, PATH is not).
    studio.open_capture("other")
    assert len(studio.paths.path) == 0 and PATH not in topics[7:]
    with pytest.raises(IndexError):
        studio.paths.add_input_camera(3)


def test_automatic_paths_in_the_studio(studio):
    orbit = studio.paths.orbit()
    assert orbit.loop and len(orbit) == 12 and studio.paths.name == "orbit"
    eye = orbit.c2ws()[:, :3, 3]
    forward = orbit.c2ws()[:, :3, 2]
    # circle cameras look at the origin: so does every orbit keyframe
    torch.testing.assert_close(forward, torch.nn.functional.normalize(-eye, dim=-1), atol=1e-4, rtol=0)
    inputs = studio.paths.through_inputs(smooth_frames=0)
    assert not inputs.loop and studio.paths.name == "inputs"
    cams = studio.capture.cameras
    torch.testing.assert_close(inputs.c2ws()[0], cams.c2w[0].double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(inputs.c2ws()[-1], cams.c2w[-1].double(), atol=1e-6, rtol=0)


def test_orbit_of_a_frontal_arc_is_an_arc_from_the_first_camera(tmp_path, gen):
    """The Orbit button on a phone capture of a wall-mounted poster (portrait, 90 degrees): an
    open arc in front of the wall, not a circle through it."""
    cap = frontal_arc(gen, 90.0, 54, 96, n=24)
    ws = tmp_path / "ws"
    make_capture(ws / "wall", 24, gen, width=54, height=96, points=0, cameras=cap.cameras)
    s = Studio(ws, config=StudioConfig(workspace=ws, browser_budget=500))
    try:
        s.open_capture("wall")
        path = s.paths.orbit()
        assert s.paths.name == "arc" and not path.loop
        torch.testing.assert_close(path.c2ws()[0], cap.cameras.c2w[0].double(), atol=1e-5, rtol=0)
        frames = sample_cameras(path)
        in_front = (frames.centers().double() - cap.wall_point) @ cap.wall_normal
        uv, z = frames.project(cap.target.float()[None])
        assert float(in_front.min()) > 0 and bool((z > 0).all())
        assert bool(((uv >= 0) & (uv <= torch.tensor([54.0, 96.0]))).all())
    finally:
        s.close()


def test_files_save_load_import_export(studio, gen):
    editor = studio.paths
    with pytest.raises(ValueError, match="no keyframes"):
        editor.save("empty")
    editor.orbit(n_keyframes=6)
    file = editor.save("../../my orbit.json")
    assert file == studio.capture.root / "paths" / "my_orbit.json" and file.is_file()
    assert editor.saved() == ["my_orbit"] and editor.name == "my_orbit"
    saved = editor.path
    editor.clear()
    editor.load("my_orbit")
    torch.testing.assert_close(editor.path.c2ws(), saved.c2ws(), atol=1e-12, rtol=0)
    assert editor.path.loop and editor.path.duration_s == saved.duration_s
    # Export -> a nerfstudio file that reads back to the same path.
    back = from_nerfstudio(json.loads(editor.export_json()))
    torch.testing.assert_close(back.c2ws(), saved.c2ws(), atol=1e-12, rtol=0)
    # Import a nerfstudio-made file: saved under paths/ and opened.
    ns = to_nerfstudio(CameraPath((Keyframe(random_c2w(gen)), Keyframe(random_c2w(gen))), duration_s=2.0))
    del ns["lrm_studio"]
    imported = editor.import_json("camera_path.json", json.dumps(ns).encode())
    assert imported.name == "camera_path.json" and editor.saved() == ["camera_path", "my_orbit"]
    assert len(editor.path) == 2 and editor.path.duration_s == 2.0
    with pytest.raises(ValueError, match="not a JSON file"):
        editor.import_json("bad.json", b"\xff\x00")
    with pytest.raises(FileNotFoundError):
        editor.load("nope")


def test_video_job_renders_slots_with_progress_and_cancel(studio, gen):
    capture = studio.capture
    run_a = make_run(capture.root, gen, n=300, method="long-lrm")
    run_b = make_run(capture.root, gen, n=300, method="3dgs")
    editor = studio.paths
    editor.orbit(n_keyframes=6)
    editor.set_timing(duration_s=0.5, fps=8.0)
    with pytest.raises(ValueError, match="nothing shown as A"):
        editor.submit_video("A|B", height=32, device="cpu")
    studio.show_run(run_a.name, "A")
    with pytest.raises(ValueError, match="nothing shown as B"):
        editor.submit_video("A|B", height=32, device="cpu")
    studio.show_run(run_b.name, "B")
    fractions: list[float] = []
    studio.jobs.add_listener(lambda s: fractions.append(s.fraction) if s.kind == "video" else None)
    job = editor.submit_video("A|B", height=32, device="cpu")
    state = studio.jobs.wait(job.id, 120)
    assert state.status == "done", state.error
    video = editor.last_video
    assert (
        video is not None
        and video.parent == capture.root / "videos"
        and video.name.startswith("orbit-A-vs-B-")
    )
    w, h = even_size(32, 96 / 64)
    frames = iio.imread(video, plugin="pyav")
    assert frames.shape == (4, h, 2 * w, 3)  # a loop of 0.5 s at 8 fps
    assert state.result.frames == 4 and fractions[-1] == 1.0  # (progress notifications are throttled)

    # Cancel while rendering: the job ends as cancelled, nothing new is written.
    editor.set_timing(duration_s=5.0)

    def cancel_when_started(s) -> None:
        if s.kind == "video" and s.status == "running":  # it checks the token before every frame
            studio.jobs.cancel(s.id)

    studio.jobs.add_listener(cancel_when_started)
    job = editor.submit_video("B", height=32, device="cpu")
    assert studio.jobs.wait(job.id, 120).status == "cancelled"
    assert sorted(p.name for p in (capture.root / "videos").iterdir()) == [video.name]
    assert editor.last_video == video


@pytest.fixture
def server():
    s = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield s
    s.stop()


def nodes(server: viser.ViserServer) -> set[str]:
    return set(server.scene._handle_from_node_name)


def test_panel_follows_the_path(server, studio, gen):
    viewer = build_viewer(server, studio)
    panel = viewer.paths
    assert panel.keyframe.options == ("(no keyframes)",) and panel.render.disabled
    panel.orbit.value = True  # a click: viser runs the callback at once
    path = studio.paths.path
    assert len(path) == 12 and len(panel.keyframe.options) == 12 and panel.selected == 0
    assert {names.path_keyframe(i) for i in range(12)} | {names.PATH_SPLINE} <= nodes(server)
    # The drawn polyline is the interpolated path.
    segs = panel.path_scene.spline.points
    t = torch.linspace(0, path.duration_s, segs.shape[0] + 1, dtype=torch.float64)
    want = interpolate(path, t).c2w[:, :3, 3].numpy()
    np.testing.assert_allclose(segs[:, 0], want[:-1], atol=1e-5)
    # Select, own fov, reorder, timing through the widgets.
    panel.keyframe.value = panel.keyframe.options[4]
    assert panel.selected == 4 and keyframe_index(panel.keyframe.value) == 4
    panel.own_fov.value = True
    panel.fov.value = 33.0
    assert studio.paths.path.keyframes[4].fov_y_deg == 33.0
    assert panel.path_scene.keyframes[4].fov == pytest.approx(np.deg2rad(33.0))
    moved = studio.paths.path.keyframes[4].c2w
    panel.later.value = True
    assert panel.selected == 5
    torch.testing.assert_close(studio.paths.path.keyframes[5].c2w, moved)
    panel.duration.value = 3.0
    panel.fps.value = 10.0
    assert (studio.paths.path.duration_s, studio.paths.path.fps) == (3.0, 10.0)
    assert panel.time.max == 3.0
    # Gizmos: one per keyframe; dragging one moves the keyframe, its frustum and the spline.
    panel.move.value = True
    assert {names.path_gizmo(i) for i in range(12)} <= nodes(server)
    target = torch.eye(4, dtype=torch.float64)
    target[:3, 3] = torch.tensor([0.1, 0.2, 2.0])
    panel.path_scene.on_move(2, target)
    torch.testing.assert_close(studio.paths.path.keyframes[2].c2w, target)
    np.testing.assert_allclose(panel.path_scene.keyframes[2].position, [0.1, 0.2, 2.0])
    # The time slider puts the playhead on the path.
    panel.time.value = 1.25
    c2w, _ = studio.paths.pose_at(1.25)
    np.testing.assert_allclose(panel.path_scene.playhead.position, c2w[:3, 3].numpy(), atol=1e-9)
    # Delete and clear: nodes follow.
    panel.delete.value = True
    assert len(studio.paths.path) == 11 and names.path_keyframe(11) not in nodes(server)
    assert names.path_gizmo(11) not in nodes(server)
    panel.clear.value = True
    assert not any(n.startswith(names.PATH_KEYFRAMES + "/") for n in nodes(server))
    assert names.PATH_SPLINE not in nodes(server) and panel.render.disabled


def test_player_advances_time_in_real_time(server, studio):
    viewer = build_viewer(server, studio)
    panel = viewer.paths
    studio.paths.orbit()
    seen: list[float] = []
    done = threading.Event()

    def watch(_event) -> None:
        seen.append(float(panel.time.value))
        if len(seen) >= 5:
            done.set()

    panel.time.on_update(watch)
    panel.play.value = True
    assert done.wait(10)
    panel.pause.value = True
    assert not panel.player.playing
    assert all(b > a for a, b in zip(seen[:4], seen[1:5], strict=True))  # moving forward


def test_render_command_writes_a_side_by_side_video(tmp_path, gen):
    from studio.cli import main

    ws = tmp_path / "ws"
    cap = make_capture(ws / "garden", 8, gen, width=80, height=60, points=50)
    a, b = make_run(cap.root, gen, n=200, method="long-lrm"), make_run(cap.root, gen, n=200, method="3dgs")
    other = make_run(make_capture(ws / "other", 3, gen, points=0).root, gen, n=50)
    path_file = tmp_path / "camera_path.json"
    path = CameraPath(
        (Keyframe(cap.cameras.c2w[0]), Keyframe(cap.cameras.c2w[2])),
        duration_s=0.5,
        fps=6.0,
        width=80,
        height=60,
    )
    path_file.write_text(json.dumps(to_nerfstudio(path)))
    out = tmp_path / "ab.mp4"
    main(
        [
            "render",
            str(a),
            "--path",
            str(path_file),
            "--out",
            str(out),
            "--compare",
            str(b),
            "--height",
            "24",
            "--device",
            "cpu",
        ]
    )
    frames = iio.imread(out, plugin="pyav")
    w, h = even_size(24, 80 / 60)
    assert frames.shape == (4, h, 2 * w, 3)  # open path: 0.5 s at 6 fps, both ends
    out2 = tmp_path / "orbit.mp4"
    main(
        [
            "render",
            str(a),
            "--auto",
            "orbit",
            "--out",
            str(out2),
            "--height",
            "24",
            "--duration",
            "0.5",
            "--fps",
            "4",
            "--device",
            "cpu",
        ]
    )
    assert iio.imread(out2, plugin="pyav").shape == (2, h, w, 3)
    with pytest.raises(SystemExit) as e:  # runs of different captures live in different worlds
        main(["render", str(a), "--auto", "orbit", "--out", str(tmp_path / "x.mp4"), "--compare", str(other)])
    assert e.value.code == 1 and not (tmp_path / "x.mp4").exists()
