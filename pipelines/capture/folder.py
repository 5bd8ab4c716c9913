"""The capture folder on disk: cameras.json, images/, points.ply, runs/ (ARCHITECTURE.md).

``cameras.json``::

    {"frames": [{"file_path": "images/000123.jpg", "w": 960, "h": 540,
                 "fx": .., "fy": .., "cx": .., "cy": .., "c2w": [[4x4 row-major, OpenCV]],
                 "split": "train" | "test"}, ...],
     "unregistered": ["images/000007.jpg", ...],
     "points": "points.ply" | null}

Images listed there are undistorted pinhole images; test frames are every 8th frame
(index % 8 == 0, as gsplat's ``test_every=8``).

Examples:
    >>> cap = Capture.load("workspace/demo")            # doctest: +SKIP
    >>> imgs = cap.load_images(cap.indices("test"))     # [V, 3, H, W] in [0, 1]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras, camera_problem, make_K
from pipelines.capture.images import read_image, resize, to_tensor
from pipelines.errors import InputError
from pipelines.fileio import read_json, write_json

Split = Literal["train", "test"]
TEST_EVERY = 8


def default_splits(n: int, every: int = TEST_EVERY) -> list[Split]:
    """Every ``every``-th frame (index % every == 0) is a test frame; all train if n < 2."""
    if n < 2:
        return ["train"] * n
    return ["test" if i % every == 0 else "train" for i in range(n)]


@dataclass
class Capture:
    """A capture folder: frames (relative image paths), their cameras and splits.

    root: the folder. file_paths[i] is relative to root and belongs to cameras[i].
    """

    root: Path
    file_paths: list[str]
    cameras: Cameras  # [N], OpenCV c2w
    splits: list[Split]
    unregistered: list[str] = field(default_factory=list)
    points: str | None = None  # relative path of the sparse points PLY
    meta: dict = field(default_factory=dict)  # capture.json

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        n = len(self.file_paths)
        assert len(self.cameras) == n and len(self.splits) == n, (n, len(self.cameras), len(self.splits))
        bad = set(self.splits) - {"train", "test"}
        assert not bad, f"unknown splits {bad}"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def __len__(self) -> int:
        return len(self.file_paths)

    def indices(self, split: Split | None = None) -> list[int]:
        """Frame indices of a split (all frames for None)."""
        return [i for i, s in enumerate(self.splits) if split is None or s == split]

    def load_images(self, indices: list[int] | None = None, size: tuple[int, int] | None = None) -> Tensor:
        """Images [V, 3, H, W] float32 in [0, 1]; ``size`` = (width, height) resizes them
        (cameras: ``self.cameras[indices].resize(*size)``)."""
        indices = list(range(len(self))) if indices is None else indices
        out = []
        for i in indices:
            img = to_tensor(read_image(self.root / self.file_paths[i], apply_exif=False))
            if img.shape[1:] != (self.cameras.height, self.cameras.width):
                raise ValueError(
                    f"{self.file_paths[i]} is {img.shape[2]}x{img.shape[1]} but cameras.json says "
                    f"{self.cameras.width}x{self.cameras.height}; re-run SfM or import on this capture"
                )
            out.append(resize(img, *size) if size is not None else img)
        return torch.stack(out) if out else torch.zeros(0, 3, self.cameras.height, self.cameras.width)

    def load_points(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Sparse points (xyz [P, 3] float32, rgb [P, 3] uint8) or None."""
        from pipelines.gaussians.ply import read_points_ply

        if self.points is None or not (self.root / self.points).exists():
            return None
        return read_points_ply(self.root / self.points)

    # ---------------------------------------------------------------- disk
    @staticmethod
    def load(root: str | os.PathLike) -> Capture:
        """Read a capture folder. Everything is checked as it enters: every frame's keys, its
        camera (:func:`pipelines.cameras.camera_problem`), one image size, splits, image and
        points paths that stay inside the folder. InputError names the file, the frame and
        what is wrong (FileNotFoundError when there is no cameras.json)."""
        root = Path(root)
        path = root / "cameras.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{root} is not a capture folder: no cameras.json (run `lrm-studio sfm` or `import`)"
            )
        try:
            d = read_json(path)
        except (OSError, ValueError) as e:
            raise InputError(f"{path} is not valid JSON ({e}); re-run SfM or import on this capture") from e
        frames = d.get("frames") if isinstance(d, dict) else None
        if not isinstance(frames, list) or not frames:
            raise InputError(f"{path} lists no frames")
        rows = [_frame_row(f, i, path, root) for i, f in enumerate(frames)]
        sizes = {(r[1], r[2]) for r in rows}
        if len(sizes) != 1:
            raise InputError(
                f"{path}: frames have different sizes {sorted(sizes)}; all frames of a capture must match"
            )
        (w, h), = sizes
        c2w = torch.tensor([r[3] for r in rows], dtype=torch.float32)
        K = make_K(*(torch.tensor([r[4][k] for r in rows], dtype=torch.float64) for k in range(4)))
        points = d.get("points")
        if points is not None:
            _inside(points, root, f"{path}: points")
        meta = read_json(root / "capture.json") if (root / "capture.json").exists() else {}
        return Capture(
            root=root,
            file_paths=[r[0] for r in rows],
            cameras=Cameras(c2w, K.float(), w, h),
            splits=[r[5] for r in rows],
            unregistered=[u for u in d.get("unregistered", []) if isinstance(u, str)],
            points=points,
            meta=meta if isinstance(meta, dict) else {},
        )

    def to_json(self) -> dict:
        cams = self.cameras.to("cpu", torch.float64)
        frames = []
        for i, fp in enumerate(self.file_paths):
            frames.append(
                {
                    "file_path": fp,
                    "w": cams.width,
                    "h": cams.height,
                    "fx": float(cams.fx[i]),
                    "fy": float(cams.fy[i]),
                    "cx": float(cams.cx[i]),
                    "cy": float(cams.cy[i]),
                    "c2w": cams.c2w[i].tolist(),
                    "split": self.splits[i],
                }
            )
        return {"frames": frames, "unregistered": self.unregistered, "points": self.points}

    def save(self) -> None:
        """Write cameras.json (and capture.json when meta is set), atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / "cameras.json", self.to_json())
        if self.meta:
            write_json(self.root / "capture.json", self.meta)


def _inside(rel: object, root: Path, what: str) -> str:
    """``rel`` if it is a relative path that stays inside ``root``, else InputError."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\x00" in rel:
        raise InputError(f"{what}: {rel!r} must be a path relative to the capture folder")
    if ".." in Path(rel).parts or not (root / rel).resolve().is_relative_to(root.resolve()):
        raise InputError(f"{what}: {rel!r} leads outside the capture folder")
    return rel


