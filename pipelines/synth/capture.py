"""Write procedural captures: frames as an MP4 video and/or images, with ground-truth cameras.

Layout written by :func:`render_capture` into ``root``:

- ``<video>`` (e.g. ``demo.mp4``): H.264 (libx264, yuv420p, constant frame rate) through PyAV,
  the library behind imageio's "pyav" plugin (used directly to set the CRF);
- ``gt_cameras.json``: the ground-truth cameras of the video in the ``cameras.json`` format of
  ARCHITECTURE.md (written through ``pipelines.capture.folder.Capture``), one entry per video
  frame, in frame order. A frame's ``file_path`` is ``"<video>#<index>"`` and it also carries
  ``"frame_index"``, the 0-based index of the decoded frame, so SfM output on frames extracted
  from the video can be aligned to ground truth by frame index. Top-level extras: ``"video"``,
  ``"fps"``, ``"num_frames"``, ``"width"``, ``"height"`` and ``"scene"`` (generator settings);
- with ``images=True``: ``images/000000.png ...`` and ``cameras.json`` (a regular capture folder
  that ``Capture.load`` opens; test split = every 8th frame) plus ``capture.json`` (meta).

Every file is written atomically (temp file, then rename).

Examples:
    >>> idx, cams, meta = read_gt_cameras("assets/demo/gt_cameras.json")  # doctest: +SKIP
    >>> cams[idx.index(120)]  # the camera of decoded frame 120          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipelines.cameras import Cameras, make_K
from pipelines.capture.folder import Capture, default_splits
from pipelines.capture.images import to_uint8, write_image
from pipelines.fileio import atomic_path, read_json, write_json
from pipelines.progress import CancelToken, Progress, check, no_progress, sub_progress
from pipelines.synth.raycast import render
from pipelines.synth.scene import Scene

GT_CAMERAS = "gt_cameras.json"


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 23,
    preset: str = "medium",
) -> int:
    """Encode uint8 [H, W, 3] RGB frames (even H and W) to an H.264 MP4, atomically.

    Returns the number of frames written."""
    import av

    count = 0
    with atomic_path(path, suffix=".mp4") as tmp:
        container = av.open(str(tmp), mode="w")
        try:
            stream = None
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"yuv420p needs even frame sides, got {w}x{h}")
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                    stream.options = {"crf": str(crf), "preset": preset}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError("no frames to write")
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
    return count


def gt_cameras_json(cameras: Cameras, video: str, fps: float, extra: dict | None = None) -> dict:
    """The ``gt_cameras.json`` payload for a video whose frame i was taken by cameras[i]."""
    n = len(cameras)
    cap = Capture(Path("."), [f"{video}#{i}" for i in range(n)], cameras.to("cpu"), default_splits(n))
    payload = cap.to_json()
    for i, frame in enumerate(payload["frames"]):
        frame["frame_index"] = i
    payload.update(
        {"video": video, "fps": fps, "num_frames": n, "width": cameras.width, "height": cameras.height}
    )
    payload.update(extra or {})
    return payload


def read_gt_cameras(path: str | os.PathLike) -> tuple[list[int], Cameras, dict]:
    """(frame indices, Cameras [N] in that order, the whole JSON) from a gt_cameras.json."""
    d = read_json(path)
    frames = d["frames"]
    sizes = {(int(f["w"]), int(f["h"])) for f in frames}
    if len(sizes) != 1:
        raise ValueError(f"{path}: frames of different sizes {sorted(sizes)}")
    ((w, h),) = sizes
    c2w = torch.tensor([f["c2w"] for f in frames], dtype=torch.float32)
    K = make_K(*(torch.tensor([float(f[k]) for f in frames]) for k in ("fx", "fy", "cx", "cy"))).float()
    return [int(f["frame_index"]) for f in frames], Cameras(c2w, K, w, h), d


@dataclass
class CaptureFiles:
    """What render_capture wrote (paths are None when not written)."""

    root: Path
    video: Path | None
    gt_cameras: Path | None
    cameras_json: Path | None
    num_frames: int


def render_capture(
    scene: Scene,
    cameras: Cameras,
    root: str | os.PathLike,
    *,
    video: str | None = "video.mp4",
    images: bool = False,
    fps: float = 30.0,
    supersample: int = 2,
    crf: int = 23,
    batch: int = 4,
    meta: dict | None = None,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> CaptureFiles:
    """Render ``scene`` from ``cameras`` (frames in order) and write them as a video and/or an
    image capture folder under ``root`` (layout in the module docstring).

    batch: frames ray-cast together; meta: extra JSON-able facts stored with the cameras."""
    if video is None and not images:
        raise ValueError("nothing to write: pass a video name and/or images=True")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n = len(cameras)
    meta = {"source": "pipelines.synth", "family": scene.family, **(meta or {})}
    image_paths = [f"images/{i:06d}.png" for i in range(n)]

    def frames():
        for b0 in range(0, n, batch):
            check(cancel)
            out = render(
                scene,
                cameras[b0 : b0 + batch],
                supersample=supersample,
                cancel=cancel,
                progress=sub_progress(progress, b0 / n, min(n, b0 + batch) / n, "rendering: "),
            )
            for j in range(out.rgb.shape[0]):
                img = to_uint8(out.rgb[j])
                if images:
                    write_image(root / image_paths[b0 + j], img)
                yield img

    video_path = gt_path = cams_path = None
    if video is not None:
        video_path = root / video
        count = write_video(video_path, frames(), fps, crf=crf)
        assert count == n, (count, n)
        gt_path = root / GT_CAMERAS
        write_json(gt_path, gt_cameras_json(cameras, video, fps, {"scene": meta}))
    else:
        for _ in frames():
            pass
    if images:
        Capture(root, image_paths, cameras.to("cpu"), default_splits(n), meta=meta).save()
        cams_path = root / "cameras.json"
    progress(1.0, f"wrote {n} frames to {root}")
    return CaptureFiles(root, video_path, gt_path, cams_path, n)


def scene_points(
    scene: Scene, cameras: Cameras, *, max_points: int = 20000, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Coloured surface points of ``scene`` seen by ``cameras`` (ray-cast at the cameras' size):
    xyz [P, 3] float32 world and rgb [P, 3] uint8, at most ``max_points`` (a seeded random subset).
    The exact counterpart of SfM's sparse points: what a 3DGS run initialises from."""
    out = render(scene, cameras)
    z = out.depth  # [V, H, W] z-depth, 0 where nothing is hit
    cams = cameras.to(z.device)
    v, u = torch.meshgrid(
        torch.arange(cams.height, dtype=z.dtype) + 0.5,
        torch.arange(cams.width, dtype=z.dtype) + 0.5,
        indexing="ij",
    )  # [H, W]
    x = (u[None] - cams.cx[:, None, None]) / cams.fx[:, None, None] * z  # [V, H, W]
    y = (v[None] - cams.cy[:, None, None]) / cams.fy[:, None, None] * z
    p_cam = torch.stack([x, y, z], -1)  # [V, H, W, 3] OpenCV camera axes
    p_world = torch.einsum("vij,vhwj->vhwi", cams.c2w[:, :3, :3], p_cam) + cams.c2w[:, None, None, :3, 3]
    hit = z > 0  # [V, H, W]
    xyz = p_world[hit]  # [P, 3]
    rgb = (out.rgb.permute(0, 2, 3, 1)[hit].clamp(0, 1) * 255).round().to(torch.uint8)  # [P, 3]
    if len(xyz) > max_points:
        keep = torch.randperm(len(xyz), generator=torch.Generator().manual_seed(seed))[:max_points]
        xyz, rgb = xyz[keep], rgb[keep]
    return xyz.float(), rgb


