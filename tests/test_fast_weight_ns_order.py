"""tttLRM's Newton-Schulz step in bfloat16 follows the released expression bit for bit.

The official ``zeropower_via_newtonschulz5`` (cwchenwang/tttLRM: model/lact_ttt.py) writes the
step as ``B = b * A + c * A @ A; X = a * X + B @ X``; Python's ``*`` and ``@`` share one
precedence and associate left, so the quadratic term is ``(c * A) @ A``. In bfloat16 that order
rounds differently from ``c * (A @ A)``, so the order itself is part of the model.
"""

from __future__ import annotations

import pytest
import torch

from pipelines.models.blocks.fast_weight import NS_COEFFS, NS_EPS, newton_schulz5


def released_ns5_bf16(G: torch.Tensor, steps: int) -> torch.Tensor:
    """The released bf16 iteration, its expressions kept verbatim (G [B, m, n])."""
    a, b, c = NS_COEFFS
    X = G.bfloat16()
    tall = G.size(1) > G.size(2)
    if tall:
        X = X.transpose(1, 2)
    X = X / (X.norm(dim=(1, 2), keepdim=True) + NS_EPS)
    for _ in range(steps):
        A = X @ X.transpose(1, 2)
        B = b * A + c * A @ A  # the released spelling: (c * A) @ A
        X = a * X + B @ X
    return X.transpose(1, 2) if tall else X


def scaled_after_product_bf16(G: torch.Tensor, steps: int) -> torch.Tensor:
    """The earlier order, c * (A @ A), for contrast."""
    a, b, c = NS_COEFFS
    X = G.bfloat16()
    X = X / (X.norm(dim=(1, 2), keepdim=True) + NS_EPS)
    for _ in range(steps):
        A = X @ X.transpose(1, 2)
        X = a * X + (b * A + c * (A @ A)) @ X
    return X


@pytest.mark.parametrize("shape", [(3, 24, 96), (2, 96, 24), (1, 48, 48)])
def test_newton_schulz_bf16_is_the_released_expression_bit_for_bit(gen, shape):
    G = torch.randn(*shape, generator=gen)
    for steps in (1, 5):
        ours = newton_schulz5(G, steps, dtype=torch.bfloat16)
        assert ours.dtype == torch.bfloat16
        assert torch.equal(ours, released_ns5_bf16(G, steps)), (shape, steps)


def test_the_two_orders_differ_in_bf16(gen):
    """The test above can fail: scaling after the product rounds differently in bfloat16."""
    G = torch.randn(4, 32, 128, generator=gen)
    assert not torch.equal(released_ns5_bf16(G, 5), scaled_after_product_bf16(G, 5))
