"""Compiled CPU kernels of the tile rasterizer (numba): forward compositing and its hand-written backward.

Both run in float64, one tile (16 x 16 pixels) per task in parallel over the CPU cores. They mirror
``vnvs.recon.rasterize._composite_reference`` operation by operation: the same tile lists (sorted
front to back), the same cutoffs (``alpha < 1/255`` skipped, ``alpha`` clamped at 0.99, a pixel stops
once its transmittance would fall below ``1e-4``) and the same pixel centres (integer coordinates).

The backward walks each pixel's list back to front, recovering the transmittance by division (alpha
is at most 0.99), as 3D Gaussian Splatting does. Gradients are written per (tile, Gaussian)
intersection, so tiles never write to the same memory; the caller sums them per Gaussian.
"""

from __future__ import annotations

import numba
import numpy as np

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
POWER_MIN = np.log(ALPHA_MIN) - 1e-9
"""Below this exponent ``alpha = o * exp(power) < 1/255`` for any opacity <= 1: skipped without ``exp``."""


@numba.njit(inline="always")
def _gather(ti, means2d, conics, opacities, colors, depths, gid, tile_start, tile_end):  # pragma: no cover
    """The tile's Gaussians copied to contiguous rows ``[mx, my, a, b, c, o, r, g, b, z]`` (front to back)."""
    s = tile_start[ti]
    n = tile_end[ti] - s
    loc = np.empty((n, 10))
    for k in range(n):
        g = gid[s + k]
        loc[k, 0] = means2d[g, 0]
        loc[k, 1] = means2d[g, 1]
        loc[k, 2] = conics[g, 0]
        loc[k, 3] = conics[g, 1]
        loc[k, 4] = conics[g, 2]
        loc[k, 5] = opacities[g]
        loc[k, 6] = colors[g, 0]
        loc[k, 7] = colors[g, 1]
        loc[k, 8] = colors[g, 2]
        loc[k, 9] = depths[g]
    return loc


@numba.njit(parallel=True, cache=True, nogil=True)
def forward_kernel(means2d, conics, opacities, colors, depths, gid, tile_start, tile_end, width, height,
                   tiles_x, tile, bg, out_color, out_depth, out_T, out_count):  # pragma: no cover - compiled
    """means2d (N,2), conics (N,3) [a, b, c], opacities (N,), colors (N,3), depths (N,) f64;
    gid (M,) int64 Gaussian of each intersection, sorted by (tile, depth); tile_start/tile_end (n_tiles,);
    bg (3,); outputs out_color (H,W,3), out_depth (H,W) accumulated sum(w z), out_T (H,W) final
    transmittance, out_count (H,W) int64 number of list entries up to the last contributor."""
    n_tiles = tile_start.shape[0]
    for ti in numba.prange(n_tiles):
        ty = ti // tiles_x
        tx = ti - ty * tiles_x
        loc = _gather(ti, means2d, conics, opacities, colors, depths, gid, tile_start, tile_end)
        n = loc.shape[0]
        for ly in range(tile):
            py = ty * tile + ly
            if py >= height:
                continue
            for lx in range(tile):
                px = tx * tile + lx
                if px >= width:
                    continue
                T = 1.0
                c0 = 0.0
                c1 = 0.0
                c2 = 0.0
                dep = 0.0
                count = 0
                for k in range(n):
                    dx = loc[k, 0] - px
                    dy = loc[k, 1] - py
                    power = -0.5 * (loc[k, 2] * dx * dx + loc[k, 4] * dy * dy) - loc[k, 3] * dx * dy
                    if power > 0.0 or power < POWER_MIN:
                        continue
                    alpha = loc[k, 5] * np.exp(power)
                    if alpha > ALPHA_MAX:
                        alpha = ALPHA_MAX
                    if alpha < ALPHA_MIN:
                        continue
                    test_T = T * (1.0 - alpha)
                    if test_T < T_MIN:
                        break
                    w = alpha * T
                    c0 += w * loc[k, 6]
                    c1 += w * loc[k, 7]
                    c2 += w * loc[k, 8]
                    dep += w * loc[k, 9]
                    T = test_T
                    count = k + 1
                out_color[py, px, 0] = c0 + T * bg[0]
                out_color[py, px, 1] = c1 + T * bg[1]
                out_color[py, px, 2] = c2 + T * bg[2]
                out_depth[py, px] = dep
                out_T[py, px] = T
                out_count[py, px] = count


