""".splat and .spz: round trips within each format's own precision (bounds derived from its
quantisation, stated per field), and .spz against files written by Niantic's reference library
(tests/data/spz/README.md): our reader decodes them as the library does, our writer produces the
library's bytes."""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.gaussians import Gaussians, read_gaussians, write_gaussians
from pipelines.gaussians.formats import format_of
from pipelines.gaussians.sh import num_sh_bases, sh0_to_rgb
from pipelines.gaussians.splat import SPLAT_RECORD, splat_bytes, splat_from_bytes
from pipelines.gaussians.spz import spz_bytes, spz_from_bytes

DATA = Path(__file__).parent / "data" / "spz"


def representable(gen, n, degree, extent=20.0):
    """Gaussians inside every field's range of .spz: log-scales in [-9, 5], DC within +-3,
    higher SH within +-0.95, opacities of logits within +-5."""
    u = lambda *shape: torch.rand(*shape, generator=gen) * 2 - 1  # noqa: E731
    sh = 0.95 * u(n, num_sh_bases(degree), 3)
    sh[:, 0] = 3 * u(n, 3)
    return Gaussians(
        means=extent * u(n, 3),
        quats=torch.randn(n, 4, generator=gen),
        log_scales=-2 + 7 * u(n, 3),
        opacity_logits=5 * u(n),
        sh=sh,
    )


def unit_dot(a, b):
    """|<a/|a|, b/|b|>| per row: 1 for the same rotation (q and -q included)."""
    a, b = (
        torch.nn.functional.normalize(a.double(), dim=-1),
        torch.nn.functional.normalize(b.double(), dim=-1),
    )
    return (a * b).sum(-1).abs()


def relative_cov_error(a, b):
    """max |cov_a - cov_b| / max |cov_b| per Gaussian, the largest over all."""
    ca, cb = a.covariances().double(), b.covariances().double()
    return float(((ca - cb).abs().amax(dim=(1, 2)) / cb.abs().amax(dim=(1, 2))).max())


# ------------------------------------------------------------------------------ .splat
def test_splat_round_trip_within_its_precision(tmp_path, gen):
    g = Gaussians.random(300, sh_degree=2, generator=gen)
    path = write_gaussians(tmp_path / "g.splat", g)
    assert path.stat().st_size == 32 * g.num
    h = read_gaussians(path)
    assert h.num == g.num and h.sh_degree == 0
    key = lambda x: np.lexsort(x.means.numpy().T)  # noqa: E731  records are re-ordered; positions are exact
    g, h = g[torch.from_numpy(key(g))], h[torch.from_numpy(key(h))]
    assert torch.equal(h.means, g.means)
    torch.testing.assert_close(h.log_scales, g.log_scales, atol=1e-6, rtol=0)  # f32 exp then log
    step = 1 / 255  # colour and opacity bytes: within half a step
    rgb_in = sh0_to_rgb(g.sh[:, 0]).clamp(0, 1)
    assert (sh0_to_rgb(h.sh[:, 0]) - rgb_in).abs().max() <= step / 2 + 1e-6
    o_in = g.opacities().clamp(0.5 / 255, 254.5 / 255)
    assert (h.opacities() - o_in).abs().max() <= step / 2 + 1e-6
    # quaternion components to 1/256 (1/128 where 1.0 clips at byte 255): rotations within 1e-4
    assert unit_dot(h.quats, g.quats).min() >= 1 - 1e-4


def test_splat_order_and_bad_length(gen):
    g = Gaussians.random(50, sh_degree=1, generator=gen)
    raw = splat_bytes(g)
    assert len(raw) == 32 * g.num
    rec = np.frombuffer(raw, dtype=SPLAT_RECORD)
    vol = rec["scale"].astype(np.float64).prod(-1)
    weight = vol * rec["rgba"][:, 3] / 255
    # largest volume x opacity first, up to the byte rounding of opacity (half a step of 1/255 each)
    assert np.all(weight[1:] <= weight[:-1] + 0.5 * (vol[:-1] + vol[1:]) / 255)
    with pytest.raises(ValueError, match="multiple of 32"):
        splat_from_bytes(b"\0" * 33)


# ------------------------------------------------------------------------------ .spz
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spz_round_trip_within_its_precision(tmp_path, gen, degree):
    """Every field within half its quantisation step: positions 2^-13 (12 fractional bits),
    log-scales 1/32, opacity 0.5/255, DC 0.5/(0.15*255), SH (0.5 + bucket/2)/128 with buckets
    of 8 (degree 1) and 16 (above); quaternion components 7e-4, so |<q, q'>| >= 1 - 4e-6."""
    g = representable(gen, 400, degree)
    path = write_gaussians(tmp_path / "g.spz", g)
    raw = path.read_bytes()
    payload = gzip.decompress(raw)
    assert payload[:4] == b"NGSP" and payload[4] == 3 and payload[12] == degree and payload[13] == 12
    assert len(raw) < 0.6 * 4 * (14 + 3 * num_sh_bases(degree)) * g.num  # compressed below a compact PLY
    h = read_gaussians(path)
    assert h.sh_degree == degree and h.num == g.num
    assert (h.means - g.means).abs().max() <= 2**-13 + 1e-6
    assert (h.log_scales - g.log_scales).abs().max() <= 1 / 32 + 1e-5
    assert (h.opacities() - g.opacities()).abs().max() <= 0.5 / 255 + 1e-6
    assert (h.sh[:, 0] - g.sh[:, 0]).abs().max() <= 0.5 / (0.15 * 255) + 1e-5
    if degree >= 1:
        assert (h.sh[:, 1:4] - g.sh[:, 1:4]).abs().max() <= 4.5 / 128 + 1e-5
    if degree >= 2:
        assert (h.sh[:, 4:] - g.sh[:, 4:]).abs().max() <= 8.5 / 128 + 1e-5
    assert unit_dot(h.quats, g.quats).min() >= 1 - 4e-6
    assert h.finite().num == h.num


