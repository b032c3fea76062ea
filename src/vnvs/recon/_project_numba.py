"""Compiled CPU kernels of the Gaussian projection (numba): :func:`vnvs.recon.rasterize.project_gaussians`
fused into one pass per Gaussian, and its hand-written backward.

They follow the torch definition operation by operation, the branches included: a Gaussian behind the
near plane is projected with ``z = 1`` and an unusable 2D covariance is inverted with ``det = 1`` (both
get radius 0, so compositing ignores them), and the Jacobian is taken at ``x/z``, ``y/z`` clamped to
30% beyond the image. Float64 inside, parallel over Gaussians.
"""

from __future__ import annotations

import math

import numba
import numpy as np

NEAR = 0.01
LOW_PASS = 0.3


@numba.njit(inline="always")
def _quat_rotmat(qw, qx, qy, qz):  # pragma: no cover - compiled
    """Rotation of a unit quaternion, row major."""
    return (1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
            2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
            2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy))


@numba.njit(parallel=True, cache=True)
def project_forward(means, log_scales, quats, R, t, fx, fy, cx, cy, width, height,
                    means2d, conics, depths, radii):  # pragma: no cover - compiled
    """Fill ``means2d (N, 2)``, ``conics (N, 3)``, ``depths (N,)`` and ``radii (N,)`` (int64)."""
    n = means.shape[0]
    lo_x, hi_x = (-0.15 * width - cx) / fx, (1.15 * width - cx) / fx
    lo_y, hi_y = (-0.15 * height - cy) / fy, (1.15 * height - cy) / fy
    for i in numba.prange(n):
        px = R[0, 0] * means[i, 0] + R[0, 1] * means[i, 1] + R[0, 2] * means[i, 2] + t[0]
        py = R[1, 0] * means[i, 0] + R[1, 1] * means[i, 1] + R[1, 2] * means[i, 2] + t[1]
        pz = R[2, 0] * means[i, 0] + R[2, 1] * means[i, 1] + R[2, 2] * means[i, 2] + t[2]
        ok = pz > NEAR
        zs = pz if ok else 1.0
        tx = min(max(px / zs, lo_x), hi_x) * zs
        ty = min(max(py / zs, lo_y), hi_y) * zs
        j00, j02 = fx / zs, -fx * tx / (zs * zs)
        j11, j12 = fy / zs, -fy * ty / (zs * zs)
        # M = J R (2 x 3)
        m0 = (j00 * R[0, 0] + j02 * R[2, 0], j00 * R[0, 1] + j02 * R[2, 1], j00 * R[0, 2] + j02 * R[2, 2])
        m1 = (j11 * R[1, 0] + j12 * R[2, 0], j11 * R[1, 1] + j12 * R[2, 1], j11 * R[1, 2] + j12 * R[2, 2])
        # Sigma = (Rq S)(Rq S)^T
        qn = math.sqrt(quats[i, 0] ** 2 + quats[i, 1] ** 2 + quats[i, 2] ** 2 + quats[i, 3] ** 2)
        qn = max(qn, 1e-12)
        rq = _quat_rotmat(quats[i, 0] / qn, quats[i, 1] / qn, quats[i, 2] / qn, quats[i, 3] / qn)
        e0, e1, e2 = math.exp(log_scales[i, 0]), math.exp(log_scales[i, 1]), math.exp(log_scales[i, 2])
        # V = M Rq S (2 x 3); cov2d = V V^T
        v00 = (m0[0] * rq[0] + m0[1] * rq[3] + m0[2] * rq[6]) * e0
        v01 = (m0[0] * rq[1] + m0[1] * rq[4] + m0[2] * rq[7]) * e1
        v02 = (m0[0] * rq[2] + m0[1] * rq[5] + m0[2] * rq[8]) * e2
        v10 = (m1[0] * rq[0] + m1[1] * rq[3] + m1[2] * rq[6]) * e0
        v11 = (m1[0] * rq[1] + m1[1] * rq[4] + m1[2] * rq[7]) * e1
        v12 = (m1[0] * rq[2] + m1[1] * rq[5] + m1[2] * rq[8]) * e2
        a = v00 * v00 + v01 * v01 + v02 * v02 + LOW_PASS
        b = v00 * v10 + v01 * v11 + v02 * v12
        c = v10 * v10 + v11 * v11 + v12 * v12 + LOW_PASS
        det = a * c - b * b
        ok = ok and det > 0
        inv = 1.0 / (det if ok else 1.0)
        conics[i, 0] = c * inv
        conics[i, 1] = -b * inv
        conics[i, 2] = a * inv
        mx = fx * px / zs + cx
        my = fy * py / zs + cy
        means2d[i, 0] = mx
        means2d[i, 1] = my
        depths[i] = pz
        mid = 0.5 * (a + c)
        lam = mid + math.sqrt(max(mid * mid - det, 0.1))
        r = math.ceil(3.0 * math.sqrt(lam))
        on = (mx + r > 0) and (mx - r < width) and (my + r > 0) and (my - r < height)
        radii[i] = np.int64(r) if ok and on and math.isfinite(mx) and math.isfinite(my) else 0


