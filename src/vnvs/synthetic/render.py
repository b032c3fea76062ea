"""Vectorized analytic ray casting of :class:`~vnvs.synthetic.scene.Scene` objects.

Rays are cast for every pixel centre (pixel ``(x, y)`` goes through ``K^-1 [x, y, 1]``) with
directions scaled so that their camera-frame z component is 1: the ray parameter of a hit *is* its
z-depth. Objects are intersected analytically in their local frame (ellipsoids via a stable
quadratic, boxes via slabs); the enclosing room box is hit from inside, so every ray hits something
and depth is finite. Frames are processed in chunks of at most ``chunk_rays`` rays.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vnvs.geometry.se3 import invert_se3
from vnvs.errors import InputError
from vnvs.geometry.projection import pixel_grid
from vnvs.synthetic.scene import BOX, Scene
from vnvs.synthetic.textures import albedo as eval_albedo
from vnvs.synthetic.textures import shade

#: Default number of rays per chunk (bounds peak memory to a few hundred MB).
CHUNK_RAYS = 1 << 17


@dataclass
class RenderOutput:
    """Renders of ``N`` frames.

    Attributes:
        rgb: ``(N, 3, H, W)`` float32 in [0, 1] (None if not requested).
        depth: ``(N, H, W)`` float32 camera-frame z (> 0, finite everywhere).
        instance: ``(N, H, W)`` int64 (0 = room, 1..O = objects).
        local_points: ``(N, 3, H, W)`` hit point in the hit instance's local frame (room: world
            frame); None if not requested.
        albedo: ``(N, 3, H, W)`` unshaded texture colour (None if not requested).
    """

    rgb: torch.Tensor | None
    depth: torch.Tensor
    instance: torch.Tensor
    local_points: torch.Tensor | None = None
    albedo: torch.Tensor | None = None


def _as_batch(w2c, K, times, n: int | None = None):
    w2c = torch.as_tensor(w2c, dtype=torch.float32)
    K = torch.as_tensor(K, dtype=torch.float32)
    if w2c.shape[-2:] != (4, 4) or K.shape[-2:] != (3, 3):
        raise InputError(f"expected w2c (N,4,4) and K (N,3,3), got {tuple(w2c.shape)} and {tuple(K.shape)}")
    w2c = w2c.reshape(-1, 4, 4)
    K = K.reshape(-1, 3, 3)
    N = max(w2c.shape[0], K.shape[0], n or 1)
    times = torch.as_tensor(times, dtype=torch.float32).reshape(-1)
    N = max(N, times.shape[0])
    try:
        w2c, K, times = w2c.expand(N, 4, 4), K.expand(N, 3, 3), times.expand(N)
    except RuntimeError as e:
        raise InputError(f"cannot broadcast w2c {tuple(w2c.shape)}, K {tuple(K.shape)}, times {tuple(times.shape)}") from e
    return w2c.contiguous(), K.contiguous(), times.contiguous()


def _ray_basis(w2c: torch.Tensor, K: torch.Tensor):
    """Camera centres ``(F, 3)`` and ``M = R_c2w K^-1`` ``(F, 3, 3)``: the world ray direction of
    pixel ``(x, y)`` is ``M [x, y, 1]`` (its camera-frame z component is 1)."""
    c2w = invert_se3(w2c)
    return c2w[:, :3, 3], c2w[:, :3, :3] @ torch.linalg.inv(K)


def _lin(M: torch.Tensor, i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of ``M [x, y, 1]`` for per-frame ``M`` ``(F, 3, 3)`` and pixels ``(F|1, P)``."""
    return torch.addcmul(torch.addcmul(M[:, i, 2, None], M[:, i, 0, None], x), M[:, i, 1, None], y)


