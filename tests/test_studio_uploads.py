"""Uploads: sanitized names can never leave the uploads folder; parts stream to disk in any
order; size limits; zips of photos unpack flat and safely."""

from __future__ import annotations

import io
import random
import string
import zipfile

import pytest

from studio.uploads import DiskUpload, UploadError, inside, sanitize_filename, unpack_photos, upload_kind

NASTY = [
    "../../etc/passwd",
    "..\\..\\windows\\system32\\x.mp4",
    "/abs/path/video.mp4",
    "..",
    ".",
    "...",
    "",
    ".hidden.mp4",
    "-rf.mp4",
    "a/../../b.jpg",
    "C:\\Users\\me\\clip.MOV",
    "name\x00with\x00nul.png",
    "ｆｕｌｌｗｉｄｔｈ.jpg",
    "spaces and (brackets).mp4",
    "x" * 500 + ".mp4",
    "photo.jpg/",
    "~/.ssh/id_rsa.png",
    "$(rm -rf).zip",
]


def check_safe(name: str, root) -> None:
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith((".", "-"))
    assert len(name) <= 120
    assert set(name) <= set(string.ascii_letters + string.digits + "._-")
    assert inside(root, name).parent == root.resolve()


def test_sanitize_filename_nasty_and_random(tmp_path, seed):
    for raw in NASTY:
        check_safe(sanitize_filename(raw), tmp_path)
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\me\\clip.MOV") == "clip.MOV"
    assert sanitize_filename("ｆｕｌｌｗｉｄｔｈ.jpg") == "fullwidth.jpg"
    assert sanitize_filename("..") == "upload"
    assert sanitize_filename("x" * 500 + ".mp4").endswith(".mp4")
    rng = random.Random(seed)
    alphabet = string.printable + "./\\..\x00äöü日本"
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        check_safe(sanitize_filename(raw), tmp_path)


def test_inside_refuses_escapes(tmp_path):
    (tmp_path / "root").mkdir()
    assert inside(tmp_path / "root", "a", "b.txt") == (tmp_path / "root" / "a" / "b.txt").resolve()
    for bad in ["../x", "a/../../x", "/etc/passwd"]:
        with pytest.raises(UploadError, match="outside"):
            inside(tmp_path / "root", bad)


def test_upload_kind():
    assert [upload_kind(n) for n in ["a.MP4", "b.jpeg", "c.PNG", "d.zip", "e.webm"]] == [
        "video",
        "image",
        "image",
        "zip",
        "video",
    ]
    for bad in ["x.exe", "noext", "y.ply", "z.tar.gz"]:
        with pytest.raises(UploadError, match="not a video"):
            upload_kind(bad)


def split(data: bytes, chunk: int) -> list[bytes]:
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


def test_parts_stream_to_disk_in_any_order(tmp_path, seed):
    rng = random.Random(seed)
    chunk = rng.choice([7, 64, 1000])
    data = rng.randbytes(rng.randint(1, 20 * chunk))
    parts = split(data, chunk)
    order = list(range(len(parts)))
    rng.shuffle(order)
    up = DiskUpload(
        tmp_path / "uploads",
        "../../My Clip.mp4",
        size_bytes=len(data),
        part_count=len(parts),
        limit_bytes=10**6,
    )
    done = False
    for k, i in enumerate(order):
        assert not done
        done = up.write_part(i, parts[i])
        if k == 0:  # a duplicate part changes nothing
            received = up.received_bytes
            assert up.write_part(i, parts[i]) == (len(parts) == 1) and up.received_bytes == received
    assert done and up.received_bytes == len(data)
    path = up.finish()
    assert path == (tmp_path / "uploads" / "My_Clip.mp4") and path.read_bytes() == data
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == ["My_Clip.mp4"]  # temp file gone
    # The same name again gets a suffix instead of overwriting.
    up2 = DiskUpload(tmp_path / "uploads", "My Clip.mp4", size_bytes=3, part_count=1, limit_bytes=10)
    up2.write_part(0, b"abc")
    assert up2.finish().name == "My_Clip-2.mp4" and path.read_bytes() == data
    # A target folder must lie inside the uploads folder.
    up3 = DiskUpload(tmp_path / "uploads", "p.jpg", size_bytes=1, part_count=1, limit_bytes=10)
    up3.write_part(0, b"x")
    assert up3.finish("photos").parent == (tmp_path / "uploads" / "photos").resolve()
    up4 = DiskUpload(tmp_path / "uploads", "q.jpg", size_bytes=1, part_count=1, limit_bytes=10)
    up4.write_part(0, b"x")
    with pytest.raises(UploadError, match="outside"):
        up4.finish("../../elsewhere")


