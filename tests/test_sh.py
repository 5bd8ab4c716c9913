import pytest
import torch
from gsplat.cuda._torch_impl import _eval_sh_bases_fast

from pipelines.gaussians.sh import eval_sh, num_sh_bases, rotate_sh, sh_basis
from pipelines.transforms import random_rotations


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_matches_gsplat_reference(gen, degree):
    d = torch.nn.functional.normalize(torch.randn(300, 3, generator=gen), dim=-1)
    ours = sh_basis(d, degree)
    ref = _eval_sh_bases_fast(num_sh_bases(degree), d)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_rotated_sh_gives_rotated_colours(gen, degree):
    R = random_rotations(1, gen, torch.float64)[0]
    sh = torch.randn(20, num_sh_bases(degree), 3, generator=gen, dtype=torch.float64)
    d = torch.nn.functional.normalize(torch.randn(20, 3, generator=gen, dtype=torch.float64), dim=-1)
    rotated = rotate_sh(sh, R)
    # the rotated scene seen along R d looks like the original seen along d
    torch.testing.assert_close(eval_sh(rotated, d @ R.T), eval_sh(sh, d), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(rotated[:, 0], sh[:, 0])  # DC untouched