def _cast(scene: Scene, origins: torch.Tensor, M: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
          times: torch.Tensor, need_local: bool, need_color: bool):
    """Cast the rays of pixels ``(x, y)`` (each ``(F|1, P)``) of cameras ``(origins, M)``.

    All per-pixel work is done on separate ``(F, P)`` channels (fast elementwise kernels); the
    direction of a ray is linear in its pixel coordinates, ``d = M [x, y, 1]``, also in an object's
    local frame (``R^T M``), so ray set-up costs two multiply-adds per channel.

    Returns flat ``(F * P,)`` depth and instance, and ``(F * P, 3)`` local points, albedo and
    ``(F * P,)`` shading (None when not requested).
    """
    F = M.shape[0]
    P = x.shape[-1]
    x = x.expand(F, P)
    y = y.expand(F, P)
    d = [_lin(M, i, x, y) for i in range(3)]
    o = origins
    # Room (a box seen from inside): exit distance = min over axes of the far slab.
    best_t = None
    for i in range(3):
        inv = 1.0 / d[i]
        bound = torch.where(inv > 0, scene.room_max[i], scene.room_min[i])
        ti = (bound - o[:, i, None]) * inv
        best_t = ti if best_t is None else torch.minimum(best_t, ti)
    inst = torch.zeros(F, P, dtype=torch.int64)
    if scene.num_objects:
        R, p = scene.poses(times)  # (F,O,3,3), (F,O,3)
    for k in range(scene.num_objects):
        Rk = R[:, k]
        s = scene.sizes[k]
        o_l = ((o - p[:, k])[:, None, :] @ Rk)[:, 0]  # (F,3) = R^T (o - p)
        Ml = Rk.transpose(1, 2) @ M  # local ray directions d_l = Ml [x, y, 1]
        if int(scene.kinds[k]) == BOX:
            tn = tf = None
            for i in range(3):
                inv = 1.0 / _lin(Ml, i, x, y)
                t1 = (-s[i] - o_l[:, i, None]) * inv
                t2 = (s[i] - o_l[:, i, None]) * inv
                lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
                tn = lo if tn is None else torch.maximum(tn, lo)
                tf = hi if tf is None else torch.minimum(tf, hi)
            t = tn
            hit = (tn <= tf) & (tn > 0)
        else:  # sphere / ellipsoid: |(o + t d) / s|^2 = 1, stable near root c / (sqrt(disc) - b)
            Ms = Ml / s[None, :, None]
            os_ = o_l / s
            ds = [_lin(Ms, i, x, y) for i in range(3)]
            a = ds[0].square() + ds[1].square() + ds[2].square()
            b = ds[0] * os_[:, 0, None] + ds[1] * os_[:, 1, None] + ds[2] * os_[:, 2, None]
            c = (os_.square().sum(-1) - 1.0)[:, None]
            disc = b * b - a * c
            t = c / (torch.sqrt(disc.clamp_min(0)) - b)
            hit = (disc > 0) & (b < 0) & (c > 0)
        closer = hit & (t < best_t)
        best_t = torch.where(closer, t, best_t)
        inst = torch.where(closer, k + 1, inst)
    best_t, inst = best_t.reshape(-1), inst.reshape(-1)
    if not (need_local or need_color):
        return best_t, inst, None, None, None
    # Per instance: gather its pixels, move hits to its local frame, texture and shade them.
    local = torch.empty(F * P, 3)
    alb = torch.empty(F * P, 3) if need_color else None
    sh = torch.empty(F * P) if need_color else None
    dflat = torch.stack([di.reshape(-1) for di in d], -1)  # (F*P, 3)
    room_c = (scene.room_max + scene.room_min) / 2
    room_h = (scene.room_max - scene.room_min) / 2
    for k in range(scene.num_objects + 1):
        sel = (inst == k).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        fidx = torch.div(sel, P, rounding_mode="floor")
        X = o[fidx] + best_t[sel, None] * dflat[sel]
        if k == 0:
            lp = X
        else:
            Rf = R[fidx, k - 1]  # (n,3,3)
            lp = ((X - p[fidx, k - 1])[:, :, None] * Rf).sum(1)  # R^T (X - p)
        local[sel] = lp
        if not need_color:
            continue
        if k == 0:
            qs = (lp - room_c) / room_h
            n = -(qs.square().square() * qs.square() * qs) / room_h  # bevelled inward normal
            L = scene.light_dir.expand(1, 3)
        else:
            size = scene.sizes[k - 1]
            if int(scene.kinds[k - 1]) == BOX:
                qs = lp / size
                n = qs.square().square() * qs.square() * qs / size  # (x/h)^7 / h: bevelled box normal
            else:
                n = lp / size.square()
            L = scene.light_dir @ R[fidx, k - 1]  # light direction in the object frame
        n = torch.nn.functional.normalize(n, dim=-1)
        sh[sel] = shade((n * L).sum(-1), scene.ambient)
        alb[sel] = eval_albedo(lp, scene.textures[k])
    return best_t, inst, local, alb, sh


