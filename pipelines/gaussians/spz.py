"""Niantic ``.spz``: compressed Gaussian splats, about 10x smaller than a PLY.

Written here from the format description and reference code of github.com/nianticlabs/spz
(README "File Format", src/cc/load-spz.cc; checked against files its library wrote, see
tests/data/spz/README.md).

Coordinates: an .spz file stores RUB axes (x right, y up, z back: OpenGL / three.js). Our
Gaussians live in the capture's world, which splat tools call RDF (x right, y down, z forward,
as COLMAP and every 3DGS PLY). Writing turns RDF into RUB (a 180-degree rotation about x:
y and z negated, rotations and SH bands rotated with it: :meth:`Gaussians.transform`); reading
turns RUB back into RDF. This is what Niantic's library does when told the data is RDF
(``PackOptions.from`` / ``UnpackOptions.to``), so an .spz of ours sits in the same place as our PLY
of the same run in any viewer that follows the format.

Layout written (version 3, gzip, readable by every .spz reader including Niantic's current one):
gzip of a 16-byte header ``magic 0x5053474e u32 | version u32 | N u32 | sh degree u8 |
fractional bits u8 | flags u8 (0: not antialiased) | reserved u8`` and then, per attribute for all
Gaussians in turn: positions (N x 3 x 24-bit signed fixed point, little-endian), alphas (N x u8,
opacity * 255), colours (N x 3 u8, f_dc * 0.15 * 255 + 127.5), scales (N x 3 u8,
(log-scale + 10) * 16), rotations (N x u32 "smallest three": 2 bits for the index of the largest
of x y z w, made positive, then the other three as sign + 9-bit magnitude / (1/sqrt 2)) and SH
(N x (K-1) x 3 u8, colour channel innermost: round(x * 128) + 128, then to the nearest multiple
of 8 (degree 1, 5 bits) or 16 (degrees 2 and 3, 4 bits), the reference's default precision).
Rounding is half away from zero, as the reference's ``std::round``. Reading accepts versions 2
(quaternion xyz as 3 u8) and 3 (gzip) and 4 (a 32-byte plain header, a table of contents and one
zstd stream per attribute).

Precision (what a round trip keeps: half a quantisation step, SH two roundings):
positions 2^-(fb+1) with fb = 12 fractional bits (1.2e-4 scene units; fewer bits only when a
coordinate exceeds 2048); log-scales 1/32 within [-10, 5.94]; opacity 0.5/255; DC colour
coefficient 0.5 / (0.15 * 255) = 0.013 within +-3.33; quaternion components 0.5 (1/sqrt 2) / 511 =
7e-4; SH coefficients (0.5 + 4) / 128 = 0.035 (degree 1) and (0.5 + 8) / 128 = 0.066 (degrees 2, 3)
within [-1, 0.99]. SH bands that are all zero are not stored (:meth:`Gaussians.sh_degree_used`).
Opacity bytes 0 and 255 read as the logits of 0.5/255 and 254.5/255 (the reference: -inf / +inf).

Examples:
    >>> write_spz("g.spz", g)                                     # doctest: +SKIP
    >>> h = read_spz("g.spz"); h.num == g.num                      # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from pipelines.fileio import atomic_path
from pipelines.gaussians.container import Gaussians
from pipelines.gaussians.splat import u8_to_logit
from pipelines.transforms import Similarity

log = logging.getLogger(__name__)

SPZ_MAGIC = 0x5053474E  # "NGSP" little-endian
WRITE_VERSION = 3
FRACTIONAL_BITS = 12  # the reference's choice; lowered only for coordinates beyond 2048
COLOR_SCALE = 0.15  # f_dc per colour byte step: 1 / (0.15 * 255)
SH1_BITS, SH_REST_BITS = 5, 4  # the reference's default SH precision (degree 1, degrees 2+)
FLAG_ANTIALIASED, FLAG_EXTENSIONS = 0x1, 0x2
_LEGACY_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes, inside the gzip stream (versions 1-3)
_NGSP_HEADER = struct.Struct("<IIIBBBBI12x")  # 32 bytes, plain (version 4)
_ATTRIBUTES = ("positions", "alphas", "colors", "scales", "rotations", "sh")  # stream order
_SQRT1_2 = np.float32(math.sqrt(0.5))
_MAG_MAX = (1 << 9) - 1  # 9-bit quaternion component magnitude

# RDF (ours) <-> RUB (the file's): y and z negated; the rotation is its own inverse.
RDF_TO_RUB = Similarity(1.0, torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)), torch.zeros(3))


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (C's std::round), keeping the dtype."""
    return np.sign(x) * np.floor(np.abs(x) + x.dtype.type(0.5))


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round(x), 0, 255).astype(np.uint8)


