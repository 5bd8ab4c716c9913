import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pipelines.capture.images import read_image
from pipelines.capture.ingest import IngestConfig, ingest
from pipelines.errors import InputError


def _photo(gen, w, h):
    return (torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()


def _smooth_photo(gen, w, h):
    """Smooth colour blobs (JPEG keeps them nearly exact), not symmetric under rotation."""
    t = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 3, generator=gen), size=(h, w), mode="bilinear")
    return (t[0].permute(1, 2, 0) * 255).to(torch.uint8).numpy()


def _save(path, arr, orientation=None, quality=95):
    im = Image.fromarray(arr)
    kwargs = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    im.save(path, **kwargs)


def test_exif_orientation_applied_like_pillow(tmp_path, gen):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, orientation in enumerate([6, 6, 6, 6]):
        _save(folder / f"p{i}.jpg", _smooth_photo(gen, 40, 30), orientation)
    r = ingest(folder, tmp_path / "out", IngestConfig(max_side=None))
    assert (r.width, r.height) == (30, 40)  # rotated by 90 degrees
    with Image.open(folder / "p0.jpg") as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    ours = read_image(tmp_path / "out" / r.frames[0]["name"], apply_exif=False)
    assert ours.shape == reference.shape and np.abs(ours.astype(int) - reference.astype(int)).mean() < 2
    upside_down = np.rot90(reference, 2)
    assert np.abs(ours.astype(int) - upside_down.astype(int)).mean() > 5


def test_resized_to_max_side_and_png_kept(tmp_path, gen):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        _save(folder / f"p{i}.png", _photo(gen, 200, 100))
    r = ingest(folder, tmp_path / "out", IngestConfig(max_side=50))
    assert (r.width, r.height) == (50, 25)
    assert [f["name"] for f in r.frames] == ["000000.png", "000001.png", "000002.png"]
    assert [f["source"] for f in r.frames] == ["p0.png", "p1.png", "p2.png"]


def test_empty_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(InputError, match="no JPEG or PNG photos.*found nothing"):
        ingest(tmp_path / "photos", tmp_path / "out")


def test_folder_without_images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "clip.mov.part").write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="found 2 other files.*notes.txt"):
        ingest(folder, tmp_path / "out")


def test_corrupt_jpeg_is_skipped_with_a_warning(tmp_path, gen, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        _save(folder / f"p{i}.jpg", _photo(gen, 64, 48))
    data = (folder / "p1.jpg").read_bytes()
    (folder / "p1.jpg").write_bytes(data[: len(data) // 3])  # truncated
    (folder / "p3.jpg").write_bytes(b"not a jpeg at all")
    with caplog.at_level(logging.WARNING):
        r = ingest(folder, tmp_path / "out", IngestConfig(max_side=None, min_frames=2))
    assert [f["source"] for f in r.frames] == ["p0.jpg", "p2.jpg"]
    assert {s["source"] for s in r.skipped} == {"p1.jpg", "p3.jpg"}
    assert "p1.jpg" in caplog.text and "p3.jpg" in caplog.text


def test_too_few_usable_photos(tmp_path, gen):
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(folder / "a.jpg", _photo(gen, 64, 48))
    (folder / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match="only 1 usable photo.*at least 3"):
        ingest(folder, tmp_path / "out")


def test_different_sizes(tmp_path, gen):
    """Same aspect, different resolutions: all resized to the smallest; another aspect: skipped."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(folder / "a.png", _photo(gen, 160, 120))
    _save(folder / "b.png", _photo(gen, 80, 60))
    _save(folder / "c.png", _photo(gen, 120, 90))
    _save(folder / "d.png", _photo(gen, 60, 80))  # portrait
    r = ingest(folder, tmp_path / "out", IngestConfig(max_side=None))
    assert (r.width, r.height) == (80, 60)
    assert [f["source"] for f in r.frames] == ["a.png", "b.png", "c.png"]
    assert [s["source"] for s in r.skipped] == ["d.png"] and "aspect ratio" in r.skipped[0]["reason"]
    for f in r.frames:
        assert read_image(tmp_path / "out" / f["name"]).shape == (60, 80, 3)


def test_single_photo_file_and_missing_path(tmp_path, gen):
    _save(tmp_path / "a.jpg", _photo(gen, 64, 48))
    with pytest.raises(InputError, match="single photo"):
        ingest(tmp_path / "a.jpg", tmp_path / "out")
    with pytest.raises(InputError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "out")
