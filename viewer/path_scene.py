"""Scene nodes of the camera path (shared by every tab): the interpolated path as a polyline
coloured from start (blue) to end (red), a frustum per keyframe (the selected one yellow), a
transform gizmo per keyframe while moving is on, and the playhead frustum (green) at the
current time. Also :func:`follow`: put every tab's view exactly on a path pose.

Frames: the capture's world, OpenCV camera axes (viser's frustums, gizmos and client cameras
use them too). Nodes are added once and updated by assignment; a node set whose count changes
(keyframes added or deleted) is rebuilt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch
import viser
from torch import Tensor

from pipelines.paths import CameraPath, interpolate
from pipelines.transforms import quat_to_rotmat, rotmat_to_quat
from viewer import names

KEYFRAME_RGB = (220, 40, 60)
SELECTED_RGB = (250, 200, 30)
PLAYHEAD_RGB = (30, 200, 80)
SPLINE_POINTS = 257  # samples along the drawn path (fixed: the node is updated in place)


def pose_of(c2w: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """c2w [4, 4] -> (wxyz [4], position [3]) float64 numpy, viser's pose of an OpenCV camera."""
    c2w = c2w.double().cpu()
    return rotmat_to_quat(c2w[:3, :3]).numpy(), c2w[:3, 3].numpy()


def c2w_of(wxyz: np.ndarray, position: np.ndarray) -> Tensor:
    """viser pose (wxyz, position) -> c2w [4, 4] float64, OpenCV axes."""
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, dtype=np.float64)))
    c2w[:3, 3] = torch.as_tensor(np.asarray(position, dtype=np.float64))
    return c2w


