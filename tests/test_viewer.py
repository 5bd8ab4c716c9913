"""The viewer without a browser: the Gaussians -> viser adapter against an independent float64
reference, the browser budget, scene nodes for captures and results, panels following the
studio, and uploads streamed to disk through viser's own message handlers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import viser
import viser.transforms as vtf
from studio_helpers import make_capture, make_run, plain
from viser import _messages

from studio.app import Studio
from studio.config import StudioConfig
from viewer import names
from viewer.app import build_viewer
from viewer.scene import capture_poses
from viewer.splats import put_splats, to_viser_arrays
from viewer.uploads import streaming_uploads

C0 = 0.28209479177387814


def reference_arrays(means, quats, log_scales, logits, sh0):
    """float64 numpy, written from the formulas: Sigma = R diag(exp(2 s)) R^T with R from the
    normalized wxyz quaternion (viser's SO3), rgb = clip(0.5 + C0 sh0), alpha = sigmoid."""
    R = np.stack([vtf.SO3(q / np.linalg.norm(q)).as_matrix() for q in quats])
    cov = np.einsum("nij,nj,nkj->nik", R, np.exp(2 * log_scales), R)
    return means, cov, np.clip(0.5 + C0 * sh0, 0, 1), 1 / (1 + np.exp(-logits))[:, None]


def test_adapter_matches_reference(gen):
    from pipelines.gaussians import Gaussians

    g = Gaussians.random(257, sh_degree=2, generator=gen)
    a = to_viser_arrays(g, budget=10_000)
    ref = reference_arrays(
        *(t.double().numpy() for t in (g.means, g.quats, g.log_scales, g.opacity_logits, g.sh[:, 0]))
    )
    assert a.num == a.num_total == 257
    for got, want in zip((a.centers, a.covariances, a.rgbs, a.opacities), ref, strict=True):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_budget_keeps_most_important_in_order_and_drops_nonfinite(gen):
    from pipelines.gaussians import Gaussians

    g = Gaussians.random(400, generator=gen)
    g.means[5, 1] = float("nan")
    g.log_scales[17, 0] = float("inf")
    budget = int(torch.randint(20, 300, (1,), generator=gen))
    a = to_viser_arrays(g, budget=budget)
    assert a.num == budget and a.num_total == 400
    # Reference: score = sigmoid(logit) * exp(2 * mean log-scale), float64, finite rows only.
    ls = g.log_scales.double().numpy()
    score = 1 / (1 + np.exp(-g.opacity_logits.double().numpy())) * np.exp(2 * ls.mean(1))
    finite = np.isfinite(g.means.numpy()).all(1) & np.isfinite(ls).all(1)
    idx = np.flatnonzero(finite)
    keep = np.sort(idx[np.argsort(-score[idx], kind="stable")[:budget]])
    np.testing.assert_allclose(a.centers, g.means.numpy()[keep], rtol=0, atol=0)
    assert to_viser_arrays(g, budget=10**6).num == 398  # all finite ones under a large budget


@pytest.fixture
def server():
    s = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield s
    s.stop()


def scene_nodes(server: viser.ViserServer) -> set[str]:
    return set(server.scene._handle_from_node_name)


def test_put_splats_adds_then_updates_in_place(server, gen):
    from pipelines.gaussians import Gaussians

    a = to_viser_arrays(Gaussians.random(50, generator=gen), budget=100)
    h = put_splats(server.scene, names.splats("A"), a)
    assert names.splats("A") in scene_nodes(server) and h.buffer.shape == (50, 8)
    b = to_viser_arrays(Gaussians.random(80, generator=gen), budget=100)
    assert put_splats(server.scene, names.splats("A"), b, h) is h
    assert h.buffer.shape == (80, 8)
    np.testing.assert_array_equal(h.centers, b.centers)


def test_frustum_poses_follow_the_cameras(tmp_path, gen):
    cap = make_capture(tmp_path / "cap", 5, gen, width=80, height=40, points=0)
    poses = capture_poses(cap)
    for i, p in enumerate(poses):
        np.testing.assert_allclose(
            vtf.SO3(p.wxyz).as_matrix(), cap.cameras.c2w[i, :3, :3].double().numpy(), atol=1e-6
        )
        np.testing.assert_allclose(p.position, cap.cameras.c2w[i, :3, 3].double().numpy(), atol=1e-6)
        assert p.fov_y_rad == pytest.approx(2 * np.arctan(20 / float(cap.cameras.fy[i])))
        assert p.aspect == 2.0


def test_overview_looks_at_the_scene(tmp_path, gen):
    from pipelines.cameras import Cameras
    from pipelines.capture.folder import Capture, default_splits
    from viewer.scene import overview_pose, scene_target, world_up

    ring = make_capture(tmp_path / "ring", 8, gen, points=0)  # a ring of cameras looking at the origin
    np.testing.assert_allclose(scene_target(ring), 0.0, atol=1e-4)
    np.testing.assert_allclose(world_up(ring), [0, 0, 1], atol=1e-6)
    pose, target = overview_pose(ring, world_up(ring))
    forward = vtf.SO3(pose.wxyz).as_matrix()[:, 2]  # OpenCV: the view looks along +z
    np.testing.assert_allclose(
        forward, (target - pose.position) / np.linalg.norm(target - pose.position), atol=1e-5
    )
    assert pose.position[2] > 0.5 and np.linalg.norm(pose.position[:2]) > 3.0  # raised, beyond the ring
    with_points = make_capture(tmp_path / "pts", 8, gen, points=50)
    xyz, _ = with_points.load_points()
    np.testing.assert_allclose(scene_target(with_points), np.median(xyz, axis=0), atol=1e-6)
    # Parallel cameras (a forward-facing sweep): their axes never meet; the target lies ahead.
    eye = torch.stack([torch.linspace(-1, 1, 5), torch.zeros(5), torch.zeros(5)], 1)
    cams = Cameras.look_at(eye, eye + torch.tensor([0.0, 0, 1]), fov_y_deg=50, width=32, height=24)
    sweep = Capture(tmp_path / "sweep", [f"images/{i}.png" for i in range(5)], cams, default_splits(5))
    np.testing.assert_allclose(scene_target(sweep), [0, 0, 1.0], atol=1e-6)


def test_viewer_follows_the_studio(server, tmp_path, gen):
    ws = tmp_path / "ws"
    make_capture(ws / "one", 9, gen, points=123, unregistered=2)
    make_capture(ws / "two", 4, gen, points=0)
    run = make_run(ws / "one", gen, n=300)
    studio = Studio(ws, config=StudioConfig(workspace=ws, browser_budget=100))
    try:
        studio.open_capture("one")
        viewer = build_viewer(server, studio)
        nodes = scene_nodes(server)
        assert {names.frustum(i) for i in range(9)} <= nodes and names.SPARSE_POINTS in nodes
        assert names.frustum(9) not in nodes
        assert "Registered:** 9 of 11" in plain(viewer.cameras.counts.content)
        assert "Unregistered:** 2" in plain(viewer.cameras.counts.content) and "123" in plain(
            viewer.cameras.counts.content
        )
        assert (
            tuple(viewer.capture.capture.options) == ("one", "two") and viewer.capture.capture.value == "one"
        )
        assert run.name in plain(viewer.runs.table.content) and tuple(viewer.runs.run.options) == (run.name,)

        # Load a run as A: the node exists with the budgeted count; hide it: gone.
        studio.show_run(run.name, "A")
        assert names.splats("A") in scene_nodes(server)
        assert viewer.scene.splat_counts["A"] == (100, 300)
        assert "**A:**" in plain(viewer.runs.table.content)
        studio.show_run(run.name, "B")
        assert {names.splats("A"), names.splats("B")} <= scene_nodes(server)
        studio.hide("A")
        assert names.splats("A") not in scene_nodes(server) and names.splats("B") in scene_nodes(server)

        # Looking through a frustum hides it (its photo would cover the view), only that one.
        viewer.scene.look_through(3)
        viewer.scene.look_through(4)
        assert [f.visible for f in viewer.scene.frustums] == [i != 4 for i in range(9)]

        # A capture that appears on disk shows up after a rescan; the open one stays selected.
        make_capture(ws / "three", 2, gen, points=0)
        studio.rescan()
        assert tuple(viewer.capture.capture.options) == ("one", "three", "two")
        assert viewer.capture.capture.value == "one" and studio.capture.name == "one"

        # Another capture: its frustums replace the first one's, results leave the scene.
        studio.open_capture("two")
        nodes = scene_nodes(server)
        assert (
            names.frustum(3) in nodes and names.frustum(4) not in nodes and names.SPARSE_POINTS not in nodes
        )
        assert not any(n.startswith(names.SPLATS + "/") for n in nodes)
        assert viewer.capture.capture.value == "two" and "No runs" in plain(viewer.runs.table.content)

        # Jobs: progress and failures reach the panel.
        release = threading.Event()

        def slow(progress, cancel):
            progress(0.25, "stage 1 of 4")
            assert release.wait(10)

        job = studio.jobs.submit("slow job", slow)
        for _ in range(200):
            if viewer.jobs.progress.value == 25.0:
                break
            threading.Event().wait(0.01)
        assert viewer.jobs.progress.value == 25.0 and "stage 1 of 4" in plain(viewer.jobs.status.content)
        assert viewer.jobs.job.value.startswith(f"#{job.id} ") and not viewer.jobs.cancel.disabled
        release.set()

        def fails(progress, cancel):
            raise RuntimeError("only 2 of 40 frames registered; film with more overlap")

        bad = studio.jobs.submit("SfM", fails)
        assert studio.jobs.wait(bad.id, 10).status == "failed"
        assert "only 2 of 40 frames registered" in plain(viewer.jobs.queue.content)
        assert viewer.jobs.cancel.disabled and viewer.jobs.progress.value == 0.0
    finally:
        studio.close()


def start_message(button, transfer: str, name: str, size: int, parts: int):
    return _messages.FileTransferStartUpload(
        source_component_uuid=button._impl.uuid,
        transfer_uuid=transfer,
        filename=name,
        mime_type="",
        part_count=parts,
        size_bytes=size,
    )


def test_uploads_stream_to_disk_through_viser_handlers(server, tmp_path, seed):
    rng = np.random.default_rng(seed)
    uploads = tmp_path / "uploads"
    done: list = []
    failed: list = []
    finished = threading.Event()
    router = streaming_uploads(server)
    assert streaming_uploads(server) is router
    button = router.add_button(
        "Upload", uploads_dir=lambda: uploads, limit_bytes=1 << 20,
        on_uploaded=lambda client, path, up: (done.append((client, path)), finished.set()),
        on_failed=lambda client, reason: (failed.append(reason), finished.set()),
    )  # fmt: skip
    data = rng.bytes(int(rng.integers(1000, 5000)))
    chunk = 1024
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    router._on_start(7, start_message(button, "t1", "../../../My Video.MP4", len(data), len(parts)))
    for i, part in enumerate(parts):
        router._on_part(7, _messages.FileTransferPart(button._impl.uuid, "t1", i, part))
    assert finished.wait(10) and not failed
    ((client, path),) = done
    assert client is None  # no such browser tab: the callback still runs
    assert path == (uploads / "My_Video.MP4").resolve() and path.read_bytes() == data
    assert router.in_flight == 0 and server.gui._current_file_upload_states == {}  # nothing held in memory

    # Over the limit: refused at the header, nothing written.
    finished.clear()
    router._on_start(7, start_message(button, "t2", "huge.mp4", 2 << 20, 4))
    router._on_part(7, _messages.FileTransferPart(button._impl.uuid, "t2", 0, b"x" * 10))
    assert finished.wait(10) and "over the upload limit" in failed[-1]
    assert sorted(p.name for p in uploads.iterdir()) == ["My_Video.MP4"]

    # A tab that disconnects mid-upload leaves no partial file.
    router._on_start(9, start_message(button, "t3", "b.mp4", 3000, 3))
    router._on_part(9, _messages.FileTransferPart(button._impl.uuid, "t3", 0, b"y" * 1024))
    assert router.in_flight == 1
    router._on_disconnect(type("Client", (), {"client_id": 9})())
    assert router.in_flight == 0 and sorted(p.name for p in uploads.iterdir()) == ["My_Video.MP4"]

    # Upload buttons the router did not create are refused (viser's in-memory path is never used).
    other = server.gui.add_upload_button("Plain")
    router._on_start(7, start_message(other, "t4", "x.bin", 10, 1))
    router._on_part(7, _messages.FileTransferPart(other._impl.uuid, "t4", 0, b"x" * 10))
    assert server.gui._current_file_upload_states == {} and router.in_flight == 0


def test_open_transfers_are_capped_per_tab_and_in_all(server, tmp_path):
    from viewer.uploads import MAX_PER_CLIENT, MAX_TOTAL

    failed: list = []
    router = streaming_uploads(server)
    button = router.add_button(
        "Upload", uploads_dir=lambda: tmp_path / "uploads", limit_bytes=1 << 20,
        on_uploaded=lambda *a: None, on_failed=lambda client, reason: failed.append(reason),
    )  # fmt: skip
    starts = 0

    def start(client: int) -> None:  # a start that never sends a part (the probe's attack)
        nonlocal starts
        starts += 1
        router._on_start(client, start_message(button, f"t{starts}", f"v{starts}.mp4", 1000, 1))

    for _ in range(MAX_PER_CLIENT + 3):
        start(1)
    assert router.in_flight == MAX_PER_CLIENT
    clients = list(range(2, 2 + MAX_TOTAL))
    for c in clients:
        start(c)
    start(clients[-1] + 1)
    assert router.in_flight == MAX_TOTAL
    deadline = time.monotonic() + 10
    while len(failed) < starts - MAX_TOTAL and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(failed) == starts - MAX_TOTAL and all("in progress already" in f for f in failed)
    assert len(list((tmp_path / "uploads").glob(".*.part"))) == MAX_TOTAL  # one file per open transfer
    for c in [1, *clients, clients[-1] + 1]:
        router._on_disconnect(type("Client", (), {"client_id": c})())
    assert router.in_flight == 0 and not list((tmp_path / "uploads").glob(".*.part"))


def test_uploads_quota_and_accepted_suffixes(server, tmp_path):
    failed: list = []
    router = streaming_uploads(server)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "old.mp4").write_bytes(b"\0" * 3000)
    button = router.add_button(
        "Upload", uploads_dir=lambda: uploads, limit_bytes=1 << 20, quota_bytes=4000,
        on_uploaded=lambda *a: None, on_failed=lambda client, reason: failed.append(reason),
    )  # fmt: skip
    router._on_start(1, start_message(button, "q1", "new.mp4", 1500, 1))  # 3000 + 1500 > 4000
    json_button = router.add_button(
        "Paths", uploads_dir=lambda: uploads, limit_bytes=100, suffixes=frozenset({".json"}),
        on_uploaded=lambda *a: None, on_failed=lambda client, reason: failed.append(reason),
    )  # fmt: skip
    router._on_start(1, start_message(json_button, "q2", "clip.mp4", 10, 1))
    router._on_start(1, start_message(json_button, "q3", "big.json", 101, 1))
    deadline = time.monotonic() + 10
    while len(failed) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert router.in_flight == 0 and len(failed) == 3
    assert "may hold" in failed[0] and "Clear uploads" in failed[0]
    assert "not a .json file" in " ".join(failed) and "over the upload limit" in " ".join(failed)
    assert sorted(p.name for p in uploads.iterdir()) == ["old.mp4"]


def test_toasts_show_paths_relative_to_the_workspace(tmp_path):
    from viewer.notify import relative_paths

    ws = tmp_path / "ws"
    text = f"{ws}/demo/runs/x has no gaussians.ply; {ws}2/other stays; cannot write {ws}."
    assert (
        relative_paths(text, ws)
        == f"demo/runs/x has no gaussians.ply; {ws}2/other stays; cannot write workspace."
    )
    assert relative_paths(text, None) == text