def test_limits_and_broken_uploads_leave_nothing(tmp_path):
    uploads = tmp_path / "uploads"
    with pytest.raises(UploadError, match="over the upload limit"):
        DiskUpload(uploads, "big.mp4", size_bytes=11 * 2**20, part_count=22, limit_bytes=10 * 2**20)
    with pytest.raises(UploadError, match="not a video"):
        DiskUpload(uploads, "evil.sh", size_bytes=1, part_count=1, limit_bytes=10)
    # The client lies: parts overrun the declared size.
    up = DiskUpload(uploads, "a.mp4", size_bytes=10, part_count=2, limit_bytes=100)
    up.write_part(0, b"12345678")
    with pytest.raises(UploadError, match="more data than"):
        up.write_part(1, b"123456789")
    # Uneven middle parts, out-of-range parts.
    up = DiskUpload(uploads, "b.mp4", size_bytes=12, part_count=3, limit_bytes=100)
    up.write_part(0, b"1234")
    with pytest.raises(UploadError, match="expected 4"):
        up.write_part(1, b"12345")
    up = DiskUpload(uploads, "c.mp4", size_bytes=4, part_count=1, limit_bytes=100)
    with pytest.raises(UploadError, match="out of range"):
        up.write_part(1, b"1234")
    # Incomplete: finish refuses and cleans up; abort is idempotent.
    up = DiskUpload(uploads, "d.mp4", size_bytes=8, part_count=2, limit_bytes=100)
    up.write_part(0, b"1234")
    with pytest.raises(UploadError, match="incomplete"):
        up.finish()
    up.abort()
    assert list(uploads.iterdir()) == []


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_unpack_photos_flat_and_safe(tmp_path, seed):
    rng = random.Random(seed)
    members = {
        "../../evil.jpg": rng.randbytes(10),
        "/abs/root.png": rng.randbytes(11),
        "trip/day1/IMG 0001.JPG": rng.randbytes(12),
        "trip/day2/IMG 0001.JPG": rng.randbytes(13),  # same base name: gets -2
        "trip/readme.txt": b"not a photo",
        "trip/": b"",
    }
    zpath = tmp_path / "photos.zip"
    zpath.write_bytes(make_zip(members))
    dest = tmp_path / "uploads" / "photos-set"
    files = unpack_photos(zpath, dest, limit_bytes=1000)
    assert [f.name for f in files] == ["IMG_0001-2.JPG", "IMG_0001.JPG", "evil.jpg", "root.png"]
    assert all(f.parent == dest for f in files)
    assert (dest / "evil.jpg").read_bytes() == members["../../evil.jpg"]
    assert {(dest / "IMG_0001.JPG").read_bytes(), (dest / "IMG_0001-2.JPG").read_bytes()} == {
        members["trip/day1/IMG 0001.JPG"], members["trip/day2/IMG 0001.JPG"]}  # fmt: skip
    assert not (tmp_path / "evil.jpg").exists()
    with pytest.raises(UploadError, match="over the limit"):
        unpack_photos(zpath, tmp_path / "small", limit_bytes=20)
    assert not (tmp_path / "small").exists()
    zpath.write_bytes(make_zip({"a.txt": b"x"}))
    with pytest.raises(UploadError, match="no photos"):
        unpack_photos(zpath, tmp_path / "none", limit_bytes=1000)
    zpath.write_bytes(b"not a zip")
    with pytest.raises(UploadError, match="not a readable zip"):
        unpack_photos(zpath, tmp_path / "bad", limit_bytes=1000)


