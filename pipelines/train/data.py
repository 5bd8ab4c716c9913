"""Training data for the feed-forward trainer: one :class:`Sample` type, three sources.

- :class:`ProceduralSource`: the [synth] stream (``pipelines.synth.stream``): example ``i`` of
  stream ``seed`` is a pure function of (config, seed, i), with exact z-depth for inputs and
  targets.
- :class:`SceneSource` over scene files: Long-LRM's ``opencv_cameras.json`` layout (DL3DV as the
  official ``data/prosess_dl3dv.py`` converts it: ``frames`` with ``file_path``, ``w2c`` OpenCV
  4x4, ``w``, ``h``, ``fx``, ``fy``, ``cx``, ``cy``), given as a folder searched recursively, a
  single JSON, or a ``.txt`` list of JSON paths (one per line, relative to the list's folder, as
  the official dataset list); and studio capture folders (``cameras.json``, ARCHITECTURE.md).
  A frame may name a depth map (``depth_file_path``: ``.npy`` float z-depth, or a 16-bit
  ``.png`` times the file's ``depth_scale``); ``"depth_kind": "relative"`` at the top level marks
  depths known only up to scale and shift (monocular estimates).
- Views are chosen by Long-LRM's training rules (``pipelines.synth.stream.long_lrm_selection``:
  a random contiguous window, inputs uniform over it, random targets, order reversed / shuffled)
  from one generator seeded by (seed, index), so any rank or worker can build any sample and a
  resumed run sees the same samples.

Sizes: scene images are resized to ``height`` rows (columns from the aspect ratio), both rounded
to ``multiple`` (Long-LRM: 16), optionally centre-cropped to a square (Long-LRM stages 1-2);
K follows (``Cameras.resize`` / ``crop``).

Examples:
    >>> src = ProceduralSource(PRESETS["long-lrm-tiny"], seed=0)
    >>> s = src[3]
    >>> s.inputs.images.shape, s.input_depth.shape
    (torch.Size([8, 3, 64, 64]), torch.Size([8, 64, 64]))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.cameras import Cameras, make_K
from pipelines.capture.images import read_image, to_tensor
from pipelines.fileio import read_json
from pipelines.models.base import Views
from pipelines.synth.stream import (
    PRESETS,
    StreamConfig,
    example_generator,
    long_lrm_selection,
    make_example,
    make_sequence,
)

log = logging.getLogger(__name__)

DepthKind = Literal["metric", "relative"]

__all__ = [
    "PRESETS",
    "Sample",
    "ProceduralSource",
    "PooledSource",
    "SceneSource",
    "SceneSize",
    "StepSampler",
    "open_source",
]


@dataclass
class Sample:
    """One training example in its source's world frame.

    inputs: Views [Vi] (images [Vi,3,H,W] in [0,1], OpenCV cameras); targets: Views [Vt], same
    size; input_depth [Vi,H,W] / target_depth [Vt,H,W]: camera z-depth in world units, 0 where
    unknown (None: no depth); depth_kind: "relative" when the depths are right only up to scale
    and shift. name: where it came from (for logs)."""

    inputs: Views
    targets: Views
    input_depth: Tensor | None = None
    target_depth: Tensor | None = None
    depth_kind: DepthKind = "metric"
    name: str = ""

    def __post_init__(self) -> None:
        ci, ct = self.inputs.cameras, self.targets.cameras
        assert (ci.width, ci.height) == (ct.width, ct.height), (
            f"inputs {ci.width}x{ci.height} and targets {ct.width}x{ct.height} must have one size"
        )
        for name, d, n in (
            ("input_depth", self.input_depth, len(ci)),
            ("target_depth", self.target_depth, len(ct)),
        ):
            assert d is None or tuple(d.shape) == (n, ci.height, ci.width), (
                f"{name} must be {(n, ci.height, ci.width)}, got {tuple(d.shape)}"
            )


def surface_points(cameras: Cameras, depth: Tensor) -> Tensor:
    """World points [P, 3] (float64) of every pixel with known depth (depth [V, H, W] camera z,
    0 = unknown)."""
    return cameras.to("cpu", dtype=torch.float64).unproject(depth.double().cpu())[depth.cpu() > 0]


def sparse_points(points: Tensor, max_points: int = 4096) -> Tensor | None:
    """An even subset (at most max_points) of surface points [P, 3] (:func:`surface_points`): the
    stand-in for a capture's sparse SfM points where a model needs them (GeoLRM's cube
    normalisation). None when there are none."""
    if len(points) == 0:
        return None
    return points[torch.linspace(0, len(points) - 1, min(len(points), max_points)).long()]


# ------------------------------------------------------------------------------ procedural
class ProceduralSource:
    """Samples of the procedural stream ``seed`` (any index, deterministic)."""

    def __init__(self, config: StreamConfig, seed: int = 0) -> None:
        self.config, self.seed = config, int(seed)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> Sample:
        ex = make_example(self.config, self.seed, index)
        depth = lambda d, m: torch.where(m, d, torch.zeros_like(d))  # noqa: E731
        return Sample(
            inputs=ex.inputs,
            targets=ex.targets,
            input_depth=depth(ex.input_depth, ex.input_mask),
            target_depth=depth(ex.target_depth, ex.target_mask),
            name=f"procedural {self.seed}/{index}",
        )

    def describe(self) -> str:
        c = self.config
        return f"procedural ({c.sampling}, {c.width}x{c.height}, {c.num_inputs} inputs, seed {self.seed})"


class PooledSource:
    """Samples from a fixed pool of ``scenes`` procedural rooms of stream ``seed``, every frame of
    each trajectory rendered once (:func:`pipelines.synth.stream.make_sequence`) and kept in
    memory (images as float16) and, with ``cache_dir``, on disk; sample ``i`` draws its scene
    and its views (Long-LRM's rules) from a generator seeded by (seed, i). Ray casting then costs
    once per scene instead of once per step, at the price of fewer distinct rooms. Deterministic
    like :class:`ProceduralSource`."""

    def __init__(
        self, config: StreamConfig, seed: int = 0, *, scenes: int = 256, cache_dir: str | None = None
    ) -> None:
        assert config.sampling == "long-lrm", f"pools hold room streams only, got {config.sampling!r}"
        assert scenes >= 1, scenes
        self.config, self.seed, self.scenes = config, int(seed), int(scenes)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._memory: dict[int, tuple[Tensor, Cameras, Tensor]] = {}

    def __len__(self) -> int:
        return 2**62

    def describe(self) -> str:
        c = self.config
        return (f"procedural pool ({self.scenes} rooms x {c.trajectory_frames} frames, {c.width}x{c.height}, "
                f"{c.num_inputs} inputs, seed {self.seed})")  # fmt: skip

    def sequence(self, k: int) -> tuple[Tensor, Cameras, Tensor]:
        """Scene ``k`` of the pool: images [F,3,H,W] float16, cameras [F], depth [F,H,W] (0: none)."""
        if k in self._memory:
            return self._memory[k]
        path = None if self.cache_dir is None else self.cache_dir / f"scene_{self.seed}_{k:06d}.pt"
        if path is not None and path.is_file():
            d = torch.load(path, map_location="cpu", weights_only=True)
            cams = Cameras(d["c2w"], d["K"], int(d["width"]), int(d["height"]))
            item = (d["images"], cams, d["depth"])
        else:
            seq = make_sequence(self.config, self.seed, k)
            cams = seq.views.cameras.to("cpu")
            item = (seq.views.images.to(torch.float16), cams, seq.depth.float())
            if path is not None:
                from pipelines.fileio import atomic_path

                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    torch.save({"images": item[0], "depth": item[2], "c2w": cams.c2w, "K": cams.K,
                                "width": cams.width, "height": cams.height}, tmp)  # fmt: skip
        self._memory[k] = item
        return item

    def __getitem__(self, index: int) -> Sample:
        gen = example_generator(self.seed + 7_777, index)
        k = int(torch.randint(self.scenes, (1,), generator=gen))
        images, cams, depth = self.sequence(k)
        inputs, targets = long_lrm_selection(len(cams), self.config, gen)
        return Sample(
            inputs=Views(images[inputs].float(), cams[inputs]),
            targets=Views(images[targets].float(), cams[targets]),
            input_depth=depth[inputs],
            target_depth=depth[targets],
            name=f"pool {self.seed}/{k} inputs {inputs} targets {targets}",
        )


# ------------------------------------------------------------------------------ scene files
@dataclass(frozen=True)
class SceneSize:
    """height: rows after resizing (columns keep the aspect ratio); multiple: both sides rounded
    to it; square: centre-crop to height x height afterwards."""

    height: int = 256
    multiple: int = 16
    square: bool = False

    def size(self, width: int, height: int) -> tuple[int, int]:
        h = max(self.multiple, int(round(self.height / self.multiple)) * self.multiple)
        w = max(self.multiple, int(round(self.height / height * width / self.multiple)) * self.multiple)
        return w, h


@dataclass
class Scene:
    """One scene: image paths (absolute), cameras [N] OpenCV, optional depth paths."""

    name: str
    paths: list[Path]
    cameras: Cameras
    depth_paths: list[Path | None]
    depth_scale: float = 1.0
    depth_kind: DepthKind = "metric"


def read_opencv_cameras(path: str | os.PathLike) -> Scene:
    """A scene in Long-LRM's ``opencv_cameras.json`` layout (w2c OpenCV, pixel intrinsics).
    Frames of another size than the first are rejected with a message."""
    path = Path(path)
    d = read_json(path)
    frames = d.get("frames") or []
    if not frames:
        raise ValueError(f"{path}: no frames")
    sizes = {(int(f["w"]), int(f["h"])) for f in frames}
    if len(sizes) != 1:
        raise ValueError(f"{path}: frames of different sizes {sorted(sizes)}; resize them to one size first")
    ((w, h),) = sizes
    w2c = torch.tensor([f["w2c"] for f in frames], dtype=torch.float64)
    K = make_K(
        *(torch.tensor([float(f[k]) for f in frames], dtype=torch.float64) for k in ("fx", "fy", "cx", "cy"))
    )
    cams = Cameras.from_w2c(w2c, K, w, h).to(dtype=torch.float32)
    root = path.parent
    return Scene(
        name=str(d.get("scene_name") or path.parent.name),
        paths=[root / f["file_path"] for f in frames],
        cameras=cams,
        depth_paths=[root / f["depth_file_path"] if f.get("depth_file_path") else None for f in frames],
        depth_scale=float(d.get("depth_scale", 1.0)),
        depth_kind=d.get("depth_kind", "metric"),
    )


def read_capture(root: str | os.PathLike) -> Scene:
    """A studio capture folder (cameras.json); every registered frame is used (the test split
    is for evaluating reconstructions of that capture, not for training)."""
    from pipelines.capture.folder import Capture

    cap = Capture.load(root)
    d = read_json(Path(root) / "cameras.json")
    extra = {f["file_path"]: f.get("depth_file_path") for f in d["frames"]}
    return Scene(
        name=cap.name,
        paths=[cap.root / p for p in cap.file_paths],
        cameras=cap.cameras,
        depth_paths=[cap.root / extra[p] if extra.get(p) else None for p in cap.file_paths],
        depth_scale=float(d.get("depth_scale", 1.0)),
        depth_kind=d.get("depth_kind", "metric"),
    )


def find_scenes(data: str | os.PathLike) -> list[Path]:
    """Scene files under ``data``: a ``.txt`` list, one ``.json``, a capture folder, or a folder
    searched recursively for ``opencv_cameras.json`` and capture folders' ``cameras.json``."""
    data = Path(data)
    if data.is_file() and data.suffix == ".txt":
        lines = [ln.strip() for ln in data.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        return [(data.parent / ln).resolve() for ln in lines]
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise FileNotFoundError(
            f"training data {data} does not exist (pass 'procedural', a folder, a .json or a .txt list)"
        )
    found = sorted(data.rglob("opencv_cameras.json")) + sorted(data.rglob("cameras.json"))
    if not found:
        raise FileNotFoundError(
            f"no opencv_cameras.json (Long-LRM / DL3DV layout) or cameras.json (studio capture) under {data}"
        )
    return found


def read_scene(path: Path) -> Scene:
    return read_capture(path.parent) if path.name == "cameras.json" else read_opencv_cameras(path)


def _read_depth(path: Path, scale: float) -> Tensor:
    if path.suffix == ".npy":
        arr = np.load(path).astype(np.float32)
    else:
        import imageio.v3 as iio

        arr = iio.imread(path).astype(np.float32)
    assert arr.ndim == 2, f"depth map {path} must be [H, W], got {arr.shape}"
    return torch.from_numpy(arr * scale)


class SceneSource:
    """Samples from scene files, views chosen by Long-LRM's rules (``selection``: num_inputs,
    num_targets, window, target_has_input, reverse / shuffle probabilities of a StreamConfig;
    the window is clipped to short scenes). Scenes with too few frames are skipped (logged)."""

    def __init__(
        self,
        data: str | os.PathLike,
        *,
        selection: StreamConfig,
        size: SceneSize = SceneSize(),
        seed: int = 0,
    ) -> None:
        self.selection, self.size, self.seed = selection, size, int(seed)
        need = selection.num_inputs + (0 if selection.target_has_input else selection.num_targets)
        self.scenes: list[Scene] = []
        for p in find_scenes(data):
            scene = read_scene(p)
            if len(scene.paths) < need:
                log.warning("skipping %s: %d frames, %d needed", p, len(scene.paths), need)
                continue
            self.scenes.append(scene)
        if not self.scenes:
            raise ValueError(f"no usable scene under {data} (each needs at least {need} frames)")
        self.data = str(data)

    def __len__(self) -> int:
        return 2**62

    def describe(self) -> str:
        return f"{len(self.scenes)} scenes from {self.data} (height {self.size.height})"

    def __getitem__(self, index: int) -> Sample:
        gen = example_generator(self.seed, index)
        scene = self.scenes[int(torch.randint(len(self.scenes), (1,), generator=gen))]
        n = len(scene.paths)
        sel = self.selection
        w0, w1 = min(sel.window[0], n), min(sel.window[1], n)
        cfg = replace(sel, window=(w0, w1), trajectory_frames=max(n, w1))
        inputs, targets = long_lrm_selection(n, cfg, gen)
        frames = inputs + targets
        cams = scene.cameras[frames]
        w, h = self.size.size(cams.width, cams.height)
        imgs = torch.stack([to_tensor(read_image(scene.paths[i])) for i in frames])
        if imgs.shape[-2:] != (cams.height, cams.width):
            raise ValueError(
                f"{scene.paths[frames[0]]}: image is {imgs.shape[-1]}x{imgs.shape[-2]}, the cameras say "
                f"{cams.width}x{cams.height}"
            )
        imgs = F.interpolate(imgs, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        cams = cams.resize(w, h)
        depth = None
        if all(scene.depth_paths[i] is not None for i in frames):
            raw = [_read_depth(scene.depth_paths[i], scene.depth_scale) for i in frames]  # type: ignore[arg-type]
            depth = torch.stack(
                [F.interpolate(d[None, None], size=(h, w), mode="nearest")[0, 0] for d in raw]
            )
        if self.size.square and w != h:
            side = min(w, h)
            x0, y0 = (w - side) // 2, (h - side) // 2
            imgs = imgs[..., y0 : y0 + side, x0 : x0 + side]
            depth = None if depth is None else depth[..., y0 : y0 + side, x0 : x0 + side]
            cams = cams.crop(x0, y0, side, side)
        imgs = imgs.clamp(0, 1)
        k = len(inputs)
        return Sample(
            inputs=Views(imgs[:k].contiguous(), cams[list(range(k))]),
            targets=Views(imgs[k:].contiguous(), cams[list(range(k, len(frames)))]),
            input_depth=None if depth is None else depth[:k],
            target_depth=None if depth is None else depth[k:],
            depth_kind=scene.depth_kind,
            name=f"{scene.name} inputs {inputs} targets {targets}",
        )


def open_source(
    data: str,
    *,
    stream: StreamConfig,
    size: SceneSize = SceneSize(),
    seed: int = 0,
    pool: int = 0,
    cache_dir: str | None = None,
) -> ProceduralSource | PooledSource | SceneSource:
    """``"procedural"`` -> the stream (``pool`` > 0: a :class:`PooledSource` of that many rooms,
    cached under ``cache_dir``); anything else -> scene files under that path (the stream config
    then only gives the view-selection rules)."""
    if data == "procedural":
        return (
            PooledSource(stream, seed, scenes=pool, cache_dir=cache_dir)
            if pool > 0
            else ProceduralSource(stream, seed)
        )
    return SceneSource(data, selection=stream, size=size, seed=seed)


# ------------------------------------------------------------------------------ step order
class StepSampler(torch.utils.data.Sampler):
    """Batches of sample indices for one rank: step s gives indices
    ``s * world * batch + rank * batch + j`` (j < batch) for steps ``start .. steps - 1``, so the
    union over ranks of a step is the same global batch whatever the number of processes."""

    def __init__(self, *, batch: int, rank: int, world: int, start: int, steps: int) -> None:
        self.batch, self.rank, self.world, self.start, self.steps = batch, rank, world, start, steps

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        g = self.world * self.batch
        for s in range(self.start, self.steps):
            base = s * g + self.rank * self.batch
            yield list(range(base, base + self.batch))
