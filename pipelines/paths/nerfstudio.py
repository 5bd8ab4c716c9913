"""nerfstudio's ``camera_path.json``: read and write, so paths move between this studio and
nerfstudio's viewer / ``ns-render camera-path``. Our saved paths (``CAPTURE/paths/<name>.json``)
are such files.

The format (nerfstudio viewer/render_panel.py ``_write_json``, cameras/camera_paths.py
``get_path_from_json``, scripts/render.py)::

    {"default_fov": deg, "default_transition_sec": s,
     "keyframes": [{"matrix": 16 floats, "fov": deg, "aspect": w/h,
                    "override_transition_enabled": bool, "override_transition_sec": s | null}],
     "camera_type": "perspective", "render_height": H, "render_width": W,
     "fps": f, "seconds": s, "is_cycle": bool, "smoothness_value": tension,
     "camera_path": [{"camera_to_world": 16 floats, "fov": deg, "aspect": w/h}, ...]}

- Matrices are camera-to-world, flattened row-major, with **OpenGL camera axes** (x right, y up,
  z backward), in nerfstudio's world (its dataparser's normalized frame: pass ``world``, the
  similarity from our capture's world to that frame, e.g. :func:`nerfstudio_world`).
- ``fov`` is the **vertical** field of view in **degrees** (focal = (H / 2) / tan(fov / 2)).
  A keyframe whose fov differs from ``default_fov`` by more than 1e-3 has its own fov.
- Timing: the transition *into* keyframe i (i >= 1; for a cycle also the closing one into
  keyframe 0, stored on keyframe 0) lasts its ``override_transition_sec`` when enabled, else
  ``default_transition_sec``; the path's duration is their sum (what nerfstudio's viewer does).
- ``camera_path`` holds the dense, already-interpolated frames. We write ours (our spline, at
  our frame times) and set ``seconds`` = frames / fps, because ``ns-render`` plays
  len(camera_path) / seconds frames per second. Files without keyframes (made by scripts)
  are read from these dense frames: every frame becomes a keyframe, 1 / fps apart.
- Our own fields go in an ``"lrm_studio"`` block that nerfstudio ignores: the exact keyframe
  times and duration (transitions cannot express a path that holds still at its ends), and the
  world the file is in (``"capture"`` or the similarity into it), so that a path written in
  nerfstudio's world reads back into the capture's by itself.
- :class:`PathWorld` says which world a file is in on the command line: the capture's, the
  world of the capture's nerfstudio export (``--nerfstudio-world``, or another dataset's
  ``--transforms-json``), and a trained model's normalized world (``--dataparser-transforms``).

Examples:
    >>> d = to_nerfstudio(path)                       # doctest: +SKIP
    >>> from_nerfstudio(d) == path                    # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipelines.cameras import NERFSTUDIO_APPLIED_TRANSFORM, Cameras
from pipelines.errors import InputError
from pipelines.fileio import read_json, write_json
from pipelines.paths.interpolate import interpolate
from pipelines.paths.path import CameraPath, Keyframe
from pipelines.transforms import Similarity

FORMAT_VERSION = 1


def _to_file_frame(c2w: Tensor, world: Similarity | None) -> Tensor:
    """OpenCV c2w [N, 4, 4] in our world -> OpenGL c2w [N, 4, 4] in the file's world (float64)."""
    cams = Cameras(c2w.double(), torch.eye(3, dtype=torch.float64).expand(len(c2w), 3, 3).clone(), 1, 1)
    if world is not None:
        cams = cams.transform(world)
    return cams.c2w_opengl()


def _from_file_frame(c2w_gl: Tensor, world: Similarity | None) -> Tensor:
    """Inverse of :func:`_to_file_frame`: OpenGL c2w [N, 4, 4] in the file's world -> OpenCV
    c2w [N, 4, 4] in ours, float64 (Keyframe snaps rotations rounded in the file)."""
    n = len(c2w_gl)
    cams = Cameras.from_opengl(
        c2w_gl.double(), torch.eye(3, dtype=torch.float64).expand(n, 3, 3).clone(), 1, 1
    )
    if world is not None:
        cams = cams.transform(world.inverse())
    return cams.c2w


def _flat(m: Tensor) -> list[float]:
    return [float(x) for x in m.reshape(16)]


