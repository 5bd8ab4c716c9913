"""Camera paths on the command line: ``lrm-studio render --path`` renders at the file's
render_width x render_height as ns-render does (unless --height / --width say otherwise)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import torch
from studio_helpers import make_capture, make_run

from pipelines.paths import (
    CameraPath,
    Keyframe,
    read_camera_path,
    video_size,
    write_camera_path,
)
from studio.cli import main


def test_render_uses_the_files_size_unless_told(tmp_path, gen):
    file_w, file_h = (75, 131) if torch.rand(1, generator=gen) < 0.5 else (131, 75)  # odd, either way
    cap = make_capture(tmp_path / "ws" / "garden", 4, gen, width=80, height=60, points=0)
    run = make_run(cap.root, gen, n=40)
    path = CameraPath(
        (Keyframe(cap.cameras.c2w[0]), Keyframe(cap.cameras.c2w[1])),
        duration_s=0.2, fps=5.0, width=file_w, height=file_h,
    )  # fmt: skip
    file = write_camera_path(tmp_path / "camera_path.json", path)
    d = json.loads(file.read_text())
    assert (d["render_width"], d["render_height"]) == (file_w, file_h)
    # Like ns-render: the file's size (H.264 needs even sides: rounded down).
    out = tmp_path / "v.mp4"
    main(["render", str(run), "--path", str(file), "--out", str(out), "--device", "cpu"])
    assert iio.imread(out, plugin="pyav").shape[1:3] == (file_h // 2 * 2, file_w // 2 * 2)
    # --height / --width (the CLI passes them on; test_studio_paths renders with --height):
    # one side given, the other keeps the file's aspect ratio; both given, both kept.
    read = read_camera_path(file)
    w, h = video_size(read, height=40)
    assert h == 40 and w % 2 == 0 and abs(w - 40 * file_w / file_h) <= 1
    w, h = video_size(read, width=36)
    assert w == 36 and h % 2 == 0 and abs(h - 36 * file_h / file_w) <= 1
    assert video_size(read, 36, 22) == (36, 22) and video_size(read, 37, 23) == (36, 22)