def _sh_dim(degree: int) -> int:
    """Non-DC SH basis functions of a degree: 0, 3, 8, 15 (24 for degree 4)."""
    return (degree + 1) ** 2 - 1


# ------------------------------------------------------------------------------ writing
def _fractional_bits(means: np.ndarray) -> int:
    """FRACTIONAL_BITS, or fewer so that every coordinate fits 24 signed bits."""
    limit = (1 << 23) - 1
    extent = float(np.abs(means).max()) if means.size else 0.0
    if extent > limit:
        raise ValueError(f"a coordinate of {extent:g} does not fit .spz's 24-bit positions (at most {limit})")
    fb = FRACTIONAL_BITS
    while fb > 0 and extent * (1 << fb) > limit:
        fb -= 1
    return fb


def _pack_positions(means: np.ndarray, fb: int) -> np.ndarray:
    """[N, 3] float32 -> [N, 3, 3] uint8: 24-bit two's complement, little-endian."""
    fixed = _round(means * np.float32(1 << fb)).astype("<i4")  # [N, 3]
    return fixed.view(np.uint8).reshape(-1, 3, 4)[:, :, :3]


def _pack_rotations(quats_wxyz: np.ndarray) -> np.ndarray:
    """[N, 4] wxyz (any norm) -> [N, 4] uint8 smallest-three words (little-endian u32)."""
    q = quats_wxyz[:, [1, 2, 3, 0]]  # [N, 4] xyzw: the format's component order
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1), np.float32([0, 0, 0, 1]))  # 0 -> identity
    largest = np.abs(q).argmax(axis=1)  # [N] first index of the largest magnitude
    negate = np.take_along_axis(q, largest[:, None], axis=1)[:, 0] < 0  # flip q so it is positive
    word = largest.astype(np.uint32)
    for i in range(4):  # x, y, z, w in turn; the first one written ends in the highest bits
        keep = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.floor(np.float32(_MAG_MAX) * (np.abs(q[:, i]) / _SQRT1_2) + np.float32(0.5))
        mag = np.minimum(mag, _MAG_MAX).astype(np.uint32)
        word = np.where(keep, (word << 10) | (negbit << 9) | mag, word)
    return word.astype("<u4").view(np.uint8).reshape(-1, 4)