def spline_segments(path: CameraPath, samples: int = SPLINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The interpolated camera centres as line segments [S-1, 2, 3] float32 and their colours
    [S-1, 2, 3] uint8 (blue at the start to red at the end); a loop closes on itself."""
    t = torch.linspace(0.0, path.duration_s, samples, dtype=torch.float64)
    p = interpolate(path, t).c2w[:, :3, 3].numpy().astype(np.float32)  # [S, 3]
    segs = np.stack([p[:-1], p[1:]], axis=1)  # [S-1, 2, 3]
    f = np.linspace(0.0, 1.0, samples, dtype=np.float32)
    rgb = np.stack([40 + 200 * f, 80 + 40 * np.sin(np.pi * f), 240 - 200 * f], -1).astype(np.uint8)  # [S, 3]
    return segs, np.stack([rgb[:-1], rgb[1:]], axis=1)


def follow(server: viser.ViserServer, c2w: Tensor, fov_y_deg: float) -> None:
    """Put every tab's view on the pose c2w [4, 4] (OpenCV) with vertical fov: position, view
    direction and roll exactly (the orbit's up becomes the camera's up); the orbit distance is
    kept. Tabs whose camera is not known yet are skipped."""
    c2w = c2w.double().cpu().numpy()
    pos, forward, up = c2w[:3, 3], c2w[:3, 2], -c2w[:3, 1]
    for client in list(server.get_clients().values()):
        cam = client.camera
        try:
            dist = float(np.linalg.norm(cam.look_at - cam.position))
        except AssertionError:  # no camera message from this tab yet
            continue
        dist = dist if np.isfinite(dist) and dist > 1e-6 else 1.0
        with client.atomic():
            cam.position = pos
            cam.look_at = pos + dist * forward
            cam.up_direction = up
            cam.fov = float(np.deg2rad(fov_y_deg))


class PathScene:
    """The path's nodes on ``server.scene``. ``on_select(i)``: a keyframe frustum was clicked;
    ``on_move(i, c2w)``: keyframe i's gizmo was dragged to c2w [4, 4]."""

    def __init__(
        self,
        server: viser.ViserServer,
        *,
        on_select: Callable[[int], None],
        on_move: Callable[[int, Tensor], None],
    ) -> None:
        self.server = server
        self.on_select = on_select
        self.on_move = on_move
        self.keyframes: list[viser.CameraFrustumHandle] = []
        self.gizmos: list[viser.TransformControlsHandle] = []
        self.spline: viser.LineSegmentsHandle | None = None
        self.playhead: viser.CameraFrustumHandle | None = None
        self.moving = False
        self.size = 0.1  # frustum size in world units
        self._lock = threading.RLock()

    def draw(self, path: CameraPath, *, selected: int | None, size: float) -> None:
        """Make the nodes match ``path`` (keyframe i selected) with frustums ``size`` long."""
        with self._lock:
            self.size = size
            n = len(path)
            if n != len(self.keyframes):
                for h in self.keyframes:
                    h.remove()
                self.keyframes = [self._add_keyframe(i, path) for i in range(n)]
            fovs = path.fovs_deg().tolist()
            for i, (h, k) in enumerate(zip(self.keyframes, path.keyframes, strict=True)):
                h.wxyz, h.position = pose_of(k.c2w)
                h.fov = float(np.deg2rad(fovs[i]))
                h.aspect = path.aspect
                h.scale = size
                h.color = SELECTED_RGB if i == selected else KEYFRAME_RGB
            self._draw_spline(path)
            self._draw_gizmos(path)
            if n == 0 and self.playhead is not None:
                self.playhead.remove()
                self.playhead = None

    def _add_keyframe(self, i: int, path: CameraPath) -> viser.CameraFrustumHandle:
        wxyz, pos = pose_of(path.keyframes[i].c2w)
        h = self.server.scene.add_camera_frustum(
            names.path_keyframe(i),
            fov=float(np.deg2rad(float(path.fovs_deg()[i]))),
            aspect=path.aspect,
            scale=self.size,
            thickness=0.03 * self.size,
            color=KEYFRAME_RGB,
            wxyz=wxyz,
            position=pos,
        )
        h.on_click(lambda _event, i=i: self.on_select(i))
        return h

    def _draw_spline(self, path: CameraPath) -> None:
        if len(path) < 2:
            if self.spline is not None:
                self.spline.remove()
                self.spline = None
            return
        segs, colors = spline_segments(path)
        if self.spline is None:
            self.spline = self.server.scene.add_line_segments(
                names.PATH_SPLINE, segs, colors, thickness=2.0, thickness_units="screen"
            )
        else:
            with self.server.atomic():
                self.spline.points = segs
                self.spline.colors = colors

    def set_moving(self, moving: bool, path: CameraPath) -> None:
        """Show (True) or hide the keyframes' transform gizmos."""
        with self._lock:
            self.moving = moving
            self._draw_gizmos(path)

    def _draw_gizmos(self, path: CameraPath) -> None:
        n = len(path) if self.moving else 0
        if n != len(self.gizmos):
            for g in self.gizmos:
                g.remove()
            self.gizmos = [self._add_gizmo(i, path) for i in range(n)]
            return
        for g, k in zip(self.gizmos, path.keyframes, strict=False):
            wxyz, pos = pose_of(k.c2w)
            if not (
                np.allclose(g.position, pos, atol=1e-9)
                and np.allclose(np.abs(g.wxyz @ wxyz), 1.0, atol=1e-12)
            ):
                g.wxyz, g.position = wxyz, pos  # moved by another gizmo's edit or a reorder
            g.scale = 2.5 * self.size

    def _add_gizmo(self, i: int, path: CameraPath) -> viser.TransformControlsHandle:
        wxyz, pos = pose_of(path.keyframes[i].c2w)
        g = self.server.scene.add_transform_controls(
            names.path_gizmo(i), scale=2.5 * self.size, depth_test=False, wxyz=wxyz, position=pos
        )

        @g.on_update
        def _(event: viser.TransformControlsEvent) -> None:
            self.on_move(i, c2w_of(event.target.wxyz, event.target.position))

        return g

    def set_playhead(self, c2w: Tensor | None, fov_y_deg: float, aspect: float) -> None:
        """Put the playhead frustum at c2w [4, 4] (None: hide it)."""
        with self._lock:
            if c2w is None:
                if self.playhead is not None:
                    self.playhead.visible = False
                return
            wxyz, pos = pose_of(c2w)
            if self.playhead is None:
                self.playhead = self.server.scene.add_camera_frustum(
                    names.PATH_PLAYHEAD,
                    fov=float(np.deg2rad(fov_y_deg)),
                    aspect=aspect,
                    scale=1.3 * self.size,
                    thickness=0.04 * self.size,
                    color=PLAYHEAD_RGB,
                    wxyz=wxyz,
                    position=pos,
                )
            else:
                with self.server.atomic():
                    self.playhead.wxyz, self.playhead.position = wxyz, pos
                    self.playhead.fov, self.playhead.aspect = float(np.deg2rad(fov_y_deg)), aspect
                    self.playhead.scale = 1.3 * self.size
                    self.playhead.visible = True
