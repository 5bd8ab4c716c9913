import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from pipelines.gaussians import Gaussians, read_ply, read_points_ply, write_ply, write_points_ply
from pipelines.gaussians.ply import splat_bytes


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_bit_exact(tmp_path, gen, degree):
    g = Gaussians.random(257, sh_degree=degree, generator=gen)
    write_ply(tmp_path / "g.ply", g)
    h = read_ply(tmp_path / "g.ply")
    for k, v in g.tensors().items():
        assert torch.equal(getattr(h, k), v), k


def test_standard_layout_header(tmp_path, gen):
    write_ply(tmp_path / "g.ply", Gaussians.random(3, sh_degree=3, generator=gen))
    head = (tmp_path / "g.ply").read_bytes()[:2000].split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in head
    props = [line.split()[-1] for line in head.splitlines() if line.startswith("property")]
    assert props[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert props[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert props[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


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


def test_splat_layout(gen):
    g = Gaussians.random(10, sh_degree=1, generator=gen)
    raw = splat_bytes(g)
    assert len(raw) == 32 * 10
    rec = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    vol = rec["scale"].astype(np.float64).prod(-1)
    weight = vol * rec["rgba"][:, 3]
    # sorted by volume x opacity, descending (up to the u8 rounding of alpha: 0.5 per record)
    assert np.all(np.diff(weight) <= 0.5 * (vol[1:] + vol[:-1]) + 1e-6 * weight.max())
    # every Gaussian is present: positions match up to order
    assert np.allclose(np.sort(rec["pos"][:, 0]), np.sort(g.means[:, 0].numpy()))
    q = (rec["rot"].astype(np.float64) - 128) / 128
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=0.02)