def gt_capture(
    video: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_frames: int = 48,
    max_side: int | None = None,
    scene: Scene | None = None,
    points_width: int = 64,
    points_views: int = 8,
    overwrite: bool = False,
    progress: Progress = no_progress,
    cancel: CancelToken | None = None,
) -> Capture:
    """A capture folder ``dest`` from a procedural video and the ``gt_cameras.json`` beside it,
    with no SfM: ``max_frames`` frames are ingested as ``lrm-studio sfm`` ingests a video (the
    sharpest of each window, ``max_side``), and each frame gets the ground-truth camera of its
    decoded frame index (K scaled to the frame size). Splits: every 8th frame is a test frame.
    ``scene``: the scene the video shows (e.g. the demo's); its surface points seen from the
    training cameras (``points_views`` of them, evenly spread) at ``points_width`` px become
    ``points.ply`` (else the capture has none). capture.json records ``"cameras": "ground
    truth"`` and the source. Built beside ``dest`` and moved into place when complete
    (pipelines.capture.staging)."""
    from pipelines.capture.staging import staged_folder
    from pipelines.capture.video import extract_video_frames
    from pipelines.gaussians.ply import write_points_ply

    video = Path(video)
    gt_path = video.parent / GT_CAMERAS
    if not gt_path.is_file():
        raise FileNotFoundError(
            f"{gt_path} is missing: a ground-truth capture needs the video's {GT_CAMERAS}"
        )
    gt_index, gt_cams, gt = read_gt_cameras(gt_path)
    by_frame = {f: i for i, f in enumerate(gt_index)}
    with staged_folder(dest, overwrite=overwrite) as tmp:
        info, kept = extract_video_frames(
            video, tmp / "images", target=max_frames, max_side=max_side,
            progress=sub_progress(progress, 0.0, 0.8, "frames: "), cancel=cancel,
        )  # fmt: skip
        missing = [f.index for f in kept if f.index not in by_frame]
        if missing:
            raise ValueError(f"{gt_path} has no camera for decoded frame(s) {missing[:5]} of {video.name}")
        from pipelines.capture.images import read_image

        h, w = read_image(tmp / "images" / kept[0].name, apply_exif=False).shape[:2]
        cams = gt_cams[[by_frame[f.index] for f in kept]].resize(w, h)
        splits = default_splits(len(kept))
        points = None
        if scene is not None:
            check(cancel)
            progress(0.85, "surface points from the scene")
            train = [i for i, s in enumerate(splits) if s == "train"]
            train = [
                train[j]
                for j in np.linspace(0, len(train) - 1, min(points_views, len(train))).round().astype(int)
            ]
            small = cams[train].resize(points_width, max(1, round(points_width * h / w)))
            xyz, rgb = scene_points(scene, small)
            write_points_ply(tmp / "points.ply", xyz.numpy(), rgb.numpy())
            points = "points.ply"
        meta = {
            "source": {
                "type": "video",
                "path": str(video.resolve()),
                **{k: v for k, v in info.to_dict().items() if k != "path"},
            },
            "cameras": "ground truth",
            "cameras_source": str(gt_path.resolve()),
            "points": "ray-cast from the procedural scene" if points else None,
            "frames": [{"name": f.name, "index": f.index, "time_s": round(f.time_s, 4)} for f in kept],
            "settings": {"max_frames": max_frames, "max_side": max_side},
            "scene": gt.get("scene"),
        }
        cap = Capture(tmp, [f"images/{f.name}" for f in kept], cams, splits, points=points, meta=meta)
        cap.save()
    progress(1.0, f"{len(kept)} frames with ground-truth cameras")
    return Capture.load(dest)
