"""``CameraPath``: keyframes through which a virtual camera moves, and its timing.

A keyframe is a camera-to-world pose ``c2w [4, 4]`` (OpenCV axes: x right, y down, z forward;
world = the capture's world of cameras.json), an optional vertical field of view in degrees
(None: the path's ``default_fov_deg``) and an optional time in seconds along the path (None:
spread evenly between the neighbouring keyframes whose times are known).

Timing: an open path starts at keyframe 0 at t = 0 and ends at the last keyframe at t =
``duration_s``; a loop (``loop=True``) returns from the last keyframe to keyframe 0 at t =
``duration_s`` (then repeats). Video frames are sampled at ``fps``: an open path has
round(duration * fps) + 1 frames, first and last keyframe included; a loop has
round(duration * fps) frames (the frame at t = duration would repeat frame 0).

``width`` / ``height`` are the path's render resolution (nerfstudio's render_width /
render_height): videos are rendered at it unless given another size (:func:`video_size`).

Paths are values: every edit returns a new path. Structural edits (adding or deleting
keyframes) re-space the keyframes evenly over the same duration (explicit times are dropped);
reordering swaps poses and fields of view and keeps the time slots.

Examples:
    >>> kf = [Keyframe(torch.eye(4, dtype=torch.float64)), Keyframe(torch.eye(4, dtype=torch.float64))]
    >>> path = CameraPath(tuple(kf), duration_s=2.0, fps=30.0)
    >>> path.keyframe_times().tolist(), path.num_frames()
    ([0.0, 2.0], 61)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

MIN_FOV_DEG, MAX_FOV_DEG = 1.0, 170.0


def _as_c2w(c2w: Tensor) -> Tensor:
    c2w = torch.as_tensor(c2w, dtype=torch.float64).detach().cpu()
    assert c2w.shape == (4, 4), f"a keyframe's c2w must be [4,4], got {tuple(c2w.shape)}"
    assert torch.isfinite(c2w).all(), "a keyframe's c2w must be finite"
    R = c2w[:3, :3]
    err = float((R.T @ R - torch.eye(3, dtype=torch.float64)).abs().max())
    assert err < 1e-4 and float(torch.linalg.det(R)) > 0, (
        f"a keyframe's rotation is not a rotation (|R^T R - I| = {err:.2g})"
    )
    U, _, Vt = torch.linalg.svd(R)  # the nearest rotation: float32 inputs become exact ones
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = U @ Vt
    out[:3, 3] = c2w[:3, 3]
    return out


@dataclass(frozen=True)
class Keyframe:
    """c2w [4, 4] float64 OpenCV camera-to-world (rotation snapped to the nearest exact one,
    last row [0, 0, 0, 1]); fov_y_deg: vertical field of view in degrees
    or None (the path's default); time_s: seconds along the path or None (evenly spaced)."""

    c2w: Tensor
    fov_y_deg: float | None = None
    time_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "c2w", _as_c2w(self.c2w))
        if self.fov_y_deg is not None:
            fov = float(self.fov_y_deg)
            assert MIN_FOV_DEG <= fov <= MAX_FOV_DEG, (
                f"fov_y_deg {fov} outside [{MIN_FOV_DEG}, {MAX_FOV_DEG}]"
            )
            object.__setattr__(self, "fov_y_deg", fov)
        if self.time_s is not None:
            object.__setattr__(self, "time_s", float(self.time_s))

    @property
    def position(self) -> Tensor:
        """Camera centre [3] in world coordinates."""
        return self.c2w[:3, 3]


