"""The studio's scene nodes: result splats per slot and the open capture's cameras and points.

Frames: the scene's world is the capture's world (cameras.json), OpenCV camera axes, as viser
uses for frustums and client cameras. Updates assign to the handles this object keeps;
nodes are added once and removed when their content goes away.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
import viser

from pipelines.cameras import Cameras
from pipelines.capture.folder import Capture
from pipelines.gaussians import Background
from pipelines.paths.auto import camera_extent, center_of_interest
from pipelines.paths.auto import world_up as up_from_cameras
from pipelines.transforms import rotmat_to_quat
from studio.app import Shown
from viewer import names
from viewer.splats import put_splats, to_viser_arrays

TRAIN_COLOR = (40, 110, 230)  # frustums of training frames
TEST_COLOR = (230, 120, 30)  # frustums of held-out (test) frames


@dataclass(frozen=True)
class CameraPose:
    """A viser camera pose: wxyz [4] (R_world_camera, OpenCV axes), position [3] world,
    fov_y_rad vertical field of view, aspect width / height."""

    wxyz: np.ndarray
    position: np.ndarray
    fov_y_rad: float
    aspect: float


def capture_poses(capture: Capture) -> list[CameraPose]:
    """One pose per frame of the capture."""
    cams = capture.cameras.to("cpu", torch.float64)
    wxyz = rotmat_to_quat(cams.c2w[:, :3, :3]).numpy()
    pos = cams.c2w[:, :3, 3].numpy()
    fov = cams.fov_y_rad().numpy()
    aspect = cams.width / cams.height
    return [CameraPose(wxyz[i], pos[i], float(fov[i]), aspect) for i in range(len(cams))]


def scene_extent(capture: Capture) -> float:
    """Largest distance of a camera centre from the centres' mean (1 for a single camera)."""
    return camera_extent(capture.cameras)


def world_up(capture: Capture) -> np.ndarray:
    """World up [3] from how the capture's cameras were held (:func:`pipelines.paths.world_up`)."""
    return up_from_cameras(capture.cameras).numpy()


def scene_target(capture: Capture) -> np.ndarray:
    """What the capture looks at: the median sparse point, else the point closest to every
    camera's optical axis (least squares), else a point ahead of the mean camera."""
    pts = capture.load_points()
    return center_of_interest(capture.cameras, None if pts is None else pts[0], prefer="points").numpy()


def overview_pose(capture: Capture, up: np.ndarray) -> tuple[CameraPose, np.ndarray]:
    """A view of the whole capture, its target [3]: from beyond the first training camera
    (twice its distance from the target) and raised along ``up``, looking at the target."""
    first = (capture.indices("train") or [0])[0]
    target = scene_target(capture)
    c0 = capture.cameras.centers()[first].double().numpy()
    dist = max(float(np.linalg.norm(c0 - target)), 1e-3)
    eye = target + 2.0 * (c0 - target) + 0.8 * dist * up
    cams = Cameras.look_at(
        torch.tensor(eye[None]), torch.tensor(target[None]), fov_y_deg=60.0, width=capture.cameras.width,
        height=capture.cameras.height, up=torch.tensor(up),
    )  # fmt: skip
    wxyz = rotmat_to_quat(cams.c2w[0, :3, :3].double()).numpy()
    return CameraPose(wxyz, eye, math.radians(60.0), capture.cameras.width / capture.cameras.height), target


def move_clients_to(server: viser.ViserServer, pose: CameraPose) -> None:
    """Move every connected tab's view to ``pose`` (orientation, position and vertical fov)."""
    for client in server.get_clients().values():
        with client.atomic():
            client.camera.wxyz = pose.wxyz
            client.camera.position = pose.position
            client.camera.fov = pose.fov_y_rad


