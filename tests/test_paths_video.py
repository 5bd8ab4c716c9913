"""Videos along camera paths: what a keyframe looks at lands in the image centre of the decoded
MP4, frame count / size / fps of the file, labels and dividers, cancel and atomic writes."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.gaussians import Gaussians
from pipelines.paths import CameraPath, Keyframe, even_size
from pipelines.paths.video import (
    DIVIDER_PX,
    DIVIDER_RGB,
    MIN_LABEL_PX,
    Panel,
    compose,
    fit_label,
    render_video,
    write_mp4,
)
from pipelines.progress import Cancelled, CancelToken
from pipelines.transforms import random_rotations


def blob(center: torch.Tensor, sigma: float = 0.02) -> Gaussians:
    """One white, opaque, round Gaussian at ``center`` [3]."""
    sh = torch.zeros(1, 1, 3)
    sh[:, 0] = (1.0 - 0.5) / 0.28209479177387814  # DC colour 1.0
    return Gaussians(
        center[None].float(),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.full((1, 3), float(np.log(sigma))),
        torch.tensor([8.0]),
        sh,
    )


def centroid(img: np.ndarray) -> np.ndarray:
    """Brightness-weighted centroid (x, y) of uint8 [H, W, 3] in pixel coordinates (centres at
    i + 0.5), background (< 8) ignored."""
    w = img.astype(np.float64).mean(-1)
    w = np.where(w > 8, w, 0)
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def test_keyframe_aimed_at_a_point_renders_it_at_the_image_centre(gen, tmp_path):
    target = torch.randn(3, generator=gen)
    direction = torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0)
    eye = target + 2.5 * direction
    aim = Cameras.look_at(
        eye[None], target[None], fov_y_deg=40.0, width=64, height=48, up=torch.randn(3, generator=gen)
    )
    R = random_rotations(2, gen)
    away = [torch.eye(4) for _ in range(2)]
    for a, r in zip(away, R, strict=True):  # other keyframes: random orientations near the eye
        a[:3, :3], a[:3, 3] = r, eye + 0.3 * torch.randn(3, generator=gen)
    path = CameraPath(
        (Keyframe(away[0]), Keyframe(aim.c2w[0]), Keyframe(away[1])),
        duration_s=2.0,
        fps=4.0,
        default_fov_deg=40.0,
        width=64,
        height=48,
    )
    assert float(path.keyframe_times()[1]) == 1.0 and path.num_frames() == 9  # keyframe 1 is frame 4
    out = tmp_path / "aim.mp4"
    result = render_video([Panel(blob(target))], path, out, height=48, device="cpu")
    assert (result.frames, result.width, result.height) == (9, 64, 48)
    frames = iio.imread(out, plugin="pyav")
    c = centroid(frames[4])
    np.testing.assert_allclose(c, [32.0, 24.0], atol=0.6)


def test_mp4_has_the_expected_frame_count_size_and_fps(gen, tmp_path):
    g = Gaussians.random(300, sh_degree=1, extent=0.8, generator=gen)
    cams = Cameras.look_at(
        torch.tensor([[0.0, 0, -3], [3.0, 0, 0], [0.0, 0, 3]]),
        torch.zeros(3, 3),
        fov_y_deg=50,
        width=16,
        height=9,
    )
    fps = float(torch.randint(4, 9, (1,), generator=gen))
    height = int(torch.randint(40, 65, (1,), generator=gen))
    path = CameraPath(
        tuple(Keyframe(c) for c in cams.c2w), duration_s=1.0, fps=fps, loop=True, width=16, height=9
    )
    out = tmp_path / "ab.mp4"
    reports: list[tuple[float, str]] = []
    res = render_video(
        [Panel(g, "A: long-lrm"), Panel(g.clone(), "B: 3dgs")],
        path,
        out,
        height=height,
        device="cpu",
        progress=lambda f, m: reports.append((f, m)),
    )
    w, h = even_size(height, 16 / 9)
    n = round(fps)  # a loop of 1 s
    frames = iio.imread(out, plugin="pyav")
    assert frames.shape == (n, h, 2 * w, 3) and (res.frames, res.width, res.height) == (n, 2 * w, h)
    assert [f for f, _ in reports] == pytest.approx([0.0] + [(k + 1) / n for k in range(n)])  # one per frame
    meta = iio.immeta(out, plugin="pyav")
    assert meta["codec"] == "h264" and meta["video_format"] == "yuv420p" and meta["fps"] == pytest.approx(fps)
    # The two panels hold the same Gaussians: left and right halves agree below the labels.
    rows = slice(int(0.6 * h), h)
    left, right = frames[:, rows, 2 : w - 2].astype(int), frames[:, rows, w + 2 : 2 * w - 2].astype(int)
    assert np.abs(left - right).mean() < 6


def test_compose_draws_labels_in_their_corner_and_a_divider(gen):
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    panels = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    plain = np.concatenate(panels, axis=1)
    frame = compose([p.copy() for p in panels], ["Long-LRM", "3DGS"])
    assert frame.shape == (64, 192, 3)
    np.testing.assert_array_equal(
        frame[:, 95:97], np.broadcast_to(np.array(DIVIDER_RGB, np.uint8), (64, 2, 3))
    )
    changed = np.abs(frame.astype(int) - plain.astype(int)).max(-1) > 0
    changed[:, 95:97] = False
    ys, xs = np.nonzero(changed)
    assert ys.max() < 64 // 2 and changed[:, :95].any() and changed[:, 97:].any()  # labels at the top
    assert not changed[:, 60:95].any()  # the left label stays in the left corner
    assert (frame[changed] >= 240).all(-1).any()  # white text
    unlabelled = compose([p.copy() for p in panels], ["", ""])
    only_divider = np.abs(unlabelled.astype(int) - plain.astype(int)).max(-1) > 0
    assert not only_divider[:, :95].any() and not only_divider[:, 97:].any()


LONG_LABELS = [
    "long-lrm 20260912-101530-tiny-demo (refined 300 steps)",
    "3dgs 20260912-101745 optimize 7000 steps downscale 2",
    "GeoLRM official-weights view-selection=kmeans 16 views",
]


@pytest.mark.parametrize("orientation", ["portrait", "square", "landscape"])
def test_labels_fit_their_panels_at_any_width(gen, orientation):
    """Long labels in narrow panels: each label's pixels stay inside its own panel (clear of
    the divider), shrunk and elided rather than cut by the next panel."""
    for _ in range(4):
        w = int(torch.randint(6, 200, (1,), generator=gen))
        aspect = {"portrait": 16 / 9, "square": 1.0, "landscape": 9 / 16}[orientation]
        h = max(8, round(w * aspect))
        text = LONG_LABELS[int(torch.randint(len(LONG_LABELS), (1,), generator=gen))]
        plain = np.full((h, 2 * w, 3), 128, np.uint8)
        divider = compose([plain[:, :w].copy(), plain[:, w:].copy()], ["", ""])
        for p in range(2):
            labels = [text if q == p else "" for q in range(2)]
            frame = compose([plain[:, :w].copy(), plain[:, w:].copy()], labels)
            drawn = np.abs(frame.astype(int) - divider.astype(int)).max(-1) > 0  # [h, 2w]
            cols = np.nonzero(drawn.any(0))[0]
            own = range(p * w + DIVIDER_PX, (p + 1) * w - DIVIDER_PX)
            assert all(c in own for c in cols), (w, h, p, cols.min(initial=-1), cols.max(initial=-1))
            shown, size = fit_label(text, w, max(10, round(h / 22)))
            assert bool(drawn.any()) == bool(shown)
            if w >= 40:  # room for a few letters: something readable is drawn
                assert shown and (shown == text or shown.endswith("\u2026")) and len(shown) >= 3
    # Shrinking comes before eliding: a label that fits at a smaller size is drawn whole.
    short = "3DGS 7000"
    full_size = max(10, round(960 / 22))
    w_needed = fit_label(short, 4000, full_size)
    assert w_needed == (short, full_size)
    narrow, size = fit_label(short, 110, full_size)
    assert narrow == short and MIN_LABEL_PX <= size < full_size
    elided, size = fit_label(LONG_LABELS[0], 110, full_size)
    assert elided.endswith("\u2026") and size == MIN_LABEL_PX and LONG_LABELS[0].startswith(elided[:-1])


def test_cancel_and_odd_sizes_leave_earlier_files_intact(tmp_path):
    out = tmp_path / "video.mp4"
    out.write_bytes(b"an earlier video")
    token = CancelToken()

    def frames():
        for i in range(10):
            if i == 3:
                token.cancel()
            yield np.full((16, 16, 3), 20 * i, np.uint8)

    with pytest.raises(Cancelled):
        write_mp4(frames(), out, fps=10, cancel=token)
    assert out.read_bytes() == b"an earlier video"
    with pytest.raises(ValueError, match="even"):
        write_mp4(iter([np.zeros((15, 16, 3), np.uint8)]), out, fps=10)
    assert out.read_bytes() == b"an earlier video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]  # no temp file left
    assert write_mp4(iter([np.zeros((16, 16, 3), np.uint8)] * 3), out, fps=10) == 3
    assert iio.imread(out, plugin="pyav").shape == (3, 16, 16, 3)