def cast_pixels(scene: Scene, w2c: torch.Tensor, K: torch.Tensor, pixels: torch.Tensor, times: torch.Tensor,
                need_local: bool = False, need_color: bool = False, chunk_rays: int = CHUNK_RAYS):
    """Cast rays through arbitrary (sub-)pixel coordinates.

    Args:
        w2c, K, times: ``(N, 4, 4)``, ``(N, 3, 3)``, ``(N,)``.
        pixels: ``(N, P, 2)`` or ``(P, 2)`` pixel coordinates ``(x, y)``.

    Returns:
        depth ``(N, P)``, instance ``(N, P)``, local points ``(N, P, 3)`` or None,
        albedo ``(N, P, 3)`` or None, shading ``(N, P)`` or None.
    """
    N = w2c.shape[0]
    P = pixels.shape[-2]
    shared = pixels.dim() == 2
    depth = torch.empty(N, P)
    inst = torch.empty(N, P, dtype=torch.int64)
    local = torch.empty(N, P, 3) if need_local or need_color else None
    alb = torch.empty(N, P, 3) if need_color else None
    sh = torch.empty(N, P) if need_color else None
    fpc = max(1, chunk_rays // max(P, 1))
    ppc = P if fpc > 1 or P <= chunk_rays else chunk_rays
    origins, M = _ray_basis(w2c, K)
    for f0 in range(0, N, fpc):
        f1 = min(N, f0 + fpc)
        for p0 in range(0, P, ppc):
            p1 = min(P, p0 + ppc)
            pix = pixels[None, p0:p1] if shared else pixels[f0:f1, p0:p1]
            t, i, lp, a, s = _cast(scene, origins[f0:f1], M[f0:f1], pix[..., 0], pix[..., 1], times[f0:f1],
                                   need_local, need_color)
            n = f1 - f0
            depth[f0:f1, p0:p1] = t.reshape(n, -1)
            inst[f0:f1, p0:p1] = i.reshape(n, -1)
            if local is not None:
                local[f0:f1, p0:p1] = lp.reshape(n, -1, 3)
            if need_color:
                alb[f0:f1, p0:p1] = a.reshape(n, -1, 3)
                sh[f0:f1, p0:p1] = s.reshape(n, -1)
    return depth, inst, local, alb, sh


def render(scene: Scene, w2c, K, height: int, width: int, times, *, rgb: bool = True,
           local_points: bool = True, albedo: bool = False, chunk_rays: int = CHUNK_RAYS) -> RenderOutput:
    """Render frames of a scene by analytic ray casting.

    Args:
        scene: the scene.
        w2c: ``(N, 4, 4)`` world-to-camera (or one ``(4, 4)`` broadcast over ``times``).
        K: ``(N, 3, 3)`` or ``(3, 3)`` intrinsics in pixels of a ``height x width`` image.
        height, width: image size.
        times: ``(N,)`` times in ``[0, 1]`` (or a float broadcast over the cameras).
        rgb: compute the shaded colour.
        local_points: return hit points in their instance's local frame.
        albedo: also return the unshaded texture colour.
        chunk_rays: rays per chunk (memory bound).

    Returns:
        A :class:`RenderOutput`.

    Example:
        >>> from vnvs.synthetic import generate_scene, source_camera_path
        >>> scene = generate_scene(0)
        >>> w2c, K = source_camera_path(scene, 2, 32, 32)
        >>> out = render(scene, w2c, K, 32, 32, torch.tensor([0.0, 1.0]))
        >>> out.rgb.shape, out.depth.shape, out.instance.dtype
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 32, 32]), torch.int64)
    """
    w2c, K, times = _as_batch(w2c, K, times)
    N = w2c.shape[0]
    need_color = rgb or albedo
    depth, inst, local, alb, sh = cast_pixels(scene, w2c, K, pixel_grid(height, width).reshape(2, -1).T, times,
                                              need_local=local_points, need_color=need_color, chunk_rays=chunk_rays)

    def img(x):  # (N, P, 3) -> (N, 3, H, W)
        return x.reshape(N, height, width, 3).permute(0, 3, 1, 2).contiguous()

    return RenderOutput(
        rgb=img(alb * sh[..., None]) if rgb else None,
        depth=depth.reshape(N, height, width),
        instance=inst.reshape(N, height, width),
        local_points=img(local) if local_points else None,
        albedo=img(alb) if albedo else None,
    )


def render_depth(scene: Scene, w2c, K, height: int, width: int, times, chunk_rays: int = CHUNK_RAYS):
    """Depth ``(N, H, W)`` and instance ids ``(N, H, W)`` only (no shading): the fast path."""
    out = render(scene, w2c, K, height, width, times, rgb=False, local_points=False, chunk_rays=chunk_rays)
    return out.depth, out.instance


def median_depth(scene: Scene, w2c: torch.Tensor, K: torch.Tensor, height: int, width: int,
                 times: torch.Tensor | None = None, max_side: int = 64) -> float:
    """Median z-depth of the scene seen by the given cameras (the "look-at depth").

    Renders depth at a reduced resolution (longest side ``max_side``) for speed.
    ``times`` defaults to ``linspace(0, 1, N)``.
    """
    w2c = torch.as_tensor(w2c, dtype=torch.float32).reshape(-1, 4, 4)
    K = torch.as_tensor(K, dtype=torch.float32).reshape(-1, 3, 3).expand(w2c.shape[0], 3, 3)
    s = min(1.0, max_side / max(height, width))
    h, w = max(1, round(height * s)), max(1, round(width * s))
    Ks = K.clone()
    Ks[:, 0, :] *= w / width
    Ks[:, 1, :] *= h / height
    Ks[:, 0, 2] = (K[:, 0, 2] + 0.5) * w / width - 0.5
    Ks[:, 1, 2] = (K[:, 1, 2] + 0.5) * h / height - 0.5
    if times is None:
        times = torch.linspace(0, 1, w2c.shape[0])
    depth, _ = render_depth(scene, w2c, Ks, h, w, times)
    return float(depth.median())
