import numpy as np
import pytest
import torch

from pipelines.cameras import Cameras
from pipelines.capture import Capture, default_splits
from pipelines.capture.images import write_image


def test_default_splits_every_eighth():
    s = default_splits(17)
    assert [i for i, x in enumerate(s) if x == "test"] == [0, 8, 16]


def test_save_load_round_trip(tmp_path, gen):
    n = 5
    cams = Cameras.look_at(torch.randn(n, 3, generator=gen) * 3, torch.zeros(n, 3), fov_y_deg=45, width=32, height=24)
    (tmp_path / "images").mkdir()
    files = []
    for i in range(n):
        files.append(f"images/{i:06d}.png")
        write_image(tmp_path / files[-1], np.full((24, 32, 3), i * 40, np.uint8))
    cap = Capture(tmp_path, files, cams, default_splits(n), unregistered=["images/x.png"], meta={"source": "test"})
    cap.save()
    back = Capture.load(tmp_path)
    torch.testing.assert_close(back.cameras.c2w, cams.c2w)
    torch.testing.assert_close(back.cameras.K, cams.K)
    assert back.file_paths == files and back.splits == cap.splits and back.unregistered == ["images/x.png"]
    assert back.meta == {"source": "test"}
    imgs = back.load_images(back.indices("test"))
    assert imgs.shape == (1, 3, 24, 32)
    assert back.load_images([1], size=(16, 12)).shape == (1, 3, 12, 16)
    assert torch.allclose(imgs[0], torch.zeros(3, 24, 32))


def test_missing_capture_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="lrm-studio sfm"):
        Capture.load(tmp_path)