def _matrices(rows: list[Any], key: str, where: str) -> Tensor:
    try:
        m = torch.tensor([r[key] for r in rows], dtype=torch.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: every entry needs {key!r} as 16 numbers ({e})") from e
    if m.shape[1:] != (16,):
        raise ValueError(
            f"{where}: {key!r} must hold 16 numbers (a flattened 4x4), got shape {tuple(m.shape)}"
        )
    return m.reshape(-1, 4, 4)


def to_nerfstudio(path: CameraPath, *, world: Similarity | None = None) -> dict:
    """A camera_path.json dict for ``path`` (see the module docstring); ``world`` maps our
    world into the file's (nerfstudio's) world, None: the same world."""
    n = len(path)
    if n == 0:
        raise ValueError("the camera path has no keyframes; nothing to write")
    knots = path.knot_times().tolist()
    transitions = [b - a for a, b in zip(knots[:-1], knots[1:], strict=True)]  # into keyframe i+1 (mod N)
    default_transition = sum(transitions) / len(transitions) if transitions else path.duration_s
    into = {(i + 1) % n: dt for i, dt in enumerate(transitions)}
    aspect = path.aspect
    key_gl = _to_file_frame(path.c2ws(), world)
    fovs = path.fovs_deg().tolist()
    keyframes = []
    for i in range(n):
        dt = into.get(i)
        override = dt is not None and abs(dt - default_transition) > 1e-9 * max(1.0, default_transition)
        keyframes.append(
            {
                "matrix": _flat(key_gl[i]),
                "fov": fovs[i],
                "aspect": aspect,
                "override_transition_enabled": bool(override),
                "override_transition_sec": float(dt) if override else None,
            }
        )
    poses = interpolate(path, path.frame_times())
    frames_gl = _to_file_frame(poses.c2w, world)
    frames = [
        {"camera_to_world": _flat(frames_gl[j]), "fov": float(poses.fov_y_deg[j]), "aspect": aspect}
        for j in range(len(frames_gl))
    ]
    return {
        "default_fov": float(path.default_fov_deg),
        "default_transition_sec": float(default_transition),
        "keyframes": keyframes,
        "camera_type": "perspective",
        "render_height": int(path.height),
        "render_width": int(path.width),
        "fps": float(path.fps),
        "seconds": len(frames) / float(path.fps),
        "is_cycle": bool(path.loop),
        "smoothness_value": float(path.smoothness),
        "camera_path": frames,
        "lrm_studio": {
            "version": FORMAT_VERSION,
            "duration_s": float(path.duration_s),
            "keyframe_times_s": path.keyframe_times().tolist(),
            "world": "capture" if world is None else {"to_file": world.to_dict()},
        },
    }


def recorded_world(d: dict) -> Similarity | None:
    """The world a camera_path.json dict says it was written in (our ``lrm_studio.world``
    block: the map from the capture's world into the file's), None for the capture's own or
    when the file does not say (nerfstudio's files)."""
    ours = d.get("lrm_studio")
    to_file = ours.get("world") if isinstance(ours, dict) else None
    if not isinstance(to_file, dict) or "to_file" not in to_file:
        return None
    try:
        return Similarity.from_dict(to_file["to_file"])
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise ValueError(f"lrm_studio.world.to_file is not a similarity ({e!r})") from e


def from_nerfstudio(d: dict, *, world: Similarity | None = None) -> CameraPath:
    """A :class:`CameraPath` from a camera_path.json dict (ours or nerfstudio's); ``world``
    maps our world into the file's, as for :func:`to_nerfstudio` (None: the world the file
    records, see :func:`recorded_world`, else the capture's). Raises ValueError saying which
    field is missing or wrong."""
    if not isinstance(d, dict):
        raise ValueError("a camera path file holds a JSON object")
    camera_type = str(d.get("camera_type", "perspective")).lower()
    if camera_type != "perspective":
        raise ValueError(
            f"camera_type {camera_type!r} is not supported: lrm-studio renders perspective (pinhole) cameras"
        )
    try:
        height, width = int(d["render_height"]), int(d["render_width"])
        fps = float(d.get("fps", 30.0))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"render_height, render_width and fps must be numbers ({e!r})") from e
    loop = bool(d.get("is_cycle", False))
    smoothness = float(d.get("smoothness_value", 0.0) or 0.0)
    keyframes = d.get("keyframes") or []
    ours = d.get("lrm_studio") if isinstance(d.get("lrm_studio"), dict) else None
    world = recorded_world(d) if world is None else world
    if keyframes:
        default_fov = float(d.get("default_fov", keyframes[0].get("fov", 60.0)))
        c2w = _from_file_frame(_matrices(keyframes, "matrix", "keyframes"), world)
        fovs = [float(k.get("fov", default_fov)) for k in keyframes]
        own = [f if abs(f - default_fov) > 1e-3 else None for f in fovs]
        if ours is not None and len(ours.get("keyframe_times_s", [])) == len(keyframes):
            times = [float(t) for t in ours["keyframe_times_s"]]
            duration = float(ours["duration_s"])
        else:
            default_dt = float(d.get("default_transition_sec", 2.0))

            def into(k: dict) -> float:
                dt = k.get("override_transition_sec")
                return float(dt) if k.get("override_transition_enabled") and dt is not None else default_dt

            times = [0.0]
            for k in keyframes[1:]:
                times.append(times[-1] + into(k))
            duration = times[-1] + (into(keyframes[0]) if loop else 0.0)
            if duration <= 0:  # a single open keyframe
                duration = float(d.get("seconds", 1.0) or 1.0)
        keys = tuple(Keyframe(c2w[i], own[i], times[i]) for i in range(len(keyframes)))
    else:
        frames = d.get("camera_path") or []
        if not frames:
            raise ValueError("the file has neither keyframes nor camera_path frames")
        c2w = _from_file_frame(_matrices(frames, "camera_to_world", "camera_path"), world)
        fovs = [float(f["fov"]) for f in frames]
        default_fov = fovs[0]
        seconds = float(d.get("seconds", len(frames) / fps))
        dt = seconds / len(frames)  # ns-render plays len / seconds frames per second
        keys = tuple(
            Keyframe(c2w[i], fovs[i] if abs(fovs[i] - default_fov) > 1e-3 else None, i * dt)
            for i in range(len(frames))
        )
        fps = 1.0 / dt
        duration = seconds if loop else max(dt, (len(frames) - 1) * dt)
    return CameraPath(
        keys,
        duration_s=duration,
        fps=fps,
        loop=loop,
        default_fov_deg=default_fov,
        width=width,
        height=height,
        smoothness=smoothness,
    )


