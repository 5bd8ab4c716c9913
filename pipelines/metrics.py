"""Image quality metrics: PSNR, SSIM (Wang et al. 2004), LPIPS when its weights are local.

Images are float [..., 3, H, W] in [0, 1]; every metric returns one value per image [...].

LPIPS (Zhang et al. 2018, v0.1, AlexNet) is computed by our own code from two weight files
the user supplies; nothing is downloaded. :func:`load_lpips` looks for them in this order:

1. ``$LRM_STUDIO_LPIPS_ALEXNET`` and ``$LRM_STUDIO_LPIPS_LINEAR`` (file paths), else
2. a folder: the ``directory`` argument, else ``$LRM_STUDIO_LPIPS_DIR``, else the default
   ``~/.cache/lrm-studio/lpips/``, holding the torchvision AlexNet state dict
   (``alexnet-owt-7be5be79.pth``, torchvision's file name, or ``alexnet.pth``) and the lpips
   package's linear layers (``alex.pth``, from lpips/weights/v0.1/), else
3. the AlexNet file in torch's hub cache (``$TORCH_HOME/hub/checkpoints/``, where torchvision
   keeps it) and ``alex.pth`` inside an installed ``lpips`` package.

When they are missing, :func:`load_lpips` returns None and :func:`lpips_missing_reason` says
what to put where; metrics then report ``"lpips": null``.

Examples:
    >>> a = torch.rand(2, 3, 32, 32); float(psnr(a, a.clamp(0.01, 0.99)).min()) > 30
    True
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)


def psnr(pred: Tensor, gt: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for signals in [0, 1]; [...]. Inf for identical images."""
    assert pred.shape == gt.shape, (pred.shape, gt.shape)
    mse = ((pred.float() - gt.float()) ** 2).flatten(-3).mean(-1)
    return -10 * torch.log10(mse)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> Tensor:
    """Normalized 1D Gaussian [size]."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return (w / w.sum()).to(dtype)


def ssim(pred: Tensor, gt: Tensor, *, window: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean SSIM over valid windows (no padding), Gaussian-weighted, per channel; [...].

    Differentiable; used both as a metric and in the 0.2 (1 - SSIM) training loss.
    """
    assert pred.shape == gt.shape and pred.shape[-3] == 3, (pred.shape, gt.shape)
    lead = pred.shape[:-3]
    x = pred.reshape(-1, *pred.shape[-3:])
    y = gt.reshape(-1, *gt.shape[-3:]).to(x.dtype)
    w1 = gaussian_window(window, sigma, x.dtype).to(x.device)
    c = x.shape[1]
    # One separable blur over the five statistics' inputs stacked on the channel axis.
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5c, H, W]
    wx = w1.view(1, 1, 1, -1).expand(5 * c, 1, 1, window)
    wy = w1.view(1, 1, -1, 1).expand(5 * c, 1, window, 1)
    blurred = F.conv2d(F.conv2d(stats, wx, groups=5 * c), wy, groups=5 * c)  # valid windows
    mu_x, mu_y, exx, eyy, exy = blurred.split(c, dim=1)
    sxx = exx - mu_x**2
    syy = eyy - mu_y**2
    sxy = exy - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(-1).reshape(lead)


# ------------------------------------------------------------------------------------- LPIPS
LPIPS_ALEXNET_ENV = "LRM_STUDIO_LPIPS_ALEXNET"
LPIPS_LINEAR_ENV = "LRM_STUDIO_LPIPS_LINEAR"
LPIPS_DIR_ENV = "LRM_STUDIO_LPIPS_DIR"
ALEXNET_FILES = ("alexnet-owt-7be5be79.pth", "alexnet.pth")
LINEAR_FILES = ("alex.pth",)
# lpips' ScalingLayer: inputs in [-1, 1] are shifted and scaled per channel before AlexNet.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# torchvision AlexNet ``features``: (conv index, stride, padding, max-pool before it); LPIPS
# taps the ReLU after each of the five convolutions.
ALEXNET_CONVS = ((0, 4, 2, False), (3, 1, 2, True), (6, 1, 1, True), (8, 1, 1, False), (10, 1, 1, False))
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)


def default_lpips_dir() -> Path:
    return Path(os.environ.get(LPIPS_DIR_ENV) or Path.home() / ".cache" / "lrm-studio" / "lpips")