def _pack_sh(rest: np.ndarray) -> np.ndarray:
    """SH without DC [N, D, 3] -> [N, D, 3] uint8: x * 128 + 128, then to the nearest multiple of
    2^(8 - bits) (SH1_BITS for the 3 degree-1 coefficients, SH_REST_BITS after)."""
    q = _round(rest * np.float32(128)) + 128  # [N, D, 3]
    bucket = np.full(rest.shape[1], 1 << (8 - SH_REST_BITS), dtype=np.float32)
    bucket[:3] = 1 << (8 - SH1_BITS)
    b = bucket[None, :, None]
    q = np.floor((q + b // 2) / b) * b
    return np.clip(q, 0, 255).astype(np.uint8)


def spz_bytes(g: Gaussians) -> bytes:
    """``g`` (capture world, RDF) as a version-3 .spz file (see the module doc).

    g: any device and float dtype; every value finite and at least one Gaussian (Niantic's
    reader refuses empty files). SH bands that are all zero are not stored."""
    g = g.detach().to("cpu", torch.float32)
    if g.num == 0:
        raise ValueError("an .spz file holds at least one Gaussian (Niantic's reader refuses empty ones)")
    if g.finite().num != g.num:
        raise ValueError(
            ".spz stores finite values only; drop Gaussians with NaN or Inf first (Gaussians.finite)"
        )
    g = g.with_sh_degree(g.sh_degree_used()).transform(RDF_TO_RUB)
    means = g.means.numpy()  # [N, 3] RUB
    fb = _fractional_bits(means)
    logits = g.opacity_logits.numpy()  # [N]
    color_step = np.float32(COLOR_SCALE) * np.float32(255)
    streams = [
        _pack_positions(means, fb),
        _to_u8(np.float32(1) / (np.float32(1) + np.exp(-logits)) * np.float32(255)),  # sigmoid * 255
        _to_u8(g.sh[:, 0].numpy() * color_step + np.float32(127.5)),
        _to_u8((g.log_scales.numpy() + np.float32(10)) * np.float32(16)),
        _pack_rotations(g.quats.numpy()),
        _pack_sh(g.sh[:, 1:].numpy()),
    ]
    header = _LEGACY_HEADER.pack(SPZ_MAGIC, WRITE_VERSION, g.num, g.sh_degree, fb, 0, 0)
    payload = header + b"".join(np.ascontiguousarray(s).tobytes() for s in streams)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip stream, no timestamp
    return compressor.compress(payload) + compressor.flush()


# ------------------------------------------------------------------------------ reading
def _stream_sizes(n: int, degree: int, version: int) -> dict[str, int]:
    return {
        "positions": 9 * n,
        "alphas": n,
        "colors": 3 * n,
        "scales": 3 * n,
        "rotations": (4 if version >= 3 else 3) * n,
        "sh": 3 * _sh_dim(degree) * n,
    }


def _legacy_streams(raw: bytes) -> tuple[tuple, dict[str, bytes]]:
    """Versions 1-3: header fields and the attribute streams of one gzip stream (inflated no
    further than the header says it holds, so a forged file cannot fill memory)."""
    inflate = zlib.decompressobj(31)
    head = inflate.decompress(raw, _LEGACY_HEADER.size)
    if len(head) < _LEGACY_HEADER.size:
        raise ValueError("truncated .spz: no 16-byte header")
    fields = _LEGACY_HEADER.unpack(head)
    magic, version, n, degree, _, flags, _ = fields
    if n == 0:
        raise ValueError(".spz with no Gaussians")
    if magic != SPZ_MAGIC:
        raise ValueError("not an .spz file (gzip, but no NGSP header inside)")
    if version == 1:
        raise ValueError(".spz version 1 (float16 positions, never released by Niantic) is not supported")
    if version not in (2, 3):
        raise ValueError(f"gzip .spz of version {version}; versions 2 and 3 use gzip")
    sizes = _stream_sizes(n, degree, version)
    body = inflate.decompress(inflate.unconsumed_tail, sum(sizes.values()))
    if len(body) < sum(sizes.values()):
        raise ValueError(f"truncated .spz: {len(body)} bytes of data, the header says {sum(sizes.values())}")
    more = inflate.decompress(inflate.unconsumed_tail, 1)
    if more and not flags & FLAG_EXTENSIONS:
        raise ValueError("corrupt .spz: more data than the header's Gaussians")
    out, at = {}, 0
    for name in _ATTRIBUTES:
        out[name], at = body[at : at + sizes[name]], at + sizes[name]
    return fields, out


def _ngsp_streams(raw: bytes) -> tuple[tuple, dict[str, bytes]]:
    """Version 4: plain 32-byte header, (extensions), table of contents, one zstd stream per
    non-empty attribute."""
    import zstandard

    if len(raw) < _NGSP_HEADER.size:
        raise ValueError("truncated .spz: no 32-byte header")
    magic, version, n, degree, fb, flags, num_streams, toc_at = _NGSP_HEADER.unpack_from(raw)
    if version != 4:
        raise ValueError(f".spz with a plain header has version {version}; only version 4 has one")
    if n == 0:
        raise ValueError(".spz with no Gaussians")
    sizes = _stream_sizes(n, degree, version)
    expected = [name for name in _ATTRIBUTES if sizes[name]]
    if num_streams != len(expected) or toc_at + 16 * num_streams > len(raw):
        raise ValueError(
            f"corrupt .spz: {num_streams} streams, expected {len(expected)} (or a truncated file)"
        )
    toc = struct.unpack_from(f"<{2 * num_streams}Q", raw, toc_at)
    at = toc_at + 16 * num_streams
    out = {name: b"" for name in _ATTRIBUTES}
    for i, name in enumerate(expected):
        packed, size = toc[2 * i], toc[2 * i + 1]
        if size != sizes[name] or at + packed > len(raw):
            raise ValueError(f"corrupt .spz: the {name} stream does not match the header's {n} Gaussians")
        out[name] = zstandard.ZstdDecompressor().decompress(raw[at : at + packed], max_output_size=size)
        if len(out[name]) != size:
            raise ValueError(
                f"corrupt .spz: the {name} stream inflates to {len(out[name])} bytes, not {size}"
            )
        at += packed
    return (magic, version, n, degree, fb, flags, 0), out


def _unpack_rotations(raw: bytes, version: int) -> np.ndarray:
    """Rotation stream -> [N, 4] float32 unit quaternions, wxyz."""
    if version >= 3:
        word = np.frombuffer(raw, dtype="<u4").astype(np.uint32)  # [N]
        largest = (word >> 30).astype(np.int64)
        q = np.zeros((len(word), 4), dtype=np.float32)  # xyzw
        for i in (3, 2, 1, 0):  # the last one written sits in the lowest bits
            keep = largest != i
            mag = (word & _MAG_MAX).astype(np.float32)
            sign = np.where((word >> 9) & 1, np.float32(-1), np.float32(1))
            q[:, i] = np.where(keep, sign * _SQRT1_2 * mag / np.float32(_MAG_MAX), 0)
            word = np.where(keep, word >> 10, word)
        rest = np.maximum(np.float32(1) - (q * q).sum(axis=1), 0)
        q[np.arange(len(q)), largest] = np.sqrt(rest)
    else:  # version 2: x y z as u8, w >= 0 recovered from the unit norm
        xyz = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.float32) / np.float32(127.5) - 1
        w = np.sqrt(np.maximum(np.float32(1) - (xyz * xyz).sum(axis=1), 0))
        q = np.concatenate([xyz, w[:, None]], axis=1)
    return q[:, [3, 0, 1, 2]]


def spz_from_bytes(raw: bytes) -> Gaussians:
    """An .spz file (versions 2, 3, 4) -> Gaussians (CPU, float32) in the capture-world
    convention RDF (see the module doc); ValueError for anything else."""
    if raw[:2] == b"\x1f\x8b":
        fields, s = _legacy_streams(raw)
    elif len(raw) >= 4 and struct.unpack_from("<I", raw)[0] == SPZ_MAGIC:
        fields, s = _ngsp_streams(raw)
    else:
        raise ValueError("not an .spz file (neither gzip nor an NGSP header)")
    _, version, n, degree, fb, flags, _ = fields
    if degree > 3:
        raise ValueError(f".spz SH degree {degree}: lrm-studio's renderers evaluate degrees 0 to 3")
    if flags & FLAG_ANTIALIASED:
        log.warning(".spz marked antialiased (trained with mip-splatting): drawn here without that filter")
    if flags & FLAG_EXTENSIONS:
        log.warning(".spz carries vendor extensions; they are ignored (the data is read as RUB)")
    pos = np.frombuffer(s["positions"], dtype=np.uint8).reshape(n, 3, 3).astype(np.int32)
    fixed = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)  # [N, 3]
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)  # sign of 24 bits
    means = fixed.astype(np.float32) * np.float32(1.0 / (1 << fb))
    colors = np.frombuffer(s["colors"], dtype=np.uint8).reshape(n, 3).astype(np.float32)
    scales = np.frombuffer(s["scales"], dtype=np.uint8).reshape(n, 3).astype(np.float32)
    sh = np.zeros((n, _sh_dim(degree) + 1, 3), dtype=np.float32)  # [N, K, 3]
    sh[:, 0] = (colors / np.float32(255) - np.float32(0.5)) / np.float32(COLOR_SCALE)
    rest = np.frombuffer(s["sh"], dtype=np.uint8).reshape(n, _sh_dim(degree), 3).astype(np.float32)
    sh[:, 1:] = (rest - np.float32(128)) / np.float32(128)
    g = Gaussians(
        means=torch.from_numpy(means),
        quats=torch.from_numpy(np.ascontiguousarray(_unpack_rotations(s["rotations"], version))),
        log_scales=torch.from_numpy(scales / np.float32(16) - np.float32(10)),
        opacity_logits=u8_to_logit(torch.from_numpy(np.frombuffer(s["alphas"], dtype=np.uint8).copy())),
        sh=torch.from_numpy(sh),
    )
    return g.transform(RDF_TO_RUB)  # RUB -> RDF (the rotation is its own inverse)


def write_spz(path: str | os.PathLike, g: Gaussians) -> None:
    """Write ``g`` as an .spz file (atomically; see :func:`spz_bytes`)."""
    data = spz_bytes(g)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_spz(path: str | os.PathLike) -> Gaussians:
    """Read an .spz file (see :func:`spz_from_bytes`)."""
    return spz_from_bytes(Path(path).read_bytes())


__all__ = ["spz_bytes", "spz_from_bytes", "write_spz", "read_spz", "RDF_TO_RUB"]
