"""SfM on a textured scene with known cameras (real pycolmap runs, small for CI)."""

import contextlib
import json
import threading

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pipelines.capture.folder import Capture
from pipelines.capture.images import to_uint8, write_image
from pipelines.capture.ingest import IngestConfig
from pipelines.errors import InputError
from pipelines.progress import Cancelled, CancelToken
from pipelines.sfm.build import sfm_capture
from pipelines.sfm.config import SfMConfig
from pipelines.sfm.evaluate import pose_errors
from tests import standin_scene as scene

N_FRAMES, W, H = 24, 384, 256


@pytest.fixture(scope="module")
def rendered():
    gen = torch.Generator().manual_seed(1234)
    tex = scene.textures(gen)
    cams = scene.orbit(N_FRAMES, W, H)
    return cams, scene.render(cams, tex)


@pytest.fixture(scope="module")
def video(rendered, tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "orbit.mp4"
    iio.imwrite(path, np.stack([to_uint8(im) for im in rendered[1]]), plugin="pyav", codec="libx264", fps=10)
    return path


@pytest.fixture(scope="module")
def photos(rendered, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos") / "orbit"
    for i, im in enumerate(rendered[1]):
        write_image(folder / f"img_{i:03d}.png", im)
    return folder


@pytest.fixture(scope="module")
def video_capture(video, tmp_path_factory):
    """SfM through the command line, as a user runs it."""
    from studio.cli import main

    ws = tmp_path_factory.mktemp("ws")
    main(["sfm", str(video), "--workspace", str(ws), "--max-frames", str(N_FRAMES), "--max-side", "320"])
    return Capture.load(ws / "orbit")


def errors_by_index(cap: Capture, gt):
    """Pose errors after aligning the registered frames to the ground truth by frame index."""
    idx = [f["index"] for f in cap.meta["frames"] if f["registered"]]
    return pose_errors(cap.cameras, gt[idx])


def test_video_sfm_recovers_known_cameras(video_capture, rendered):
    cap = video_capture
    assert len(cap) >= 0.9 * N_FRAMES
    err = errors_by_index(cap, rendered[0])
    assert err.rotation_deg_median <= 1.0 and err.center_rel_median <= 0.01, err.summary()
    # intrinsics: the GT focal length scaled to the 320-px frames (undistortion keeps it)
    f_gt = rendered[0].K[0, 1, 1].item() * 320 / W
    assert abs(cap.cameras.fy.median().item() / f_gt - 1) < 0.02
    # sparse points lie on the scene's surfaces (cube |p|inf = 1, room |p|inf = 4) once aligned
    xyz = err.alignment.apply(torch.from_numpy(cap.load_points()[0]).double())
    linf = xyz.abs().amax(-1)
    dist = torch.minimum((linf - scene.CUBE).abs(), (linf - scene.ROOM).abs())
    assert len(xyz) > 500 and dist.median() < 0.02, (len(xyz), dist.median())


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
    assert {"ingest_s", "features_s", "matching_s", "mapping_s", "undistort_s", "total_s"} <= set(
        meta["timings"]
    )
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    imgs = cap.load_images([0])
    assert imgs.shape == (1, 3, cap.cameras.height, cap.cameras.width)


def test_cancel_leaves_workspace_unchanged(photos, tmp_path):
    dest = tmp_path / "ws" / "orbit"
    dest.mkdir(parents=True)
    (dest / "cameras.json").write_text("old")
    token = CancelToken()

    def progress(fraction, message):
        if "matching" in message:
            token.cancel()

    with pytest.raises(Cancelled):
        sfm_capture(
            photos,
            dest,
            ingest_config=IngestConfig(max_side=160),
            overwrite=True,
            progress=progress,
            cancel=token,
        )
    assert (dest / "cameras.json").read_text() == "old"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["orbit"]


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
def test_photos_exhaustive_repeatable_and_global(photos, rendered, tmp_path):
    cfg = IngestConfig(max_side=256)
    a = sfm_capture(photos, tmp_path / "a", ingest_config=cfg)
    b = sfm_capture(photos, tmp_path / "b", ingest_config=cfg)
    assert a.meta["settings"]["matcher"] == "exhaustive"
    assert a.file_paths == b.file_paths
    torch.testing.assert_close(a.cameras.c2w, b.cameras.c2w, atol=1e-4, rtol=0)  # fixed seed
    g = sfm_capture(photos, tmp_path / "g", ingest_config=cfg, sfm_config=SfMConfig(mapper="global"))
    for cap in (a, g):
        assert len(cap) >= 0.9 * N_FRAMES
        err = errors_by_index(_with_index(cap), rendered[0])
        assert err.rotation_deg_median <= 1.0 and err.center_rel_median <= 0.01, err.summary()


def _with_index(cap):
    for f in cap.meta["frames"]:  # photos: the source name carries the frame index
        f["index"] = int(f["source"][4:7])
    return cap
