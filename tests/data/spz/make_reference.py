"""Regenerate this folder's reference files with Niantic's spz library (see README.md).

python make_reference.py HARNESS      # HARNESS: make_reference.cc built against nianticlabs/spz
"""

import struct
import subprocess
import sys

import numpy as np

harness = sys.argv[1]
rng = np.random.default_rng(20260312)
n, deg = 24, 3
means = rng.uniform(-3, 3, (n, 3)).astype(np.float32)
means[0] = [2047.5, -1500.25, 0.001]  # near the 24-bit limit at 12 fractional bits
log_scales = rng.uniform(-9, 5, (n, 3)).astype(np.float32)
quats = rng.normal(size=(n, 4)).astype(np.float32)  # wxyz
for i in range(4):  # each component the largest once, positive and negative
    quats[1 + i] = 0.1
    quats[1 + i, i] = 0.9
    quats[5 + i] = 0.1
    quats[5 + i, i] = -0.9
logits = rng.uniform(-6, 6, n).astype(np.float32)
logits[:2] = [-12, 12]  # opacity bytes 0 and 255
sh = np.zeros((n, 16, 3), np.float32)
sh[:, 0] = rng.uniform(-3, 3, (n, 3))
sh[:, 1:] = rng.uniform(-0.95, 0.95, (n, 15, 3))
np.savez_compressed(
    "reference_input.npz", means=means, log_scales=log_scales, quats_wxyz=quats, opacity_logits=logits, sh=sh
)
with open("in.bin", "wb") as f:  # the harness's input: positions, log-scales, xyzw, logits, f_dc, f_rest
    f.write(struct.pack("<ii", n, deg))
    for a in (means, log_scales, quats[:, [1, 2, 3, 0]], logits, sh[:, 0], sh[:, 1:]):
        f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
decoded = {}
for v in (2, 3, 4):
    subprocess.run([harness, "encode", "in.bin", f"reference_v{v}.spz", str(v)], check=True)
    subprocess.run([harness, "decode", f"reference_v{v}.spz", "out.bin"], check=True)
    raw = open("out.bin", "rb").read()
    assert struct.unpack_from("<ii", raw) == (n, deg)
    p, s, r, a, c, rest = np.split(
        np.frombuffer(raw[8:], dtype="<f4"), np.cumsum([3 * n, 3 * n, 4 * n, n, 3 * n])
    )
    decoded[f"v{v}_quats_wxyz"] = r.reshape(n, 4)[:, [3, 0, 1, 2]]  # the only field that differs by version
    full = np.concatenate([c.reshape(n, 1, 3), rest.reshape(n, 15, 3)], axis=1)
    for k, val in dict(means=p.reshape(n, 3), log_scales=s.reshape(n, 3), opacity_logits=a, sh=full).items():
        assert k not in decoded or np.array_equal(decoded[k], val)
        decoded[k] = val
np.savez_compressed("reference_decoded.npz", **decoded)
