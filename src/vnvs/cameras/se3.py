"""Rigid transforms as pure tensor functions (OpenCV camera convention, ``w2c`` extrinsics)."""

from __future__ import annotations

import torch


def invert_se3(T: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms.

    Args:
        T: ``(..., 4, 4)`` rigid transforms ``[R | t]``.

    Returns:
        ``(..., 4, 4)`` inverses ``[R^T | -R^T t]``.

    Example:
        >>> T = torch.eye(4); T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
        >>> invert_se3(T)[:3, 3]
        tensor([-1., -2., -3.])
    """
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1
    return out


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    Args:
        axis_angle: ``(..., 3)`` rotation axis scaled by the angle in radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Example:
        >>> R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, torch.pi / 2]))
        >>> (R @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=6)
        tensor([0., 1., 0.])
    """
    angle = axis_angle.norm(dim=-1, keepdim=True)
    safe = torch.where(angle > 1e-12, angle, torch.ones_like(angle))
    axis = axis_angle / safe
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(Kx)
    R = eye + s * Kx + (1 - c) * (Kx @ Kx)
    return torch.where((angle > 1e-12)[..., None], R, eye)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-camera matrices of cameras at ``eye`` looking at ``target`` (OpenCV axes).

    The camera z axis points from ``eye`` to ``target``; its y axis points along ``up``'s
    opposite projected on the image plane (OpenCV y is down). ``up`` defaults to ``(0, -1, 0)``,
    i.e. world "up" is -y, as for a camera with identity rotation.

    Args:
        eye: ``(..., 3)`` camera centres.
        target: ``(..., 3)`` points to look at.
        up: ``(..., 3)`` world up direction.

    Returns:
        ``(..., 4, 4)`` world-to-camera matrices.

    Example:
        >>> w2c = look_at(torch.tensor([0.0, 0.0, -2.0]), torch.zeros(3))
        >>> torch.allclose(w2c, torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]))
        True
    """
    eye, target = torch.broadcast_tensors(eye, target)
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype, device=eye.device)
    up = up.expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    x = torch.nn.functional.normalize(torch.linalg.cross(-up, z, dim=-1), dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=-2)  # rows are the camera axes in world coordinates
    w2c = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    w2c[..., :3, :3] = R
    w2c[..., :3, 3] = -(R @ eye[..., None])[..., 0]
    w2c[..., 3, 3] = 1
    return w2c