class SceneView:
    """Owns the studio's scene nodes on ``server.scene`` (shared by every tab).

    budget: most splats sent to the browser per slot. frustum_scale: frustum size as a
    fraction of the capture's extent.
    """

    def __init__(self, server: viser.ViserServer, *, budget: int, frustum_scale: float = 0.05) -> None:
        self.server = server
        self.budget = budget
        self.frustum_scale = frustum_scale
        self.splats: dict[str, viser.GaussianSplatHandle] = {}
        self.splat_counts: dict[str, tuple[int, int]] = {}  # slot -> (sent to the browser, total)
        self.frustums: list[viser.CameraFrustumHandle] = []
        self.points: viser.PointCloudHandle | None = None
        self.poses: list[CameraPose] = []
        self.extent = 1.0
        self.cameras_visible = True
        self.looking_through: int | None = None  # frame whose frustum is hidden: the views sit in it
        self.points_visible = True
        self._shown: dict[str, Shown] = {}
        self.slot_visible: dict[str, bool] = {}  # slot -> shown (the compare panel's A/B toggle)
        self.slot_offset: dict[str, np.ndarray] = {}  # slot -> [3] world offset (side by side)
        self.background: Background | None = None  # solid colour behind the view; None: viser's
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- splats
    def set_results(self, shown: dict[str, Shown]) -> None:
        """Make the splat nodes match ``shown`` (slot -> result): new or changed results are
        sent (under the budget), slots no longer shown are removed."""
        with self._lock:
            for slot in [s for s in self.splats if s not in shown]:
                self.splats.pop(slot).remove()
                self.splat_counts.pop(slot, None)
            for slot, result in shown.items():
                if self._shown.get(slot) is not None and self._shown[slot].gaussians is result.gaussians:
                    continue
                arrays = to_viser_arrays(result.gaussians, budget=self.budget)
                self.splats[slot] = put_splats(
                    self.server.scene, names.splats(slot), arrays, self.splats.get(slot)
                )
                self.splat_counts[slot] = (arrays.num, arrays.num_total)
                self._apply_layout(slot)
            self._shown = dict(shown)

    def set_background(self, rgb: Background | None) -> None:
        """The 3D view's background: a solid colour (RGB in [0, 1], the shown run's: what it was
        trained on), or viser's own (None)."""
        with self._lock:
            if rgb == self.background:
                return
            self.background = rgb
            if rgb is None:
                self.server.scene.set_background_image(None)
            else:
                solid = np.full((4, 4, 3), np.round(np.asarray(rgb) * 255), dtype=np.uint8)
                self.server.scene.set_background_image(solid, format="png")

    def set_layout(self, visible: dict[str, bool], offsets: dict[str, np.ndarray]) -> None:
        """Which slots are visible and where each is moved (world offset [3]); slots not named
        are visible and in place."""
        with self._lock:
            self.slot_visible = dict(visible)
            self.slot_offset = {k: np.asarray(v, dtype=np.float64) for k, v in offsets.items()}
            for slot in self.splats:
                self._apply_layout(slot)

    def _apply_layout(self, slot: str) -> None:
        handle = self.splats[slot]
        visible = self.slot_visible.get(slot, True)
        offset = self.slot_offset.get(slot, np.zeros(3))
        if handle.visible != visible:
            handle.visible = visible
        if not np.allclose(handle.position, offset):
            handle.position = tuple(float(x) for x in offset)

    # ---------------------------------------------------------------- capture
    def set_capture(
        self, capture: Capture | None, thumbnails: list[np.ndarray] | None = None, *, move_views: bool = True
    ) -> None:
        """Draw the capture's frustums (with thumbnails; colour by split), its sparse points,
        set the scene's up direction and the initial view; None clears the capture nodes.
        Clicking a frustum moves every tab's view there."""
        with self._lock:
            for f in self.frustums:
                f.remove()
            self.frustums = []
            if self.points is not None:
                self.points.remove()
                self.points = None
            self.poses = []
            self.looking_through = None
            if capture is None:
                return
            self.poses = capture_poses(capture)
            self.extent = scene_extent(capture)
            scale = self.frustum_scale * self.extent
            for i, pose in enumerate(self.poses):
                handle = self.server.scene.add_camera_frustum(
                    names.frustum(i),
                    fov=pose.fov_y_rad,
                    aspect=pose.aspect,
                    scale=scale,
                    thickness=0.02 * scale,
                    color=TEST_COLOR if capture.splits[i] == "test" else TRAIN_COLOR,
                    image=None if thumbnails is None else thumbnails[i],
                    format="jpeg",
                    jpeg_quality=80,
                    wxyz=pose.wxyz,
                    position=pose.position,
                    visible=self.cameras_visible,
                )
                handle.on_click(lambda _event, i=i: self.look_through(i))
                self.frustums.append(handle)
            pts = capture.load_points()
            if pts is not None and len(pts[0]):
                xyz, rgb = pts
                self.points = self.server.scene.add_point_cloud(
                    names.SPARSE_POINTS,
                    points=xyz,
                    colors=rgb,
                    point_size=0.003 * self.extent,
                    point_shape="circle",
                    precision="float32",
                    visible=self.points_visible,
                )
            self._set_initial_view(capture, move_views)

    def _set_initial_view(self, capture: Capture, move_views: bool) -> None:
        """Up direction from the cameras; the views start at :func:`overview_pose`."""
        up = world_up(capture)
        self.server.scene.set_up_direction(tuple(float(x) for x in up))
        pose, target = overview_pose(capture, up)
        cam = self.server.initial_camera
        cam.position = pose.position
        cam.look_at = target
        cam.up = up
        cam.fov = pose.fov_y_rad
        if move_views:
            move_clients_to(self.server, pose)

    def look_through(self, index: int, *, move_views: bool = True) -> None:
        """Move every tab's view into frame ``index``'s camera; its frustum (whose photo would
        cover the view) is hidden until the views move into another one."""
        with self._lock:
            if not 0 <= index < len(self.poses):
                raise IndexError(f"frame {index} of {len(self.poses)}")
            if self.looking_through is not None and self.looking_through < len(self.frustums):
                self.frustums[self.looking_through].visible = self.cameras_visible
            self.frustums[index].visible = False
            self.looking_through = index
            if move_views:
                move_clients_to(self.server, self.poses[index])

    def set_cameras_visible(self, visible: bool) -> None:
        with self._lock:
            self.cameras_visible = visible
            for i, f in enumerate(self.frustums):
                f.visible = visible and i != self.looking_through

    def set_points_visible(self, visible: bool) -> None:
        with self._lock:
            self.points_visible = visible
            if self.points is not None:
                self.points.visible = visible

    def set_frustum_scale(self, fraction: float) -> None:
        """Frustum size as a fraction of the capture's extent."""
        with self._lock:
            self.frustum_scale = fraction
            for f in self.frustums:
                f.scale = fraction * self.extent
                f.thickness = 0.02 * fraction * self.extent
