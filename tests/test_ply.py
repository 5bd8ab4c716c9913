import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from pipelines.gaussians import Gaussians, read_ply, read_points_ply, render, write_ply, write_points_ply
from pipelines.gaussians.ply import ply_bytes
from pipelines.gaussians.sh import num_sh_bases
from tests.render_scenes import random_cameras, random_gaussians


def _header(path):
    """(header text, property names in file order, bytes after the header)."""
    raw = path.read_bytes()
    head, body = raw.split(b"end_header\n", 1)
    props = [line.split()[-1] for line in head.decode().splitlines() if line.startswith("property")]
    return head.decode(), props, len(body)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact_in_both_layouts(tmp_path, gen, degree):
    """Full layout: degree 3 on disk, the Gaussians' bands bit for bit and zeros above; compact:
    the Gaussians' own degree, and a padded file made compact again gives that degree back."""
    g = Gaussians.random(257, sh_degree=degree, generator=gen)
    write_ply(tmp_path / "full.ply", g)
    write_ply(tmp_path / "compact.ply", g, compact=True)
    full, compact = read_ply(tmp_path / "full.ply"), read_ply(tmp_path / "compact.ply")
    assert full.sh_degree == 3 and compact.sh_degree == degree
    for k, v in g.tensors().items():
        if k != "sh":
            assert torch.equal(getattr(full, k), v) and torch.equal(getattr(compact, k), v), k
    k = num_sh_bases(degree)
    assert torch.equal(compact.sh, g.sh) and torch.equal(full.sh[:, :k], g.sh)
    assert not full.sh[:, k:].any(), "padding must be zeros"
    write_ply(tmp_path / "again.ply", full, compact=True)
    assert torch.equal(read_ply(tmp_path / "again.ply").sh, g.sh)
    assert ply_bytes(g) == (tmp_path / "full.ply").read_bytes()  # the download is the file


@pytest.mark.parametrize("degree", [0, 3])
def test_standard_layout_header_for_every_degree(tmp_path, gen, degree):
    """The INRIA order with all 45 f_rest, whatever the degree: 62 float32 = 248 bytes each."""
    n = 5
    write_ply(tmp_path / "g.ply", Gaussians.random(n, sh_degree=degree, generator=gen))
    head, props, body = _header(tmp_path / "g.ply")
    assert "format binary_little_endian 1.0" in head and f"element vertex {n}" in head
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert props[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert body == 248 * n


def test_compact_keeps_the_bands_in_use(tmp_path, gen):
    """compact writes up to the highest band with a nonzero coefficient: a degree-3 set whose
    bands 2 and 3 are zero is degree 1 (17 + 9 properties); one nonzero in band 3 keeps 3."""
    g = Gaussians.random(40, sh_degree=3, generator=gen)
    g.sh[:, 4:] = 0
    assert g.sh_degree_used() == 1
    write_ply(tmp_path / "g.ply", g, compact=True)
    _, props, body = _header(tmp_path / "g.ply")
    assert len(props) == 17 + 9 and body == 4 * 26 * 40
    g.sh[int(torch.randint(40, (1,), generator=gen)), 15, 2] = 1e-30  # the last basis function, blue
    assert g.sh_degree_used() == 3
    g.sh[:, 1:] = 0
    assert g.sh_degree_used() == 0 and Gaussians.random(0, sh_degree=2).sh_degree_used() == 0


@pytest.mark.parametrize("degree", [0, 1])
def test_padding_does_not_change_renders(tmp_path, gen, degree):
    """A degree-0 (GeoLRM-like) and a degree-1 set render the same on the CPU before and after the
    full-layout round trip: zero bands contribute nothing, and the kept bands stay in their place
    (the degree-1 colours are view-dependent, so a misplaced coefficient would show)."""
    g = random_gaussians(gen, 150, sh_degree=degree)
    cams = random_cameras(gen, 2, 40, 32)
    write_ply(tmp_path / "g.ply", g)
    h = read_ply(tmp_path / "g.ply")
    assert h.sh_degree == 3
    bg = torch.rand(3, generator=gen)
    a, b = render(g, cams, background=bg, backend="torch"), render(h, cams, background=bg, backend="torch")
    torch.testing.assert_close(b.rgb, a.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.alpha, a.alpha, atol=1e-6, rtol=0)  # float32 summation order
    if degree:  # the test sees SH: dropping the bands changes the image
        dc_only = render(g.with_sh_degree(0), cams, background=bg, backend="torch")
        assert (dc_only.rgb - a.rgb).abs().max() > 0.02


def test_alphabetical_properties_are_read_by_name(tmp_path, gen):
    """Brush writes properties in alphabetical order (f_rest_10 before f_rest_2)."""
    g = Gaussians.random(20, sh_degree=2, generator=gen)
    n, k = g.num, g.sh.shape[1]
    cols = {"x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2], "opacity": g.opacity_logits}
    for i in range(3):
        cols[f"f_dc_{i}"] = g.sh[:, 0, i]
        cols[f"scale_{i}"] = g.log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = g.quats[:, i]
    rest = g.sh[:, 1:].transpose(1, 2).reshape(n, -1)  # channel-major
    for i in range(3 * (k - 1)):
        cols[f"f_rest_{i}"] = rest[:, i]
    names = sorted(cols)
    assert names.index("f_rest_10") < names.index("f_rest_2")
    arr = np.empty(n, dtype=[(c, "<f4") for c in names])
    for c in names:
        arr[c] = cols[c].numpy()
    PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(str(tmp_path / "brush.ply"))
    h = read_ply(tmp_path / "brush.ply")
    for key, v in g.tensors().items():
        assert torch.equal(getattr(h, key), v), key


def test_not_a_gaussian_ply(tmp_path):
    write_points_ply(tmp_path / "p.ply", np.zeros((4, 3)), np.zeros((4, 3), np.uint8))
    with pytest.raises(ValueError, match="missing properties"):
        read_ply(tmp_path / "p.ply")


def test_points_ply_round_trip(tmp_path, gen):
    xyz = torch.randn(100, 3, generator=gen).numpy()
    rgb = torch.randint(0, 256, (100, 3), generator=gen).numpy().astype(np.uint8)
    write_points_ply(tmp_path / "p.ply", xyz, rgb)
    x2, c2 = read_points_ply(tmp_path / "p.ply")
    assert np.array_equal(x2, xyz.astype(np.float32)) and np.array_equal(c2, rgb)
