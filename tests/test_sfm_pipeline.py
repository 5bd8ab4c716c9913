"""SfM on the bundled synth demo video, whose cameras are known (real pycolmap runs, CI-sized)."""

import contextlib
import json
import threading
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture
from pipelines.capture.images import write_image
from pipelines.errors import InputError
from pipelines.progress import Cancelled, CancelToken
from pipelines.sfm.build import sfm_capture
from pipelines.sfm.config import SfMConfig
from pipelines.sfm.evaluate import pose_errors
from pipelines.synth.capture import read_gt_cameras

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo" / "demo.mp4"
N_FRAMES, MAX_SIDE = 24, 320  # 24 of the demo's 240 frames (12.5 degrees apart), 320x180


@pytest.fixture(scope="module")
def ground_truth():
    """{video frame index: camera} of the demo (pipelines.synth ground truth)."""
    index, cams, _ = read_gt_cameras(DEMO.parent / "gt_cameras.json")
    return {i: cams[k] for k, i in enumerate(index)}


@pytest.fixture(scope="module")
def video_capture(tmp_path_factory):
    """SfM through the command line, as a user runs it."""
    from studio.cli import main

    ws = tmp_path_factory.mktemp("ws")
    main(
        ["sfm", str(DEMO), "--workspace", str(ws), "--max-frames", f"{N_FRAMES}", "--max-side", f"{MAX_SIDE}"]
    )
    return Capture.load(ws / "demo")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Every 10th demo frame as PNG photos (name = video frame index), 320x180."""
    folder = tmp_path_factory.mktemp("photos") / "demo"
    for i, frame in enumerate(iio.imiter(DEMO, plugin="pyav")):
        if i % 10 == 0:
            write_image(folder / f"{i:04d}.png", frame[::2, ::2])
    return folder


def errors_by_index(cap: Capture, ground_truth: dict, key=lambda f: f["index"]):
    frames = [f for f in cap.meta["frames"] if f["registered"]]
    gt = Cameras.cat([ground_truth[key(f)] for f in frames])
    return pose_errors(cap.cameras, gt)


def test_video_sfm_recovers_known_cameras(video_capture, ground_truth):
    cap = video_capture
    assert len(cap) >= 0.9 * N_FRAMES
    err = errors_by_index(cap, ground_truth)
    assert err.rotation_deg_median <= 1.0 and err.center_rel_median <= 0.01, err.summary()
    # intrinsics: the ground-truth focal length scaled to the kept frame size
    gt0 = next(iter(ground_truth.values()))
    f_gt = gt0.fy[0].item() * cap.cameras.height / gt0.height
    assert abs(cap.cameras.fy.median().item() / f_gt - 1) < 0.03


def test_sparse_points_lie_on_the_scene(video_capture, ground_truth):
    """Aligned to the ground truth, each sparse point sits on a surface that some ground-truth
    camera sees: its z-depth matches the ray-cast depth at its pixel in at least one view."""
    from pipelines.synth.demo import DemoConfig, demo_scene_and_cameras
    from pipelines.synth.raycast import render

    cap = video_capture
    err = errors_by_index(cap, ground_truth)
    xyz = err.alignment.apply(torch.from_numpy(cap.load_points()[0]).double()).float()
    assert len(xyz) > 300
    scene, _ = demo_scene_and_cameras(DemoConfig())
    w, h = 128, 72
    views = [ground_truth[i].resize(w, h) for i in sorted(ground_truth)[15::60]]  # 4 views round the orbit
    best = torch.full((len(xyz),), float("inf"))
    for cam in views:
        depth = render(scene, cam).depth[0]  # [H, W] camera z
        uv, z = cam.project(xyz)
        u, v = uv[0, :, 0].floor().long(), uv[0, :, 1].floor().long()
        ok = (z[0] > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d = depth[v.clamp(0, h - 1), u.clamp(0, w - 1)]
        rel = ((z[0] - d).abs() / d.clamp_min(1e-6)).where(ok & (d > 0), torch.tensor(float("inf")))
        best = torch.minimum(best, rel)
    on_surface = (best < 0.03).float().mean()
    assert on_surface > 0.8, (on_surface, best.median())


def test_capture_folder_contract(video_capture):
    cap = video_capture
    root = cap.root
    d = json.loads((root / "cameras.json").read_text())
    meta = json.loads((root / "capture.json").read_text())
    assert len(d["frames"]) == len(cap) == meta["registered"]
    assert meta["registered"] + meta["unregistered"] == N_FRAMES == len(meta["frames"])
    assert [f["split"] for f in d["frames"]] == ["test" if i % 8 == 0 else "train" for i in range(len(cap))]
    assert d["points"] == "points.ply" and (root / "points.ply").is_file()
    for f in meta["frames"]:  # every frame, registered or not, has an undistorted image
        assert (root / f["file_path"]).is_file()
    assert set(d["unregistered"]) == {f["file_path"] for f in meta["frames"] if not f["registered"]}
    assert (root / "sfm" / "database.db").is_file() and (root / "sfm" / "sparse" / "cameras.bin").is_file()
    assert meta["source"]["type"] == "video" and meta["settings"]["matcher"] == "sequential"
    stages = ("ingest", "features", "matching", "mapping", "undistort", "total")
    assert {f"{s}_s" for s in stages} | {f"{s}_cpu_s" for s in stages} <= set(meta["timings"])
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    imgs = cap.load_images([0])
    assert imgs.shape == (1, 3, cap.cameras.height, cap.cameras.width)


def test_cancel_leaves_workspace_unchanged(photos, tmp_path):
    dest = tmp_path / "ws" / "demo"
    dest.mkdir(parents=True)
    (dest / "cameras.json").write_text("old")
    token = CancelToken()

    def progress(fraction, message):
        if "matching" in message:
            token.cancel()

    with pytest.raises(Cancelled):
        sfm_capture(photos, dest, overwrite=True, progress=progress, cancel=token)
    assert (dest / "cameras.json").read_text() == "old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["demo"]


def test_pycolmap_stage_stops_on_cancel(photos, tmp_path):
    """The cancel token reaches pycolmap's own token: extraction stops part-way."""
    import pycolmap

    from pipelines.sfm.colmap import run_stage

    db = tmp_path / "database.db"
    pycolmap.Database.open(db).close()
    names = sorted(p.name for p in photos.iterdir())
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(Cancelled):
        run_stage(
            lambda tok: pycolmap.extract_features(
                db,
                photos,
                image_names=names,
                device=pycolmap.Device.cpu,
                extraction_options={"num_threads": 1},
                cancellation_token=tok,
            ),
            cancel=token,
        )
    with contextlib.closing(pycolmap.Database.open(db)) as d:
        extracted = sum(d.exists_keypoints(im.image_id) for im in d.read_all_images())
    assert extracted < len(names)