@numba.njit(parallel=True, cache=True, nogil=True)
def backward_kernel(means2d, conics, opacities, colors, depths, gid, tile_start, tile_end, width, height,
                    tiles_x, tile, bg, final_T, count, grad_color, grad_depth, grad_alpha,
                    out_grad):  # pragma: no cover - compiled
    """Gradients of the loss with respect to each intersection's 2D Gaussian.

    grad_color (H,W,3), grad_depth (H,W) (of the accumulated depth), grad_alpha (H,W) (of 1 - final_T);
    out_grad (M,10) zero-initialised, per intersection: d mean2d (2), d conic (3), d opacity (1),
    d colour (3), d depth (1).
    """
    n_tiles = tile_start.shape[0]
    for ti in numba.prange(n_tiles):
        ty = ti // tiles_x
        tx = ti - ty * tiles_x
        s = tile_start[ti]
        loc = _gather(ti, means2d, conics, opacities, colors, depths, gid, tile_start, tile_end)
        for ly in range(tile):
            py = ty * tile + ly
            if py >= height:
                continue
            for lx in range(tile):
                px = tx * tile + lx
                if px >= width:
                    continue
                n = count[py, px]
                if n == 0:
                    continue
                TF = final_T[py, px]
                T = TF
                g0 = grad_color[py, px, 0]
                g1 = grad_color[py, px, 1]
                g2 = grad_color[py, px, 2]
                gd = grad_depth[py, px]
                ga = grad_alpha[py, px]
                bg_dot = bg[0] * g0 + bg[1] * g1 + bg[2] * g2
                acc0 = 0.0
                acc1 = 0.0
                acc2 = 0.0
                accd = 0.0
                last_alpha = 0.0
                last0 = 0.0
                last1 = 0.0
                last2 = 0.0
                lastd = 0.0
                for k in range(n - 1, -1, -1):
                    j = s + k
                    dx = loc[k, 0] - px
                    dy = loc[k, 1] - py
                    a = loc[k, 2]
                    b = loc[k, 3]
                    c = loc[k, 4]
                    power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
                    if power > 0.0 or power < POWER_MIN:
                        continue
                    G = np.exp(power)
                    raw = loc[k, 5] * G
                    alpha = raw
                    if alpha > ALPHA_MAX:
                        alpha = ALPHA_MAX
                    if alpha < ALPHA_MIN:
                        continue
                    T = T / (1.0 - alpha)
                    w = alpha * T
                    out_grad[j, 6] += w * g0
                    out_grad[j, 7] += w * g1
                    out_grad[j, 8] += w * g2
                    out_grad[j, 9] += w * gd
                    acc0 = last_alpha * last0 + (1.0 - last_alpha) * acc0
                    acc1 = last_alpha * last1 + (1.0 - last_alpha) * acc1
                    acc2 = last_alpha * last2 + (1.0 - last_alpha) * acc2
                    accd = last_alpha * lastd + (1.0 - last_alpha) * accd
                    c0 = loc[k, 6]
                    c1 = loc[k, 7]
                    c2 = loc[k, 8]
                    d = loc[k, 9]
                    last0 = c0
                    last1 = c1
                    last2 = c2
                    lastd = d
                    last_alpha = alpha
                    dl_dalpha = ((c0 - acc0) * g0 + (c1 - acc1) * g1 + (c2 - acc2) * g2 + (d - accd) * gd) * T
                    dl_dalpha += (ga - bg_dot) * TF / (1.0 - alpha)
                    if raw > ALPHA_MAX:
                        continue
                    out_grad[j, 5] += G * dl_dalpha
                    dl_dpower = raw * dl_dalpha
                    out_grad[j, 0] += dl_dpower * (-a * dx - b * dy)
                    out_grad[j, 1] += dl_dpower * (-b * dx - c * dy)
                    out_grad[j, 2] += -0.5 * dx * dx * dl_dpower
                    out_grad[j, 3] += -dx * dy * dl_dpower
                    out_grad[j, 4] += -0.5 * dy * dy * dl_dpower
