"""3D RoPE: layout against per-token rotation matrices, closed-form single-channel rotations,
and the relative-position property (scores depend only on coordinate differences)."""

from __future__ import annotations

import math

import torch

from pipelines.models.blocks.rope3d import _rope3d_reference, rope3d


def test_matches_rotation_matrices(gen):
    x = torch.randn(2, 7, 3, 18, generator=gen)
    pos = torch.randint(0, 128, (2, 7, 3), generator=gen)
    torch.testing.assert_close(rope3d(x.double(), pos), _rope3d_reference(x, pos).double(), atol=1e-5, rtol=0)


def test_single_channel_rotates_by_closed_form_angle(gen):
    """A unit vector on channel u_k of axis a moves to (cos t, sin t) on (u_k, v_k), with
    t = pos_a * theta^(-k/Q), and nowhere else (layout: thirds per axis, halves (u, v))."""
    d, q, theta = 24, 4, 10000.0
    pos = torch.randint(0, 128, (1, 1, 3), generator=gen)
    for axis in range(3):
        for k in range(q):
            x = torch.zeros(1, 1, 1, d, dtype=torch.float64)
            iu, iv = axis * d // 3 + k, axis * d // 3 + q + k
            x[..., iu] = 1.0
            y = rope3d(x, pos, theta)[0, 0, 0]
            t = float(pos[0, 0, axis]) * theta ** (-k / q)
            want = torch.zeros(d, dtype=torch.float64)
            want[iu], want[iv] = math.cos(t), math.sin(t)
            torch.testing.assert_close(y, want, atol=2e-6, rtol=0)


def test_scores_depend_only_on_position_differences(gen):
    b, n, h, d = 1, 16, 2, 12
    q = torch.randn(b, n, h, d, generator=gen, dtype=torch.float64)
    k = torch.randn(b, n, h, d, generator=gen, dtype=torch.float64)
    p = torch.randint(0, 100, (b, n, 3), generator=gen)
    r = torch.randint(0, 100, (b, n, 3), generator=gen)
    shift = torch.randint(-50, 50, (1, 1, 3), generator=gen)

    def scores(pq, pk):  # <rope(q_i, pq_i), rope(k_i, pk_i)> per token and head
        return (rope3d(q, pq) * rope3d(k, pk)).sum(-1)

    base = scores(p, r)
    torch.testing.assert_close(scores(p + shift, r + shift), base, atol=1e-4, rtol=0)
    # equals rotating only k by the difference
    torch.testing.assert_close((q * rope3d(k, r - p)).sum(-1), base, atol=1e-4, rtol=0)
    # and is not position-blind: changing one side only changes the scores
    assert (scores(p + shift, r) - base).abs().max() > 1e-2