@dataclass(frozen=True)
class CameraPath:
    """keyframes (in order); duration_s > 0; fps > 0; loop; default_fov_deg for keyframes
    without their own; width x height: render resolution (aspect ratio of the path's views);
    smoothness: nerfstudio's spline tension, kept for round trips (our spline has none)."""

    keyframes: tuple[Keyframe, ...] = ()
    duration_s: float = 4.0
    fps: float = 30.0
    loop: bool = False
    default_fov_deg: float = 60.0
    width: int = 1920
    height: int = 1080
    smoothness: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        assert self.duration_s > 0, f"duration_s must be > 0, got {self.duration_s}"
        assert self.fps > 0, f"fps must be > 0, got {self.fps}"
        assert MIN_FOV_DEG <= self.default_fov_deg <= MAX_FOV_DEG, f"default_fov_deg {self.default_fov_deg}"
        assert self.width > 0 and self.height > 0, (self.width, self.height)
        if any(k.time_s is not None for k in self.keyframes):
            self.keyframe_times()  # validates explicit times

    # --------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def aspect(self) -> float:
        """width / height."""
        return self.width / self.height

    def fovs_deg(self) -> Tensor:
        """Each keyframe's vertical field of view [N] in degrees (the default where unset)."""
        return torch.tensor(
            [self.default_fov_deg if k.fov_y_deg is None else k.fov_y_deg for k in self.keyframes],
            dtype=torch.float64,
        )

    def c2ws(self) -> Tensor:
        """Keyframe poses [N, 4, 4] float64, OpenCV camera-to-world."""
        if not self.keyframes:
            return torch.zeros(0, 4, 4, dtype=torch.float64)
        return torch.stack([k.c2w for k in self.keyframes])

    def knot_times(self) -> Tensor:
        """Times [N] of the keyframes (see :meth:`keyframe_times`), plus, for a loop, the time
        at which the path is back at keyframe 0: [N + 1]."""
        n = len(self.keyframes)
        assert n > 0, "the path has no keyframes"
        known: dict[int, float] = {i: k.time_s for i, k in enumerate(self.keyframes) if k.time_s is not None}
        last = n if self.loop else n - 1  # index of the end anchor
        if n == 1 and not self.loop:
            return torch.tensor([known.get(0, 0.0)], dtype=torch.float64)
        known.setdefault(0, 0.0)
        if self.loop:
            known[n] = known[0] + self.duration_s
        else:
            known.setdefault(last, self.duration_s)
        anchors = sorted(known)
        t = torch.empty(last + 1, dtype=torch.float64)
        for a, b in zip(anchors[:-1], anchors[1:], strict=True):
            t[a : b + 1] = torch.linspace(known[a], known[b], b - a + 1, dtype=torch.float64)
        t[anchors[-1]] = known[anchors[-1]]
        steps = t[1:] - t[:-1]
        if (steps <= 0).any():
            raise ValueError(f"keyframe times must increase strictly along the path; got {t.tolist()}")
        if not self.loop and (t[0] < 0 or t[-1] > self.duration_s + 1e-9):
            raise ValueError(f"keyframe times {t.tolist()} outside [0, duration {self.duration_s}]")
        if self.loop and t[0] < 0:
            raise ValueError(f"keyframe times {t.tolist()} must not be negative")
        return t

    def keyframe_times(self) -> Tensor:
        """The time [N] in seconds at which the path passes through each keyframe."""
        return self.knot_times()[: len(self.keyframes)]

    def num_frames(self) -> int:
        """Frames of a video of this path at ``fps`` (see the module docstring)."""
        n = max(1, round(self.duration_s * self.fps))
        return n if self.loop else n + 1

    def frame_times(self) -> Tensor:
        """Times [F] in seconds of the video frames: open paths include both ends, loops leave
        out t = duration (it equals t = 0)."""
        f = self.num_frames()
        if self.loop:
            return torch.arange(f, dtype=torch.float64) * (self.duration_s / f)
        return torch.linspace(0.0, self.duration_s, f, dtype=torch.float64)

    # ----------------------------------------------------------------- edits
    def with_keyframes(self, keyframes: list[Keyframe] | tuple[Keyframe, ...]) -> CameraPath:
        return replace(self, keyframes=tuple(keyframes))

    def _evenly(self, keyframes: list[Keyframe]) -> CameraPath:
        return self.with_keyframes([replace(k, time_s=None) for k in keyframes])

    def added(self, keyframe: Keyframe, index: int | None = None) -> CameraPath:
        """A keyframe inserted before ``index`` (appended for None); keyframes re-spaced evenly."""
        ks = list(self.keyframes)
        ks.insert(len(ks) if index is None else index, keyframe)
        return self._evenly(ks)

    def deleted(self, index: int) -> CameraPath:
        """Keyframe ``index`` removed; the rest re-spaced evenly."""
        ks = list(self.keyframes)
        self._check_index(index)
        del ks[index]
        return self._evenly(ks)

    def moved(self, index: int, c2w: Tensor) -> CameraPath:
        """Keyframe ``index`` at a new pose (its fov and time kept)."""
        self._check_index(index)
        ks = list(self.keyframes)
        ks[index] = replace(ks[index], c2w=c2w)
        return self.with_keyframes(ks)

    def with_fov(self, index: int, fov_y_deg: float | None) -> CameraPath:
        """Keyframe ``index`` with its own vertical fov (degrees) or the default (None)."""
        self._check_index(index)
        ks = list(self.keyframes)
        ks[index] = replace(ks[index], fov_y_deg=fov_y_deg)
        return self.with_keyframes(ks)

    def swapped(self, i: int, j: int) -> CameraPath:
        """Keyframes i and j trade places (poses and fovs); the time slots stay."""
        self._check_index(i)
        self._check_index(j)
        ks = list(self.keyframes)
        ki, kj = ks[i], ks[j]
        ks[i] = replace(kj, time_s=ki.time_s)
        ks[j] = replace(ki, time_s=kj.time_s)
        return self.with_keyframes(ks)

    def with_duration(self, duration_s: float) -> CameraPath:
        """The same path over ``duration_s``; explicit keyframe times scale with it."""
        s = duration_s / self.duration_s
        ks = [k if k.time_s is None else replace(k, time_s=k.time_s * s) for k in self.keyframes]
        return replace(self, keyframes=tuple(ks), duration_s=float(duration_s))

    def with_loop(self, loop: bool) -> CameraPath:
        """Open or closed. Explicit times are kept when they fit the other timing, else the
        keyframes are re-spaced evenly."""
        if loop == self.loop:
            return self
        try:
            return replace(self, loop=loop)
        except ValueError:
            return replace(self._evenly(list(self.keyframes)), loop=loop)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.keyframes):
            raise IndexError(f"keyframe {index} of {len(self.keyframes)}")


