"""Per-pixel Gaussian decoder: tokens -> one Gaussian per input pixel, its activations, pruning.

Head (Long-LRM ``tokenDecoder``): ``LayerNorm(D, no bias) -> Linear(D, C * p^2, no bias)``,
unpatchified so that every input pixel gets C raw channels, laid out
``[xyz (3), sh (3 K), scale (3), rotation (4), opacity (1)]`` with K = (sh_degree + 1)^2
(C = 59 for degree 3). The 3K SH channels are coefficient-major with RGB innermost (the official
``feature.view(..., K, 3)``), DC first: exactly our ``sh [N, K, 3]``.

Activations (all in :meth:`PixelGaussians.to_gaussians`, in float32 at least: float64 for a float64
network, float32 under bf16 autocast):

    distance  = sigmoid(mean(xyz)) * max_dist        # along the unit pixel ray, (0, max_dist)
    mean      = ray_o + distance * ray_d             # pixel-aligned
    log_scale = min(scale + scale_bias, scale_max)   # scale = exp(log_scale) in (0, e^scale_max]
    logit     = opacity + opacity_bias               # opacity = sigmoid(logit)
    quat      = rotation (wxyz as fed to gsplat; normalised by the renderer)
    sh        = raw SH coefficients (the renderer adds 0.5 and clamps at 0)

Pruning keeps the ``n_top`` most opaque Gaussians plus ``n_random`` drawn uniformly from the rest
(:func:`top_and_random_indices`). The two models count differently (each with its own float
arithmetic, so the counts match the official code to the Gaussian):

- Long-LRM (:func:`prune_counts`): keep (1 - prune_ratio) N; a share ``random_ratio`` of the kept
  ones is the random draw;
- tttLRM (:func:`keep_counts`): the ``top_ratio`` N most opaque, plus ``(1 - top_ratio)
  rest_ratio`` N drawn from the rest (``prune_ratio`` / ``random_ratio`` of its config, which
  name the *kept* share: 0.4 + 0.1 keeps 46 %).

Examples:
    >>> act = GaussianActivation(sh_degree=3)
    >>> act.num_channels
    59
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pipelines.gaussians import Gaussians
from pipelines.gaussians.sh import num_sh_bases
from pipelines.models.blocks.plucker import unpatchify


@dataclass(frozen=True)
class GaussianActivation:
    """Constants of the per-pixel activations (Long-LRM 7m1t_tm.yaml defaults)."""

    sh_degree: int = 3
    scale_bias: float = -6.9
    scale_max: float = -1.2
    opacity_bias: float = -2.0
    max_dist: float = 500.0

    @property
    def split(self) -> tuple[int, int, int, int, int]:
        """Channel counts of xyz, sh, scale, rotation, opacity."""
        return (3, 3 * num_sh_bases(self.sh_degree), 3, 4, 1)

    @property
    def num_channels(self) -> int:
        return sum(self.split)


class PixelGaussianHead(nn.Module):
    """tokens [B, V*h*w, D] -> raw per-pixel channels [B, V*(h p)*(w p), C]."""

    def __init__(self, dim: int, patch_size: int, num_channels: int) -> None:
        super().__init__()
        self.patch_size, self.num_channels = patch_size, num_channels
        self.norm = nn.LayerNorm(dim, bias=False)
        self.proj = nn.Linear(dim, num_channels * patch_size**2, bias=False)

    def forward(self, tokens: Tensor, *, views: int, h: int, w: int) -> Tensor:
        assert tokens.shape[1] == views * h * w, f"{tokens.shape[1]} tokens, expected {views}*{h}*{w}"
        return unpatchify(self.proj(self.norm(tokens)), views, h, w, self.patch_size)


@dataclass
class PixelGaussians:
    """Raw head output of a batch and the rays it is aligned to.

    raw [B, N, C] pre-activation (N = V*H*W, views then rows then columns); ray_o, ray_d [B, N, 3]
    in the model's (normalised) frame, d unit; activation: the constants of :meth:`to_gaussians`.
    """

    raw: Tensor
    ray_o: Tensor
    ray_d: Tensor
    activation: GaussianActivation

    def __post_init__(self) -> None:
        b, n, c = self.raw.shape
        assert c == self.activation.num_channels, (
            f"raw has {c} channels, expected {self.activation.num_channels}"
        )
        assert self.ray_o.shape == self.ray_d.shape == (b, n, 3), (
            f"rays {tuple(self.ray_o.shape)}, {tuple(self.ray_d.shape)}; expected {(b, n, 3)}"
        )

    def to_gaussians(self) -> list[Gaussians]:
        """Every activation, in float32 at least (float64 stays float64); one Gaussians [N] per batch
        element, in pixel order."""
        act = self.activation
        b, n, _ = self.raw.shape
        dt = torch.promote_types(self.raw.dtype, torch.float32)
        xyz, sh, scale, rotation, opacity = self.raw.to(dt).split(act.split, dim=-1)
        distance = torch.sigmoid(xyz.mean(dim=-1, keepdim=True)) * act.max_dist  # [B, N, 1]
        means = self.ray_o.to(dt) + distance * self.ray_d.to(dt)  # [B, N, 3]
        log_scales = (scale + act.scale_bias).clamp(max=act.scale_max)  # [B, N, 3]
        logits = (opacity + act.opacity_bias)[..., 0]  # [B, N]
        sh = sh.reshape(b, n, num_sh_bases(act.sh_degree), 3)  # [B, N, K, 3], RGB innermost
        return [Gaussians(means[i], rotation[i], log_scales[i], logits[i], sh[i]) for i in range(b)]


def prune_counts(n: int, prune_ratio: float, random_ratio: float) -> tuple[int, int]:
    """Long-LRM: (most opaque kept, randomly kept) out of n, with the official float arithmetic."""
    keep = 1 - prune_ratio
    random_share = keep * random_ratio
    keep = keep - random_share
    return int(n * keep), int(n * random_share)


def keep_counts(n: int, top_ratio: float, rest_ratio: float) -> tuple[int, int]:
    """tttLRM: (most opaque kept, randomly kept) out of n: ``int(top_ratio n)`` and
    ``int((1 - top_ratio) rest_ratio n)``, the official float arithmetic (``model/model.py``)."""
    return int(top_ratio * n), int(((1 - top_ratio) * rest_ratio) * n)


def top_and_random_indices(
    opacity_logits: Tensor, n_top: int, n_random: int, generator: torch.Generator | None = None
) -> Tensor:
    """Indices [n_top + n_random] into opacity_logits [N]: the n_top most opaque (descending),
    then a uniform draw of n_random from the rest. ``generator`` (on the logits' device) seeds it."""
    n = opacity_logits.shape[0]
    assert 0 <= n_top <= n and 0 <= n_random <= n - n_top, f"keep {n_top} + {n_random} of {n}"
    order = torch.argsort(opacity_logits, descending=True)
    keep = order[:n_top]
    if n_random > 0:
        rest = order[n_top:]
        pick = torch.randperm(rest.shape[0], generator=generator, device=rest.device)[:n_random]
        keep = torch.cat([keep, rest[pick]])
    return keep


def prune_indices(
    opacity_logits: Tensor, prune_ratio: float, random_ratio: float, generator: torch.Generator | None = None
) -> Tensor:
    """Long-LRM's kept indices [K] (opacity_logits [N]): the most opaque first (descending), then
    a uniform draw from the rest. ``generator`` (on the logits' device) seeds the draw."""
    n = opacity_logits.shape[0]
    if prune_ratio <= 0:
        return torch.arange(n, device=opacity_logits.device)
    return top_and_random_indices(opacity_logits, *prune_counts(n, prune_ratio, random_ratio), generator)


def prune(
    g: Gaussians, prune_ratio: float, random_ratio: float, generator: torch.Generator | None = None
) -> Gaussians:
    """The subset chosen by :func:`prune_indices`."""
    if prune_ratio <= 0:
        return g
    return g[prune_indices(g.opacity_logits, prune_ratio, random_ratio, generator)]


def keep_top_and_random(
    g: Gaussians, n_top: int, n_random: int, generator: torch.Generator | None = None
) -> Gaussians:
    """The subset chosen by :func:`top_and_random_indices`."""
    return g[top_and_random_indices(g.opacity_logits, n_top, n_random, generator)]
