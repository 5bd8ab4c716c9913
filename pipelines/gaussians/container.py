"""The Gaussians container: parameters before activation, and the one place activations live.

means [N, 3] world; quats [N, 4] wxyz, need not be unit; log_scales [N, 3] (log of the standard
deviations along the Gaussian's axes); opacity_logits [N] (opacity = sigmoid); sh [N, K, 3] SH
coefficients, K = (degree + 1)^2, DC first.

Examples:
    >>> g = Gaussians.random(1000, sh_degree=3, generator=torch.Generator().manual_seed(0))
    >>> g.num, g.sh_degree, g.covariances().shape
    (1000, 3, torch.Size([1000, 3, 3]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from pipelines.gaussians.sh import num_sh_bases, rgb_to_sh0, rotate_sh, sh0_to_rgb, sh_degree_from_bases
from pipelines.transforms import Similarity, quat_multiply, quat_to_rotmat, rotmat_to_quat


@dataclass
class Gaussians:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz
    log_scales: Tensor  # [N, 3]
    opacity_logits: Tensor  # [N]
    sh: Tensor  # [N, K, 3]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        assert self.means.shape == (n, 3), f"means must be [N,3], got {tuple(self.means.shape)}"
        assert self.quats.shape == (n, 4), f"quats must be [N,4], got {tuple(self.quats.shape)}"
        assert self.log_scales.shape == (n, 3), (
            f"log_scales must be [N,3], got {tuple(self.log_scales.shape)}"
        )
        assert self.opacity_logits.shape == (n,), (
            f"opacity_logits must be [N], got {tuple(self.opacity_logits.shape)}"
        )
        assert self.sh.ndim == 3 and self.sh.shape[0] == n and self.sh.shape[2] == 3, (
            f"sh must be [N,K,3], got {tuple(self.sh.shape)}"
        )
        sh_degree_from_bases(self.sh.shape[1])

    # ----------------------------------------------------------------- basics
    @property
    def num(self) -> int:
        return self.means.shape[0]

    def __len__(self) -> int:
        return self.num

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def _map(self, fn) -> Gaussians:
        return Gaussians(**{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        return self._map(lambda t: t.to(device, dtype))

    def detach(self) -> Gaussians:
        return self._map(Tensor.detach)

    def clone(self) -> Gaussians:
        return self._map(Tensor.clone)

    def requires_grad_(self, flag: bool = True) -> Gaussians:
        for t in self.tensors().values():
            t.requires_grad_(flag)
        return self

    def __getitem__(self, index: Tensor | slice) -> Gaussians:
        """Subset by index tensor, boolean mask [N] or slice."""
        return self._map(lambda t: t[index])

    @staticmethod
    def cat(parts: list[Gaussians]) -> Gaussians:
        """Concatenate; SH is padded with zeros to the highest degree among the parts."""
        assert parts, "nothing to concatenate"
        degree = max(p.sh_degree for p in parts)
        parts = [p.with_sh_degree(degree) for p in parts]
        return Gaussians(**{k: torch.cat([getattr(p, k) for p in parts]) for k in parts[0].tensors()})

    def with_sh_degree(self, degree: int) -> Gaussians:
        """Truncate or zero-pad the SH coefficients to ``degree``."""
        k, k_now = num_sh_bases(degree), self.sh.shape[1]
        if k == k_now:
            return self
        if k < k_now:
            return replace(self, sh=self.sh[:, :k])
        pad = self.sh.new_zeros(self.num, k - k_now, 3)
        return replace(self, sh=torch.cat([self.sh, pad], dim=1))

    def sh_degree_used(self) -> int:
        """The lowest degree whose bands hold every nonzero SH coefficient: bands above it are
        all exactly zero (zero padding, or never trained), so truncating to it changes no
        colour. ``with_sh_degree(sh_degree_used())`` is the compact form of the same Gaussians."""
        used = (self.sh != 0).any(dim=(0, 2))  # [K] per basis function
        used[0] = True  # the DC term is always kept
        return math.isqrt(int(used.nonzero().max()))  # basis index b belongs to degree isqrt(b)

    # ------------------------------------------------------------ activations
    def opacities(self) -> Tensor:
        """[N] in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def scales(self) -> Tensor:
        """[N, 3] standard deviations along the Gaussian's axes, world units."""
        return torch.exp(self.log_scales)

    def rotations(self) -> Tensor:
        """[N, 4] unit quats wxyz."""
        return torch.nn.functional.normalize(self.quats, dim=-1)

    def covariances(self) -> Tensor:
        """[N, 3, 3] world covariances R S S^T R^T."""
        M = quat_to_rotmat(self.quats) * self.scales()[:, None, :]  # R @ diag(s)
        return M @ M.transpose(-1, -2)

    def colors_dc(self) -> Tensor:
        """[N, 3] view-independent colour from the DC term, clamped to [0, 1] (for previews)."""
        return sh0_to_rgb(self.sh[:, 0]).clamp(0, 1)

    def importance(self) -> Tensor:
        """[N] a visibility score: opacity times the geometric mean of the scales squared (an
        area-like measure), used to choose which Gaussians to keep under a budget."""
        return self.opacities() * torch.exp(2 * self.log_scales.mean(dim=-1))

    # ---------------------------------------------------------------- pruning
    def prune_opacity(self, min_opacity: float) -> Gaussians:
        """Keep Gaussians with opacity >= min_opacity."""
        return self[self.opacities() >= min_opacity]

    def top_k(self, k: int, score: Tensor | None = None) -> Gaussians:
        """Keep the k Gaussians with the highest ``score`` [N] (default :meth:`importance`),
        in their original order. Returns self when k >= N."""
        if k >= self.num:
            return self
        score = self.importance() if score is None else score
        keep = torch.topk(score, k, sorted=False).indices.sort().values
        return self[keep]

    def finite(self) -> Gaussians:
        """Drop Gaussians with any NaN or Inf parameter."""
        ok = torch.ones(self.num, dtype=torch.bool, device=self.device)
        for t in self.tensors().values():
            ok &= torch.isfinite(t.reshape(self.num, -1) if self.num else t.reshape(0, 1)).all(dim=-1)
        return self[ok]

    # -------------------------------------------------------------- geometry
    def transform(self, sim: Similarity) -> Gaussians:
        """The same scene in the frame x' = s R x + t: means mapped, rotations composed with R,
        log-scales shifted by log s, SH bands 1..3 rotated so view-dependent colour follows."""
        R = sim.rotation.to(self.means)
        q_R = rotmat_to_quat(sim.rotation).to(self.quats)  # [4]
        return Gaussians(
            means=sim.apply(self.means),
            quats=quat_multiply(q_R.expand_as(self.quats), self.quats),
            log_scales=self.log_scales + math.log(sim.scale),
            opacity_logits=self.opacity_logits,
            sh=rotate_sh(self.sh, R) if self.sh_degree > 0 else self.sh,
        )

    # --------------------------------------------------------------- factories
    @staticmethod
    def from_points(
        points: Tensor, rgb: Tensor, *, log_scales: Tensor, opacity: float = 0.1, sh_degree: int = 3
    ) -> Gaussians:
        """Isotropic Gaussians at points [N, 3] with colours rgb [N, 3] in [0, 1] and the given
        log_scales [N] or [N, 3]; identity rotations, higher SH bands zero."""
        n = points.shape[0]
        sh = points.new_zeros(n, num_sh_bases(sh_degree), 3)
        sh[:, 0] = rgb_to_sh0(rgb.to(points))
        ls = log_scales.to(points)
        ls = ls[:, None].expand(n, 3) if ls.ndim == 1 else ls
        quats = points.new_zeros(n, 4)
        quats[:, 0] = 1
        logit = math.log(opacity / (1 - opacity))
        return Gaussians(points, quats, ls.clone(), points.new_full((n,), logit), sh)

    @staticmethod
    def random(
        n: int,
        *,
        sh_degree: int = 3,
        extent: float = 1.0,
        scale_range: tuple[float, float] = (0.01, 0.1),
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Gaussians:
        """n random Gaussians in the cube [-extent, extent]^3 (for tests and benchmarks)."""
        g = generator
        lo, hi = math.log(scale_range[0]), math.log(scale_range[1])
        out = Gaussians(
            means=(torch.rand(n, 3, generator=g) * 2 - 1) * extent,
            quats=torch.randn(n, 4, generator=g),
            log_scales=lo + (hi - lo) * torch.rand(n, 3, generator=g),
            opacity_logits=torch.randn(n, generator=g) * 2,
            sh=torch.randn(n, num_sh_bases(sh_degree), 3, generator=g) * 0.3,
        )
        return out.to(device)
