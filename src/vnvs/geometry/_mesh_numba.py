"""Compiled CPU kernel of the depth-mesh renderer (numba).

One frame per task: project the frame's vertices (one per source pixel) once, splatting them as
points into a second buffer; rasterise its triangles in index order into a z-buffer of (float32
depth, triangle, barycentrics) that stays in cache; rasterise the background extension's triangles
into a third; then write the outputs in one pass. The arithmetic mirrors ``vnvs.geometry.mesh_render`` operation by
operation in float64 (projection, edge functions, barycentrics), so every backend agrees bit for bit.
"""

from __future__ import annotations


import math

import numba
import numpy as np

MARGIN = 1e-4
"""Bounding boxes grow by this many pixels; the edge test (relative tolerance ``EDGE_TOL``) decides."""
SQRT2 = math.sqrt(2.0)
NEIGHBOURS = np.array([[0, -1], [0, 1], [-1, 0], [1, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.int64)
"""(dy, dx) of the 8-neighbours in the order ``mesh_render.extend_background`` scans them."""
EDGE_TOL = 1e-6
"""A pixel centre is inside a triangle when each edge function is at least ``-EDGE_TOL * |2 area|``."""


@numba.njit(inline="always", error_model="numpy")
def _setup(i0, i1, i2, px, py, pz, ws, fscale, ratio, stretch, out_h, out_w):  # pragma: no cover - compiled
    """(drawn, bx0, bx1, by0, by1, area): the reference's tests of whether the triangle of vertices
    ``i0 < i1 < i2`` is drawn, cheapest first (each only decides that, so their order is free), and
    its pixel bounding box."""
    x0, y0, x1, y1, x2, y2 = px[i0], py[i0], px[i1], py[i1], px[i2], py[i2]
    bx0 = max(np.ceil(min(x0, min(x1, x2)) - MARGIN), 0.0)
    bx1 = min(np.floor(max(x0, max(x1, x2)) + MARGIN), out_w - 1.0)
    by0 = max(np.ceil(min(y0, min(y1, y2)) - MARGIN), 0.0)
    by1 = min(np.floor(max(y0, max(y1, y2)) + MARGIN), out_h - 1.0)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    if bx0 > bx1 or by0 > by1 or area == 0.0:
        return False, 0, -1, 0, -1, area
    w0, w1, w2 = ws[i0], ws[i1], ws[i2]
    if max(w0, max(w1, w2)) > ratio * min(w0, min(w1, w2)):
        longest = max(math.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)),
                      max(math.sqrt((x2 - x0) * (x2 - x0) + (y2 - y0) * (y2 - y0)),
                          math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1))))
        mag = fscale * max(w0 / pz[i0], max(w1 / pz[i1], w2 / pz[i2]))
        if longest > mag * SQRT2 + stretch:
            return False, 0, -1, 0, -1, area
    return True, int(bx0), int(bx1), int(by0), int(by1), area


@numba.njit(inline="always", error_model="numpy")
def _test(tag, X, Y, p, i0, i1, i2, px, py, piz, ws, area, best, win, sw):  # pragma: no cover - compiled
    """Pixel centre (X, Y) (pixel ``p``) against the triangle of vertices ``i0 < i1 < i2``: the z-test of
    the reference's depth (``mesh_render._weights_py``); the winner's tag and barycentrics are kept.
    Strict ``<``: triangles arrive in index order, so ties go to the smaller index."""
    x0, y0, x1, y1, x2, y2 = px[i0], py[i0], px[i1], py[i1], px[i2], py[i2]
    e0 = (x2 - x1) * (Y - y1) - (y2 - y1) * (X - x1)
    e1 = -((x2 - x0) * (Y - y0) - (y2 - y0) * (X - x0))
    e2 = (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0)
    if area < 0.0:
        e0 = -e0
        e1 = -e1
        e2 = -e2
    tol = abs(area) * EDGE_TOL
    if not (e0 >= -tol and e1 >= -tol and e2 >= -tol):
        return
    e0 = max(e0, 0.0)
    e1 = max(e1, 0.0)
    e2 = max(e2, 0.0)
    S = e0 + e1 + e2
    if not (S > 0.0):
        return
    q0 = e0 * piz[i0]
    q1 = e1 * piz[i1]
    q2 = e2 * piz[i2]
    k = np.float32(S / (q0 + q1 + q2))
    if k < best[p]:
        best[p] = k
        win[p] = tag
        r0 = q0 * ws[i0]
        r1 = q1 * ws[i1]
        r2 = q2 * ws[i2]
        inv = 1.0 / (r0 + r1 + r2)
        sw[0, p] = r0 * inv
        sw[1, p] = r1 * inv
        sw[2, p] = r2 * inv


