"""Exact correspondences and visibility between two sets of cameras/times of a synthetic scene.

For target pixel ``(x, y)`` at target time ``t_t`` the ray caster gives the surface point ``X`` in
its instance's local frame. The point is moved to the source time ``t_s`` with its object's motion
(``X_w = R(t_s) X + p(t_s)``) and projected with the source camera to ``(u, v)`` with depth ``z``.

It is *visible* in the source when

1. ``z > 0`` (in front of the source camera),
2. ``0 <= u <= W_s - 1`` and ``0 <= v <= H_s - 1`` (up to 1e-3 px of float slack, then clamped; inside the span of source pixel centres, where
   bilinear sampling with ``align_corners=True`` is defined), and
3. it is not occluded there:

   * ``visibility="exact"`` (default): the source ray through the *continuous* coordinate
     ``(u, v)`` at ``t_s`` first hits the same instance at depth ``z`` within relative tolerance
     ``rtol`` (default 1e-3). No discretisation error.
   * ``visibility="nearest"``: the source render at the nearest pixel ``(round(u), round(v))`` has
     the same instance and a depth within ``rtol`` (default 2e-2) of ``z``, as a depth-test-based
     pipeline would decide.
"""

from __future__ import annotations

import torch

from vnvs.errors import InputError
from vnvs.geometry.projection import project_points, transform_points
from vnvs.synthetic.render import RenderOutput, _as_batch, cast_pixels, render
from vnvs.synthetic.scene import Scene


def _project_world(points: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor):
    """World points ``(N, 3, H, W)`` -> pixel coordinates ``(N, 2, H, W)`` and depth ``(N, H, W)``."""
    uv, z = project_points(transform_points(w2c, points.permute(0, 2, 3, 1)), K)
    return uv.permute(0, 3, 1, 2), z


def correspondence(scene: Scene, src_w2c, src_K, src_times, tgt_w2c, tgt_K, tgt_times,
                   height: int, width: int, *, src_size: tuple[int, int] | None = None,
                   visibility: str = "exact", rtol: float | None = None, zero_invisible: bool = True,
                   return_depth: bool = False, target: RenderOutput | None = None):
    """Exact correspondence from a target grid to source pixels, and visibility.

    Args:
        scene: the scene.
        src_w2c, src_K, src_times: source cameras ``(N, 4, 4)``, ``(N, 3, 3)`` and times ``(N,)``
            (each broadcastable to ``N``).
        tgt_w2c, tgt_K, tgt_times: target cameras and times, same ``N``.
        height, width: target image size (the grid the correspondence lives on).
        src_size: ``(H_s, W_s)`` of the source images (default: the target size).
        visibility: ``"exact"`` or ``"nearest"`` (see the module docstring).
        rtol: relative depth tolerance of the occlusion test (default 1e-3 exact, 2e-2 nearest).
        zero_invisible: set ``coords`` to 0 where not visible (the project's convention for ``C``).
        return_depth: also return the target depth ``(N, H, W)`` and the projected source depth
            ``z`` ``(N, H, W)``.
        target: a render of the target cameras at ``height x width`` with local points (e.g. the
            ground truth, rendered anyway), used instead of casting the target rays again.

    Returns:
        ``coords`` ``(N, 2, H, W)`` float32: source pixel coordinates ``(u, v)`` (channel 0 = x) of
        the surface point seen at each target pixel; ``visible`` ``(N, H, W)`` bool.
        With ``return_depth`` also ``tgt_depth`` and ``src_z``.

    Example:
        >>> from vnvs.synthetic import generate_scene, source_camera_path
        >>> scene = generate_scene(0)
        >>> w2c, K = source_camera_path(scene, 1, 16, 16)
        >>> C, vis = correspondence(scene, w2c, K, 0.0, w2c, K, 0.0, 16, 16)
        >>> bool(vis.all())
        True
    """
    if visibility not in ("exact", "nearest"):
        raise InputError(f"visibility must be 'exact' or 'nearest', got {visibility!r}")
    Hs, Ws = src_size if src_size is not None else (height, width)
    tgt_w2c, tgt_K, tgt_times = _as_batch(tgt_w2c, tgt_K, tgt_times)
    src_w2c, src_K, src_times = _as_batch(src_w2c, src_K, src_times, n=tgt_w2c.shape[0])
    N = src_w2c.shape[0]
    tgt_w2c, tgt_K, tgt_times = _as_batch(tgt_w2c, tgt_K, tgt_times, n=N)
    if target is None:
        tgt = render(scene, tgt_w2c, tgt_K, height, width, tgt_times, rgb=False, local_points=True)
    elif target.local_points is None or tuple(target.depth.shape) != (N, height, width):
        raise ValueError(f"target must be a render of the {N} target cameras at {height}x{width} with local points")
    else:
        tgt = target
    world = scene.transform_points(tgt.local_points, tgt.instance, src_times)
    uv, z = _project_world(world, src_w2c, src_K)
    u, v = uv[:, 0], uv[:, 1]
    eps = 1e-3  # float slack: a pixel-centre point of the border row must stay inside
    inside = (z > 1e-6) & (u >= -eps) & (u <= Ws - 1 + eps) & (v >= -eps) & (v <= Hs - 1 + eps)
    uv = torch.stack([u.clamp(0, Ws - 1), v.clamp(0, Hs - 1)], 1)
    u, v = uv[:, 0], uv[:, 1]
    if visibility == "exact":
        tol = 1e-3 if rtol is None else rtol
        pix = uv.permute(0, 2, 3, 1).reshape(N, -1, 2)
        d_s, i_s, *_ = cast_pixels(scene, src_w2c, src_K, pix, src_times)
        d_s, i_s = d_s.reshape(N, height, width), i_s.reshape(N, height, width)
    else:
        tol = 2e-2 if rtol is None else rtol
        src = render(scene, src_w2c, src_K, Hs, Ws, src_times, rgb=False, local_points=False)
        ui = u.round().clamp(0, Ws - 1).long()
        vi = v.round().clamp(0, Hs - 1).long()
        flat = (vi * Ws + ui).reshape(N, -1)
        d_s = torch.gather(src.depth.reshape(N, -1), 1, flat).reshape(N, height, width)
        i_s = torch.gather(src.instance.reshape(N, -1), 1, flat).reshape(N, height, width)
    visible = inside & (i_s == tgt.instance) & ((d_s - z).abs() <= tol * z.abs())
    coords = torch.where(visible[:, None], uv, torch.zeros_like(uv)) if zero_invisible else uv
    if return_depth:
        return coords, visible, tgt.depth, z
    return coords, visible
