"""Perceptual loss of the Long-LRM recipe: VGG-19 features, weights supplied by the user.

Nothing is downloaded: the weights file is a VGG-19 state dict in torchvision's layout
(``features.{i}.weight`` / ``.bias`` for the 16 convolutions; ``classifier.*`` is ignored), e.g.
torchvision's ``vgg19`` ImageNet weights or the MatConvNet conversion the official code uses, as
``.pth`` (read with ``weights_only=True``) or ``.safetensors``.

Definition (shared/reference/long_lrm.md §4.1): max-pooling replaced by 2x2 average pooling;
inputs ``(img - ImageNet mean) * 255`` (no std division); features after relu1_2, relu2_2,
relu3_2, relu4_2 and relu5_2 (``features[0:4], [4:9], [9:14], [14:23], [23:32]``) with weights
1/2.6, 1/4.8, 1/3.7, 1/5.6, 10/1.5; loss = (mean |pixel diff| + sum_i w_i mean |feature diff_i|)
/ 255.

Examples:
    >>> loss_fn = PerceptualLoss.from_file("vgg19.pth")                 # doctest: +SKIP
    >>> loss_fn(pred, target)   # pred, target [B, 3, H, W] in [0, 1]      # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from pipelines.models.checkpoints import (
    WeightsError,
    check_keys,
    load_weights,
    read_torch_checkpoint,
    unwrap_state_dict,
)

# torchvision vgg19 "features": channel counts, "M" = pooling
VGG19_LAYOUT = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)
SLICES = ((0, 4), (4, 9), (9, 14), (14, 23), (23, 32))  # relu1_2, relu2_2, relu3_2, relu4_2, relu5_2
SLICE_WEIGHTS = (1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
FEATURE_SCALE = 255.0


def vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19().features`` layer list with average pooling (indices match)."""
    layers: list[nn.Module] = []
    c = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.AvgPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            c = int(item)
    return nn.Sequential(*layers)


class PerceptualLoss(nn.Module):
    """Frozen VGG-19 feature distance (module docstring). forward(pred, target): [B,3,H,W] in
    [0, 1] -> scalar; gradients flow to ``pred``."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([features[a:b] for a, b in SLICES])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def from_file(path: str | os.PathLike) -> PerceptualLoss:
        path = Path(path)
        if path.suffix == ".safetensors":
            sd, _ = load_weights(path)
        else:
            sd = unwrap_state_dict(read_torch_checkpoint(path), ("state_dict", "model"), str(path))
        feats = {k.removeprefix("features."): v for k, v in sd.items() if not k.startswith("classifier.")}
        net = vgg19_features()
        check_keys(
            {k: tuple(v.shape) for k, v in net.state_dict().items()}, feats, f"{path} (VGG-19 features)"
        )
        net.load_state_dict(feats, strict=True)
        return PerceptualLoss(net)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        assert pred.shape == target.shape and pred.ndim == 4 and pred.shape[1] == 3, (
            f"pred and target must be one [B,3,H,W] shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
        x = (pred.float() - self.mean) * FEATURE_SCALE
        y = (target.float() - self.mean) * FEATURE_SCALE
        loss = (x - y).abs().mean()
        for w, block in zip(SLICE_WEIGHTS, self.blocks, strict=True):
            x, y = block(x), block(y)
            loss = loss + w * (x - y).abs().mean()
        return loss / FEATURE_SCALE


__all__ = ["PerceptualLoss", "WeightsError", "vgg19_features"]