@numba.njit(inline="always", error_model="numpy")
def _raster_quads(H, W, ok, px, py, pz, piz, ws, fs, ratio, stretch, out_h, out_w, best, win, sw):  # pragma: no cover
    """Z-buffer every drawn triangle of the vertices marked ``ok``: quads in index order and, per pixel,
    each quad's two triangles in order (the reference's triangle order)."""
    for qy in range(H - 1):
        for qx in range(W - 1):
            a = qy * W + qx
            d = a + W + 1
            if not (ok[a] and ok[d]):
                continue
            draw0, ax0, ax1, ay0, ay1, area0 = False, 0, -1, 0, -1, 0.0
            draw1, cx0, cx1, cy0, cy1, area1 = False, 0, -1, 0, -1, 0.0
            if ok[a + 1]:
                draw0, ax0, ax1, ay0, ay1, area0 = _setup(a, a + 1, d, px, py, pz, ws, fs, ratio, stretch, out_h, out_w)
            if ok[a + W]:
                draw1, cx0, cx1, cy0, cy1, area1 = _setup(a, a + W, d, px, py, pz, ws, fs, ratio, stretch, out_h, out_w)
            if draw0 and draw1:
                lx, hx, ly, hy = min(ax0, cx0), max(ax1, cx1), min(ay0, cy0), max(ay1, cy1)
            elif draw0:
                lx, hx, ly, hy = ax0, ax1, ay0, ay1
            elif draw1:
                lx, hx, ly, hy = cx0, cx1, cy0, cy1
            else:
                continue
            for yy in range(ly, hy + 1):
                Y = float(yy)
                for xx in range(lx, hx + 1):
                    p = yy * out_w + xx
                    if draw0 and ax0 <= xx <= ax1 and ay0 <= yy <= ay1:
                        _test(2 * a, float(xx), Y, p, a, a + 1, d, px, py, piz, ws, area0, best, win, sw)
                    if draw1 and cx0 <= xx <= cx1 and cy0 <= yy <= cy1:
                        _test(2 * a + 1, float(xx), Y, p, a, a + W, d, px, py, piz, ws, area1, best, win, sw)


@numba.njit(inline="always", error_model="numpy")
def _write_triangle(f, p, tag, W, image, colour, best, sw, out_image, out_corr, out_depth, out_index,
                    out_mask):  # pragma: no cover - compiled
    """Outputs of pixel ``p`` from its winning triangle ``tag`` (``2 * a + k``) and kept barycentrics;
    vertex ``i`` takes the colour of source pixel ``colour[i]`` (all vertices their own when empty)."""
    C = image.shape[1]
    i0 = tag >> 1
    i2 = i0 + W + 1
    i1 = i0 + W if tag & 1 else i0 + 1
    c0, c1, c2 = i0, i1, i2
    if colour.shape[0] > 0:
        c0, c1, c2 = colour[i0], colour[i1], colour[i2]
    s0, s1, s2 = sw[0, p], sw[1, p], sw[2, p]
    for c in range(C):
        out_image[f, c, p] = s0 * float(image[f, c, c0]) + s1 * float(image[f, c, c1]) + s2 * float(image[f, c, c2])
    x0, y0 = i0 % W, i0 // W
    out_corr[f, 0, p] = np.float32(s0 * float(x0) + s1 * float(i1 - (y0 + (tag & 1)) * W) + s2 * float(x0 + 1))
    out_corr[f, 1, p] = np.float32(s0 * float(y0) + s1 * float(y0 + (tag & 1)) + s2 * float(y0 + 1))
    out_depth[f, p] = best[p]
    if s0 >= s1 and s0 >= s2:
        out_index[f, p] = i0
    elif s1 >= s2:
        out_index[f, p] = i1
    else:
        out_index[f, p] = i2
    out_mask[f, p] = True


