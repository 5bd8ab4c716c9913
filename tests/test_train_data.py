"""Training data readers: Long-LRM's opencv_cameras.json layout (with depth maps) and studio
capture folders, checked against the cameras and pixels they were written from."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import write_image
from pipelines.synth.stream import StreamConfig
from pipelines.train.data import SceneSize, SceneSource, find_scenes, read_opencv_cameras

SELECT = StreamConfig("long-lrm", 16, 16, num_inputs=3, num_targets=2, window=(5, 8), trajectory_frames=8)


def _cameras(gen, n, w=40, h=24) -> Cameras:
    eye = torch.randn(n, 3, generator=gen) * 0.3 + torch.tensor([0.0, -3.0, 0.5])
    up = torch.tensor([0.0, 0.0, 1.0])
    return Cameras.look_at(eye, torch.zeros(n, 3), fov_y_deg=45.0, width=w, height=h, up=up)


def _write_frames(root, gen, n, cams):
    root.mkdir(parents=True, exist_ok=True)
    imgs = (torch.rand(n, cams.height, cams.width, 3, generator=gen) * 255).to(torch.uint8)
    names = []
    for i in range(n):
        names.append(f"images/{i:03d}.png")
        (root / "images").mkdir(exist_ok=True)
        write_image(root / names[-1], imgs[i].numpy())
    return names, imgs.permute(0, 3, 1, 2).float() / 255


def test_opencv_cameras_json_scene(tmp_path, gen):
    n = 8
    cams = _cameras(gen, n)
    root = tmp_path / "scene_a"
    names, imgs = _write_frames(root, gen, n, cams)
    depth = 1 + torch.rand(n, cams.height, cams.width, generator=gen)
    w2c = torch.linalg.inv(cams.c2w.double())  # independent of Cameras.w2c()
    frames = []
    for i in range(n):
        np.save(root / f"d{i}.npy", depth[i].numpy())
        K = cams.K[i]
        frames.append({"file_path": names[i], "w2c": w2c[i].tolist(), "w": cams.width, "h": cams.height,
                       "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
                       "depth_file_path": f"d{i}.npy"})  # fmt: skip
    (root / "opencv_cameras.json").write_text(json.dumps({"scene_name": "a", "frames": frames}))

    scene = read_opencv_cameras(root / "opencv_cameras.json")
    torch.testing.assert_close(scene.cameras.c2w, cams.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(scene.cameras.K, cams.K)

    src = SceneSource(tmp_path, selection=SELECT, size=SceneSize(height=12, multiple=4), seed=3)
    s = src[5]
    w, h = 20, 12  # 12 rows; 40 * 12 / 24 = 20 columns, both multiples of 4
    assert s.inputs.images.shape == (3, 3, h, w) and s.targets.images.shape == (2, 3, h, w)
    idx = [int(t) for t in s.name.split("inputs ")[1].split(" targets")[0].strip("[]").split(",")]
    ref = F.interpolate(imgs[idx], size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(s.inputs.images, ref, atol=1e-5, rtol=0)
    # K scales with the image: fx * w / W, cx * w / W
    k0 = s.inputs.cameras.K[0]
    assert abs(float(k0[0, 0]) - float(cams.K[idx[0], 0, 0]) * w / 40) < 1e-4
    assert abs(float(k0[1, 2]) - float(cams.K[idx[0], 1, 2]) * h / 24) < 1e-4
    torch.testing.assert_close(s.inputs.cameras.c2w, cams.c2w[idx], atol=1e-5, rtol=0)
    assert s.input_depth is not None and s.input_depth.shape == (3, h, w)
    assert float(s.input_depth.min()) >= 1.0 and float(s.input_depth.max()) <= 2.0
    # the same index gives the same sample (any rank, any resume)
    torch.testing.assert_close(src[5].targets.images, s.targets.images)


def test_studio_capture_folder_and_scene_list(tmp_path, gen):
    n = 10
    cams = _cameras(gen, n, w=32, h=32)
    root = tmp_path / "cap"
    names, imgs = _write_frames(root, gen, n, cams)
    Capture(root, names, cams, default_splits(n)).save()
    src = SceneSource(root, selection=SELECT, size=SceneSize(height=16, multiple=8, square=True), seed=0)
    s = src[2]
    assert s.inputs.images.shape == (3, 3, 16, 16) and s.input_depth is None
    idx = [int(t) for t in s.name.split("inputs ")[1].split(" targets")[0].strip("[]").split(",")]
    ref = F.interpolate(imgs[idx], size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(s.inputs.images, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(s.inputs.cameras.K, cams.resize(16, 16).K[idx], atol=1e-5, rtol=0)
    # a .txt list of scene files, relative to the list's folder
    (tmp_path / "list.txt").write_text("# scenes\ncap/cameras.json\n")
    assert find_scenes(tmp_path / "list.txt") == [(root / "cameras.json").resolve()]
