"""Unprojection, rigid transforms and projection of points (OpenCV pinhole cameras)."""

from __future__ import annotations

import torch

from vnvs.geometry.se3 import invert_se3


def pixel_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an image.

    Returns:
        ``(2, H, W)`` with channel 0 the x (column) and channel 1 the y (row) coordinate.

    Example:
        >>> pixel_grid(2, 3)[:, 1, 2]
        tensor([2., 1.])
    """
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])


def unproject_depth(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift depth maps to points in their camera frame.

    Args:
        depth: ``(T, H, W)`` z-depth.
        K: ``(T, 3, 3)`` intrinsics.

    Returns:
        ``(T, H, W, 3)`` points ``z * K^-1 [x, y, 1]``.

    Example:
        >>> K = torch.tensor([[[2.0, 0, 1], [0, 2, 1], [0, 0, 1]]])
        >>> unproject_depth(torch.full((1, 3, 3), 4.0), K)[0, 1, 1]
        tensor([0., 0., 4.])
    """
    T, H, W = depth.shape
    grid = pixel_grid(H, W, device=depth.device, dtype=depth.dtype)
    Kinv = torch.linalg.inv(K.to(torch.float64)).to(depth.dtype)
    ones = torch.ones_like(grid[:1])
    pix = torch.cat([grid, ones]).reshape(3, -1)  # (3, HW)
    rays = Kinv @ pix  # (T, 3, HW)
    pts = rays * depth.reshape(T, 1, -1)
    return pts.transpose(1, 2).reshape(T, H, W, 3)


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply rigid transforms to points.

    Args:
        transform: ``(T, 4, 4)``.
        points: ``(T, ..., 3)``.

    Returns:
        ``(T, ..., 3)`` transformed points.

    Example:
        >>> Tr = torch.eye(4)[None].clone(); Tr[0, 2, 3] = 1.0
        >>> transform_points(Tr, torch.zeros(1, 5, 3))[0, 0]
        tensor([0., 0., 1.])
    """
    T = points.shape[0]
    flat = points.reshape(T, -1, 3)
    out = flat @ transform[:, :3, :3].transpose(1, 2) + transform[:, None, :3, 3]
    return out.reshape(points.shape)


def project_points(points: torch.Tensor, K: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points to pixels.

    Args:
        points: ``(T, ..., 3)`` in the camera frame.
        K: ``(T, 3, 3)``.

    Returns:
        ``uv`` ``(T, ..., 2)`` pixel coordinates and ``z`` ``(T, ...)`` depths. Points with
        ``z <= eps`` get non-finite-free but meaningless ``uv``: mask them with ``z``.

    Example:
        >>> K = torch.tensor([[[2.0, 0, 1], [0, 2, 1], [0, 0, 1]]])
        >>> project_points(torch.tensor([[[0.0, 0.0, 4.0]]]), K)[0]
        tensor([[[1., 1.]]])
    """
    T = points.shape[0]
    flat = points.reshape(T, -1, 3)
    h = flat @ K.transpose(1, 2)
    z = flat[..., 2]
    uv = h[..., :2] / h[..., 2:].clamp(min=eps)
    return uv.reshape(*points.shape[:-1], 2), z.reshape(points.shape[:-1])


def relative_transform(w2c_src: torch.Tensor, w2c_tgt: torch.Tensor) -> torch.Tensor:
    """Transform from the source camera frame to the target camera frame.

    Args:
        w2c_src: ``(T, 4, 4)``.
        w2c_tgt: ``(T, 4, 4)``.

    Returns:
        ``(T, 4, 4)`` equal to ``w2c_tgt @ inverse(w2c_src)``.
    """
    return w2c_tgt @ invert_se3(w2c_src)


def depth_to_world(depth: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor) -> torch.Tensor:
    """World points of depth maps: ``(T, H, W)`` depth -> ``(T, H, W, 3)`` world coordinates."""
    return transform_points(invert_se3(w2c), unproject_depth(depth, K))
