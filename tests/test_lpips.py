"""LPIPS with weights made in the test (no real weights are needed or downloaded): the formula
against an independent float64 computation, the AlexNet features against torch.nn modules
loading the same torchvision-layout state dict, and how weights are found (or not)."""

from __future__ import annotations

import torch
from torch import nn

from pipelines.metrics import (
    ALEXNET_CHANNELS,
    LPIPS,
    LPIPS_ALEXNET_ENV,
    LPIPS_DIR_ENV,
    LPIPS_LINEAR_ENV,
    load_lpips,
    lpips_distance,
    lpips_missing_reason,
)


def random_alexnet(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A torchvision ``alexnet().state_dict()``-shaped dict (features + classifier)."""
    shapes = {
        0: (64, 3, 11, 11),
        3: (192, 64, 5, 5),
        6: (384, 192, 3, 3),
        8: (256, 384, 3, 3),
        10: (256, 256, 3, 3),
    }
    sd = {}
    for i, s in shapes.items():
        fan_in = s[1] * s[2] * s[3]
        sd[f"features.{i}.weight"] = torch.randn(s, generator=gen) * (2.0 / fan_in) ** 0.5
        sd[f"features.{i}.bias"] = 0.1 * torch.randn(s[0], generator=gen)
    sd["classifier.1.weight"] = torch.randn(8, 4, generator=gen)  # ignored by LPIPS
    return sd


def random_linear(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """An lpips v0.1 ``alex.pth``-shaped dict: non-negative 1x1 weights per layer."""
    return {
        f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
        for i, c in enumerate(ALEXNET_CHANNELS)
    }


def reference_lpips(x: torch.Tensor, y: torch.Tensor, alex: dict, lin: dict) -> torch.Tensor:
    """float64, written from the paper's definition with torch.nn modules: scaling layer, the
    torchvision AlexNet layer list (conv/ReLU/max-pool) tapped after each ReLU, unit-normalized
    channels, squared difference weighted per channel, spatial mean, sum over layers."""
    layers = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    ).double()
    layers.load_state_dict(
        {k[len("features.") :]: v.double() for k, v in alex.items() if k.startswith("features.")}
    )
    taps = [1, 4, 7, 9, 11]
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def feats(img):
        h = ((img.double() * 2 - 1) - shift) / scale
        out = []
        for i, layer in enumerate(layers):
            h = layer(h)
            if i in taps:
                out.append(h)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for k, (a, b) in enumerate(zip(feats(x), feats(y), strict=True)):
            w = lin[f"lin{k}.model.1.weight"].double().view(-1)
            for n in range(x.shape[0]):
                acc = 0.0
                for i in range(a.shape[2]):
                    for j in range(a.shape[3]):
                        u, v = a[n, :, i, j], b[n, :, i, j]
                        u = u / (u.norm() + 1e-10)
                        v = v / (v.norm() + 1e-10)
                        acc += float((w * (u - v) ** 2).sum())
                total[n] += acc / (a.shape[2] * a.shape[3])
    return total


def test_lpips_formula_against_float64(gen):
    feats0 = [torch.randn(2, c, h, w, generator=gen) for c, h, w in ((4, 3, 5), (6, 2, 2), (3, 1, 4))]
    feats1 = [f + 0.5 * torch.randn(f.shape, generator=gen) for f in feats0]
    weights = [torch.rand(1, f.shape[1], 1, 1, generator=gen) for f in feats0]
    got = lpips_distance(feats0, feats1, weights)
    expected = torch.zeros(2, dtype=torch.float64)
    for f0, f1, w in zip(feats0, feats1, weights, strict=True):
        for n in range(2):
            vals = []
            for i in range(f0.shape[2]):
                for j in range(f0.shape[3]):
                    a, b = f0[n, :, i, j].double(), f1[n, :, i, j].double()
                    d = a / (a.norm() + 1e-10) - b / (b.norm() + 1e-10)
                    vals.append((w.double().view(-1) * d * d).sum())
            expected[n] += torch.stack(vals).mean()
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)
    assert torch.all(lpips_distance(feats0, feats0, weights) == 0)


def test_lpips_with_alexnet_against_nn_modules(gen):
    alex, lin = random_alexnet(gen), random_linear(gen)
    metric = LPIPS(alex, lin)
    x = torch.rand(2, 3, 64, 72, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    got = metric(x, y)
    assert got.shape == (2,)
    torch.testing.assert_close(got.double(), reference_lpips(x, y, alex, lin), rtol=1e-4, atol=1e-6)
    assert float(metric(x, x).abs().max()) == 0.0
    # leading dims are kept
    assert metric(x[None], y[None]).shape == (1, 2)


def test_weights_found_locally_or_a_clear_reason(gen, tmp_path, monkeypatch):
    for var in (LPIPS_ALEXNET_ENV, LPIPS_LINEAR_ENV, LPIPS_DIR_ENV, "TORCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "lpips"
    folder.mkdir()
    reason = lpips_missing_reason(folder)
    assert reason is not None and "AlexNet" in reason and "alex.pth" in reason and str(folder) in reason
    assert load_lpips(folder) is None
    alex, lin = random_alexnet(gen), random_linear(gen)
    torch.save(alex, folder / "alexnet-owt-7be5be79.pth")
    assert "alex.pth" in lpips_missing_reason(folder) and "AlexNet" not in lpips_missing_reason(folder)
    torch.save(lin, folder / "alex.pth")
    assert lpips_missing_reason(folder) is None
    x = torch.rand(1, 3, 40, 40, generator=gen)
    y = torch.rand(1, 3, 40, 40, generator=gen)
    from_dir = load_lpips(folder)
    torch.testing.assert_close(from_dir(x, y), LPIPS(alex, lin)(x, y))
    # the env variables point at files anywhere; the dir variable replaces the default folder
    monkeypatch.setenv(LPIPS_DIR_ENV, str(folder))
    assert load_lpips() is not None
    monkeypatch.delenv(LPIPS_DIR_ENV)
    assert load_lpips() is None  # default folder under the (empty) home
    monkeypatch.setenv(LPIPS_ALEXNET_ENV, str(folder / "alexnet-owt-7be5be79.pth"))
    monkeypatch.setenv(LPIPS_LINEAR_ENV, str(folder / "alex.pth"))
    assert load_lpips() is not None
