"""Camera paths on the command line: ``lrm-studio render --path`` renders at the file's
render_width x render_height as ns-render does (unless --height / --width say otherwise), and
``lrm-studio paths export --nerfstudio-world`` writes a path that nerfstudio sees through the
same pixels on the capture's nerfstudio export (and on a model trained on it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
from studio_helpers import make_capture, make_run

from pipelines.paths import (
    CameraPath,
    Keyframe,
    read_camera_path,
    sample_cameras,
    video_size,
    write_camera_path,
)
from pipelines.transforms import random_rotations
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


def gl_project(c2w_gl: torch.Tensor, fov_deg: float, width: int, height: int, x: torch.Tensor):
    """Pixel (u, v) [P, 2] and depth [P] of world points x [P, 3] in a nerfstudio camera:
    OpenGL axes (x right, y up, z back), focal (H / 2) / tan(fov / 2), principal point at the
    image centre (nerfstudio cameras/camera_paths.py get_path_from_json)."""
    R, t = c2w_gl[:3, :3].double(), c2w_gl[:3, 3].double()
    p = (x.double() - t) @ R  # [P, 3] camera coordinates: R^T (x - t)
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    depth = -p[:, 2]
    uv = torch.stack([width / 2 + f * p[:, 0] / depth, height / 2 - f * p[:, 1] / depth], -1)
    return uv, depth


def test_paths_export_in_nerfstudio_world_sees_points_through_the_same_pixels(tmp_path, gen):
    cap = make_capture(tmp_path / "ws" / "garden", 8, gen, width=80, height=60, points=20)
    main(["export", str(cap.root), "--format", "nerfstudio", "--out", str(tmp_path / "ns")])
    transforms = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    A = torch.tensor(transforms["applied_transform"], dtype=torch.float64)  # [3, 4]
    keys = [1, 4, 6]
    path = CameraPath(
        tuple(Keyframe(cap.cameras.c2w[k], 40.0 + 10 * i) for i, k in enumerate(keys)),
        duration_s=1.0, fps=6.0, width=80, height=60,
    )  # fmt: skip
    src = write_camera_path(cap.root / "paths" / "p.json", path)
    x = 0.6 * torch.randn(12, 3, generator=gen, dtype=torch.float64)  # near the origin the cameras face
    uv_ref, z_ref = sample_cameras(path).project(x.float())  # [F, P, 2], [F, P] in the capture's world

    def exported(name: str, *flags: str) -> dict:
        out = tmp_path / name
        main(["paths", "export", str(src), "--out", str(out), *flags])
        return json.loads(out.read_text())

    def assert_same_pixels(d: dict, to_file) -> None:
        frames = d["camera_path"]
        assert len(frames) == len(uv_ref)
        for j, fr in enumerate(frames):
            c2w_gl = torch.tensor(fr["camera_to_world"], dtype=torch.float64).reshape(4, 4)
            uv, depth = gl_project(c2w_gl, fr["fov"], d["render_width"], d["render_height"], to_file(x))
            torch.testing.assert_close(uv, uv_ref[j].double(), atol=2e-3, rtol=0)
            torch.testing.assert_close(depth, z_ref[j].double() * scale_of(to_file), atol=1e-4, rtol=1e-4)

    def scale_of(to_file) -> float:
        e = torch.eye(3, dtype=torch.float64)
        return float((to_file(e[:1]) - to_file(torch.zeros(1, 3, dtype=torch.float64))).norm())

    def export_world(p: torch.Tensor) -> torch.Tensor:  # what the export did to the cameras
        return p @ A[:, :3].T + A[:, 3]

    d = exported("ns_path.json", "--nerfstudio-world")
    assert (d["render_width"], d["render_height"]) == (80, 60)
    assert_same_pixels(d, export_world)
    # Keyframes at input cameras are the dataset's own cameras (transform_matrix, OpenGL axes).
    by_name = {Path(f["file_path"]).name: f["transform_matrix"] for f in transforms["frames"]}
    for i, k in enumerate(keys):
        want = torch.tensor(by_name[Path(cap.file_paths[k]).name], dtype=torch.float64)
        got = torch.tensor(d["keyframes"][i]["matrix"], dtype=torch.float64).reshape(4, 4)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)

    # A model trained on the export: its dataparser's x -> s (T x + t) on top.
    T = random_rotations(1, gen, torch.float64)[0]
    t = torch.randn(3, generator=gen, dtype=torch.float64)
    s = 0.2 + float(torch.rand(1, generator=gen))
    dp = tmp_path / "dataparser_transforms.json"
    dp.write_text(json.dumps({"transform": torch.cat([T, t[:, None]], 1).tolist(), "scale": s}))
    d = exported("model_path.json", "--nerfstudio-world", "--dataparser-transforms", str(dp))
    assert_same_pixels(d, lambda p: s * (export_world(p) @ T.T + t))
    transforms_json = str(tmp_path / "ns" / "transforms.json")
    assert_same_pixels(exported("tj.json", "--transforms-json", transforms_json), export_world)

    # The files say their world: read back, they are the capture's path again.
    back = read_camera_path(tmp_path / "model_path.json")
    torch.testing.assert_close(back.c2ws(), path.c2ws(), atol=1e-9, rtol=0)
    assert back.keyframe_times().tolist() == pytest.approx(path.keyframe_times().tolist())
    # A dataparser transform alone does not say the dataset's world: refused in one line.
    with pytest.raises(SystemExit) as e:
        main(
            [
                "paths",
                "export",
                str(src),
                "--out",
                str(tmp_path / "x.json"),
                "--dataparser-transforms",
                f"{dp}",
            ]
        )
    assert e.value.code == 1 and not (tmp_path / "x.json").exists()
