"""Cameras: the one camera type of the project, and every conversion to other conventions.

Convention (ARCHITECTURE.md): OpenCV axes (x right, y down, z forward), camera-to-world
``c2w [N, 4, 4]``, pinhole intrinsics ``K [N, 3, 3]`` in pixels of the stored image size, pixel
centres at integer + 0.5. All cameras of one ``Cameras`` share ``width`` and ``height``.

Conversions to and from OpenGL / nerfstudio / COLMAP live here and nowhere else.

Examples:
    >>> cams = Cameras.look_at(eye=torch.tensor([[0.0, 0.0, -3.0]]), target=torch.zeros(1, 3),
    ...                        fov_y_deg=60.0, width=64, height=48)
    >>> cams.plucker().shape
    torch.Size([1, 48, 64, 6])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.transforms import Similarity, quat_to_rotmat, rotmat_to_quat

# OpenCV camera axes -> OpenGL camera axes (x right, y up, z backward): flip y and z.
_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


# ns-process-data's world change for COLMAP models (its ``applied_transform``, [3, 4]): world
# (x, y, z) -> (x, z, -y), turning COLMAP's usual -y-up world into nerfstudio's +z-up one.
NERFSTUDIO_APPLIED_TRANSFORM = torch.tensor(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]], dtype=torch.float64
)


def _affine_4x4(applied_transform: Tensor) -> Tensor:
    A = torch.eye(4, dtype=torch.float64)
    A[:3] = torch.as_tensor(applied_transform, dtype=torch.float64)
    return A


def points_to_nerfstudio(points: Tensor, applied_transform: Tensor) -> Tensor:
    """World points [P, 3] -> the nerfstudio world of ``applied_transform`` [3, 4] (x' = A [x; 1]),
    as ns-process-data writes ``sparse_pc.ply``. float64."""
    A = _affine_4x4(applied_transform)
    return torch.as_tensor(points, dtype=torch.float64) @ A[:3, :3].T + A[:3, 3]


def points_from_nerfstudio(points: Tensor, applied_transform: Tensor) -> Tensor:
    """Inverse of :func:`points_to_nerfstudio`: nerfstudio-world points [P, 3] -> original world."""
    A_inv = torch.linalg.inv(_affine_4x4(applied_transform))
    return torch.as_tensor(points, dtype=torch.float64) @ A_inv[:3, :3].T + A_inv[:3, 3]


RIGID_TOL = 1e-3  # |R^T R - I| and |bottom row - [0 0 0 1]| of a pose read from a file


def camera_problem(c2w, fx: float, fy: float, cx: float, cy: float) -> str | None:
    """What is wrong with one camera read from a file (c2w [4, 4] array-like, OpenCV axes;
    intrinsics in pixels), or None: non-finite values, a pose that is not a rotation plus a
    translation (within :data:`RIGID_TOL`), a focal length that is not positive."""
    import numpy as np

    T = np.asarray(c2w, dtype=np.float64)
    if T.shape != (4, 4):
        return f"the pose is {T.shape}, not 4x4"
    if not np.isfinite(T).all():
        return "the pose has NaN or infinite entries"
    intrinsics = np.array([fx, fy, cx, cy], dtype=np.float64)
    if not np.isfinite(intrinsics).all():
        return f"the intrinsics are not finite (fx {fx}, fy {fy}, cx {cx}, cy {cy})"
    if fx <= 0 or fy <= 0:
        return f"the focal length must be positive (fx {fx:g}, fy {fy:g})"
    R = T[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > RIGID_TOL or np.linalg.det(R) <= 0 or np.abs(T[3] - [0, 0, 0, 1]).max() > RIGID_TOL:
        return f"the pose is not a rotation plus a translation (|R^T R - I| = {err:.2g})"
    return None


def make_K(fx: Tensor, fy: Tensor, cx: Tensor, cy: Tensor) -> Tensor:
    """fx, fy, cx, cy [...] pixels -> K [..., 3, 3]. The one place a K is built from four numbers."""
    fx, fy, cx, cy = torch.broadcast_tensors(*(torch.as_tensor(v) for v in (fx, fy, cx, cy)))
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    K = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], dim=-1)
    return K.reshape(fx.shape + (3, 3))


def invert_rigid(T: Tensor) -> Tensor:
    """Rigid transforms [..., 4, 4] -> inverses [..., 4, 4] (R^T, -R^T t)."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return out


@dataclass
class Cameras:
    """N pinhole cameras sharing one image size.

    c2w [N, 4, 4] camera-to-world, OpenCV axes (x right, y down, z forward), rigid.
    K [N, 3, 3] intrinsics in pixels; pixel (u, v) centres at (i + 0.5, j + 0.5).
    width, height: image size in pixels.
    """

    c2w: Tensor  # [N, 4, 4]
    K: Tensor  # [N, 3, 3]
    width: int
    height: int

    def __post_init__(self) -> None:
        assert self.c2w.ndim == 3 and self.c2w.shape[-2:] == (4, 4), f"c2w must be [N,4,4], got {tuple(self.c2w.shape)}"
        assert self.K.shape == (self.c2w.shape[0], 3, 3), f"K must be [N,3,3], got {tuple(self.K.shape)}"
        assert self.c2w.device == self.K.device, (self.c2w.device, self.K.device)
        self.width, self.height = int(self.width), int(self.height)
        assert self.width > 0 and self.height > 0, (self.width, self.height)

    # ----------------------------------------------------------------- basics
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index: int | slice | Tensor | list[int]) -> Cameras:
        """A subset; an int keeps the leading dimension (one camera, N = 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Cameras(self.c2w[index], self.K[index], self.width, self.height)

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Cameras:
        return Cameras(self.c2w.to(device, dtype), self.K.to(device, dtype), self.width, self.height)

    @staticmethod
    def cat(cams: list[Cameras]) -> Cameras:
        assert len({(c.width, c.height) for c in cams}) == 1, "cameras of different image sizes"
        return Cameras(torch.cat([c.c2w for c in cams]), torch.cat([c.K for c in cams]), cams[0].width, cams[0].height)

    @property
    def fx(self) -> Tensor:
        return self.K[:, 0, 0]

    @property
    def fy(self) -> Tensor:
        return self.K[:, 1, 1]

    @property
    def cx(self) -> Tensor:
        return self.K[:, 0, 2]

    @property
    def cy(self) -> Tensor:
        return self.K[:, 1, 2]

    def fov_y_rad(self) -> Tensor:
        """Vertical field of view [N] in radians."""
        return 2 * torch.atan(0.5 * self.height / self.fy)

    def w2c(self) -> Tensor:
        """World-to-camera [N, 4, 4], OpenCV (gsplat's ``viewmats``)."""
        return invert_rigid(self.c2w)

    def centers(self) -> Tensor:
        """Camera centres [N, 3] in world coordinates."""
        return self.c2w[:, :3, 3]

    def forward_dirs(self) -> Tensor:
        """Unit viewing directions (camera +z) [N, 3] in world coordinates."""
        return self.c2w[:, :3, 2]

    @staticmethod
    def from_w2c(w2c: Tensor, K: Tensor, width: int, height: int) -> Cameras:
        return Cameras(invert_rigid(w2c), K, width, height)

    @staticmethod
    def look_at(
        eye: Tensor, target: Tensor, *, fov_y_deg: float, width: int, height: int, up: Tensor | None = None
    ) -> Cameras:
        """Cameras at eye [N, 3] looking at target [N, 3]; ``up`` [3] world up (default -y, OpenCV).

        The image's up direction (camera -y) is as close to ``up`` as possible.
        """
        eye, target = torch.as_tensor(eye, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
        up = torch.tensor([0.0, -1.0, 0.0]) if up is None else torch.as_tensor(up, dtype=torch.float32)
        z = torch.nn.functional.normalize(target - eye, dim=-1)  # [N, 3] forward
        # OpenCV axes are right-handed (x right, y down, z forward): x = y cross z with y ~ -up.
        x = torch.nn.functional.normalize(torch.linalg.cross(-up.expand_as(z), z, dim=-1), dim=-1)
        y = torch.linalg.cross(z, x, dim=-1)
        c2w = torch.eye(4).repeat(eye.shape[0], 1, 1)
        c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, eye
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        K = make_K(torch.tensor(f), torch.tensor(f), torch.tensor(width / 2), torch.tensor(height / 2))
        return Cameras(c2w, K.expand(eye.shape[0], 3, 3).clone(), width, height)

    # ----------------------------------------------------- other conventions
    def c2w_opengl(self) -> Tensor:
        """Camera-to-world [N, 4, 4] with OpenGL / nerfstudio / Blender camera axes (y up, z back)."""
        return self.c2w @ _FLIP_YZ.to(self.c2w)

    @staticmethod
    def from_opengl(c2w_gl: Tensor, K: Tensor, width: int, height: int) -> Cameras:
        """Inverse of :meth:`c2w_opengl`."""
        return Cameras(c2w_gl @ _FLIP_YZ.to(c2w_gl), K, width, height)

    def K_normalized(self) -> Tensor:
        """Intrinsics [N, 3, 3] in image-size units: row 0 divided by width, row 1 by height
        (focal lengths and principal point as fractions of the image; GeoLRM's convention)."""
        S = torch.tensor([1.0 / self.width, 1.0 / self.height, 1.0], dtype=self.K.dtype, device=self.K.device)
        return self.K * S[:, None]

    def to_colmap(self) -> tuple[Tensor, Tensor]:
        """COLMAP world-to-camera: (qvec [N, 4] wxyz with w >= 0, tvec [N, 3])."""
        w2c = self.w2c()
        return rotmat_to_quat(w2c[:, :3, :3]), w2c[:, :3, 3]

    @staticmethod
    def from_colmap(qvec: Tensor, tvec: Tensor, K: Tensor, width: int, height: int) -> Cameras:
        """qvec [N, 4] wxyz and tvec [N, 3] of COLMAP's world-to-camera (OpenCV axes)."""
        w2c = torch.eye(4, dtype=tvec.dtype, device=tvec.device).repeat(tvec.shape[0], 1, 1)
        w2c[:, :3, :3] = quat_to_rotmat(qvec.to(tvec.dtype))
        w2c[:, :3, 3] = tvec
        return Cameras.from_w2c(w2c, K, width, height)

    def to_nerfstudio(self, applied_transform: Tensor | None = None) -> Tensor:
        """nerfstudio ``transform_matrix`` [N, 4, 4]: OpenGL camera axes, in the world frame of
        ``applied_transform`` [3, 4] (x_ns = A @ [x; 1]) when given."""
        c2w = self.c2w.double()
        if applied_transform is not None:
            A = torch.eye(4, dtype=torch.float64)
            A[:3] = torch.as_tensor(applied_transform, dtype=torch.float64)
            c2w = A.to(c2w.device) @ c2w
        return (c2w @ _FLIP_YZ.to(c2w)).to(self.c2w.dtype)

    @staticmethod
    def from_nerfstudio(
        transform_matrix: Tensor, K: Tensor, width: int, height: int, applied_transform: Tensor | None = None
    ) -> Cameras:
        """Inverse of :meth:`to_nerfstudio`: undoes ``applied_transform`` [3, 4] when given, so the
        result is in the original (e.g. COLMAP) world frame."""
        c2w = torch.as_tensor(transform_matrix, dtype=torch.float64) @ _FLIP_YZ
        if applied_transform is not None:
            A = torch.eye(4, dtype=torch.float64)
            A[:3] = torch.as_tensor(applied_transform, dtype=torch.float64)
            c2w = torch.linalg.inv(A) @ c2w
        return Cameras(c2w.float(), torch.as_tensor(K, dtype=torch.float32), width, height)

    # -------------------------------------------------------- image geometry
    def resize(self, width: int, height: int) -> Cameras:
        """Cameras for the image resized to (width, height); K scales with the pixel grid."""
        sx, sy = width / self.width, height / self.height
        S = torch.tensor([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=self.K.dtype, device=self.K.device)
        return Cameras(self.c2w, S @ self.K, width, height)

    def scale(self, factor: float) -> Cameras:
        """Resize by ``factor`` (0.5 halves each side), sides rounded to whole pixels."""
        return self.resize(max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def crop(self, x0: int, y0: int, width: int, height: int) -> Cameras:
        """Cameras for the window [x0, x0 + width) x [y0, y0 + height) of the image."""
        K = self.K.clone()
        K[:, 0, 2] -= x0
        K[:, 1, 2] -= y0
        return Cameras(self.c2w, K, width, height)

    def pixel_rays(self) -> tuple[Tensor, Tensor]:
        """Rays through pixel centres: origins [N, H, W, 3] and unit directions [N, H, W, 3], world."""
        dev, dt = self.c2w.device, self.c2w.dtype
        v, u = torch.meshgrid(
            torch.arange(self.height, device=dev, dtype=dt) + 0.5,
            torch.arange(self.width, device=dev, dtype=dt) + 0.5,
            indexing="ij",
        )  # [H, W]
        x = (u[None] - self.cx[:, None, None]) / self.fx[:, None, None]  # [N, H, W]
        y = (v[None] - self.cy[:, None, None]) / self.fy[:, None, None]
        d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [N, H, W, 3]
        d = torch.einsum("nij,nhwj->nhwi", self.c2w[:, :3, :3], d_cam)
        d = torch.nn.functional.normalize(d, dim=-1)
        o = self.c2w[:, None, None, :3, 3].expand_as(d)
        return o, d

    def plucker(self) -> Tensor:
        """Plücker coordinates [N, H, W, 6] = [o x d, d] per pixel (moment first), unit d."""
        o, d = self.pixel_rays()
        return torch.cat([torch.linalg.cross(o, d, dim=-1), d], dim=-1)

    def unproject(self, depth: Tensor) -> Tensor:
        """Camera z-depth [N, H, W] at pixel centres -> world points [N, H, W, 3] (the inverse of
        :meth:`project`)."""
        dev, dt = self.c2w.device, self.c2w.dtype
        assert depth.shape == (len(self), self.height, self.width), (
            f"depth must be {(len(self), self.height, self.width)}, got {tuple(depth.shape)}"
        )
        v, u = torch.meshgrid(
            torch.arange(self.height, device=dev, dtype=dt) + 0.5,
            torch.arange(self.width, device=dev, dtype=dt) + 0.5,
            indexing="ij",
        )
        z = depth.to(dev, dt)
        x = (u[None] - self.cx[:, None, None]) / self.fx[:, None, None] * z
        y = (v[None] - self.cy[:, None, None]) / self.fy[:, None, None] * z
        p_cam = torch.stack([x, y, z], dim=-1)  # [N, H, W, 3]
        return torch.einsum("nij,nhwj->nhwi", self.c2w[:, :3, :3], p_cam) + self.c2w[:, None, None, :3, 3]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points [P, 3] -> pixel coordinates [N, P, 2] and camera z-depth [N, P]."""
        w2c = self.w2c()
        p_cam = torch.einsum("nij,pj->npi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]  # [N, P, 3]
        z = p_cam[..., 2]
        uv = torch.einsum("nij,npj->npi", self.K, p_cam)[..., :2] / z[..., None]
        return uv, z

    # ----------------------------------------------------------- transforms
    def transform(self, sim: Similarity) -> Cameras:
        """The same cameras in the frame x' = s R x + t: rotation R @ R_c, centre s R c + t.

        Intrinsics are unchanged; an image of the transformed scene from the transformed camera
        equals the original image.
        """
        R = sim.rotation.to(self.c2w)
        c2w = self.c2w.clone()
        c2w[:, :3, :3] = R @ self.c2w[:, :3, :3]
        c2w[:, :3, 3] = sim.apply(self.c2w[:, :3, 3])
        return Cameras(c2w, self.K, self.width, self.height)