def test_place_upload_makes_ingest_sources(tmp_path):
    from studio.uploads import describe_source, place_upload

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    video = uploads / "clip.mp4"
    video.write_bytes(b"\x00" * 2048)
    assert place_upload(video, uploads, limit_bytes=10**6) == video
    assert describe_source(video) == "video clip.mp4, 0.0 MiB"
    for i in range(2):  # single photos collect in uploads/photos
        photo = uploads / "IMG.jpg"
        photo.write_bytes(bytes([i]))
        assert place_upload(photo, uploads, limit_bytes=10**6) == (uploads / "photos").resolve()
    assert sorted(p.name for p in (uploads / "photos").iterdir()) == ["IMG-2.jpg", "IMG.jpg"]
    assert describe_source(uploads / "photos") == "folder with 2 photos"
    z = uploads / "Trip 1.zip"
    z.write_bytes(make_zip({"a.png": b"1", "b/c.jpg": b"2"}))
    dest = place_upload(z, uploads, limit_bytes=10**6)
    assert dest == uploads / "Trip_1" and not z.exists()
    assert describe_source(dest) == "folder with 2 photos"
    z.write_bytes(make_zip({"a.png": b"1"}))  # same name again: a fresh folder
    assert place_upload(z, uploads, limit_bytes=10**6) == uploads / "Trip_1-2"
    for bad, why in [
        ("", "no source"),
        (tmp_path / "missing", "does not exist"),
        (tmp_path, "holds no photos"),
    ]:
        with pytest.raises(UploadError, match=why):
            describe_source(bad)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UploadError, match="must be a video"):
        describe_source(tmp_path / "notes.txt")


def test_zip_bombs_and_damaged_zips_are_refused_before_writing(tmp_path, monkeypatch):
    import studio.uploads as uploads_mod

    # highly compressible "photos": 2 MiB of zeros packs to a few KB (the probe: 61 KB -> 60 MiB)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", b"\0" * (2 << 20))
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(buf.getvalue())
    with pytest.raises(UploadError, match="zip bomb"):
        unpack_photos(bomb, tmp_path / "b", limit_bytes=1 << 40)
    assert not (tmp_path / "b").exists()
    # too many members
    monkeypatch.setattr(uploads_mod, "MAX_ZIP_MEMBERS", 5)
    many = tmp_path / "many.zip"
    many.write_bytes(make_zip({f"{i}.jpg": b"x" for i in range(6)}))
    with pytest.raises(UploadError, match="more than the 5"):
        unpack_photos(many, tmp_path / "m", limit_bytes=1 << 40)
    assert not (tmp_path / "m").exists()
    # a bad CRC: the bytes of a stored member changed after zipping
    data = bytes(range(256)) * 8
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("p.jpg", data)
    raw = bad.read_bytes()
    i = raw.index(data)
    bad.write_bytes(raw[:i] + b"\xff" + raw[i + 1 :])
    with pytest.raises(UploadError, match="damaged"):
        unpack_photos(bad, tmp_path / "c", limit_bytes=1 << 40)
    assert not (tmp_path / "c").exists()


def test_same_name_from_several_tabs_at_once_never_overwrites(tmp_path):
    """The probe: one name uploaded from 4 tabs at once overwrote 5 of 160 files."""
    import threading

    uploads = tmp_path / "uploads"
    n_threads, per_thread = 4, 40
    barrier = threading.Barrier(n_threads)
    finals: list = []
    lock = threading.Lock()

    def tab(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            data = f"{t}-{i}".encode()
            up = DiskUpload(uploads, "clip.mp4", size_bytes=len(data), part_count=1, limit_bytes=100)
            up.write_part(0, data)
            path = up.finish()
            with lock:
                finals.append((path, data))

    threads = [threading.Thread(target=tab, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({p for p, _ in finals}) == n_threads * per_thread
    assert all(p.read_bytes() == data for p, data in finals)
    assert not list(uploads.glob(".*.part"))


def test_stale_part_files_of_dead_servers_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from studio.uploads import remove_stale_parts

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    stale = uploads / f".clip.mp4.{dead_pid}.7f00.part"
    stale.write_bytes(b"x")
    live = DiskUpload(uploads, "live.mp4", size_bytes=1, part_count=1, limit_bytes=10)  # this process
    other = uploads / f".x.mp4.{os.getppid()}.1.part"  # a live process (another studio)
    other.write_bytes(b"y")
    assert remove_stale_parts(uploads) == [stale]
    assert not stale.exists() and other.exists() and live._tmp.exists()
    live.abort()