@numba.njit(parallel=True, cache=True)
def project_backward(means, log_scales, quats, R, t, fx, fy, cx, cy, width, height,
                     g_means2d, g_conics, g_depths, out_means, out_log_scales, out_quats):  # pragma: no cover
    """Gradients of the three inputs from the gradients of ``means2d``, ``conics`` and ``depths``."""
    n = means.shape[0]
    lo_x, hi_x = (-0.15 * width - cx) / fx, (1.15 * width - cx) / fx
    lo_y, hi_y = (-0.15 * height - cy) / fy, (1.15 * height - cy) / fy
    chunk = 256
    for c0 in numba.prange((n + chunk - 1) // chunk):
        # small matrices, allocated once per chunk of Gaussians
        m, ms, dm = np.empty((2, 3)), np.empty((2, 3)), np.empty((2, 3))
        mq, sig, S, dmq = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
        e = np.empty(3)
        for i in range(c0 * chunk, min(n, (c0 + 1) * chunk)):
            # --- forward again
            px = R[0, 0] * means[i, 0] + R[0, 1] * means[i, 1] + R[0, 2] * means[i, 2] + t[0]
            py = R[1, 0] * means[i, 0] + R[1, 1] * means[i, 1] + R[1, 2] * means[i, 2] + t[1]
            pz = R[2, 0] * means[i, 0] + R[2, 1] * means[i, 1] + R[2, 2] * means[i, 2] + t[2]
            ok_z = pz > NEAR
            zs = pz if ok_z else 1.0
            ux, uy = px / zs, py / zs
            cux, cuy = min(max(ux, lo_x), hi_x), min(max(uy, lo_y), hi_y)
            tx, ty = cux * zs, cuy * zs
            j00, j02 = fx / zs, -fx * tx / (zs * zs)
            j11, j12 = fy / zs, -fy * ty / (zs * zs)
            for k in range(3):
                m[0, k] = j00 * R[0, k] + j02 * R[2, k]
                m[1, k] = j11 * R[1, k] + j12 * R[2, k]
            qn_raw = math.sqrt(quats[i, 0] ** 2 + quats[i, 1] ** 2 + quats[i, 2] ** 2 + quats[i, 3] ** 2)
            qn = max(qn_raw, 1e-12)
            qw, qx, qy, qz = quats[i, 0] / qn, quats[i, 1] / qn, quats[i, 2] / qn, quats[i, 3] / qn
            rq = _quat_rotmat(qw, qx, qy, qz)
            for k in range(3):
                e[k] = math.exp(log_scales[i, k])
            for r in range(3):
                for k in range(3):
                    mq[r, k] = rq[3 * r + k] * e[k]
            for r in range(3):  # sig = mq mq^T
                for s_ in range(3):
                    sig[r, s_] = mq[r, 0] * mq[s_, 0] + mq[r, 1] * mq[s_, 1] + mq[r, 2] * mq[s_, 2]
            for a_ in range(2):  # ms = m sig
                for k in range(3):
                    ms[a_, k] = m[a_, 0] * sig[0, k] + m[a_, 1] * sig[1, k] + m[a_, 2] * sig[2, k]
            a = ms[0, 0] * m[0, 0] + ms[0, 1] * m[0, 1] + ms[0, 2] * m[0, 2] + LOW_PASS
            b = ms[0, 0] * m[1, 0] + ms[0, 1] * m[1, 1] + ms[0, 2] * m[1, 2]
            c = ms[1, 0] * m[1, 0] + ms[1, 1] * m[1, 1] + ms[1, 2] * m[1, 2] + LOW_PASS
            det = a * c - b * b
            ok = ok_z and det > 0
            # --- conics -> (a, b, c)
            gA, gB, gC = g_conics[i, 0], g_conics[i, 1], g_conics[i, 2]
            if ok:
                q = gA * c - gB * b + gC * a
                d2 = det * det
                ga = gC / det - q * c / d2
                gc = gA / det - q * a / d2
                gb = -gB / det + 2.0 * b * q / d2
            else:
                ga, gb, gc = gC, -gB, gA
            # --- cov = M Sig M^T (a = cov00, b = cov01, c = cov11): dM = (dC + dC^T) M Sig, dSig = M^T dC M
            for k in range(3):
                dm[0, k] = 2 * ga * ms[0, k] + gb * ms[1, k]
                dm[1, k] = gb * ms[0, k] + 2 * gc * ms[1, k]
            for r in range(3):  # S = dSig + dSig^T
                for s_ in range(3):
                    S[r, s_] = (2 * ga * m[0, r] * m[0, s_] + gb * (m[0, r] * m[1, s_] + m[1, r] * m[0, s_])
                                + 2 * gc * m[1, r] * m[1, s_])
            for r in range(3):  # d(Rq S) = S (Rq S)
                for k in range(3):
                    dmq[r, k] = S[r, 0] * mq[0, k] + S[r, 1] * mq[1, k] + S[r, 2] * mq[2, k]
            # --- Rq S -> log scales and the rotation
            for k in range(3):
                out_log_scales[i, k] = dmq[0, k] * mq[0, k] + dmq[1, k] * mq[1, k] + dmq[2, k] * mq[2, k]
            d00, d01, d02 = dmq[0, 0] * e[0], dmq[0, 1] * e[1], dmq[0, 2] * e[2]
            d10, d11, d12 = dmq[1, 0] * e[0], dmq[1, 1] * e[1], dmq[1, 2] * e[2]
            d20, d21, d22 = dmq[2, 0] * e[0], dmq[2, 1] * e[1], dmq[2, 2] * e[2]
            dqw = 2 * (-qz * d01 + qy * d02 + qz * d10 - qx * d12 - qy * d20 + qx * d21)
            dqx = 2 * (qy * d01 + qz * d02 + qy * d10 - 2 * qx * d11 - qw * d12 + qz * d20 + qw * d21 - 2 * qx * d22)
            dqy = 2 * (-2 * qy * d00 + qx * d01 + qw * d02 + qx * d10 + qz * d12 - qw * d20 + qz * d21 - 2 * qy * d22)
            dqz = 2 * (-2 * qz * d00 - qw * d01 + qx * d02 + qw * d10 - 2 * qz * d11 + qy * d12 + qx * d20 + qy * d21)
            dot = (qw * dqw + qx * dqx + qy * dqy + qz * dqz) if qn_raw > 1e-12 else 0.0  # through q = u / |u|
            out_quats[i, 0] = (dqw - qw * dot) / qn
            out_quats[i, 1] = (dqx - qx * dot) / qn
            out_quats[i, 2] = (dqy - qy * dot) / qn
            out_quats[i, 3] = (dqz - qz * dot) / qn
            # --- M = J R -> J -> (zs, tx, ty)
            dj00 = dm[0, 0] * R[0, 0] + dm[0, 1] * R[0, 1] + dm[0, 2] * R[0, 2]
            dj02 = dm[0, 0] * R[2, 0] + dm[0, 1] * R[2, 1] + dm[0, 2] * R[2, 2]
            dj11 = dm[1, 0] * R[1, 0] + dm[1, 1] * R[1, 1] + dm[1, 2] * R[1, 2]
            dj12 = dm[1, 0] * R[2, 0] + dm[1, 1] * R[2, 1] + dm[1, 2] * R[2, 2]
            z2, z3 = zs * zs, zs * zs * zs
            dzs = -fx / z2 * dj00 + 2 * fx * tx / z3 * dj02 - fy / z2 * dj11 + 2 * fy * ty / z3 * dj12
            dtx, dty = -fx / z2 * dj02, -fy / z2 * dj12
            dpx, dpy = 0.0, 0.0
            if lo_x < ux < hi_x:  # tx = px
                dpx += dtx
            else:  # tx = limit * zs
                dzs += cux * dtx
            if lo_y < uy < hi_y:
                dpy += dty
            else:
                dzs += cuy * dty
            # --- means2d
            gmx, gmy = g_means2d[i, 0], g_means2d[i, 1]
            dpx += fx / zs * gmx
            dpy += fy / zs * gmy
            dzs -= (fx * px * gmx + fy * py * gmy) / z2
            dpz = g_depths[i] + (dzs if ok_z else 0.0)
            for k in range(3):
                out_means[i, k] = R[0, k] * dpx + R[1, k] * dpy + R[2, k] * dpz