def _first_file(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def find_lpips_files(directory: str | os.PathLike | None = None) -> tuple[Path | None, Path | None]:
    """(AlexNet state dict, LPIPS linear layers) found locally (see the module docstring)."""
    alex = Path(os.environ[LPIPS_ALEXNET_ENV]) if os.environ.get(LPIPS_ALEXNET_ENV) else None
    lin = Path(os.environ[LPIPS_LINEAR_ENV]) if os.environ.get(LPIPS_LINEAR_ENV) else None
    folder = Path(directory) if directory is not None else default_lpips_dir()
    alex = alex or _first_file(folder, ALEXNET_FILES)
    lin = lin or _first_file(folder, LINEAR_FILES)
    if alex is None:
        hub = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch") / "hub" / "checkpoints"
        alex = _first_file(hub, ALEXNET_FILES)
    if lin is None:
        try:
            spec = importlib.util.find_spec("lpips")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            lin = _first_file(Path(spec.origin).parent / "weights" / "v0.1", LINEAR_FILES)
    return (alex if alex and alex.is_file() else None), (lin if lin and lin.is_file() else None)


def lpips_missing_reason(directory: str | os.PathLike | None = None) -> str | None:
    """Why LPIPS cannot be computed here (None when both weight files are found)."""
    alex, lin = find_lpips_files(directory)
    if alex and lin:
        return None
    folder = Path(directory) if directory is not None else default_lpips_dir()
    missing = []
    if alex is None:
        missing.append(f"the torchvision AlexNet weights ({ALEXNET_FILES[0]})")
    if lin is None:
        missing.append("the LPIPS v0.1 linear layers (alex.pth from the lpips package's weights/v0.1/)")
    return (
        f"LPIPS is off: {' and '.join(missing)} not found; put them in {folder} "
        f"(or set ${LPIPS_ALEXNET_ENV} / ${LPIPS_LINEAR_ENV}); nothing is downloaded"
    )


def lpips_distance(
    feats0: Sequence[Tensor], feats1: Sequence[Tensor], lin_weights: Sequence[Tensor]
) -> Tensor:
    """The LPIPS formula on feature maps: for each layer l, features [B,C_l,h,w] normalized to
    unit length along channels (x / (||x|| + 1e-10)), squared difference, 1x1 linear weights
    lin_weights[l] [1,C_l,1,1] (or [C_l]), mean over the h x w positions; summed over layers.
    Returns [B]."""
    assert len(feats0) == len(feats1) == len(lin_weights), (len(feats0), len(feats1), len(lin_weights))
    total = None
    for f0, f1, w in zip(feats0, feats1, lin_weights, strict=True):
        assert f0.shape == f1.shape and f0.ndim == 4, (tuple(f0.shape), tuple(f1.shape))
        n0 = f0 / (f0.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
        n1 = f1 / (f1.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
        w = w.reshape(1, -1, 1, 1).to(f0)
        assert w.shape[1] == f0.shape[1], f"layer weights have {w.shape[1]} channels, features {f0.shape[1]}"
        layer = ((n0 - n1).square() * w).sum(dim=1).mean(dim=(1, 2))  # [B]
        total = layer if total is None else total + layer
    return total


def _linear_weights(sd: dict[str, Tensor]) -> list[Tensor]:
    out = []
    for i, c in enumerate(ALEXNET_CHANNELS):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight") if k in sd), None)
        if key is None:
            raise ValueError(f"LPIPS linear weights: no 'lin{i}.model.1.weight'; keys: {sorted(sd)[:8]}...")
        w = sd[key]
        if tuple(w.shape) != (1, c, 1, 1):
            raise ValueError(f"LPIPS linear weights: {key} is {tuple(w.shape)}, expected (1, {c}, 1, 1)")
        out.append(w.float())
    return out


class LPIPS:
    """LPIPS v0.1 with AlexNet features, from a torchvision AlexNet state dict (``features.{0,3,
    6,8,10}.weight/bias``) and the lpips linear layers (``lin{0..4}.model.1.weight`` [1,C,1,1]).

    ``lpips(pred, gt)`` takes images [...,3,H,W] in [0,1] (H, W >= 32) and returns [...]."""

    def __init__(
        self, alexnet: dict[str, Tensor], linear: dict[str, Tensor], device: torch.device | str = "cpu"
    ) -> None:
        self.convs: list[tuple[Tensor, Tensor, int, int, bool]] = []
        for idx, stride, pad, pool in ALEXNET_CONVS:
            w, b = alexnet.get(f"features.{idx}.weight"), alexnet.get(f"features.{idx}.bias")
            if w is None or b is None:
                raise ValueError(
                    f"AlexNet weights: features.{idx}.weight/bias missing; "
                    "not a torchvision alexnet state dict"
                )
            self.convs.append((w.float().to(device), b.float().to(device), stride, pad, pool))
        for (w, *_), c in zip(self.convs, ALEXNET_CHANNELS, strict=True):
            if w.shape[0] != c:
                raise ValueError(f"AlexNet weights: a layer has {w.shape[0]} channels, expected {c}")
        self.lin = [w.to(device) for w in _linear_weights(linear)]
        self.shift = torch.tensor(LPIPS_SHIFT, device=device).view(1, 3, 1, 1)
        self.scale = torch.tensor(LPIPS_SCALE, device=device).view(1, 3, 1, 1)

    @staticmethod
    def from_files(
        alexnet: str | os.PathLike, linear: str | os.PathLike, device: torch.device | str = "cpu"
    ) -> LPIPS:
        return LPIPS(
            torch.load(alexnet, map_location="cpu", weights_only=True),
            torch.load(linear, map_location="cpu", weights_only=True),
            device,
        )

    def features(self, images: Tensor) -> list[Tensor]:
        """The five ReLU outputs of AlexNet for images [B,3,H,W] in [0,1]."""
        x = (images.float() * 2 - 1 - self.shift.to(images.device)) / self.scale.to(images.device)
        out = []
        for w, b, stride, pad, pool in self.convs:
            if pool:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(F.conv2d(x, w.to(x.device), b.to(x.device), stride=stride, padding=pad))
            out.append(x)
        return out

    @torch.no_grad()
    def __call__(self, pred: Tensor, gt: Tensor) -> Tensor:
        assert pred.shape == gt.shape and pred.shape[-3] == 3, (tuple(pred.shape), tuple(gt.shape))
        lead = pred.shape[:-3]
        x = pred.reshape(-1, *pred.shape[-3:])
        y = gt.reshape(-1, *gt.shape[-3:])
        assert min(x.shape[-2:]) >= 32, (
            f"LPIPS (AlexNet) needs images of at least 32x32, got {tuple(x.shape[-2:])}"
        )
        return lpips_distance(self.features(x), self.features(y), self.lin).reshape(lead)


def load_lpips(
    directory: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> LPIPS | None:
    """LPIPS from locally found weights (see the module docstring), or None (logged once why)."""
    alex, lin = find_lpips_files(directory)
    if alex is None or lin is None:
        log.info("%s", lpips_missing_reason(directory))
        return None
    return LPIPS.from_files(alex, lin, device)
