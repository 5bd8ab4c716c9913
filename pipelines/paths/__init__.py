"""Camera paths: keyframes and timing (:mod:`path`), smooth interpolation (:mod:`interpolate`),
automatic paths that follow the captured range (:mod:`auto`), nerfstudio camera_path.json
interchange (:mod:`nerfstudio`) and videos rendered along a path (:mod:`video`). Pure
computation: nothing here imports viser."""

from pipelines.paths.auto import (
    CaptureShape,
    auto_path,
    capture_shape,
    center_of_interest,
    input_cameras_path,
    orbit_path,
    world_up,
)
from pipelines.paths.interpolate import PathPoses, interpolate, pose_at, sample_cameras
from pipelines.paths.nerfstudio import (
    PathWorld,
    from_nerfstudio,
    nerfstudio_world,
    read_camera_path,
    recorded_world,
    to_nerfstudio,
    write_camera_path,
)
from pipelines.paths.path import CameraPath, Keyframe, even_size, focal_to_fov, fov_to_focal, video_size

__all__ = [
    "CameraPath",
    "CaptureShape",
    "Keyframe",
    "PathPoses",
    "PathWorld",
    "auto_path",
    "capture_shape",
    "center_of_interest",
    "even_size",
    "focal_to_fov",
    "fov_to_focal",
    "from_nerfstudio",
    "input_cameras_path",
    "interpolate",
    "world_up",
    "nerfstudio_world",
    "orbit_path",
    "pose_at",
    "read_camera_path",
    "recorded_world",
    "sample_cameras",
    "to_nerfstudio",
    "video_size",
    "write_camera_path",
]
