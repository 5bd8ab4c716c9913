"""The images and cameras an optimization run trains and evaluates on.

Examples:
    >>> data = load_training_data(Capture.load("ws/demo"), downscale=1.0, max_side=128)  # doctest: +SKIP
    >>> data.train_images.shape                     # [V, H, W, 3] in [0, 1]            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture
from pipelines.progress import CancelToken, Progress, check, no_progress


@dataclass
class TrainingData:
    """train_images [V,H,W,3] and test_images [T,H,W,3] float32 in [0,1] (HWC, as the renderer's
    output); their cameras (OpenCV c2w, K for this H x W); test_names: the test frames' file
    paths (per-view metrics); all_cameras: every frame (the scene scale uses all of them)."""

    train_images: Tensor
    train_cameras: Cameras
    test_images: Tensor
    test_cameras: Cameras
    test_names: list[str] = field(default_factory=list)
    all_cameras: Cameras | None = None

    def __post_init__(self) -> None:
        v, t = len(self.train_cameras), len(self.test_cameras)
        assert (
            self.train_images.ndim == 4
            and self.train_images.shape[0] == v
            and self.train_images.shape[-1] == 3
        ), f"train_images must be [{v},H,W,3], got {tuple(self.train_images.shape)}"
        assert (
            self.test_images.ndim == 4 and self.test_images.shape[0] == t and self.test_images.shape[-1] == 3
        ), f"test_images must be [{t},H,W,3], got {tuple(self.test_images.shape)}"
        assert v > 0, "no training views"
        h, w = self.train_images.shape[1:3]
        assert (self.train_cameras.height, self.train_cameras.width) == (h, w), (
            f"train cameras are {self.train_cameras.width}x{self.train_cameras.height}, images {w}x{h}"
        )
        if not self.test_names:
            self.test_names = [f"test_{i:03d}" for i in range(t)]
        if self.all_cameras is None:
            self.all_cameras = (
                Cameras.cat([self.train_cameras, self.test_cameras]) if t else self.train_cameras
            )

    @property
    def width(self) -> int:
        return self.train_cameras.width

    @property
    def height(self) -> int:
        return self.train_cameras.height

    def to(self, device: torch.device | str) -> TrainingData:
        return TrainingData(
            self.train_images.to(device),
            self.train_cameras.to(device),
            self.test_images.to(device),
            self.test_cameras.to(device),
            list(self.test_names),
            self.all_cameras.to(device),
        )


def training_size(
    width: int, height: int, downscale: float = 1.0, max_side: int | None = None
) -> tuple[int, int]:
    """(width, height) after dividing by ``downscale`` and, if needed, further so the longer side
    is at most ``max_side``; sides rounded to whole pixels."""
    factor = max(downscale, 1.0)
    if max_side is not None:
        factor = max(factor, max(width, height) / max_side)
    return max(1, round(width / factor)), max(1, round(height / factor))


def load_training_data(
    capture: Capture,
    *,
    downscale: float = 1.0,
    max_side: int | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> TrainingData:
    """The capture's train and test frames, resized (antialiased) to :func:`training_size`.
    A capture without train frames (fewer than 2 frames) trains on all frames and has no test."""
    w, h = training_size(capture.cameras.width, capture.cameras.height, downscale, max_side)
    train = capture.indices("train")
    test = capture.indices("test")
    if not train:
        train, test = capture.indices(), []
    images = []
    order = train + test
    for k, i in enumerate(order):
        check(cancel)
        progress(k / len(order), f"loading image {k + 1}/{len(order)}")
        images.append(capture.load_images([i], size=(w, h))[0])
    imgs = torch.stack(images).permute(0, 2, 3, 1).contiguous()  # [V+T, H, W, 3]
    cams = capture.cameras.resize(w, h)
    return TrainingData(
        train_images=imgs[: len(train)],
        train_cameras=cams[train],
        test_images=imgs[len(train) :],
        test_cameras=cams[test] if test else cams[train][:0],
        test_names=[capture.file_paths[i] for i in test],
        all_cameras=cams,
    )
