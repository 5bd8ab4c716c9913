"""Perceptual loss: a VGG-19 weights file in torchvision's layout loads (classifier ignored, a
wrong key named), and the loss equals a layer-by-layer brute force of its definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipelines.models.checkpoints import WeightsError
from pipelines.train.perceptual import PerceptualLoss

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
# conv count -> weight (relu1_2, relu2_2, relu3_2, relu4_2, relu5_2)
TAPS = {2: 1 / 2.6, 4: 1 / 4.8, 6: 1 / 3.7, 10: 1 / 5.6, 14: 10 / 1.5}


def _random_vgg(gen) -> dict[str, torch.Tensor]:
    sd, c, i = {}, 3, 0
    for item in CFG:
        if item == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"] = torch.randn(item, c, 3, 3, generator=gen) * (2 / (9 * c)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(item, generator=gen) * 0.01
        c, i = item, i + 2
    sd["classifier.0.weight"] = torch.zeros(4, 4)
    return sd


def _reference(sd, x, y) -> float:
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    a, b = (x.double() - mean) * 255, (y.double() - mean) * 255
    total = (a - b).abs().mean()
    convs = [k for k in sd if k.startswith("features.") and k.endswith("weight")]
    convs.sort(key=lambda k: int(k.split(".")[1]))
    n, ci = 0, 0
    for item in CFG:
        if item == "M":
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            continue
        k = convs[ci]
        w, bias = sd[k].double(), sd[k.replace("weight", "bias")].double()
        a, b = F.relu(F.conv2d(a, w, bias, padding=1)), F.relu(F.conv2d(b, w, bias, padding=1))
        ci += 1
        n += 1
        if n in TAPS:
            total = total + TAPS[n] * (a - b).abs().mean()
        if n == 14:
            break
    return float(total / 255)


def test_perceptual_loss_matches_definition(tmp_path, gen):
    sd = _random_vgg(gen)
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    loss = PerceptualLoss.from_file(path)
    x = torch.rand(2, 3, 32, 32, generator=gen, requires_grad=True)
    y = torch.rand(2, 3, 32, 32, generator=gen)
    value = loss(x, y)
    assert float(value.detach()) == pytest.approx(_reference(sd, x.detach(), y), rel=1e-4)
    assert float(loss(y, y)) == 0.0
    value.backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    assert all(not p.requires_grad for p in loss.parameters())


def test_perceptual_weights_with_a_wrong_key_are_refused(tmp_path, gen):
    sd = _random_vgg(gen)
    sd["features.99.weight"] = sd.pop("features.0.weight")
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="features.0.weight|0.weight"):
        PerceptualLoss.from_file(tmp_path / "bad.pth")