def _frame_row(f: object, i: int, path: Path, root: Path) -> tuple:
    """One cameras.json frame checked: (file_path, w, h, c2w, (fx, fy, cx, cy), split)."""
    what = f"{path}: frame {i}"
    if not isinstance(f, dict):
        raise InputError(f"{what} is not an object")
    try:
        fp = _inside(f["file_path"], root, what)
        w, h = int(f["w"]), int(f["h"])
        intr = tuple(float(f[k]) for k in ("fx", "fy", "cx", "cy"))
        c2w = [[float(x) for x in row] for row in f["c2w"]]
    except KeyError as e:
        raise InputError(f"{what} has no {e.args[0]!r}; re-run SfM or import on this capture") from e
    except (TypeError, ValueError) as e:
        raise InputError(f"{what}: w, h, fx, fy, cx, cy must be numbers and c2w 4x4 numbers ({e})") from e
    if w <= 0 or h <= 0:
        raise InputError(f"{what}: the image size must be positive (w {w}, h {h})")
    problem = camera_problem(c2w, *intr)
    if problem is not None:
        raise InputError(f"{what} ({fp}): {problem}")
    split = f.get("split", "train")
    if split not in ("train", "test"):
        raise InputError(f"{what}: split {split!r} is neither train nor test")
    return fp, w, h, c2w, intr, split