def test_too_few_registered_is_a_clear_error(tmp_path, gen):
    folder = tmp_path / "noise"
    for i in range(6):  # unrelated views: nothing matches
        write_image(
            folder / f"{i}.png", (torch.rand(120, 160, 3, generator=gen) * 255).to(torch.uint8).numpy()
        )
    with pytest.raises(InputError, match="could place only .* of 6 frames.*try"):
        sfm_capture(folder, tmp_path / "ws" / "noise", sfm_config=SfMConfig(max_num_features=1024))
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


@pytest.mark.slow
def test_photos_exhaustive_repeatable_and_global(photos, ground_truth, tmp_path):
    # fixed seed, one thread: repeatable (several threads reorder float sums: ~5e-4 seen)
    a = sfm_capture(photos, tmp_path / "a", sfm_config=SfMConfig(num_threads=1))
    b = sfm_capture(photos, tmp_path / "b", sfm_config=SfMConfig(num_threads=1))
    assert a.meta["settings"]["matcher"] == "exhaustive"
    assert a.file_paths == b.file_paths
    torch.testing.assert_close(a.cameras.c2w, b.cameras.c2w, atol=1e-4, rtol=0)
    g = sfm_capture(photos, tmp_path / "g", sfm_config=SfMConfig(mapper="global"))
    for cap in (a, g):
        assert len(cap) >= 0.9 * len(a.meta["frames"])
        err = errors_by_index(cap, ground_truth, key=lambda f: int(f["source"][:4]))
        assert err.rotation_deg_median <= 1.0 and err.center_rel_median <= 0.01, err.summary()
