"""Fused CPU projection + SH colour: the fast path of :func:`pipelines.gaussians.projection.project`
plus ``clamp_min(eval_sh(sh, dir) + 0.5, 0)``, as numba kernels parallel over Gaussians with a
hand-written backward (vector-Jacobian products of every step), in a ``torch.autograd.Function``.

Why: the PyTorch path (projection.py + sh.py) runs about 60 elementwise ops on [C, N, ...]
tensors forward and as many backward, each allocating; at 100k Gaussians that costs ~0.35 s of
CPU per forward+backward, more than compositing itself. One pass per Gaussian costs ~10 ms.
The PyTorch path stays the reference: tests compare values and gradients of the two.

Same rules and outputs as ``project`` (see projection.py): means2d, conics (a, b, c), depths,
radii (int32, 0 = culled) and colours (SH degree ``sh_degree`` along mean - camera centre).
Culled entries are zero and get no gradient. Arithmetic is float64 inside; outputs keep the
input dtype.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from pipelines.gaussians.projection import ALPHA_THRESHOLD, FRUSTUM_MARGIN, MAX_EXTENT
from pipelines.gaussians.raster_cpu import _call, _jit
from pipelines.gaussians.sh import SH_C0, SH_C1, SH_C2, SH_C3

_MAX_RADIUS = float(1 << 24)
_CHUNK = 512  # Gaussians per parallel work item
C20, C21, C22, C23, C24 = SH_C2
C30, C31, C32, C33, C34, C35, C36 = SH_C3


@_jit()
def _sh_basis(x, y, z, degree, b):
    """Basis values into b[16] (first (degree + 1)^2 used) at unit direction (x, y, z)."""
    b[0] = SH_C0
    if degree >= 1:
        b[1] = -SH_C1 * y
        b[2] = SH_C1 * z
        b[3] = -SH_C1 * x
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        b[4] = C20 * x * y
        b[5] = C21 * y * z
        b[6] = C22 * (2.0 * zz - xx - yy)
        b[7] = C23 * x * z
        b[8] = C24 * (xx - yy)
        if degree >= 3:
            b[9] = C30 * y * (3.0 * xx - yy)
            b[10] = C31 * x * y * z
            b[11] = C32 * y * (4.0 * zz - xx - yy)
            b[12] = C33 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
            b[13] = C34 * x * (4.0 * zz - xx - yy)
            b[14] = C35 * z * (xx - yy)
            b[15] = C36 * x * (xx - 3.0 * yy)


@_jit()
def _sh_basis_grad(x, y, z, degree, w, out):
    """out[0:3] = sum_k w[k] d b_k / d(x, y, z) (direction treated as free, not unit)."""
    gx = 0.0
    gy = 0.0
    gz = 0.0
    if degree >= 1:
        gy += -SH_C1 * w[1]
        gz += SH_C1 * w[2]
        gx += -SH_C1 * w[3]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        gx += C20 * y * w[4]
        gy += C20 * x * w[4]
        gy += C21 * z * w[5]
        gz += C21 * y * w[5]
        gx += -2.0 * C22 * x * w[6]
        gy += -2.0 * C22 * y * w[6]
        gz += 4.0 * C22 * z * w[6]
        gx += C23 * z * w[7]
        gz += C23 * x * w[7]
        gx += 2.0 * C24 * x * w[8]
        gy += -2.0 * C24 * y * w[8]
        if degree >= 3:
            gx += 6.0 * C30 * x * y * w[9]
            gy += C30 * (3.0 * xx - 3.0 * yy) * w[9]
            gx += C31 * y * z * w[10]
            gy += C31 * x * z * w[10]
            gz += C31 * x * y * w[10]
            gx += -2.0 * C32 * x * y * w[11]
            gy += C32 * (4.0 * zz - xx - 3.0 * yy) * w[11]
            gz += 8.0 * C32 * y * z * w[11]
            gx += -6.0 * C33 * x * z * w[12]
            gy += -6.0 * C33 * y * z * w[12]
            gz += C33 * (6.0 * zz - 3.0 * xx - 3.0 * yy) * w[12]
            gx += C34 * (4.0 * zz - 3.0 * xx - yy) * w[13]
            gy += -2.0 * C34 * x * y * w[13]
            gz += 8.0 * C34 * x * z * w[13]
            gx += 2.0 * C35 * x * z * w[14]
            gy += -2.0 * C35 * y * z * w[14]
            gz += C35 * (xx - yy) * w[14]
            gx += C36 * (3.0 * xx - 3.0 * yy) * w[15]
            gy += -6.0 * C36 * x * y * w[15]
    out[0] = gx
    out[1] = gy
    out[2] = gz


@_jit()
def _rotmat(qw, qx, qy, qz, R):
    """Unit quaternion (w, x, y, z) -> R [3, 3]."""
    R[0, 0] = 1.0 - 2.0 * (qy * qy + qz * qz)
    R[0, 1] = 2.0 * (qx * qy - qw * qz)
    R[0, 2] = 2.0 * (qx * qz + qw * qy)
    R[1, 0] = 2.0 * (qx * qy + qw * qz)
    R[1, 1] = 1.0 - 2.0 * (qx * qx + qz * qz)
    R[1, 2] = 2.0 * (qy * qz - qw * qx)
    R[2, 0] = 2.0 * (qx * qz - qw * qy)
    R[2, 1] = 2.0 * (qy * qz + qw * qx)
    R[2, 2] = 1.0 - 2.0 * (qx * qx + qy * qy)


@_jit(parallel=True)
def _fwd(means, quats, scales, opacities, sh, degree, viewR, viewt, intr, campos, width, height,
         eps2d, near, far, means2d, conics, depths, colors, radii):  # fmt: skip
    N = means.shape[0]
    C = viewR.shape[0]
    K = (degree + 1) * (degree + 1)
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    for chunk in numba.prange(n_chunks):  # scratch arrays once per chunk, not per Gaussian
        Rq = np.empty((3, 3))
        A = np.empty((3, 3))
        b = np.zeros(16)
        for g in range(chunk * _CHUNK, min(N, (chunk + 1) * _CHUNK)):
            qw, qx, qy, qz = (
                np.float64(quats[g, 0]),
                np.float64(quats[g, 1]),
                np.float64(quats[g, 2]),
                np.float64(quats[g, 3]),
            )
            qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            _rotmat(qw / qn, qx / qn, qy / qn, qz / qn, Rq)
            s0, s1, s2 = np.float64(scales[g, 0]), np.float64(scales[g, 1]), np.float64(scales[g, 2])
            mu0, mu1, mu2 = np.float64(means[g, 0]), np.float64(means[g, 1]), np.float64(means[g, 2])
            o = np.float64(opacities[g])
            for c in range(C):
                radii[c, g, 0] = 0
                radii[c, g, 1] = 0
                means2d[c, g, 0] = 0.0
                means2d[c, g, 1] = 0.0
                depths[c, g] = 0.0
                for j in range(3):
                    conics[c, g, j] = 0.0
                    colors[c, g, j] = 0.0
                x = viewR[c, 0, 0] * mu0 + viewR[c, 0, 1] * mu1 + viewR[c, 0, 2] * mu2 + viewt[c, 0]
                y = viewR[c, 1, 0] * mu0 + viewR[c, 1, 1] * mu1 + viewR[c, 1, 2] * mu2 + viewt[c, 1]
                z = viewR[c, 2, 0] * mu0 + viewR[c, 2, 1] * mu1 + viewR[c, 2, 2] * mu2 + viewt[c, 2]
                if z < near or z > far or o < ALPHA_THRESHOLD:
                    continue
                fx, fy, cx, cy = intr[c, 0], intr[c, 1], intr[c, 2], intr[c, 3]
                rz = 1.0 / z
                tanx = FRUSTUM_MARGIN * 0.5 * width / fx
                tany = FRUSTUM_MARGIN * 0.5 * height / fy
                ux = min(max(x * rz, -(cx / fx + tanx)), (width - cx) / fx + tanx)
                uy = min(max(y * rz, -(cy / fy + tany)), (height - cy) / fy + tany)
                for i in range(3):  # A = W R diag(s)
                    A[i, 0] = (
                        viewR[c, i, 0] * Rq[0, 0] + viewR[c, i, 1] * Rq[1, 0] + viewR[c, i, 2] * Rq[2, 0]
                    ) * s0
                    A[i, 1] = (
                        viewR[c, i, 0] * Rq[0, 1] + viewR[c, i, 1] * Rq[1, 1] + viewR[c, i, 2] * Rq[2, 1]
                    ) * s1
                    A[i, 2] = (
                        viewR[c, i, 0] * Rq[0, 2] + viewR[c, i, 1] * Rq[1, 2] + viewR[c, i, 2] * Rq[2, 2]
                    ) * s2
                sxx = eps2d
                sxy = 0.0
                syy = eps2d
                for j in range(3):
                    r0 = fx * rz * (A[0, j] - ux * A[2, j])
                    r1 = fy * rz * (A[1, j] - uy * A[2, j])
                    sxx += r0 * r0
                    sxy += r0 * r1
                    syy += r1 * r1
                det = sxx * syy - sxy * sxy
                if det <= 0.0:
                    continue
                ext = min(MAX_EXTENT, math.sqrt(2.0 * math.log(o / ALPHA_THRESHOLD)))
                rx = min(math.ceil(ext * math.sqrt(sxx)), _MAX_RADIUS)
                ry = min(math.ceil(ext * math.sqrt(syy)), _MAX_RADIUS)
                mx = fx * x * rz + cx
                my = fy * y * rz + cy
                if mx + rx <= 0 or mx - rx >= width or my + ry <= 0 or my - ry >= height:
                    continue
                radii[c, g, 0] = np.int32(rx)
                radii[c, g, 1] = np.int32(ry)
                means2d[c, g, 0] = mx
                means2d[c, g, 1] = my
                depths[c, g] = z
                conics[c, g, 0] = syy / det
                conics[c, g, 1] = -sxy / det
                conics[c, g, 2] = sxx / det
                dx, dy, dz = mu0 - campos[c, 0], mu1 - campos[c, 1], mu2 - campos[c, 2]
                dn = math.sqrt(dx * dx + dy * dy + dz * dz)
                dn = max(dn, 1e-12)
                _sh_basis(dx / dn, dy / dn, dz / dn, degree, b)
                for ch in range(3):
                    v = 0.5
                    for k in range(K):
                        v += b[k] * sh[g, k, ch]
                    colors[c, g, ch] = max(v, 0.0)


@_jit(parallel=True)
def _bwd(means, quats, scales, opacities, sh, degree, viewR, viewt, intr, campos, width, height,
         eps2d, radii, v_means2d, v_conics, v_depths, v_colors,
         v_means, v_quats, v_scales, v_sh):  # fmt: skip
    N = means.shape[0]
    C = viewR.shape[0]
    K = (degree + 1) * (degree + 1)
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    for chunk in numba.prange(n_chunks):  # scratch arrays once per chunk, not per Gaussian
        Rq = np.empty((3, 3))
        A = np.empty((3, 3))
        vA = np.empty((3, 3))
        vM = np.empty((3, 3))
        G = np.empty((3, 3))
        b = np.zeros(16)
        wsh = np.zeros(16)
        gdir = np.zeros(3)
        r0 = np.empty(3)
        r1 = np.empty(3)
        for g in range(chunk * _CHUNK, min(N, (chunk + 1) * _CHUNK)):
            vM[:, :] = 0.0
            v_sh[g, :, :] = 0.0
            qw0, qx0, qy0, qz0 = (
                np.float64(quats[g, 0]),
                np.float64(quats[g, 1]),
                np.float64(quats[g, 2]),
                np.float64(quats[g, 3]),
            )
            qn = math.sqrt(qw0 * qw0 + qx0 * qx0 + qy0 * qy0 + qz0 * qz0)
            qw, qx, qy, qz = qw0 / qn, qx0 / qn, qy0 / qn, qz0 / qn
            _rotmat(qw, qx, qy, qz, Rq)
            s = (np.float64(scales[g, 0]), np.float64(scales[g, 1]), np.float64(scales[g, 2]))
            mu0, mu1, mu2 = np.float64(means[g, 0]), np.float64(means[g, 1]), np.float64(means[g, 2])
            gm0 = 0.0
            gm1 = 0.0
            gm2 = 0.0
            for c in range(C):
                if radii[c, g, 0] == 0 and radii[c, g, 1] == 0:
                    continue
                x = viewR[c, 0, 0] * mu0 + viewR[c, 0, 1] * mu1 + viewR[c, 0, 2] * mu2 + viewt[c, 0]
                y = viewR[c, 1, 0] * mu0 + viewR[c, 1, 1] * mu1 + viewR[c, 1, 2] * mu2 + viewt[c, 1]
                z = viewR[c, 2, 0] * mu0 + viewR[c, 2, 1] * mu1 + viewR[c, 2, 2] * mu2 + viewt[c, 2]
                fx, fy, cx, cy = intr[c, 0], intr[c, 1], intr[c, 2], intr[c, 3]
                rz = 1.0 / z
                tanx = FRUSTUM_MARGIN * 0.5 * width / fx
                tany = FRUSTUM_MARGIN * 0.5 * height / fy
                lox, hix = -(cx / fx + tanx), (width - cx) / fx + tanx
                loy, hiy = -(cy / fy + tany), (height - cy) / fy + tany
                ux = min(max(x * rz, lox), hix)
                uy = min(max(y * rz, loy), hiy)
                for i in range(3):
                    for j in range(3):
                        A[i, j] = (
                            viewR[c, i, 0] * Rq[0, j] + viewR[c, i, 1] * Rq[1, j] + viewR[c, i, 2] * Rq[2, j]
                        ) * s[j]
                sxx = eps2d
                sxy = 0.0
                syy = eps2d
                for j in range(3):
                    r0[j] = fx * rz * (A[0, j] - ux * A[2, j])
                    r1[j] = fy * rz * (A[1, j] - uy * A[2, j])
                    sxx += r0[j] * r0[j]
                    sxy += r0[j] * r1[j]
                    syy += r1[j] * r1[j]
                det = sxx * syy - sxy * sxy
                qa, qb, qc = syy / det, -sxy / det, sxx / det
                # conic = inv(S): dL/dS = -Q G Q with G = [[va, vb/2], [vb/2, vc]] (b appears twice)
                ga, gb, gc = (
                    np.float64(v_conics[c, g, 0]),
                    0.5 * np.float64(v_conics[c, g, 1]),
                    np.float64(v_conics[c, g, 2]),
                )
                t00 = ga * qa + gb * qb
                t01 = ga * qb + gb * qc
                t10 = gb * qa + gc * qb
                t11 = gb * qb + gc * qc
                v_sxx = -(qa * t00 + qb * t10)
                v_sxy = -2.0 * (qa * t01 + qb * t11)
                v_syy = -(qb * t01 + qc * t11)
                # S = [r0.r0 + eps, r0.r1; ., r1.r1 + eps]
                v_rz = 0.0
                v_ux = 0.0
                v_uy = 0.0
                for j in range(3):
                    vr0 = 2.0 * v_sxx * r0[j] + v_sxy * r1[j]
                    vr1 = 2.0 * v_syy * r1[j] + v_sxy * r0[j]
                    # r0 = fx rz (a0 - ux a2), r1 = fy rz (a1 - uy a2)
                    vA[0, j] = fx * rz * vr0
                    vA[1, j] = fy * rz * vr1
                    vA[2, j] = -fx * rz * ux * vr0 - fy * rz * uy * vr1
                    v_ux += -fx * rz * A[2, j] * vr0
                    v_uy += -fy * rz * A[2, j] * vr1
                    v_rz += fx * (A[0, j] - ux * A[2, j]) * vr0 + fy * (A[1, j] - uy * A[2, j]) * vr1
                # means2d = (fx x rz + cx, fy y rz + cy); depth = z
                vmx, vmy = np.float64(v_means2d[c, g, 0]), np.float64(v_means2d[c, g, 1])
                v_x = fx * rz * vmx
                v_y = fy * rz * vmy
                v_rz += fx * x * vmx + fy * y * vmy
                v_z = np.float64(v_depths[c, g])
                if lox <= x * rz <= hix:  # the clamp passes gradient inside its range (torch.clamp rule)
                    v_x += v_ux * rz
                    v_rz += v_ux * x
                if loy <= y * rz <= hiy:
                    v_y += v_uy * rz
                    v_rz += v_uy * y
                v_z += -rz * rz * v_rz
                # t = W mu + w
                for i in range(3):
                    wrow = v_x * viewR[c, 0, i] + v_y * viewR[c, 1, i] + v_z * viewR[c, 2, i]
                    if i == 0:
                        gm0 += wrow
                    elif i == 1:
                        gm1 += wrow
                    else:
                        gm2 += wrow
                # A = W M: vM += W^T vA
                for i in range(3):
                    for j in range(3):
                        vM[i, j] += (
                            viewR[c, 0, i] * vA[0, j] + viewR[c, 1, i] * vA[1, j] + viewR[c, 2, i] * vA[2, j]
                        )
                # colour = max(sum_k b_k sh_k + 0.5, 0) along d = mu - campos
                dx, dy, dz = mu0 - campos[c, 0], mu1 - campos[c, 1], mu2 - campos[c, 2]
                dn = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
                ex, ey, ez = dx / dn, dy / dn, dz / dn
                _sh_basis(ex, ey, ez, degree, b)
                for k in range(K):
                    wsh[k] = 0.0
                for ch in range(3):
                    v = 0.5
                    for k in range(K):
                        v += b[k] * sh[g, k, ch]
                    if v < 0.0:
                        continue
                    vc = np.float64(v_colors[c, g, ch])
                    for k in range(K):
                        v_sh[g, k, ch] += b[k] * vc
                        wsh[k] += sh[g, k, ch] * vc
                if degree > 0:
                    _sh_basis_grad(ex, ey, ez, degree, wsh, gdir)
                    dot = gdir[0] * ex + gdir[1] * ey + gdir[2] * ez
                    gm0 += (gdir[0] - dot * ex) / dn
                    gm1 += (gdir[1] - dot * ey) / dn
                    gm2 += (gdir[2] - dot * ez) / dn
            v_means[g, 0] = gm0
            v_means[g, 1] = gm1
            v_means[g, 2] = gm2
            # M = Rq diag(s)
            for j in range(3):
                v_scales[g, j] = vM[0, j] * Rq[0, j] + vM[1, j] * Rq[1, j] + vM[2, j] * Rq[2, j]
                for i in range(3):
                    G[i, j] = vM[i, j] * s[j]
            vw = 2.0 * (
                -qz * G[0, 1] + qy * G[0, 2] + qz * G[1, 0] - qx * G[1, 2] - qy * G[2, 0] + qx * G[2, 1]
            )
            vx = 2.0 * (qy * G[0, 1] + qz * G[0, 2] + qy * G[1, 0] - 2.0 * qx * G[1, 1] - qw * G[1, 2]
                        + qz * G[2, 0] + qw * G[2, 1] - 2.0 * qx * G[2, 2])  # fmt: skip
            vy = 2.0 * (-2.0 * qy * G[0, 0] + qx * G[0, 1] + qw * G[0, 2] + qx * G[1, 0] + qz * G[1, 2]
                        - qw * G[2, 0] + qz * G[2, 1] - 2.0 * qy * G[2, 2])  # fmt: skip
            vz = 2.0 * (-2.0 * qz * G[0, 0] - qw * G[0, 1] + qx * G[0, 2] + qw * G[1, 0] - 2.0 * qz * G[1, 1]
                        + qy * G[1, 2] + qx * G[2, 0] + qy * G[2, 1])  # fmt: skip
            dot = vw * qw + vx * qx + vy * qy + vz * qz  # normalization: (v - q (q.v)) / |q|
            v_quats[g, 0] = (vw - dot * qw) / qn
            v_quats[g, 1] = (vx - dot * qx) / qn
            v_quats[g, 2] = (vy - dot * qy) / qn
            v_quats[g, 3] = (vz - dot * qz) / qn


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _ProjectSH(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, means, quats, scales, sh, opacities, w2c, K, campos, width, height, degree, eps2d, near, far
    ):
        C, N = w2c.shape[0], means.shape[0]
        dt = means.dtype
        f64 = lambda t: t.detach().to(torch.float64).contiguous().numpy()  # noqa: E731
        intr = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], -1)  # [C, 4] fx fy cx cy
        cam = (f64(w2c[:, :3, :3]), f64(w2c[:, :3, 3]), f64(intr), f64(campos))
        means2d = torch.empty(C, N, 2, dtype=dt)  # every entry is written by the kernel (0 if culled)
        conics = torch.empty(C, N, 3, dtype=dt)
        depths = torch.empty(C, N, dtype=dt)
        colors = torch.empty(C, N, 3, dtype=dt)
        radii = torch.empty(C, N, 2, dtype=torch.int32)
        ins = (_np(means), _np(quats), _np(scales), _np(opacities), _np(sh), degree)
        _call("project", _fwd, *ins, *cam, width, height, eps2d, near, far,
              means2d.numpy(), conics.numpy(), depths.numpy(), colors.numpy(), radii.numpy(),
              work=C * N)  # fmt: skip
        ctx.save_for_backward(means, quats, scales, sh, opacities, radii)
        ctx.cam = cam
        ctx.consts = (width, height, degree, eps2d)
        ctx.mark_non_differentiable(radii)
        return means2d, conics, depths, colors, radii

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, v_colors, _v_radii):
        means, quats, scales, sh, opacities, radii = ctx.saved_tensors
        width, height, degree, eps2d = ctx.consts
        C, N = radii.shape[:2]
        dt = means.dtype
        z = lambda *s: torch.zeros(*s, dtype=dt)  # noqa: E731
        shapes = ((C, N, 2), (C, N, 3), (C, N), (C, N, 3))
        grads = [
            t if t is not None else z(*shape)
            for t, shape in zip((v_means2d, v_conics, v_depths, v_colors), shapes, strict=True)
        ]
        e = lambda *s: torch.empty(*s, dtype=dt)  # noqa: E731
        v_means, v_quats, v_scales = e(N, 3), e(N, 4), e(N, 3)  # written for every Gaussian
        v_sh = torch.empty(sh.shape, dtype=dt)  # zeroed per Gaussian in the kernel
        ins = (_np(means), _np(quats), _np(scales), _np(opacities), _np(sh), degree)
        _call("project_backward", _bwd, *ins, *ctx.cam, width, height, eps2d, radii.numpy(),
              *(_np(t.to(dt)) for t in grads), v_means.numpy(), v_quats.numpy(), v_scales.numpy(),
              v_sh.numpy(), work=C * N)  # fmt: skip
        return v_means, v_quats, v_scales, v_sh, None, None, None, None, None, None, None, None, None, None


def project_sh(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    sh: Tensor,  # [N, K, 3]
    w2c: Tensor,  # [C, 4, 4]
    K: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Fused projection and SH colours on the CPU: (means2d [C,N,2], conics [C,N,3], depths [C,N],
    colors [C,N,3], radii int32 [C,N,2]). Arguments as in ``projection.project`` (opacities
    required, used for the box and culling only) plus sh [N,K,3] evaluated to ``sh_degree``
    along mean - camera centre. Differentiable w.r.t. means, quats, scales and sh."""
    N, C = means.shape[0], w2c.shape[0]
    assert sh.ndim == 3 and sh.shape[0] == N and sh.shape[2] == 3, (
        f"sh must be [N,K,3], got {tuple(sh.shape)}"
    )
    assert sh.shape[1] >= (sh_degree + 1) ** 2, (
        f"sh has {sh.shape[1]} coefficients, degree {sh_degree} needs more"
    )
    assert w2c.shape == (C, 4, 4) and K.shape == (C, 3, 3), (tuple(w2c.shape), tuple(K.shape))
    dt = means.dtype
    campos = torch.linalg.inv(w2c.detach().double())[:, :3, 3]
    quats, scales, opacities, sh = (t.to(dt) for t in (quats, scales, opacities, sh))
    return _ProjectSH.apply(means, quats, scales, sh, opacities, w2c, K, campos, width, height, sh_degree,
                            eps2d, near_plane, far_plane)  # fmt: skip
