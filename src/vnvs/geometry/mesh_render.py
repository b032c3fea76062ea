"""Depth-mesh rendering: a frame and its depth lifted to a triangle mesh and rasterised in another camera.

The source pixel grid is triangulated (two triangles per 2x2 quad, split along the top-left to
bottom-right diagonal); a triangle is dropped when a vertex has no valid depth, lies behind the
target's near plane, or when its source depths span more than ``max_depth_ratio`` (the cut at depth
discontinuities, so no triangle stretches from a foreground object to the background behind it). The
rest are rasterised at target pixel centres with a z-buffer and perspective-correct barycentrics.
Colour and the source pixel coordinate are interpolated inside each triangle, so there are no
cracks where the view stretches a surface and the correspondence ``C`` is sub-pixel.

Three interchangeable backends compute the same result, bit for bit:

* ``numba``: a compiled per-frame loop on the CPU (frames in parallel), :mod:`._mesh_numba`;
* ``torch``: vectorised over (triangle, pixel) candidates with one ``scatter_reduce`` per chunk
  (the path on CUDA);
* ``reference``: plain Python loops over triangles and pixels, the definition the others match.

Watertightness: each edge function is evaluated from the edge's two vertices in source-index order
(and negated where the triangle needs the other direction), so two triangles sharing an edge see
exactly opposite values and a pixel centre on the edge belongs to at least one of them. Ties in the
z-buffer (equal float32 depth) go to the smaller triangle index ``2 * (y * (W - 1) + x) + k``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vnvs.geometry.splat import (
    SplatResult,
    _as_result,
    _camera_terms,
    _check_frames,
    _numba_available,
    _numba_outputs,
    forward_splat,
    project_pixels_f64,
)
from vnvs.utils.threads import numba_launch

EDGE_TOL = 1e-6
"""A pixel centre is inside a triangle when each edge function is at least ``-EDGE_TOL * |2 area|``
(closes the image border under an identity camera, where projected vertices miss integers by ~1e-13)."""
MARGIN = 1e-4
"""Triangle bounding boxes grow by this many pixels before the edge test."""
DEFAULT_DEPTH_RATIO = 1.1
"""Default ``max_depth_ratio``: a triangle whose source depths span more than this factor is a depth jump."""
DEFAULT_STRETCH = 1.0
"""Default ``max_stretch``: a depth-jump triangle is kept while its longest target edge exceeds the
longest a surface triangle of its magnification would have by at most this many pixels."""
SQRT2 = math.sqrt(2.0)
_NEAR = 1e-4
_NEIGHBOURS = ((0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1))
"""(dy, dx) of the 8-neighbours in the order :func:`extend_background` scans them."""
_CHUNK = 1 << 22
"""(triangle, pixel) candidates per torch pass (bounds the memory of large or stretched triangles)."""


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "numba", "torch", "reference"):
        raise ValueError(f"unknown mesh backend {backend!r}; expected auto, numba, torch or reference")
    if backend != "auto":
        return backend
    return "numba" if device.type == "cpu" and _numba_available() else "torch"


def _project_vertices(depth, valid, Kinv, R, t, Kt):
    """Target pixel coordinates ``(x, y)``, target depth and usability of every source pixel.

    Same float64 operations, in the same order, as the numba kernel. Returns four ``(T, H*W)``
    tensors: x, y, z (float64) and ok (bool).
    """
    T = depth.shape[0]
    dev = depth.device
    z = depth.reshape(T, -1).to(torch.float64)
    px, py, qz = project_pixels_f64(depth, Kinv, R, t, Kt)
    ok = torch.isfinite(z) & (z > 0) & (qz > _NEAR) & torch.isfinite(px) & torch.isfinite(py)
    if valid is not None:
        ok &= valid.reshape(T, -1).to(dev)
    return px, py, qz, ok


def _focal_ratio(K_src: torch.Tensor, K_tgt: torch.Tensor) -> torch.Tensor:
    """``(T,)`` float64 target over source focal length (geometric mean of fx, fy)."""
    ks, kt = K_src.to(torch.float64), K_tgt.to(torch.float64)
    det = lambda K: (K[:, 0, 0] * K[:, 1, 1] - K[:, 0, 1] * K[:, 1, 0]).abs()  # noqa: E731
    return torch.sqrt(det(kt) / det(ks)).contiguous()


def _triangles(H: int, W: int, device=None) -> torch.Tensor:
    """``(2 * (H-1) * (W-1), 3)`` int64 source indices of each triangle, sorted within the triangle."""
    if H < 2 or W < 2:
        return torch.zeros(0, 3, dtype=torch.int64, device=device)
    ys, xs = torch.meshgrid(torch.arange(H - 1, device=device), torch.arange(W - 1, device=device), indexing="ij")
    a = (ys * W + xs).reshape(-1)
    t0 = torch.stack([a, a + 1, a + W + 1], 1)
    t1 = torch.stack([a, a + W, a + W + 1], 1)
    return torch.stack([t0, t1], 1).reshape(-1, 3)


def _weights_torch(X, Y, x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, w0, w1, w2):
    """Vectorised twin of :func:`_weights_py`: (inside, target depth, s0, s1, s2)."""
    e0 = (x2 - x1) * (Y - y1) - (y2 - y1) * (X - x1)
    e1 = -((x2 - x0) * (Y - y0) - (y2 - y0) * (X - x0))
    e2 = (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    neg = area < 0
    e0, e1, e2 = torch.where(neg, -e0, e0), torch.where(neg, -e1, e1), torch.where(neg, -e2, e2)
    tol = area.abs() * EDGE_TOL
    inside = (e0 >= -tol) & (e1 >= -tol) & (e2 >= -tol)
    e0, e1, e2 = e0.clamp(min=0.0), e1.clamp(min=0.0), e2.clamp(min=0.0)
    S = e0 + e1 + e2
    inside &= S > 0
    q0, q1, q2 = e0 * iz0, e1 * iz1, e2 * iz2
    zt = S / (q0 + q1 + q2)
    r0, r1, r2 = q0 * w0, q1 * w1, q2 * w2
    inv = 1.0 / (r0 + r1 + r2)
    return inside, zt, r0 * inv, r1 * inv, r2 * inv


def _usable_triangles(tris, px, py, pz, ok, ws, fscale, ratio: float, stretch: float):
    """Per frame ``(T, n)``: which triangles are drawn (usable vertices, not cut, non-degenerate)."""
    i0, i1, i2 = tris[:, 0], tris[:, 1], tris[:, 2]
    w0, w1, w2 = ws[:, i0], ws[:, i1], ws[:, i2]
    z0, z1, z2 = pz[:, i0], pz[:, i1], pz[:, i2]
    x0, y0, x1, y1, x2, y2 = px[:, i0], py[:, i0], px[:, i1], py[:, i1], px[:, i2], py[:, i2]
    keep = ok[:, i0] & ok[:, i1] & ok[:, i2]
    jump = torch.maximum(w0, torch.maximum(w1, w2)) > ratio * torch.minimum(w0, torch.minimum(w1, w2))
    longest = torch.maximum(torch.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)),
                            torch.maximum(torch.sqrt((x2 - x0) * (x2 - x0) + (y2 - y0) * (y2 - y0)),
                                          torch.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1))))
    mag = fscale[:, None] * torch.maximum(w0 / z0, torch.maximum(w1 / z1, w2 / z2))
    keep &= ~(jump & (longest > mag * SQRT2 + stretch))
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    return keep & (area != 0)


def _resolve(image_f, src_w, tris, px, py, pz, ws, win, out_w):
    """Outputs of one frame from its winning triangle per pixel (``win`` ``(P,)``, -1 for none)."""
    C = image_f.shape[0]
    P = win.shape[0]
    dev = win.device
    hit = torch.nonzero(win >= 0).squeeze(1)
    tri = tris[win[hit]]
    i0, i1, i2 = tri[:, 0], tri[:, 1], tri[:, 2]
    X = (hit % out_w).to(torch.float64)
    Y = torch.div(hit, out_w, rounding_mode="floor").to(torch.float64)
    iz = 1.0 / pz
    _, zt, s0, s1, s2 = _weights_torch(X, Y, px[i0], py[i0], px[i1], py[i1], px[i2], py[i2], iz[i0], iz[i1], iz[i2],
                                       ws[i0], ws[i1], ws[i2])
    img = image_f.to(torch.float64)
    col = s0 * img[:, i0] + s1 * img[:, i1] + s2 * img[:, i2]
    fx = lambda i: (i % src_w).to(torch.float64)  # noqa: E731
    fy = lambda i: torch.div(i, src_w, rounding_mode="floor").to(torch.float64)  # noqa: E731
    warped = torch.zeros(C, P, dtype=image_f.dtype, device=dev)
    corr = torch.zeros(2, P, dtype=torch.float32, device=dev)
    depth = torch.zeros(P, dtype=torch.float32, device=dev)
    index = torch.full((P,), -1, dtype=torch.int64, device=dev)
    warped[:, hit] = col.to(image_f.dtype)
    corr[0, hit] = (s0 * fx(i0) + s1 * fx(i1) + s2 * fx(i2)).to(torch.float32)
    corr[1, hit] = (s0 * fy(i0) + s1 * fy(i1) + s2 * fy(i2)).to(torch.float32)
    depth[hit] = zt.to(torch.float32)
    first = (s0 >= s1) & (s0 >= s2)
    index[hit] = torch.where(first, i0, torch.where(s1 >= s2, i1, i2))
    return warped, corr, depth, index, win >= 0


def _render_torch(image, depth, valid, cams, fscale, out_h, out_w, ratio, stretch):
    T, C, H, W = image.shape
    dev = image.device
    px, py, pz, ok = _project_vertices(depth, valid, *cams)
    ws = depth.reshape(T, -1).to(torch.float64)
    tris = _triangles(H, W, dev)
    keep = _usable_triangles(tris, px, py, pz, ok, ws, fscale, ratio, stretch)
    piz = 1.0 / pz
    P = out_h * out_w
    outs = [[] for _ in range(5)]
    sentinel = torch.iinfo(torch.int64).max
    for f in range(T):
        ids = torch.nonzero(keep[f]).squeeze(1)
        tri = tris[ids]
        vx, vy = px[f][tri], py[f][tri]
        bx0 = (torch.ceil(vx.amin(1) - MARGIN)).clamp(min=0.0)
        bx1 = (torch.floor(vx.amax(1) + MARGIN)).clamp(max=out_w - 1.0)
        by0 = (torch.ceil(vy.amin(1) - MARGIN)).clamp(min=0.0)
        by1 = (torch.floor(vy.amax(1) + MARGIN)).clamp(max=out_h - 1.0)
        nx = (bx1 - bx0 + 1).clamp(min=0).to(torch.int64)
        ny = (by1 - by0 + 1).clamp(min=0).to(torch.int64)
        count = nx * ny
        best = torch.full((P + 1,), sentinel, dtype=torch.int64, device=dev)
        ends = torch.cumsum(count, 0)
        total = int(ends[-1]) if ends.numel() else 0
        cuts = [0]
        for b in range(_CHUNK, total, _CHUNK):  # triangle ranges of about _CHUNK candidates each
            cuts.append(int(torch.searchsorted(ends, torch.tensor(b, device=dev), right=True)))
        cuts.append(ids.numel())
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a:
                continue
            cnt = count[a:b]
            n = int(cnt.sum())
            if n == 0:
                continue
            rep = torch.repeat_interleave(torch.arange(a, b, device=dev), cnt)
            start = torch.cumsum(cnt, 0) - cnt
            k = torch.arange(n, device=dev) - torch.repeat_interleave(start, cnt)
            X = bx0[rep] + (k % nx[rep]).to(torch.float64)
            Y = by0[rep] + torch.div(k, nx[rep], rounding_mode="floor").to(torch.float64)
            t3 = tri[rep]
            i0, i1, i2 = t3[:, 0], t3[:, 1], t3[:, 2]
            inside, zt, *_ = _weights_torch(X, Y, px[f, i0], py[f, i0], px[f, i1], py[f, i1], px[f, i2], py[f, i2],
                                            piz[f, i0], piz[f, i1], piz[f, i2], ws[f, i0], ws[f, i1], ws[f, i2])
            bits = zt.to(torch.float32).view(torch.int32).to(torch.int64)
            packed = (bits << 32) | ids[rep]
            pix = torch.where(inside, (Y * out_w + X).to(torch.int64), torch.full_like(rep, P))
            best.scatter_reduce_(0, pix, packed, reduce="amin")
        best = best[:P]
        win = torch.where(best == sentinel, torch.full_like(best, -1), best & 0xFFFFFFFF)
        for o, r in zip(outs, _resolve(image[f].reshape(C, -1), W, tris, px[f], py[f], pz[f], ws[f], win, out_w)):
            o.append(r)
    warped, corr, zt, index, mask = (torch.stack(o) for o in outs)
    return SplatResult(warped.reshape(T, C, out_h, out_w), mask.reshape(T, out_h, out_w),
                       corr.reshape(T, 2, out_h, out_w), zt.reshape(T, out_h, out_w), index.reshape(T, out_h, out_w))


def _weights_py(X, Y, x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, w0, w1, w2):
    """(inside, target depth, s0, s1, s2) of pixel centre (X, Y) in a triangle: the definition ``_mesh_numba._test``
    computes in the same operations (Python floats are IEEE float64); ``iz*`` inverse target depths, ``w*``
    source depths."""
    e0 = (x2 - x1) * (Y - y1) - (y2 - y1) * (X - x1)
    e1 = -((x2 - x0) * (Y - y0) - (y2 - y0) * (X - x0))
    e2 = (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    if area < 0.0:
        e0, e1, e2 = -e0, -e1, -e2
    tol = abs(area) * EDGE_TOL
    if not (e0 >= -tol and e1 >= -tol and e2 >= -tol):
        return False, 0.0, 0.0, 0.0, 0.0
    e0, e1, e2 = max(e0, 0.0), max(e1, 0.0), max(e2, 0.0)
    S = e0 + e1 + e2
    if not S > 0.0:
        return False, 0.0, 0.0, 0.0, 0.0
    q0, q1, q2 = e0 * iz0, e1 * iz1, e2 * iz2
    zt = S / (q0 + q1 + q2)
    r0, r1, r2 = q0 * w0, q1 * w1, q2 * w2
    inv = 1.0 / (r0 + r1 + r2)
    return True, zt, r0 * inv, r1 * inv, r2 * inv


def _render_reference(image, depth, valid, cams, fscale, out_h, out_w, ratio, stretch):
    """The definition: loop over triangles in index order, then over the pixel centres they cover."""
    T, C, H, W = image.shape
    px, py, pz, ok = (a.cpu().tolist() for a in _project_vertices(depth.cpu(), valid, *(c.cpu() for c in cams)))
    ws = depth.reshape(T, -1).to(torch.float64).cpu().tolist()
    tris = _triangles(H, W).tolist()
    img = image.reshape(T, C, -1).to(torch.float64).cpu().tolist()
    fs = fscale.cpu().tolist()
    P = out_h * out_w
    warped = torch.zeros(T, C, P, dtype=torch.float64)
    corr = torch.zeros(T, 2, P, dtype=torch.float64)
    zbuf = torch.zeros(T, P, dtype=torch.float64)
    index = torch.full((T, P), -1, dtype=torch.int64)
    for f in range(T):
        X_, Y_, Z_, O_, S_ = px[f], py[f], pz[f], ok[f], ws[f]
        IZ_ = [1.0 / z if z != 0.0 else math.inf for z in Z_]
        best = [math.inf] * P
        win = [-1] * P
        for n, (i0, i1, i2) in enumerate(tris):
            if not (O_[i0] and O_[i1] and O_[i2]):
                continue
            w = (S_[i0], S_[i1], S_[i2])
            x0, y0, x1, y1, x2, y2 = X_[i0], Y_[i0], X_[i1], Y_[i1], X_[i2], Y_[i2]
            if max(w) > ratio * min(w):  # a depth jump: cut unless the triangle stays small in the target
                longest = max(math.sqrt((x1 - x0) * (x1 - x0) + (y1 - y0) * (y1 - y0)),
                              math.sqrt((x2 - x0) * (x2 - x0) + (y2 - y0) * (y2 - y0)),
                              math.sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1)))
                mag = fs[f] * max(w[0] / Z_[i0], w[1] / Z_[i1], w[2] / Z_[i2])
                if longest > mag * SQRT2 + stretch:
                    continue
            if (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) == 0.0:
                continue
            bx0 = max(math.ceil(min(x0, x1, x2) - MARGIN), 0)
            bx1 = min(math.floor(max(x0, x1, x2) + MARGIN), out_w - 1)
            by0 = max(math.ceil(min(y0, y1, y2) - MARGIN), 0)
            by1 = min(math.floor(max(y0, y1, y2) + MARGIN), out_h - 1)
            for yy in range(by0, by1 + 1):
                for xx in range(bx0, bx1 + 1):
                    inside, zt, *_ = _weights_py(float(xx), float(yy), x0, y0, x1, y1, x2, y2,
                                                 IZ_[i0], IZ_[i1], IZ_[i2], *w)
                    p = yy * out_w + xx
                    if inside and float(np.float32(zt)) < best[p]:
                        best[p], win[p] = float(np.float32(zt)), n
        for p in range(P):
            if win[p] < 0:
                continue
            i0, i1, i2 = tris[win[p]]
            _, zt, s0, s1, s2 = _weights_py(float(p % out_w), float(p // out_w), X_[i0], Y_[i0], X_[i1], Y_[i1],
                                            X_[i2], Y_[i2], IZ_[i0], IZ_[i1], IZ_[i2], S_[i0], S_[i1], S_[i2])
            for c in range(C):
                warped[f, c, p] = s0 * img[f][c][i0] + s1 * img[f][c][i1] + s2 * img[f][c][i2]
            corr[f, 0, p] = s0 * (i0 % W) + s1 * (i1 % W) + s2 * (i2 % W)
            corr[f, 1, p] = s0 * (i0 // W) + s1 * (i1 // W) + s2 * (i2 // W)
            zbuf[f, p] = zt
            index[f, p] = i0 if (s0 >= s1 and s0 >= s2) else (i1 if s1 >= s2 else i2)
    mask = index >= 0
    dev = image.device
    return SplatResult(warped.to(image.dtype).reshape(T, C, out_h, out_w).to(dev), mask.reshape(T, out_h, out_w).to(dev),
                       corr.to(torch.float32).reshape(T, 2, out_h, out_w).to(dev),
                       zbuf.to(torch.float32).reshape(T, out_h, out_w).to(dev), index.reshape(T, out_h, out_w).to(dev))


def extend_background(image: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor | None = None,
                      max_depth_ratio: float = DEFAULT_DEPTH_RATIO):
    """The source frames with each depth discontinuity's near side pushed to the far side's depth.

    A usable pixel (valid, finite positive depth) whose deepest 8-neighbour is more than
    ``max_depth_ratio`` times deeper is *modified*: it takes that neighbour's depth and colour (the first
    of equals, the four side neighbours before the diagonals). Meshed, the modified pixels continue the background under
    the foreground's silhouette by one pixel, so the background band next to a silhouette, which the
    foreground's cut triangles leave uncovered, is filled with background where a new view reveals it.

    Args:
        image: ``(T, C, H, W)`` frames.
        depth: ``(T, H, W)`` z-depth.
        valid: ``(T, H, W)`` bool, pixels to use.
        max_depth_ratio: the depth jump that counts as a discontinuity (as in :func:`mesh_render`).

    Returns:
        ``(ext_image, ext_depth, modified, region)``: the frames and depth with the modified pixels
        replaced, the ``(T, H, W)`` modified pixels, and the usable pixels within one pixel of one.

    Example:
        >>> d = torch.full((1, 3, 4), 1.0); d[..., 2:] = 3.0
        >>> img = torch.arange(12.0).reshape(1, 1, 3, 4)
        >>> ext_img, ext_d, modified, region = extend_background(img, d)
        >>> modified[0].int().tolist(), ext_d[0, 0].tolist(), ext_img[0, 0, 1].tolist()
        ([[0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], [1.0, 3.0, 3.0, 3.0], [4.0, 6.0, 6.0, 7.0])
    """
    T, C, H, W = image.shape
    dev = depth.device
    usable = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        usable &= valid.to(dev)
    d = torch.where(usable, depth, torch.zeros((), dtype=depth.dtype, device=dev))
    index = torch.arange(H * W, device=dev).reshape(1, H, W)
    dp = torch.nn.functional.pad(d, (1, 1, 1, 1))
    ip = torch.nn.functional.pad(index, (1, 1, 1, 1), value=-1).expand(T, -1, -1)
    deepest, source = d.clone(), index.expand(T, -1, -1).clone()
    for dy, dx in _NEIGHBOURS:
        nd = dp[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
        deeper = nd > deepest
        deepest = torch.where(deeper, nd, deepest)
        source = torch.where(deeper, ip[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W], source)
    modified = usable & (deepest > d * torch.tensor(max_depth_ratio, dtype=d.dtype, device=dev))
    ext_depth = torch.where(modified, deepest, depth)
    flat = image.reshape(T, C, H * W)
    moved = torch.gather(flat, 2, source.reshape(T, 1, H * W).expand(T, C, -1)).reshape(T, C, H, W)
    ext_image = torch.where(modified[:, None], moved, image)
    near = torch.nn.functional.max_pool2d(modified[:, None].to(torch.float32), 3, stride=1, padding=1)[:, 0] > 0
    return ext_image, ext_depth, modified, near & usable


def mesh_render(
    image: torch.Tensor,
    depth: torch.Tensor,
    K_src: torch.Tensor,
    w2c_src: torch.Tensor,
    K_tgt: torch.Tensor,
    w2c_tgt: torch.Tensor,
    *,
    target_size: tuple[int, int] | None = None,
    valid: torch.Tensor | None = None,
    max_depth_ratio: float = DEFAULT_DEPTH_RATIO,
    max_stretch: float = DEFAULT_STRETCH,
    fill_points: bool = True,
    extend: bool = True,
    backend: str = "auto",
) -> SplatResult:
    """Carry source frames to target cameras by rasterising each frame's depth mesh with a z-buffer.

    Every 2x2 quad of source pixels gives two triangles; triangles with an unusable vertex (invalid,
    non-finite or non-positive depth, behind the target camera) or whose source depths span more
    than ``max_depth_ratio`` are dropped. Each target pixel centre takes the nearest triangle
    covering it; colour, source coordinate and depth are interpolated with perspective-correct
    barycentrics. Same outputs as :func:`~vnvs.geometry.splat.forward_splat`.

    Args:
        image: ``(T, C, H, W)`` source frames (any channels).
        depth: ``(T, H, W)`` source z-depth.
        K_src: ``(T, 3, 3)`` source intrinsics.
        w2c_src: ``(T, 4, 4)`` source extrinsics.
        K_tgt: ``(T, 3, 3)`` target intrinsics, in pixels of the target grid.
        w2c_tgt: ``(T, 4, 4)`` target extrinsics.
        target_size: ``(H_t, W_t)``; defaults to the source size.
        valid: ``(T, H, W)`` bool, source pixels to use.
        max_depth_ratio: a triangle is a depth jump when its largest source depth exceeds this factor
            times its smallest (``inf``: none is).
        max_stretch: a depth-jump triangle is still drawn when its longest edge in the target is at most
            ``sqrt(2) * m + max_stretch`` pixels, ``m`` the largest magnification of its vertices
            (focal ratio times source over target depth): it then bridges an opening narrower than
            about ``max_stretch`` pixels (the half-pixel bands on both sides of an occlusion edge);
            wider ones stay holes. ``-inf`` cuts every depth jump.
        fill_points: target pixels no triangle covers take the z-buffer point splat's result
            (:func:`~vnvs.geometry.splat.forward_splat`): the source pixels on a cut edge still land
            on the sub-pixel band between their centre and the silhouette, which no triangle reaches.
        extend: target pixels no triangle covers may also take the mesh of :func:`extend_background`'s
            frames (the background continued one pixel under each silhouette): the band between the
            background's last pixel centre and the silhouette, which a new view can reveal. Where both a
            point and the extension land, the nearer wins.
        backend: ``"auto"`` (numba on CPU, torch on CUDA), ``"numba"``, ``"torch"`` or ``"reference"``.

    Returns:
        A :class:`~vnvs.geometry.splat.SplatResult`: ``warped (T, C, H_t, W_t)``, ``mask (T, H_t, W_t)``,
        ``corr (T, 2, H_t, W_t)`` (sub-pixel source coordinates), ``depth (T, H_t, W_t)`` and ``index``
        (the source pixel of the largest barycentric weight, -1 where nothing landed).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> K = torch.tensor([[[4.0, 0, 2], [0, 4, 1.5], [0, 0, 1]]]); I = torch.eye(4)[None]
        >>> img = torch.rand(1, 3, 4, 5)
        >>> out = mesh_render(img, torch.ones(1, 4, 5), K, I, K, I)
        >>> bool(out.mask.all()), torch.allclose(out.warped, img, atol=1e-6)
        (True, True)
        >>> Kt = K.clone(); Kt[:, :2] *= 2   # twice the focal length and size: no cracks, half-pixel corr
        >>> out = mesh_render(img, torch.ones(1, 4, 5), K, I, Kt, I, target_size=(8, 10))
        >>> int(out.mask.sum()), out.corr[0, 0, 3, 1:4].tolist()
        (63, [0.5, 1.0, 1.5])
    """
    _check_frames(image, depth)
    if valid is not None and valid.shape != depth.shape:
        raise ValueError(f"valid must be (T, H, W) = {tuple(depth.shape)}, got {tuple(valid.shape)}")
    ratio = float(max_depth_ratio)
    if not ratio >= 1.0:
        raise ValueError(f"max_depth_ratio must be >= 1, got {max_depth_ratio}")
    stretch = float(max_stretch)
    if stretch != stretch:
        raise ValueError("max_stretch must be a number, got NaN")
    T, C, H, W = image.shape
    out_h, out_w = (int(s) for s in (target_size if target_size is not None else (H, W)))
    backend = _pick_backend(backend, image.device)
    cams = _camera_terms(K_src, w2c_src, K_tgt, w2c_tgt)
    fscale = _focal_ratio(K_src, K_tgt)
    image = image.detach()
    depth = depth.detach().to(torch.float32)
    if backend == "numba":  # one kernel: triangles, then the points and the extension in the holes
        return _render_numba(image, depth, valid, cams, fscale, out_h, out_w, ratio, stretch, fill_points, extend)
    ext = extend_background(image, depth, valid, ratio) if extend else None

    def triangles(img, dep, val):
        if backend == "reference":
            return _render_reference(img, dep, val, cams, fscale, out_h, out_w, ratio, stretch)
        return _render_torch(img, dep, val, tuple(c.to(image.device) for c in cams), fscale.to(image.device),
                             out_h, out_w, ratio, stretch)

    out = triangles(image, depth, valid)
    if not (fill_points or extend):
        return out
    hole = ~out.mask
    empty = SplatResult(torch.zeros_like(out.warped), torch.zeros_like(out.mask), torch.zeros_like(out.corr),
                        torch.zeros_like(out.depth), torch.full_like(out.index, -1))
    pts = forward_splat(image, depth, K_src, w2c_src, K_tgt, w2c_tgt, target_size=(out_h, out_w), valid=valid,
                        backend=backend) if fill_points else empty
    bg = triangles(ext[0], ext[1], ext[3]) if extend else empty
    use_bg = hole & bg.mask & (~pts.mask | (bg.depth < pts.depth))
    use_pts = hole & pts.mask & ~use_bg

    def pick(a, b, c):
        wb, wp = (use_bg[:, None], use_pts[:, None]) if a.dim() == 4 else (use_bg, use_pts)
        return torch.where(wb, b, torch.where(wp, c, a))

    return SplatResult(pick(out.warped, bg.warped, pts.warped), out.mask | use_bg | use_pts,
                       pick(out.corr, bg.corr, pts.corr), pick(out.depth, bg.depth, pts.depth),
                       pick(out.index, bg.index, pts.index))


def _render_numba(image, depth, valid, cams, fscale, out_h, out_w, ratio, stretch, fill_points, extend):
    T, C = image.shape[:2]
    if image.device.type != "cpu":
        raise ValueError("the numba mesh backend runs on CPU tensors; use backend='torch' on CUDA")
    from vnvs.geometry._mesh_numba import mesh_kernel

    img = image.reshape(T, C, -1).contiguous()
    outs = _numba_outputs(img, out_h, out_w)
    valid_np = valid.contiguous().numpy() if valid is not None else np.zeros((0, 0, 0), dtype=np.bool_)
    Kinv, R, t, Kt = cams
    depth_np, fscale_np = depth.contiguous().numpy(), fscale.cpu().contiguous().numpy()
    with numba_launch():
        mesh_kernel(img.numpy(), depth_np, valid_np, Kinv.numpy(), R.numpy(), t.numpy(), Kt.numpy(), fscale_np,
                    out_h, out_w, _NEAR, ratio, stretch, bool(fill_points), bool(extend),
                    *(o.numpy() for o in outs))
    return _as_result(outs, out_h, out_w)
