"""Per-pixel RGB + Plücker ray features and their patch tokens (Long-LRM / GS-LRM / tttLRM style).

Per pixel (centre at (u + 0.5, v + 0.5)) the feature is, by ``layout``:

- ``"long-lrm"``, 9 channels ``[rgb * 2 - 1 (3), o x d (3), d (3)]`` (Long-LRM ``model/llrm.py``);
- ``"ttt-lrm"``, 12 channels ``[o (3), d (3), o x d (3), rgb * 2 - 1 (3)]`` (tttLRM
  ``model/model.py``: ``cat([ray_o, ray_d, cross(ray_o, ray_d), image * 2 - 1])``),

with the colour mapped from [0, 1] to [-1, 1] (no mean/std normalisation), o the camera centre and
d the unit direction of the pixel's ray, all in the frame of the given cameras. There is no
positional encoding: rays are the only spatial and view information.

Patchify order (official ``rearrange("b v (hh ph ww pw) d -> b (v hh ww) (ph pw d)")``): tokens
view-major then row-major over the patch grid; inside a token, patch rows, patch columns, then
the 9 channels.

Examples:
    >>> tok = PluckerTokenizer(patch_size=8, dim=32)
    >>> imgs = torch.rand(1, 2, 3, 16, 24)
    >>> c2w = torch.eye(4).expand(1, 2, 4, 4)
    >>> K = torch.tensor([[20.0, 0, 12], [0, 20, 8], [0, 0, 1]]).expand(1, 2, 3, 3)
    >>> tokens, ray_o, ray_d = tok(imgs, c2w, K)
    >>> tokens.shape, ray_d.shape
    (torch.Size([1, 12, 32]), torch.Size([1, 768, 3]))
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from pipelines.cameras import Cameras

PixelLayout = Literal["long-lrm", "ttt-lrm"]
LAYOUT_CHANNELS: dict[str, int] = {"long-lrm": 9, "ttt-lrm": 12}
PIXEL_CHANNELS = LAYOUT_CHANNELS["long-lrm"]  # rgb (3) + o x d (3) + d (3)


def pixel_rays(c2w: Tensor, K: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """c2w [B, V, 4, 4] OpenCV, K [B, V, 3, 3] px -> origins, unit directions [B, V, H, W, 3] float32.

    Always float32, also under autocast: the rays place the Gaussians (bf16 would round a point
    10 units away by up to 0.04 units)."""
    b, v = c2w.shape[:2]
    cams = Cameras(c2w.reshape(b * v, 4, 4).float(), K.reshape(b * v, 3, 3).float(), width, height)
    dev = c2w.device.type
    with torch.autocast(dev, enabled=False) if dev in ("cpu", "cuda") else nullcontext():
        o, d = cams.pixel_rays()  # [B*V, H, W, 3]
    return o.reshape(b, v, height, width, 3), d.reshape(b, v, height, width, 3)


def pixel_features(images: Tensor, ray_o: Tensor, ray_d: Tensor, layout: PixelLayout = "long-lrm") -> Tensor:
    """images [B, V, 3, H, W] in [0, 1]; rays [B, V, H, W, 3] -> [B, V, H, W, C]: C = 9
    ``[rgb*2-1, o x d, d]`` ("long-lrm") or C = 12 ``[o, d, o x d, rgb*2-1]`` ("ttt-lrm")."""
    rgb = images.permute(0, 1, 3, 4, 2).float() * 2 - 1
    moment = torch.linalg.cross(ray_o, ray_d, dim=-1)
    if layout == "long-lrm":
        return torch.cat([rgb, moment, ray_d], dim=-1)
    assert layout == "ttt-lrm", f"unknown pixel layout {layout!r}; known: {sorted(LAYOUT_CHANNELS)}"
    return torch.cat([ray_o, ray_d, moment, rgb], dim=-1)


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """[B, V, H, W, C] -> [B, V*(H/p)*(W/p), p*p*C]."""
    h, w = x.shape[2], x.shape[3]
    assert h % patch_size == 0 and w % patch_size == 0, (
        f"image {w}x{h} is not a multiple of patch {patch_size}"
    )
    return rearrange(x, "b v (hh ph) (ww pw) c -> b (v hh ww) (ph pw c)", ph=patch_size, pw=patch_size)


def unpatchify(tokens: Tensor, views: int, h: int, w: int, patch_size: int) -> Tensor:
    """[B, V*h*w, p*p*C] -> per pixel [B, V*(h p)*(w p), C], views then rows then columns."""
    return rearrange(
        tokens,
        "b (v hh ww) (ph pw c) -> b (v hh ph ww pw) c",
        v=views,
        hh=h,
        ww=w,
        ph=patch_size,
        pw=patch_size,
    )


class PluckerTokenizer(nn.Module):
    """Images and cameras -> patch tokens, Linear(C p^2 -> dim, no bias) with C the channels of
    ``layout`` (9 or 12), plus the per-pixel rays.

    images [B, V, 3, H, W] in [0, 1]; c2w [B, V, 4, 4]; K [B, V, 3, 3].
    Returns tokens [B, V*(H/p)*(W/p), dim] and ray_o, ray_d [B, V*H*W, 3] (pixel order: views,
    rows, columns).
    """

    def __init__(self, patch_size: int, dim: int, layout: PixelLayout = "long-lrm") -> None:
        super().__init__()
        assert layout in LAYOUT_CHANNELS, f"unknown pixel layout {layout!r}; known: {sorted(LAYOUT_CHANNELS)}"
        self.patch_size, self.layout = patch_size, layout
        self.proj = nn.Linear(LAYOUT_CHANNELS[layout] * patch_size**2, dim, bias=False)

    def forward(self, images: Tensor, c2w: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, v, _, h, w = images.shape
        assert images.shape[2] == 3 and c2w.shape == (b, v, 4, 4) and K.shape == (b, v, 3, 3), (
            f"images {tuple(images.shape)}, c2w {tuple(c2w.shape)}, K {tuple(K.shape)}"
        )
        ray_o, ray_d = pixel_rays(c2w, K, h, w)  # [B, V, H, W, 3]
        feats = patchify(pixel_features(images, ray_o, ray_d, self.layout), self.patch_size)
        tokens = self.proj(feats.to(self.proj.weight.dtype))  # [B, V*hh*ww, dim]
        return tokens, ray_o.reshape(b, -1, 3), ray_d.reshape(b, -1, 3)