def read_camera_path(file: str | os.PathLike, *, world: Similarity | None = None) -> CameraPath:
    """Read a camera_path.json (ours or nerfstudio's) into the capture's world; ``world``: see
    :func:`from_nerfstudio`."""
    try:
        d = read_json(file)
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not JSON: {e}") from e
    try:
        return from_nerfstudio(d, world=world)
    except ValueError as e:
        raise ValueError(f"{file}: {e}") from e


def write_camera_path(file: str | os.PathLike, path: CameraPath, *, world: Similarity | None = None) -> Path:
    """Write ``path`` as a camera_path.json, atomically; returns the file."""
    write_json(file, to_nerfstudio(path, world=world))
    return Path(file)


def nerfstudio_world(
    dataparser_transforms: str | os.PathLike | dict | None = None,
    applied_transform: Tensor | list | None = None,
) -> Similarity:
    """The similarity from our capture's world (COLMAP's, as in cameras.json) to the world of a
    nerfstudio model: first transforms.json's ``applied_transform`` [3, 4] (rigid; what
    ns-process-data applied to COLMAP's poses), then the dataparser's
    ``dataparser_transforms.json`` ({"transform": [3, 4], "scale": s}: x -> s (R x + t))."""
    sim = Similarity.identity()
    if applied_transform is not None:
        A = torch.eye(4, dtype=torch.float64)
        A[:3] = torch.as_tensor(applied_transform, dtype=torch.float64)
        sim = _rigid(A, "applied_transform")
    if dataparser_transforms is not None:
        dp = (
            dataparser_transforms
            if isinstance(dataparser_transforms, dict)
            else read_json(dataparser_transforms)
        )
        T = torch.eye(4, dtype=torch.float64)
        T[:3] = torch.as_tensor(dp["transform"], dtype=torch.float64)
        s = float(dp.get("scale", 1.0))
        rigid = _rigid(T, "dataparser transform")
        sim = Similarity(s, rigid.rotation, s * rigid.translation).compose(sim)
    return sim


def _rigid(T: Tensor, what: str) -> Similarity:
    R = T[:3, :3]
    if (
        float((R.T @ R - torch.eye(3, dtype=torch.float64)).abs().max()) > 1e-4
        or float(torch.linalg.det(R)) <= 0
    ):
        raise ValueError(f"{what} is not a rotation plus translation: {T[:3].tolist()}")
    return Similarity(1.0, R, T[:3, 3])


@dataclass(frozen=True)
class PathWorld:
    """Which world a camera_path.json is in, for the commands that read or write one
    (``lrm-studio render --path``, ``lrm-studio paths export``). Nothing set: the capture's
    own world (cameras.json), or, reading, the world the file records (:func:`recorded_world`).
    ``nerfstudio_world``: the world of the capture's nerfstudio export (``lrm-studio export
    CAPTURE --format nerfstudio`` applies (x, y, z) -> (x, z, -y), its applied_transform);
    ``transforms_json``: another nerfstudio dataset's world (its applied_transform, identity
    when it has none); then ``dataparser_transforms``: a model trained on that dataset, whose
    normalized world is where ns-render and nerfstudio's viewer place cameras (it needs one of
    the other two to say the dataset's world)."""

    nerfstudio_world: bool = False
    """the world of the capture's nerfstudio export (lrm-studio export --format nerfstudio)."""
    transforms_json: Path | None = None
    """a nerfstudio dataset's transforms.json: its applied_transform instead of the export's."""
    dataparser_transforms: Path | None = None
    """a trained model's dataparser_transforms.json: its normalized world (ns-render's)."""

    def similarity(self) -> Similarity | None:
        """The map from the capture's world into the file's; None for the capture's own (or the
        file's record, when reading). Raises InputError for a dataparser transform without the
        dataset's world, OSError / ValueError for unreadable files."""
        if self.transforms_json is None and not self.nerfstudio_world:
            if self.dataparser_transforms is not None:
                raise InputError(
                    "--dataparser-transforms maps the dataset's world to the model's: say which dataset "
                    "with --nerfstudio-world (exported by lrm-studio export) or --transforms-json FILE"
                )
            return None
        if self.transforms_json is not None:
            applied = read_json(self.transforms_json).get("applied_transform")
        else:
            applied = NERFSTUDIO_APPLIED_TRANSFORM
        return nerfstudio_world(self.dataparser_transforms, applied)