def fov_to_focal(fov_y_deg: Tensor | float, height: int) -> Tensor:
    """Focal length in pixels for a vertical fov in degrees: (H / 2) / tan(fov / 2)."""
    fov = torch.as_tensor(fov_y_deg, dtype=torch.float64)
    return 0.5 * height / torch.tan(torch.deg2rad(fov) / 2)


def focal_to_fov(focal_px: Tensor | float, height: int) -> Tensor:
    """Vertical fov in degrees for a focal length in pixels."""
    f = torch.as_tensor(focal_px, dtype=torch.float64)
    return torch.rad2deg(2 * torch.atan(0.5 * height / f))


def even_size(height: int, aspect: float) -> tuple[int, int]:
    """(width, height) with both even (H.264 in yuv420p needs even sides): height rounded down
    to even, width = the even number nearest height * aspect."""
    h = max(2, int(height) // 2 * 2)
    w = max(2, 2 * round(h * aspect / 2))
    return w, h


def video_size(path: CameraPath, width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """(width, height) of a video of ``path``, both even (H.264 in yuv420p): with neither
    given, the path's own render size (nerfstudio's render_width x render_height, as ns-render
    renders a camera_path.json), each rounded down to even; with one given, the other follows
    the path's aspect ratio (:func:`even_size`); with both, each rounded down to even."""
    if width is None and height is None:
        return max(2, path.width // 2 * 2), max(2, path.height // 2 * 2)
    if width is None:
        return even_size(int(height), path.aspect)
    w = max(2, int(width) // 2 * 2)
    if height is None:
        return w, max(2, 2 * round(w / path.aspect / 2))
    return w, max(2, int(height) // 2 * 2)