@numba.njit(inline="always", error_model="numpy")
def _project(u, v, z, f, Kinv, R, t, Kt, near):  # pragma: no cover - compiled
    """(usable, x, y, target depth) of source pixel (u, v) at depth z: the operations of
    ``vnvs.geometry.splat.project_pixels_f64`` in its order."""
    if not (z > 0.0 and z < np.inf):
        return False, 0.0, 0.0, 0.0
    X = (Kinv[f, 0, 0] * u + Kinv[f, 0, 1] * v + Kinv[f, 0, 2]) * z
    Y = (Kinv[f, 1, 0] * u + Kinv[f, 1, 1] * v + Kinv[f, 1, 2]) * z
    Z = (Kinv[f, 2, 0] * u + Kinv[f, 2, 1] * v + Kinv[f, 2, 2]) * z
    qx = R[f, 0, 0] * X + R[f, 0, 1] * Y + R[f, 0, 2] * Z + t[f, 0]
    qy = R[f, 1, 0] * X + R[f, 1, 1] * Y + R[f, 1, 2] * Z + t[f, 1]
    qz = R[f, 2, 0] * X + R[f, 2, 1] * Y + R[f, 2, 2] * Z + t[f, 2]
    if not (qz > near):
        return False, 0.0, 0.0, 0.0
    inv = 1.0 / (Kt[f, 2, 0] * qx + Kt[f, 2, 1] * qy + Kt[f, 2, 2] * qz)
    ux = (Kt[f, 0, 0] * qx + Kt[f, 0, 1] * qy + Kt[f, 0, 2] * qz) * inv
    uy = (Kt[f, 1, 0] * qx + Kt[f, 1, 1] * qy + Kt[f, 1, 2] * qz) * inv
    if not (abs(ux) < np.inf and abs(uy) < np.inf):
        return False, 0.0, 0.0, 0.0
    return True, ux, uy, qz


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def mesh_kernel(image, depth, valid, Kinv, R, t, Kt, fscale, out_h, out_w, near, ratio, stretch, fill_points,
                extend, out_image, out_corr, out_depth, out_index, out_mask):  # pragma: no cover - compiled
    """Depth-mesh rasterisation, one frame per task.

    image (T,C,H*W); depth (T,H,W) f32; valid (T,H,W) bool or empty; Kinv, R, Kt (T,3,3) f64;
    t (T,3) f64; fscale (T,) f64 target/source focal ratio; fill_points: pixels no triangle covers take
    the z-buffer point splat of the same vertices (``forward_splat``'s result); extend: the same for the
    mesh of ``mesh_render.extend_background``'s frames (the nearer of it and the point wins); outputs
    (T,C,P) image dtype, (T,2,P) f32, (T,P) f32, (T,P) i64, (T,P) bool.
    """
    T, H, W = depth.shape
    C = image.shape[1]
    has_valid = valid.shape[0] > 0
    has_ext = extend
    ratio32 = np.float32(ratio)
    P = out_h * out_w
    N = H * W
    for f in numba.prange(T):
        px = np.empty(N, dtype=np.float64)
        py = np.empty(N, dtype=np.float64)
        pz = np.empty(N, dtype=np.float64)
        piz = np.empty(N, dtype=np.float64)
        ws = np.empty(N, dtype=np.float64)
        ok = np.zeros(N, dtype=np.bool_)
        pbest = np.full(P if fill_points else 0, np.inf, dtype=np.float32)
        pwin = np.full(P if fill_points else 0, -1, dtype=np.int32)
        for y in range(H):
            for x in range(W):
                if has_valid and not valid[f, y, x]:
                    continue
                i = y * W + x
                z = float(depth[f, y, x])
                good, ux, uy, qz = _project(float(x), float(y), z, f, Kinv, R, t, Kt, near)
                if not good:
                    continue
                px[i] = ux
                py[i] = uy
                pz[i] = qz
                piz[i] = 1.0 / qz
                ws[i] = z
                ok[i] = True
                if fill_points:  # splat_depth_kernel's point: nearest pixel, float32 depth, first index on ties
                    ut = ux + 0.5
                    vt = uy + 0.5
                    if ut >= 0.0 and vt >= 0.0 and ut < out_w and vt < out_h:
                        p = int(vt) * out_w + int(ut)
                        k = np.float32(qz)
                        if k < pbest[p]:
                            pbest[p] = k
                            pwin[p] = i

        best = np.full(P, np.inf, dtype=np.float32)
        win = np.full(P, -1, dtype=np.int32)  # 2 * a + k: quad of top-left vertex a, its triangle k
        sw = np.empty((3, P), dtype=np.float64)  # the winner's barycentrics
        fs = fscale[f]
        _raster_quads(H, W, ok, px, py, pz, piz, ws, fs, ratio, stretch, out_h, out_w, best, win, sw)

        # the background extension: the same mesh over the extended depth, on the vertices of its region
        best2 = np.full(P if has_ext else 0, np.inf, dtype=np.float32)
        win2 = np.full(P if has_ext else 0, -1, dtype=np.int32)
        sw2 = np.empty((3, P if has_ext else 0), dtype=np.float64)
        colour = np.empty(N if has_ext else 0, dtype=np.int64)
        if has_ext:
            ok2 = np.zeros(N, dtype=np.bool_)
            px2 = np.empty(N, dtype=np.float64)
            py2 = np.empty(N, dtype=np.float64)
            pz2 = np.empty(N, dtype=np.float64)
            piz2 = np.empty(N, dtype=np.float64)
            ws2 = np.empty(N, dtype=np.float64)
            modified = np.zeros(N, dtype=np.bool_)
            du = np.zeros((H + 2) * (W + 2), dtype=np.float32)  # usable depth, 0 elsewhere, zero-padded
            for y in range(H):
                for x in range(W):
                    z = depth[f, y, x]
                    if (not has_valid or valid[f, y, x]) and z > 0.0 and z < np.inf:
                        du[(y + 1) * (W + 2) + x + 1] = z
            W2 = W + 2
            for y in range(H):  # extend_background: the deepest usable 8-neighbour, side neighbours first
                row = (y + 1) * W2 + 1
                for x in range(W):
                    i = y * W + x
                    colour[i] = i
                    c = row + x
                    z = du[c]
                    # branch-free maximum first: most pixels have no deeper neighbour beyond the ratio
                    m = max(max(max(du[c - 1], du[c + 1]), max(du[c - W2], du[c + W2])),
                            max(max(du[c - W2 - 1], du[c - W2 + 1]), max(du[c + W2 - 1], du[c + W2 + 1])))
                    if not (z > 0.0 and m > z * ratio32):
                        continue
                    deepest = z
                    src = -1
                    for n in range(8):
                        zn = du[c + NEIGHBOURS[n, 0] * W2 + NEIGHBOURS[n, 1]]
                        if zn > deepest:
                            deepest = zn
                            src = n
                    modified[i] = True
                    colour[i] = i + NEIGHBOURS[src, 0] * W + NEIGHBOURS[src, 1]
                    good, ux, uy, qz = _project(float(x), float(y), float(deepest), f, Kinv, R, t, Kt, near)
                    if good:
                        px2[i], py2[i], pz2[i], piz2[i], ws2[i], ok2[i] = ux, uy, qz, 1.0 / qz, float(deepest), True
            for y in range(H):  # the region: usable vertices within one pixel of a modified one
                for x in range(W):
                    if not modified[y * W + x]:
                        continue
                    for yn in range(max(y - 1, 0), min(y + 2, H)):
                        for xn in range(max(x - 1, 0), min(x + 2, W)):
                            j = yn * W + xn
                            if ok[j] and not modified[j]:
                                px2[j], py2[j], pz2[j], piz2[j] = px[j], py[j], pz[j], piz[j]
                                ws2[j], ok2[j] = ws[j], True
            _raster_quads(H, W, ok2, px2, py2, pz2, piz2, ws2, fs, ratio, stretch, out_h, out_w, best2, win2, sw2)

        no_colour = np.empty(0, dtype=np.int64)
        for p in range(P):
            tag = win[p]
            if tag >= 0:
                _write_triangle(f, p, tag, W, image, no_colour, best, sw, out_image, out_corr, out_depth, out_index,
                                out_mask)
                continue
            i = pwin[p] if fill_points else -1
            if has_ext and win2[p] >= 0 and (i < 0 or best2[p] < pbest[p]):
                _write_triangle(f, p, win2[p], W, image, colour, best2, sw2, out_image, out_corr, out_depth, out_index,
                                out_mask)
            elif i >= 0:
                for c in range(C):
                    out_image[f, c, p] = image[f, c, i]
                out_corr[f, 0, p] = np.float32(i % W)
                out_corr[f, 1, p] = np.float32(i // W)
                out_depth[f, p] = pbest[p]
                out_index[f, p] = i
                out_mask[f, p] = True
            else:
                for c in range(C):
                    out_image[f, c, p] = 0.0
                out_corr[f, 0, p] = 0.0
                out_corr[f, 1, p] = 0.0
                out_depth[f, p] = 0.0
                out_index[f, p] = -1
                out_mask[f, p] = False
