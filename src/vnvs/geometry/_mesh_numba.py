"""Compiled CPU kernel of the depth-mesh renderer (numba).

One frame per task: project the frame's vertices (one per source pixel) once, rasterise its
triangles in index order into a z-buffer of (float32 depth, triangle) that stays in cache, then
write the outputs in one pass. The arithmetic mirrors ``vnvs.geometry.mesh_render`` operation by
operation in float64 (projection, edge functions, barycentrics), so every backend agrees bit for bit.
"""

from __future__ import annotations


import math

import numba
import numpy as np

MARGIN = 1e-4
"""Bounding boxes grow by this many pixels; the edge test (relative tolerance ``EDGE_TOL``) decides."""
SQRT2 = math.sqrt(2.0)
EDGE_TOL = 1e-6
"""A pixel centre is inside a triangle when each edge function is at least ``-EDGE_TOL * |2 area|``."""


@numba.njit(inline="always")
def _weights(X, Y, x0, y0, x1, y1, x2, y2, z0, z1, z2, w0, w1, w2):  # pragma: no cover - compiled
    """(inside, target depth, s0, s1, s2): the source-image barycentrics of pixel centre (X, Y)."""
    e0 = (x2 - x1) * (Y - y1) - (y2 - y1) * (X - x1)
    e1 = -((x2 - x0) * (Y - y0) - (y2 - y0) * (X - x0))
    e2 = (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    if area < 0.0:
        e0 = -e0
        e1 = -e1
        e2 = -e2
    tol = abs(area) * EDGE_TOL
    if not (e0 >= -tol and e1 >= -tol and e2 >= -tol):
        return False, 0.0, 0.0, 0.0, 0.0
    e0 = max(e0, 0.0)
    e1 = max(e1, 0.0)
    e2 = max(e2, 0.0)
    S = e0 + e1 + e2
    if not (S > 0.0):
        return False, 0.0, 0.0, 0.0, 0.0
    q0 = e0 / z0
    q1 = e1 / z1
    q2 = e2 / z2
    zt = S / (q0 + q1 + q2)
    r0 = q0 * w0
    r1 = q1 * w1
    r2 = q2 * w2
    rs = r0 + r1 + r2
    return True, zt, r0 / rs, r1 / rs, r2 / rs


@numba.njit(inline="always")
def _triangle(H, W, tri):  # pragma: no cover - compiled
    """Source indices (sorted) of triangle ``tri``: quad ``q = tri // 2`` split along its a-d diagonal."""
    q = tri // 2
    y = q // (W - 1)
    x = q - y * (W - 1)
    a = y * W + x
    if tri % 2 == 0:
        return a, a + 1, a + W + 1
    return a, a + W, a + W + 1


@numba.njit(parallel=True, cache=True, nogil=True)
def mesh_kernel(image, depth, valid, Kinv, R, t, Kt, fscale, out_h, out_w, near, ratio, stretch,
                out_image, out_corr, out_depth, out_index, out_mask):  # pragma: no cover - compiled
    """Depth-mesh rasterisation, one frame per task.

    image (T,C,H*W); depth (T,H,W) f32; valid (T,H,W) bool or empty; Kinv, R, Kt (T,3,3) f64;
    t (T,3) f64; fscale (T,) f64 target/source focal ratio; outputs (T,C,P) image dtype, (T,2,P) f32, (T,P) f32, (T,P) i64, (T,P) bool.
    """
    T, H, W = depth.shape
    C = image.shape[1]
    has_valid = valid.shape[0] > 0
    P = out_h * out_w
    N = H * W
    num_tri = 2 * (H - 1) * (W - 1) if H > 1 and W > 1 else 0
    for f in numba.prange(T):
        px = np.empty(N, dtype=np.float64)
        py = np.empty(N, dtype=np.float64)
        pz = np.empty(N, dtype=np.float64)
        ws = np.empty(N, dtype=np.float64)
        ok = np.zeros(N, dtype=np.bool_)
        a00, a01, a02 = Kinv[f, 0, 0], Kinv[f, 0, 1], Kinv[f, 0, 2]
        a10, a11, a12 = Kinv[f, 1, 0], Kinv[f, 1, 1], Kinv[f, 1, 2]
        a20, a21, a22 = Kinv[f, 2, 0], Kinv[f, 2, 1], Kinv[f, 2, 2]
        r00, r01, r02 = R[f, 0, 0], R[f, 0, 1], R[f, 0, 2]
        r10, r11, r12 = R[f, 1, 0], R[f, 1, 1], R[f, 1, 2]
        r20, r21, r22 = R[f, 2, 0], R[f, 2, 1], R[f, 2, 2]
        t0, t1, t2 = t[f, 0], t[f, 1], t[f, 2]
        k00, k01, k02 = Kt[f, 0, 0], Kt[f, 0, 1], Kt[f, 0, 2]
        k10, k11, k12 = Kt[f, 1, 0], Kt[f, 1, 1], Kt[f, 1, 2]
        k20, k21, k22 = Kt[f, 2, 0], Kt[f, 2, 1], Kt[f, 2, 2]
        for y in range(H):
            v = float(y)
            for x in range(W):
                i = y * W + x
                z = float(depth[f, y, x])
                if has_valid and not valid[f, y, x]:
                    continue
                if not (z > 0.0 and z < np.inf):
                    continue
                u = float(x)
                X = (a00 * u + a01 * v + a02) * z
                Y = (a10 * u + a11 * v + a12) * z
                Z = (a20 * u + a21 * v + a22) * z
                qx = r00 * X + r01 * Y + r02 * Z + t0
                qy = r10 * X + r11 * Y + r12 * Z + t1
                qz = r20 * X + r21 * Y + r22 * Z + t2
                if not (qz > near):
                    continue
                inv = 1.0 / (k20 * qx + k21 * qy + k22 * qz)
                ux = (k00 * qx + k01 * qy + k02 * qz) * inv
                uy = (k10 * qx + k11 * qy + k12 * qz) * inv
                if not (abs(ux) < np.inf and abs(uy) < np.inf):
                    continue
                px[i] = ux
                py[i] = uy
                pz[i] = qz
                ws[i] = z
                ok[i] = True

        best = np.full(P, np.inf, dtype=np.float32)
        win = np.full(P, -1, dtype=np.int64)
        for tri in range(num_tri):
            i0, i1, i2 = _triangle(H, W, tri)
            if not (ok[i0] and ok[i1] and ok[i2]):
                continue
            w0, w1, w2 = ws[i0], ws[i1], ws[i2]
            x0, y0, x1, y1, x2, y2 = px[i0], py[i0], px[i1], py[i1], px[i2], py[i2]
            z0, z1, z2 = pz[i0], pz[i1], pz[i2]
            if max(w0, max(w1, w2)) > ratio * min(w0, min(w1, w2)):
                longest = max(math.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)),
                              max(math.sqrt((x2 - x0) * (x2 - x0) + (y2 - y0) * (y2 - y0)),
                                  math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1))))
                mag = fscale[f] * max(w0 / z0, max(w1 / z1, w2 / z2))
                if longest > mag * SQRT2 + stretch:
                    continue
            area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
            if area == 0.0:
                continue
            bx0 = max(np.ceil(min(x0, min(x1, x2)) - MARGIN), 0.0)
            bx1 = min(np.floor(max(x0, max(x1, x2)) + MARGIN), out_w - 1.0)
            by0 = max(np.ceil(min(y0, min(y1, y2)) - MARGIN), 0.0)
            by1 = min(np.floor(max(y0, max(y1, y2)) + MARGIN), out_h - 1.0)
            if bx0 > bx1 or by0 > by1:
                continue
            for yy in range(int(by0), int(by1) + 1):
                Yc = float(yy)
                for xx in range(int(bx0), int(bx1) + 1):
                    inside, zt, s0, s1, s2 = _weights(float(xx), Yc, x0, y0, x1, y1, x2, y2, z0, z1, z2, w0, w1, w2)
                    if not inside:
                        continue
                    p = yy * out_w + xx
                    k = np.float32(zt)
                    if k < best[p]:
                        best[p] = k
                        win[p] = tri

        for p in range(P):
            tri = win[p]
            if tri < 0:
                for c in range(C):
                    out_image[f, c, p] = 0.0
                out_corr[f, 0, p] = 0.0
                out_corr[f, 1, p] = 0.0
                out_depth[f, p] = 0.0
                out_index[f, p] = -1
                out_mask[f, p] = False
                continue
            i0, i1, i2 = _triangle(H, W, tri)
            inside, zt, s0, s1, s2 = _weights(float(p % out_w), float(p // out_w), px[i0], py[i0], px[i1], py[i1],
                                              px[i2], py[i2], pz[i0], pz[i1], pz[i2], ws[i0], ws[i1], ws[i2])
            for c in range(C):
                out_image[f, c, p] = s0 * float(image[f, c, i0]) + s1 * float(image[f, c, i1]) + s2 * float(image[f, c, i2])
            out_corr[f, 0, p] = np.float32(s0 * float(i0 % W) + s1 * float(i1 % W) + s2 * float(i2 % W))
            out_corr[f, 1, p] = np.float32(s0 * float(i0 // W) + s1 * float(i1 // W) + s2 * float(i2 // W))
            out_depth[f, p] = np.float32(zt)
            if s0 >= s1 and s0 >= s2:
                out_index[f, p] = i0
            elif s1 >= s2:
                out_index[f, p] = i1
            else:
                out_index[f, p] = i2
            out_mask[f, p] = True