def test_spz_far_coordinates_and_unused_bands(gen):
    """Coordinates beyond 2048 use fewer fractional bits (still within half a step); all-zero SH
    bands are not stored; what the format cannot hold is refused with a reason."""
    g = representable(gen, 50, 3, extent=5000.0)
    g.sh[:, 4:] = 0
    raw = spz_bytes(g)
    payload = gzip.decompress(raw)
    fb = payload[13]
    assert payload[12] == 1 and fb == 10  # 5000 * 2^10 < 2^23 <= 5000 * 2^11
    h = spz_from_bytes(raw)
    assert h.sh_degree == 1 and (h.means - g.means).abs().max() <= 2 ** -(fb + 1) + 1e-3 * 2**-fb
    g.means[0, 1] = 2.0**23
    with pytest.raises(ValueError, match="24-bit"):
        spz_bytes(g)
    with pytest.raises(ValueError, match="at least one"):
        spz_bytes(g[:0])
    g.means[0, 1] = math.nan
    with pytest.raises(ValueError, match="finite"):
        spz_bytes(g)
    for bad, why in [(b"PK\x03\x04", "not an .spz"), (raw[: len(raw) // 2], "truncated")]:
        with pytest.raises(ValueError, match=why):
            spz_from_bytes(bad)


def _reference(name):
    return dict(np.load(DATA / name))


@pytest.mark.parametrize("version", [2, 3, 4])
def test_spz_reader_matches_niantic(version):
    """Files saved by Niantic's library (PackOptions.from = RDF) read as its loader reads them
    (UnpackOptions.to = RDF): positions, scales, colours and SH exactly; opacities exactly except
    bytes 0 and 255, which the library reads as -inf / +inf and we as finite logits; the same
    covariances (the quaternion may differ in sign convention, the Gaussian may not)."""
    ref = _reference("reference_decoded.npz")
    g = spz_from_bytes((DATA / f"reference_v{version}.spz").read_bytes())
    assert g.sh_degree == 3 and g.num == 24
    np.testing.assert_array_equal(g.means.numpy(), ref["means"])
    np.testing.assert_array_equal(g.log_scales.numpy(), ref["log_scales"])
    np.testing.assert_allclose(g.sh.numpy(), ref["sh"], atol=1e-6, rtol=0)  # SH rotated by 180 deg about x
    logits, finite = g.opacity_logits.numpy(), np.isfinite(ref["opacity_logits"])
    assert (~finite).sum() == 2
    np.testing.assert_array_equal(logits[finite], ref["opacity_logits"][finite])
    np.testing.assert_allclose(
        logits[~finite], np.sign(ref["opacity_logits"][~finite]) * math.log(509), rtol=1e-4
    )
    theirs = Gaussians(
        g.means, torch.from_numpy(ref[f"v{version}_quats_wxyz"]), g.log_scales, g.opacity_logits, g.sh
    )
    assert relative_cov_error(g, theirs) < 1e-5


def test_spz_writer_matches_niantic():
    """The same Gaussians written by us and by the library (version 3): identical header,
    positions (RDF -> RUB), opacities, colours, scales and SH bytes; rotations the same Gaussian."""
    x = _reference("reference_input.npz")
    g = Gaussians(
        *(torch.from_numpy(x[k]) for k in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh"))
    )
    ours = spz_bytes(g)
    theirs = (DATA / "reference_v3.spz").read_bytes()
    a, b = np.frombuffer(gzip.decompress(ours), np.uint8), np.frombuffer(gzip.decompress(theirs), np.uint8)
    assert len(a) == len(b)
    n = g.num
    cuts = np.cumsum([16, 9 * n, n, 3 * n, 3 * n, 4 * n])
    names = ["header", "positions", "alphas", "colours", "scales", "rotations", "sh"]
    for name, pa, pb in zip(names, np.split(a, cuts), np.split(b, cuts), strict=True):
        if name != "rotations":
            np.testing.assert_array_equal(pa, pb, err_msg=name)
    assert relative_cov_error(spz_from_bytes(ours), spz_from_bytes(theirs)) < 1e-5


def test_format_of_names_the_suffix(tmp_path):
    assert [format_of(f"a/b.{s}") for s in ("PLY", "splat", "spz")] == ["ply", "splat", "spz"]
    with pytest.raises(ValueError, match="not a splat file"):
        format_of("a/b.obj")
