"""GeoLRM's hierarchical image encoder: two feature levels per view.

- level 0 (low): ``Conv2d(9 -> C, k=4, s=4, bias=False)`` + BatchNorm over
  ``cat[ImageNet-normalised RGB (3), ray embedding (6)]``: stride 4, [H/4, W/4].
- level 1 (high): DINOv2 ViT-B/14 last-block map (stride 14) upsampled by
  ``ConvTranspose2d(768 -> C, k=4, s=2, p=1, bias=False)`` + BatchNorm: [2 H/14, 2 W/14].

Ray embedding, per pixel, as official (``get_ray_embedding``): ``[d, o x d]`` (direction first)
with the direction *not* normalised: camera-space direction ((u - cx)/fx, -(v - cy)/fy, -1) in
OpenGL axes (z = -1, i.e. OpenCV z = +1) rotated to world by c2w; o the camera centre; pixel
centres at i + 0.5. Official fixes the principal point at the image centre and uses fx for both
axes; we use the given K (identical for GeoLRM's cameras: centred, square pixels).

Parameter names follow the official ``DinoWrapper``: ``model`` (HF Dinov2Backbone layout),
``deconv.{0,1}``, ``low_level_encoder.{0,1}`` (BatchNorm running statistics included).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipelines.models.blocks.dinov2 import DinoV2, DinoV2Config, imagenet_normalize


def ray_embedding(c2w_gl: Tensor, K_norm: Tensor, height: int, width: int) -> Tensor:
    """c2w_gl [N, 4, 4] OpenGL camera-to-world; K_norm [N, 3, 3] normalised by (W, H).
    Returns [N, 6, H, W] = [d (3), o x d (3)], d unnormalised (unit camera-space depth)."""
    n = c2w_gl.shape[0]
    assert c2w_gl.shape == (n, 4, 4) and K_norm.shape == (n, 3, 3), (tuple(c2w_gl.shape), tuple(K_norm.shape))
    dev, dt = c2w_gl.device, c2w_gl.dtype
    v, u = torch.meshgrid(
        torch.arange(height, device=dev, dtype=dt) + 0.5,
        torch.arange(width, device=dev, dtype=dt) + 0.5,
        indexing="ij",
    )  # [H, W] pixel centres
    fx, cx = K_norm[:, 0, 0] * width, K_norm[:, 0, 2] * width  # [N]
    fy, cy = K_norm[:, 1, 1] * height, K_norm[:, 1, 2] * height
    x = (u[None] - cx[:, None, None]) / fx[:, None, None]  # [N, H, W]
    y = -(v[None] - cy[:, None, None]) / fy[:, None, None]
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [N, H, W, 3] OpenGL camera axes
    d = torch.einsum("nij,nhwj->nhwi", c2w_gl[:, :3, :3], d_cam)
    o = c2w_gl[:, None, None, :3, 3].expand_as(d)
    return torch.cat([d, torch.linalg.cross(o, d, dim=-1)], dim=-1).permute(0, 3, 1, 2)


class HierarchicalEncoder(nn.Module):
    def __init__(self, dino: DinoV2Config, feat_dim: int) -> None:
        super().__init__()
        self.model = DinoV2(dino)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(dino.dim, feat_dim, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(feat_dim),
        )
        self.low_level_encoder = nn.Sequential(
            nn.Conv2d(9, feat_dim, kernel_size=4, stride=4, padding=0, bias=False),
            nn.BatchNorm2d(feat_dim),
        )

    def forward(self, images: Tensor, c2w_gl: Tensor, K_norm: Tensor) -> list[Tensor]:
        """images [B, V, 3, H, W] in [0, 1]; c2w_gl [B, V, 4, 4]; K_norm [B, V, 3, 3].
        Returns [low [B, V, C, H/4, W/4], high [B, V, C, 2 H/14, 2 W/14]]."""
        b, v, _, hh, ww = images.shape
        assert images.shape[2] == 3 and c2w_gl.shape == (b, v, 4, 4) and K_norm.shape == (b, v, 3, 3), (
            f"images {tuple(images.shape)}, c2w_gl {tuple(c2w_gl.shape)}, K_norm {tuple(K_norm.shape)}"
        )
        assert hh % 28 == 0 and ww % 28 == 0, f"image sides must be multiples of 28, got {ww}x{hh}"
        x = imagenet_normalize(images.flatten(0, 1))  # [B*V, 3, H, W]
        high = self.deconv(self.model(x))  # [B*V, C, 2H/14, 2W/14]
        with torch.autocast(images.device.type, enabled=False):
            rays = ray_embedding(c2w_gl.flatten(0, 1).float(), K_norm.flatten(0, 1).float(), hh, ww).to(
                x.dtype
            )
        low = self.low_level_encoder(torch.cat([x, rays], dim=1))  # [B*V, C, H/4, W/4]
        return [low.unflatten(0, (b, v)), high.unflatten(0, (b, v))]
