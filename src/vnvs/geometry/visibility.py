"""Co-visibility of the pixels of one view in another."""

from __future__ import annotations

import torch

from vnvs.geometry.splat import forward_splat, project_depth_to_pixels


def covisibility(
    depth_a: torch.Tensor,
    K_a: torch.Tensor,
    w2c_a: torch.Tensor,
    K_b: torch.Tensor,
    w2c_b: torch.Tensor,
    *,
    size_b: tuple[int, int] | None = None,
    depth_b: torch.Tensor | None = None,
    valid_a: torch.Tensor | None = None,
    rel_tol: float = 0.02,
) -> torch.Tensor:
    """Which pixels of view ``a`` are also seen by view ``b``.

    A pixel is co-visible when its 3D point projects inside view ``b``, in front of the camera,
    and is not hidden there: its depth in ``b`` is within ``rel_tol`` (relative) of ``b``'s depth
    at that pixel. ``b``'s depth is ``depth_b`` when given (e.g. rendered or estimated for ``b``),
    otherwise the z-buffer of ``a``'s own points seen from ``b`` (self-occlusion only).

    Args:
        depth_a: ``(T, H, W)`` depth of view ``a``.
        K_a, w2c_a: ``(T, 3, 3)``, ``(T, 4, 4)`` cameras of view ``a``.
        K_b, w2c_b: cameras of view ``b``.
        size_b: ``(H_b, W_b)``; defaults to ``depth_b``'s size or ``a``'s size.
        depth_b: ``(T, H_b, W_b)`` depth of view ``b``.
        valid_a: ``(T, H, W)`` bool, pixels of ``a`` with valid depth.

    Returns:
        ``(T, H, W)`` bool on ``a``'s grid.

    Example:
        >>> K = torch.tensor([[[4.0, 0, 2], [0, 4, 2], [0, 0, 1]]]); I = torch.eye(4)[None]
        >>> bool(covisibility(torch.ones(1, 5, 5), K, I, K, I).all())
        True
    """
    T, H, W = depth_a.shape
    if size_b is None:
        size_b = tuple(depth_b.shape[-2:]) if depth_b is not None else (H, W)
    Hb, Wb = size_b
    xi, yi, z = project_depth_to_pixels(depth_a, K_a, w2c_a, K_b, w2c_b)
    ok = torch.isfinite(z) & (z > 1e-4) & (depth_a > 0) & (xi >= 0) & (yi >= 0) & (xi < Wb) & (yi < Hb)
    if valid_a is not None:
        ok &= valid_a
    if depth_b is None:
        depth_b = forward_splat(depth_a[:, None].float(), depth_a, K_a, w2c_a, K_b, w2c_b, target_size=size_b,
                                valid=valid_a).depth
    lin = torch.where(ok, yi * Wb + xi, torch.zeros_like(xi)).long().reshape(T, -1)
    zb = torch.gather(depth_b.reshape(T, -1).float(), 1, lin).reshape(T, H, W)
    return ok & (zb > 0) & (z <= zb.double() * (1 + rel_tol))
