import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipelines.capture.images import read_image
from pipelines.capture.ingest import IngestConfig, ingest
from pipelines.capture.video import extract_video_frames, probe_video
from pipelines.errors import InputError


def _write_video(path, frames, fps=10):
    iio.imwrite(path, np.stack(frames), plugin="pyav", codec="libx264", fps=fps)


def _textured(gen, h, w):
    """Blobs at several scales: a frame with detail that blur visibly removes."""
    t = torch.zeros(3, h, w)
    for s in (4, 16, 64):
        t += F.interpolate(torch.rand(1, 3, s, s, generator=gen), size=(h, w), mode="bilinear")[0]
    return ((t / 3).clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _blur(img, k=9):
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return x[0].permute(1, 2, 0).round().to(torch.uint8).numpy()


def test_keeps_sharpest_frame_of_each_window(tmp_path, gen):
    n, target = 30, 6  # windows of 5 frames; one sharp frame per window at a random position
    base = _textured(gen, 96, 128)
    sharp_at = [5 * w + int(torch.randint(0, 5, (1,), generator=gen)) for w in range(target)]
    frames = [base if i in sharp_at else _blur(base) for i in range(n)]
    _write_video(tmp_path / "v.mp4", frames)
    info, kept = extract_video_frames(tmp_path / "v.mp4", tmp_path / "out", target=target, max_side=64)
    assert info.num_frames == n
    assert [f.index for f in kept] == sharp_at
    assert [f.name for f in kept] == [f"{i:06d}.jpg" for i in range(target)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f.name for f in kept]
    assert read_image(tmp_path / "out" / kept[0].name).shape == (48, 64, 3)  # max side 64, aspect kept


def test_short_video_keeps_every_frame(tmp_path, gen):
    frames = [_textured(gen, 48, 64) for _ in range(5)]
    _write_video(tmp_path / "v.mp4", frames)
    r = ingest(tmp_path / "v.mp4", tmp_path / "out", IngestConfig(max_frames=20, max_side=None))
    assert (
        r.kind == "video"
        and [f["index"] for f in r.frames] == list(range(5))
        and (r.width, r.height) == (64, 48)
    )


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_matches_ffmpeg_autorotate(tmp_path, rotation):
    """The ffmpeg command line autorotates by the display matrix: our frames must equal its."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    img = np.zeros((48, 64, 3), np.uint8)
    img[:16, :16, 0] = 255  # red top-left
    img[-16:, :24, 1] = 255  # green bottom-left
    _write_video(tmp_path / "plain.mp4", [img] * 4)
    rotated = tmp_path / "rot.mp4"
    run = lambda *a: subprocess.run([ffmpeg, "-y", "-loglevel", "error", *a], check=True)  # noqa: E731
    run("-display_rotation", str(rotation), "-i", str(tmp_path / "plain.mp4"), "-c", "copy", str(rotated))
    run("-i", str(rotated), "-frames:v", "1", str(tmp_path / "ref.png"))
    reference = iio.imread(tmp_path / "ref.png")
    assert probe_video(rotated).rotation_deg == rotation % 360
    _, kept = extract_video_frames(rotated, tmp_path / "out", target=4, suffix=".png")
    ours = read_image(tmp_path / "out" / kept[0].name)
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 2.0


def test_one_frame_video_is_a_clear_error(tmp_path, gen):
    _write_video(tmp_path / "one.mp4", [_textured(gen, 48, 64)])
    with pytest.raises(InputError, match="at least 3 views.*longer video"):
        ingest(tmp_path / "one.mp4", tmp_path / "out")


def test_undecodable_video_is_a_clear_error(tmp_path, gen):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(torch.randint(0, 256, (5000,), generator=gen, dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(InputError, match="cannot decode video broken.mp4.*convert it"):
        ingest(bad, tmp_path / "out")
