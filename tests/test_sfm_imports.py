"""Imports (COLMAP text/binary, nerfstudio transforms.json, Long-LRM json) and exports, checked
against cameras and images built here independently: hand-written COLMAP text files, explicit
convention formulas, and an analytic image pattern seen through distortion models written here."""

import errno
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest
import torch

from pipelines.capture.folder import Capture
from pipelines.capture.images import read_image, write_image
from pipelines.errors import InputError
from pipelines.gaussians.ply import read_points_ply, write_points_ply
from pipelines.sfm.exports import export_capture
from pipelines.sfm.imports import detect_format, import_capture

FLIP = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV <-> OpenGL camera axes
NS_A = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # (x, y, z) -> (x, z, -y)


# ------------------------------------------------------------------ independent references
def quat_to_R(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def random_poses(gen, n):
    """n random (qvec wxyz, tvec, c2w [4,4]) for COLMAP world-to-camera."""
    out = []
    for _ in range(n):
        q = torch.randn(4, generator=gen, dtype=torch.float64).numpy()
        q = q / np.linalg.norm(q) * np.sign(q[0])
        t = torch.randn(3, generator=gen, dtype=torch.float64).numpy() * 2
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = quat_to_R(q), t
        out.append((q, t, np.linalg.inv(w2c)))
    return out


def pattern(x, y):
    """Analytic colour [..., 3] of a ray with normalized pinhole coordinates (x, y)."""
    return np.stack(
        [
            0.5 + 0.2 * np.sin(7 * x + 0.3) + 0.2 * np.cos(5 * y),
            0.5 + 0.25 * np.sin(4 * x - 6 * y + 1.0),
            0.5 + 0.2 * np.cos(6 * x + 0.5) * np.sin(5 * y + 0.2) + 0.1 * x,
        ],
        -1,
    )


def distort(model, params, x, y):
    """Forward distortion of normalized coordinates (COLMAP / OpenCV formulas)."""
    if model == "OPENCV":
        k1, k2, p1, p2, k3 = (*params, 0.0)[:5]
    elif model == "FULL_OPENCV3":
        k1, k2, p1, p2, k3 = params
    if model in ("OPENCV", "FULL_OPENCV3"):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        return x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (
            r2 + 2 * y * y
        ) + 2 * p2 * x * y
    k1, k2, k3, k4 = params  # OPENCV_FISHEYE
    r = np.sqrt(x * x + y * y)
    th = np.arctan(r)
    thd = th * (1 + k1 * th**2 + k2 * th**4 + k3 * th**6 + k4 * th**8)
    s = np.where(r > 1e-12, thd / np.maximum(r, 1e-12), 1.0)
    return x * s, y * s


def undistort_points(model, params, xd, yd):
    """Inverse of ``distort`` by Newton's method with a numerical Jacobian (float64)."""
    x, y = xd.copy(), yd.copy()
    h = 1e-7
    for _ in range(30):
        fx, fy = distort(model, params, x, y)
        rx, ry = fx - xd, fy - yd
        ax, ay = distort(model, params, x + h, y)
        bx, by = distort(model, params, x, y + h)
        j11, j21, j12, j22 = (ax - fx) / h, (ay - fy) / h, (bx - fx) / h, (by - fy) / h
        det = j11 * j22 - j12 * j21
        x, y = x - (j22 * rx - j12 * ry) / det, y - (-j21 * rx + j11 * ry) / det
    fx, fy = distort(model, params, x, y)
    assert max(np.abs(fx - xd).max(), np.abs(fy - yd).max()) < 1e-9
    return x, y


def distorted_image(model, params, fx, fy, cx, cy, w, h):
    v, u = np.mgrid[0:h, 0:w] + 0.5
    x, y = undistort_points(model, params, (u - cx) / fx, (v - cy) / fy)
    return (np.clip(pattern(x, y), 0, 1) * 255).round().astype(np.uint8)


def expected_image(K, w, h):
    v, u = np.mgrid[0:h, 0:w] + 0.5
    return pattern((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1])


def write_colmap_text(folder, camera_line, poses, names, points):
    """cameras.txt / images.txt / points3D.txt by hand; every point is seen by images 1 and 2."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(f"# camera\n1 {camera_line}\n")
    lines = []
    for i, ((q, t, _), name) in enumerate(zip(poses, names, strict=True), start=1):
        lines.append(" ".join(str(float(v)) for v in [*q, *t]).join([f"{i} ", f" 1 {name}"]))
        obs = [f"{10.0 + j} {20.0 + j} {j + 1}" for j in range(len(points[0]))] if i <= 2 else []
        lines.append(" ".join(obs))
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    pl = [
        f"{j + 1} {x} {y} {z} {r} {g} {b} 0.5 1 {j} 2 {j}"
        for j, ((x, y, z), (r, g, b)) in enumerate(zip(points[0].tolist(), points[1].tolist(), strict=True))
    ]
    (folder / "points3D.txt").write_text("\n".join(pl) + "\n")


def make_colmap_scene(tmp_path, gen, n=9, w=64, h=48, camera_line=None, image_fn=None):
    poses = random_poses(gen, n)
    names = [f"im_{i:03d}.png" for i in range(n)]
    for name in names:
        img = image_fn() if image_fn else (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()
        write_image(tmp_path / "scene" / "images" / name, img)
    xyz = torch.randn(7, 3, generator=gen, dtype=torch.float64).numpy()
    rgb = torch.randint(0, 256, (7, 3), generator=gen).numpy().astype(np.uint8)
    camera_line = camera_line or f"PINHOLE {w} {h} 70.5 71.25 31.5 24.25"
    write_colmap_text(tmp_path / "scene" / "sparse" / "0", camera_line, poses, names, (xyz, rgb))
    return poses, names, (xyz, rgb)


def assert_cameras(cap, c2w_gt, atol=1e-5):
    got = cap.cameras.c2w.double().numpy()
    np.testing.assert_allclose(got, np.stack(c2w_gt), atol=atol, rtol=0)


# ------------------------------------------------------------------ tests
def test_colmap_text_and_binary_import_and_round_trips(tmp_path, gen):
    poses, names, (xyz, rgb) = make_colmap_scene(tmp_path, gen)
    c2w_gt = [p[2] for p in poses]
    cap = import_capture(tmp_path / "scene", tmp_path / "ws" / "text")  # finds sparse/0 and images/
    assert cap.file_paths == [f"images/{n}" for n in names]
    assert_cameras(cap, c2w_gt)
    K = np.array([[70.5, 0, 31.5], [0, 71.25, 24.25], [0, 0, 1]])
    np.testing.assert_allclose(
        cap.cameras.K.double().numpy(), np.broadcast_to(K, (len(names), 3, 3)), atol=1e-5
    )
    assert cap.splits == ["test" if i % 8 == 0 else "train" for i in range(len(names))]
    for n in names:  # pinhole: the images are copied unchanged
        assert (cap.root / "images" / n).read_bytes() == (tmp_path / "scene" / "images" / n).read_bytes()
    pts = cap.load_points()
    order = np.argsort(pts[0][:, 0])
    np.testing.assert_allclose(pts[0][order], xyz[np.argsort(xyz[:, 0])], atol=1e-6)
    np.testing.assert_array_equal(pts[1][order], rgb[np.argsort(xyz[:, 0])])

    # binary model, images given explicitly
    binary = tmp_path / "binary"
    binary.mkdir()
    pycolmap.Reconstruction(tmp_path / "scene" / "sparse" / "0").write(binary)
    cap_b = import_capture(binary, tmp_path / "ws" / "bin", images=tmp_path / "scene" / "images")
    assert_cameras(cap_b, c2w_gt)

    # COLMAP -> ours -> transforms.json -> ours
    out = export_capture(cap, "nerfstudio", tmp_path / "export" / "transforms.json")
    d = json.loads(out.read_text())
    for f, c2w in zip(d["frames"], c2w_gt, strict=True):  # nerfstudio's convention, written out explicitly
        np.testing.assert_allclose(np.array(f["transform_matrix"]), NS_A @ c2w @ FLIP, atol=1e-5)
    assert (out.parent / d["frames"][0]["file_path"]).resolve() == (cap.root / cap.file_paths[0]).resolve()
    ns_pts, _ = read_points_ply(out.parent / d["ply_file_path"])
    np.testing.assert_allclose(ns_pts[:, [0, 2]] * [1, -1], pts[0][:, [0, 1]], atol=1e-5)
    cap_ns = import_capture(out, tmp_path / "ws" / "ns")
    assert_cameras(cap_ns, c2w_gt)
    torch.testing.assert_close(cap_ns.cameras.K, cap.cameras.K, atol=1e-5, rtol=0)
    np.testing.assert_allclose(cap_ns.load_points()[0], pts[0], atol=1e-5)

    # ours -> Long-LRM opencv_cameras.json -> ours
    out = export_capture(cap, "long-lrm", tmp_path / "export")
    d = json.loads(out.read_text())
    np.testing.assert_allclose(np.array(d["frames"][3]["w2c"]), np.linalg.inv(c2w_gt[3]), atol=1e-5)
    cap_ll = import_capture(out, tmp_path / "ws" / "ll")
    assert_cameras(cap_ll, c2w_gt)
    torch.testing.assert_close(cap_ll.cameras.K, cap.cameras.K, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "model,params",
    [("OPENCV", [-0.18, 0.04, 0.002, -0.003]), ("OPENCV_FISHEYE", [0.05, -0.02, 0.01, -0.004])],
)
def test_colmap_distorted_images_are_undistorted(tmp_path, gen, model, params):
    w, h, f, cx, cy = 96, 72, 80.0, 47.0, 36.5
    img = distorted_image(model, params, f, f * 1.02, cx, cy, w, h)
    line = f"{model} {w} {h} {f} {f * 1.02} {cx} {cy} " + " ".join(map(str, params))
    poses, names, _ = make_colmap_scene(tmp_path, gen, n=3, w=w, h=h, camera_line=line, image_fn=lambda: img)
    cap = import_capture(tmp_path / "scene" / "sparse" / "0", tmp_path / "ws" / "c")
    assert_cameras(cap, [p[2] for p in poses])
    _check_undistorted(cap)


def _check_undistorted(cap):
    K = cap.cameras.K[0].double().numpy()
    got = read_image(cap.root / cap.file_paths[0], apply_exif=False).astype(np.float64) / 255
    ref = expected_image(K, cap.cameras.width, cap.cameras.height)
    err = np.abs(got - ref)[2:-2, 2:-2]  # interior: bilinear sampling at the crop edge
    assert err.mean() < 2.0 / 255 and err.max() < 0.05, (err.mean(), err.max())


@pytest.mark.parametrize("k3", [0.0, 0.01])
def test_nerfstudio_distortion_applied_transform_and_points(tmp_path, gen, k3):
    w, h, fx, fy, cx, cy = 96, 72, 82.0, 80.0, 48.5, 35.0
    k1, k2, p1, p2 = -0.15, 0.03, 0.001, 0.002
    model, params = ("FULL_OPENCV3", [k1, k2, p1, p2, k3]) if k3 else ("OPENCV", [k1, k2, p1, p2])
    img = distorted_image(model, params, fx, fy, cx, cy, w, h)
    poses = random_poses(gen, 4)
    A = NS_A.copy()
    A[:3, 3] = [0.5, -1.0, 2.0]
    (tmp_path / "ns" / "images").mkdir(parents=True)
    frames = []
    for i, (_, _, c2w) in enumerate(poses):
        write_image(tmp_path / "ns" / "images" / f"frame_{i:05d}.png", img)
        frames.append(
            {"file_path": f"images/frame_{i:05d}.png", "transform_matrix": (A @ c2w @ FLIP).tolist()}
        )
    xyz = torch.randn(5, 3, generator=gen, dtype=torch.float64).numpy()
    write_points_ply(
        tmp_path / "ns" / "sparse_pc.ply", xyz @ A[:3, :3].T + A[:3, 3], np.full((5, 3), 9, np.uint8)
    )
    d = {
        "camera_model": "OPENCV",
        "fl_x": fx,
        "fl_y": fy,
        "cx": cx,
        "cy": cy,
        "w": w,
        "h": h,
        "k1": k1,
        "k2": k2,
        "k3": k3,
        "k4": 0.0,
        "p1": p1,
        "p2": p2,
        "frames": frames[::-1],
        "applied_transform": A[:3].tolist(),
        "ply_file_path": "sparse_pc.ply",
    }
    (tmp_path / "ns" / "transforms.json").write_text(json.dumps(d))
    assert detect_format(tmp_path / "ns")[0] == "nerfstudio"
    cap = import_capture(tmp_path / "ns", tmp_path / "ws" / "ns")
    assert cap.file_paths == [f"images/frame_{i:05d}.png" for i in range(4)]  # sorted by name
    assert_cameras(cap, [p[2] for p in poses])  # applied_transform undone: the original world
    np.testing.assert_allclose(cap.load_points()[0], xyz, atol=1e-5)
    _check_undistorted(cap)


def test_nerfstudio_export_keeps_the_split_and_moves_with_its_images(tmp_path, gen):
    """export -> import gives the same cameras and split (a random one, not the every-8th
    default); with copied images the folder imports from anywhere after a move; nerfstudio's
    split keys hold the frames' file_path strings."""
    poses, _, _ = make_colmap_scene(tmp_path, gen, n=10)
    cap = import_capture(tmp_path / "scene", tmp_path / "ws" / "cap")
    splits = ["test" if t else "train" for t in (torch.rand(10, generator=gen) < 0.4).tolist()]
    splits[0], splits[1] = "train", "test"  # not the default's first frame
    cap.splits = splits
    cap.save()
    out = export_capture(Capture.load(cap.root), "nerfstudio", tmp_path / "ds", images="copy")
    d = json.loads(out.read_text())
    paths = [f["file_path"] for f in d["frames"]]
    assert paths == cap.file_paths  # images/<name>, inside the exported folder
    assert d["train_filenames"] == [p for p, s in zip(paths, splits, strict=True) if s == "train"]
    assert (
        d["test_filenames"]
        == d["val_filenames"]
        == [p for p, s in zip(paths, splits, strict=True) if s == "test"]
    )
    for p in paths:
        assert (out.parent / p).read_bytes() == (cap.root / p).read_bytes()

    moved = Path(shutil.move(tmp_path / "ds", tmp_path / "elsewhere" / "ds"))
    back = import_capture(moved / "transforms.json", tmp_path / "ws" / "back")
    assert back.splits == splits and back.file_paths == cap.file_paths
    assert_cameras(back, [p[2] for p in poses])
    torch.testing.assert_close(back.cameras.K, cap.cameras.K, atol=1e-5, rtol=0)

    # train_filenames alone: the frames it leaves out are held out; unknown names are refused
    for k in ("val_filenames", "test_filenames"):
        del d[k]
    (moved / "train_only.json").write_text(json.dumps(d))
    assert import_capture(moved / "train_only.json", tmp_path / "ws" / "t").splits == splits
    d["test_filenames"] = ["images/missing.png"]
    (moved / "bad.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="no frame has"):
        import_capture(moved / "bad.json", tmp_path / "ws" / "bad")


def test_linked_images_fall_back_to_copies_across_devices(tmp_path, gen, monkeypatch):
    make_colmap_scene(tmp_path, gen, n=3)
    cap = import_capture(tmp_path / "scene", tmp_path / "ws" / "cap")
    export_capture(cap, "long-lrm", tmp_path / "linked", images="link")
    assert all(os.path.samefile(tmp_path / "linked" / p, cap.root / p) for p in cap.file_paths)

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    for _ in range(2):  # the second export replaces the first one's files
        export_capture(cap, "nerfstudio", tmp_path / "copied", images="link")
    for p in cap.file_paths:
        assert not os.path.samefile(tmp_path / "copied" / p, cap.root / p)
        assert (tmp_path / "copied" / p).read_bytes() == (cap.root / p).read_bytes()
    assert sorted(q.name for q in (tmp_path / "copied" / "images").iterdir()) == [
        Path(p).name for p in cap.file_paths
    ]


def test_blender_style_transforms(tmp_path, gen):
    w, h = 40, 30
    poses = random_poses(gen, 3)
    (tmp_path / "b" / "train").mkdir(parents=True)
    for i in range(3):
        write_image(tmp_path / "b" / "train" / f"r_{i}.png", np.zeros((h, w, 3), np.uint8))
    d = {
        "camera_angle_x": 0.7,
        "frames": [
            {"file_path": f"./train/r_{i}", "transform_matrix": (p[2] @ FLIP).tolist()}
            for i, p in enumerate(poses)
        ],
    }
    (tmp_path / "b" / "transforms_train.json").write_text(json.dumps(d))
    cap = import_capture(tmp_path / "b" / "transforms_train.json", tmp_path / "ws" / "b")
    f = 0.5 * w / math.tan(0.35)
    np.testing.assert_allclose(
        cap.cameras.K[0].double().numpy(), [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], atol=1e-4
    )
    assert cap.file_paths == [f"images/train/r_{i}.png" for i in range(3)]
    assert_cameras(cap, [p[2] for p in poses])


def test_long_lrm_import_scales_intrinsics_to_the_image(tmp_path, gen):
    poses = random_poses(gen, 3)
    (tmp_path / "ll" / "images_undistort").mkdir(parents=True)
    frames = []
    for i, (_, _, c2w) in enumerate(poses):
        write_image(tmp_path / "ll" / "images_undistort" / f"frame{i}.jpg", np.zeros((30, 40, 3), np.uint8))
        frames.append(
            {
                "file_path": f"images_undistort/frame{i}.jpg",
                "w2c": np.linalg.inv(c2w).tolist(),
                "w": 80,
                "h": 60,
                "fx": 70.0,
                "fy": 72.0,
                "cx": 41.0,
                "cy": 29.0,
            }
        )
    d = {"scene_name": "x", "frames": frames, "fold_8_kmeans_32_input": [1, 2]}
    (tmp_path / "ll" / "opencv_cameras.json").write_text(json.dumps(d))
    cap = import_capture(tmp_path / "ll", tmp_path / "ws" / "ll")
    assert (cap.cameras.width, cap.cameras.height) == (40, 30)
    np.testing.assert_allclose(
        cap.cameras.K[0].double().numpy(), [[35, 0, 20.5], [0, 36, 14.5], [0, 0, 1]], atol=1e-5
    )
    assert_cameras(cap, [p[2] for p in poses])
    assert cap.meta["source"]["fold_8_kmeans_32_input"] == [1, 2]


def test_max_side_resizes_and_scales_K(tmp_path, gen):
    make_colmap_scene(tmp_path, gen, n=3)
    cap = import_capture(tmp_path / "scene", tmp_path / "ws" / "s", max_side=32)
    assert (cap.cameras.width, cap.cameras.height) == (32, 24)
    np.testing.assert_allclose(
        cap.cameras.K[0].double().numpy(), [[35.25, 0, 15.75], [0, 35.625, 12.125], [0, 0, 1]]
    )
    assert read_image(cap.root / cap.file_paths[0]).shape == (24, 32, 3)


def test_import_errors_say_what_to_do(tmp_path, gen):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no cameras found.*COLMAP model"):
        import_capture(tmp_path / "empty", tmp_path / "ws" / "e")
    (tmp_path / "bad.json").write_text('{"frames": []}')
    with pytest.raises(InputError, match="no frames"):
        import_capture(tmp_path / "bad.json", tmp_path / "ws" / "e")
    make_colmap_scene(tmp_path, gen, n=3)
    model = tmp_path / "elsewhere"
    (tmp_path / "scene" / "sparse" / "0").rename(model)
    with pytest.raises(InputError, match="--images"):
        import_capture(model, tmp_path / "ws" / "e")
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


def test_import_never_replaces_a_capture_without_overwrite(tmp_path, gen):
    poses, _, _ = make_colmap_scene(tmp_path, gen, n=3)
    dest = tmp_path / "ws" / "cap"
    import_capture(tmp_path / "scene", dest)
    (dest / "runs").mkdir()
    with pytest.raises(InputError, match="--overwrite"):
        import_capture(tmp_path / "scene", dest)
    assert (dest / "runs").is_dir()
    import_capture(tmp_path / "scene", dest, overwrite=True)
    assert not (dest / "runs").exists()
    assert_cameras(Capture.load(dest), [p[2] for p in poses])
