"""Compiled CPU kernels for z-buffer splatting (numba).

A frame's z-buffer (``H_t * W_t`` keys and int32 winners, about 2 MB at 480x480) stays in cache
while that frame's points stream through it once; the same frame's outputs (warped frame,
correspondence, depth, mask) are then written in one pass while the buffer is still hot. Frames
run in parallel over the CPU cores. The projection arithmetic mirrors
``vnvs.geometry.splat._project_depth_reference`` operation by operation in float64, so every
backend picks the same pixels.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _write_frame(f, image, src_w, win, zbuf, out_image, out_corr, out_depth, out_index, out_mask):  # pragma: no cover
    C = image.shape[1]
    for p in range(win.shape[0]):
        i = win[p]
        out_index[f, p] = i
        if i >= 0:
            for c in range(C):
                out_image[f, c, p] = image[f, c, i]
            out_corr[f, 0, p] = np.float32(i % src_w)
            out_corr[f, 1, p] = np.float32(i // src_w)
            out_depth[f, p] = zbuf[p]
            out_mask[f, p] = True
        else:
            for c in range(C):
                out_image[f, c, p] = 0.0
            out_corr[f, 0, p] = 0.0
            out_corr[f, 1, p] = 0.0
            out_depth[f, p] = 0.0
            out_mask[f, p] = False


@numba.njit(parallel=True, cache=True, nogil=True)
def splat_depth_kernel(image, depth, valid, key, Kinv, R, t, Kt, out_h, out_w, near,
                       out_image, out_corr, out_depth, out_index, out_mask):  # pragma: no cover - compiled
    """Fused unproject -> transform -> project -> z-buffer -> gather, one frame per task.

    image (T,C,H*W); depth (T,H,W) f32; valid (T,H,W) bool or empty; key (T,H*W) f32 or empty
    (then the target depth is the key); Kinv, R, Kt (T,3,3) f64; t (T,3) f64; outputs
    (T,C,P), (T,2,P) f32, (T,P) f32, (T,P) i64, (T,P) bool with P = out_h * out_w.
    """
    T, H, W = depth.shape
    has_valid = valid.shape[0] > 0
    has_key = key.shape[0] > 0
    P = out_h * out_w
    for f in numba.prange(T):
        best = np.full(P, np.inf, dtype=np.float32)
        zbuf = np.zeros(P, dtype=np.float32) if has_key else best
        win = np.full(P, -1, dtype=np.int32)
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
                if has_valid and not valid[f, y, x]:
                    continue
                z = float(depth[f, y, x])
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
                ut = (k00 * qx + k01 * qy + k02 * qz) * inv + 0.5
                vt = (k10 * qx + k11 * qy + k12 * qz) * inv + 0.5
                # floor(ut) lies in [0, out_w) exactly when ut does (NaN fails both tests), and
                # truncation equals floor for non-negative values
                if not (ut >= 0.0 and vt >= 0.0 and ut < out_w and vt < out_h):
                    continue
                p = int(vt) * out_w + int(ut)
                i = y * W + x
                if has_key:
                    k = key[f, i]
                    if k < best[p]:
                        best[p] = k
                        win[p] = i
                        zbuf[p] = np.float32(qz)
                else:
                    k = np.float32(qz)
                    if k < best[p]:
                        best[p] = k
                        win[p] = i
        _write_frame(f, image, W, win, zbuf, out_image, out_corr, out_depth, out_index, out_mask)


@numba.njit(parallel=True, cache=True, nogil=True)
def splat_coords_kernel(image, src_w, coords, z, valid, key, out_h, out_w,
                        out_image, out_corr, out_depth, out_index, out_mask):  # pragma: no cover - compiled
    """Z-buffer of points with given target coordinates, then gather.

    image (T,C,N); coords (T,2,N) f32 target pixel coordinates; z (T,N) f32 or empty; valid (T,N)
    bool; key (T,N) f32 selection key (smaller wins); outputs as in :func:`splat_depth_kernel`.
    """
    T = coords.shape[0]
    N = coords.shape[2]
    has_z = z.shape[0] > 0
    P = out_h * out_w
    for f in numba.prange(T):
        best = np.full(P, np.inf, dtype=np.float32)
        zbuf = np.zeros(P, dtype=np.float32)
        win = np.full(P, -1, dtype=np.int32)
        for i in range(N):
            if not valid[f, i]:
                continue
            ut = float(coords[f, 0, i]) + 0.5
            vt = float(coords[f, 1, i]) + 0.5
            if not (ut >= 0.0 and vt >= 0.0 and ut < out_w and vt < out_h):
                continue
            p = int(vt) * out_w + int(ut)
            k = key[f, i]
            if k < best[p]:
                best[p] = k
                win[p] = i
                if has_z:
                    zbuf[p] = z[f, i]
        _write_frame(f, image, src_w, win, zbuf, out_image, out_corr, out_depth, out_index, out_mask)
