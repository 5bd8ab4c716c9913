"""tttLRM preprocessing, as the official ``data/dataset_scene.py`` does it.

1. Size: every image is resized to exactly ``image_width x image_height`` (960 x 536), each axis
   with its own factor (``resize_and_crop``: scale_x = W'/W, scale_y = H'/H, then a centre crop
   of zero pixels), K following per axis (fx, cx by scale_x; fy, cy by scale_y). A 16:9 capture
   keeps its aspect within 1 %; others are stretched, as in the official code. The official
   code resizes with PIL's Lanczos filter; we use antialiased bicubic interpolation
   (``F.interpolate(..., antialias=True)``), the closest filter torch offers.
2. Poses (``normalize_with_mean_pose``):
   - ``mean_cam`` (full model): the mean camera (centre the mean position, forward the
     normalised sum of forward axes, right = normalise(sum of down axes x forward), down =
     forward x right) becomes the identity; the same construction as Long-LRM's average camera,
     so :func:`pipelines.models.long_lrm.preprocess.normalization` computes it (scene_scale 1);
   - ``first_cam`` (AR model): the first camera becomes the identity;
   then positions are divided by their largest absolute coordinate, so the cameras lie in
   [-1, 1]^3. The official evaluation normalises with the held-out test cameras included; we
   use the input cameras only (a real capture has no others at reconstruction time).
3. ``to_world`` maps the normalised frame back to the capture's world (a Similarity).

For streaming, the normalisation is fixed once from reference cameras (all input cameras when
the capture is on disk; the first chunk's for a capture that is still growing) and every later
chunk is mapped with it (:func:`normalization` + :func:`prepare` with ``to_model``).

Examples:
    >>> PRESET_SIZE = (960, 536)
    >>> import torch
    >>> from pipelines.cameras import Cameras, make_K
    >>> K = make_K(*torch.tensor([[1000.0], [1000.0], [960.0], [540.0]]))
    >>> cams = Cameras(torch.eye(4)[None], K, 1920, 1080).resize(*PRESET_SIZE)
    >>> [round(float(x), 3) for x in (cams.fx[0], cams.fy[0], cams.cx[0], cams.cy[0])]
    [500.0, 496.296, 480.0, 268.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipelines.cameras import Cameras
from pipelines.models.base import Views
from pipelines.models.long_lrm.preprocess import Prepared, frame_normalization
from pipelines.models.long_lrm.preprocess import normalization as mean_camera_normalization
from pipelines.models.ttt_lrm.config import Frame
from pipelines.transforms import Similarity

__all__ = ["Prepared", "first_camera_normalization", "normalization", "prepare", "resize_views"]


def resize_views(views: Views, width: int, height: int) -> Views:
    """Images resized to exactly width x height (antialiased bicubic, clamped to [0, 1]); K
    scaled per axis."""
    if (views.cameras.width, views.cameras.height) == (width, height):
        return views
    imgs = F.interpolate(
        views.images, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return Views(imgs.clamp(0, 1), views.cameras.resize(width, height), views.points)


def first_camera_normalization(cameras: Cameras) -> Similarity:
    """World -> the frame of the first camera (OpenCV axes), positions scaled into [-1, 1]."""
    first = cameras.c2w[0].detach().to("cpu", torch.float64)
    return frame_normalization(
        cameras, first[:3, :3], first[:3, 3], scene_scale=1.0,
        degenerate="all input cameras are at one position: tttLRM needs a baseline between views "
        "(for streaming, the first chunk must already contain camera motion)",
    )  # fmt: skip


def normalization(cameras: Cameras, frame: Frame) -> Similarity:
    """The similarity world -> normalised frame (see module doc) from these cameras."""
    if frame == "mean_cam":
        return mean_camera_normalization(cameras, scene_scale=1.0)
    assert frame == "first_cam", f"unknown frame {frame!r}"
    return first_camera_normalization(cameras)


def prepare(
    views: Views, *, width: int, height: int, frame: Frame = "mean_cam", to_model: Similarity | None = None
) -> Prepared:
    """Resize ``views`` to the model size and map them into the normalised frame: ``to_model``
    when given (streaming: fixed from reference cameras), else :func:`normalization` of these views."""
    views = resize_views(views, width, height)
    to_model = to_model if to_model is not None else normalization(views.cameras, frame)
    cams = views.cameras.to(dtype=torch.float64).transform(to_model).to(dtype=torch.float32)
    return Prepared(views.images, cams, to_model.inverse())
