"""Intrinsics helpers and the :class:`Cameras` batch (OpenCV axes, ``w2c`` extrinsics)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace

import torch

from vnvs.geometry.se3 import invert_se3

from vnvs.errors import InputError


def fov_to_focal(fov_deg: float, size: int) -> float:
    """Focal length in pixels giving a field of view of ``fov_deg`` across ``size`` pixels.

    The image spans ``size`` pixels edge to edge (``[-0.5, size - 0.5]``), so
    ``f = (size / 2) / tan(fov / 2)``.

    Example:
        >>> round(fov_to_focal(90.0, 640), 6)
        320.0
    """
    if not (isinstance(fov_deg, (int, float)) and math.isfinite(fov_deg) and 0.0 < fov_deg < 180.0):
        raise InputError(f"field of view must be between 0 and 180 degrees (exclusive), got {fov_deg}")
    return (size / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def default_intrinsics(height: int, width: int, fov_deg: float = 60.0) -> torch.Tensor:
    """Pinhole intrinsics with square pixels and a centred principal point.

    ``fov_deg`` is the field of view across the *longer* image side (horizontal for landscape
    images, vertical for portrait ones), so a video and its transpose get the same focal length.
    The principal point is the image centre ``((W - 1) / 2, (H - 1) / 2)`` (pixel centres at
    integers).

    Args:
        height: image height in pixels.
        width: image width in pixels.
        fov_deg: field of view across the longer side, in degrees.

    Returns:
        ``(3, 3)`` float32 intrinsics.

    Example:
        >>> default_intrinsics(3, 5, fov_deg=90.0)
        tensor([[2.5000, 0.0000, 2.0000],
                [0.0000, 2.5000, 1.0000],
                [0.0000, 0.0000, 1.0000]])
    """
    f = fov_to_focal(fov_deg, max(height, width))
    return torch.tensor([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float32)


def scale_intrinsics(K: torch.Tensor, sx: float | torch.Tensor, sy: float | torch.Tensor) -> torch.Tensor:
    """Intrinsics of an image resized by ``sx`` horizontally and ``sy`` vertically.

    With pixel centres at integers, ``x -> (x + 0.5) sx - 0.5``: focal lengths scale by ``s`` and
    the principal point maps like any pixel coordinate.

    Args:
        K: ``(..., 3, 3)`` intrinsics.
        sx: horizontal factor (new width / old width).
        sy: vertical factor (new height / old height).

    Returns:
        ``(..., 3, 3)`` intrinsics.

    Example:
        >>> scale_intrinsics(default_intrinsics(2, 2, 90.0), 2.0, 2.0)[:2, 2]  # centre 0.5 -> 1.5
        tensor([1.5000, 1.5000])
    """
    out = K.clone()
    out[..., 0, 0] = K[..., 0, 0] * sx
    out[..., 0, 1] = K[..., 0, 1] * sx
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 1] = K[..., 1, 1] * sy
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


def crop_intrinsics(K: torch.Tensor, x0: float | torch.Tensor, y0: float | torch.Tensor) -> torch.Tensor:
    """Intrinsics of a crop whose top-left pixel is ``(x0, y0)`` of the original image.

    Args:
        K: ``(..., 3, 3)`` intrinsics.
        x0: column of the crop's first pixel.
        y0: row of the crop's first pixel.

    Returns:
        ``(..., 3, 3)`` intrinsics.

    Example:
        >>> crop_intrinsics(default_intrinsics(5, 5, 90.0), 1, 2)[:2, 2]
        tensor([1., 0.])
    """
    out = K.clone()
    out[..., 0, 2] = K[..., 0, 2] - x0
    out[..., 1, 2] = K[..., 1, 2] - y0
    return out


@dataclass
class Cameras:
    """A batch of ``T`` pinhole cameras sharing one image size.

    Example:
        >>> cams = Cameras.static(4, 48, 64)
        >>> len(cams), cams.resize(24, 32).K[0, 0, 2].item()
        (4, 15.5)
    """

    w2c: torch.Tensor
    """``(T, 4, 4)`` world-to-camera matrices (OpenCV axes)."""
    K: torch.Tensor
    """``(T, 3, 3)`` intrinsics in pixels of a ``height x width`` image."""
    height: int
    """Image height in pixels."""
    width: int
    """Image width in pixels."""

    def __post_init__(self) -> None:
        if self.w2c.ndim != 3 or self.w2c.shape[1:] != (4, 4):
            raise ValueError(f"w2c must be (T, 4, 4), got {tuple(self.w2c.shape)}")
        if self.K.ndim != 3 or self.K.shape[1:] != (3, 3) or self.K.shape[0] != self.w2c.shape[0]:
            raise ValueError(f"K must be (T, 3, 3) with T={self.w2c.shape[0]}, got {tuple(self.K.shape)}")

    @property
    def c2w(self) -> torch.Tensor:
        """``(T, 4, 4)`` camera-to-world matrices."""
        return invert_se3(self.w2c)

    @property
    def centers(self) -> torch.Tensor:
        """``(T, 3)`` camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    @property
    def device(self) -> torch.device:
        return self.w2c.device

    def __len__(self) -> int:
        return self.w2c.shape[0]

    def __getitem__(self, index: int | slice | torch.Tensor) -> "Cameras":
        """Select cameras by index, slice, index tensor or boolean mask (an int keeps the batch dim)."""
        if not isinstance(index, (slice, torch.Tensor)) and hasattr(index, "__index__"):
            i = operator.index(index)
            index = slice(i, i + 1) if i != -1 else slice(-1, None)
        return replace(self, w2c=self.w2c[index], K=self.K[index])

    def to(self, device: torch.device | str) -> "Cameras":
        return replace(self, w2c=self.w2c.to(device), K=self.K.to(device))

    def with_K(self, K: torch.Tensor) -> "Cameras":
        """Same poses and size with new intrinsics ``(3, 3)`` (broadcast) or ``(T, 3, 3)``."""
        return replace(self, K=K.to(self.K).expand(len(self), 3, 3).clone())

    def resize(self, height: int, width: int) -> "Cameras":
        """Cameras of the images resized to ``height x width`` (pixel-centre-correct)."""
        K = scale_intrinsics(self.K, width / self.width, height / self.height)
        return replace(self, K=K, height=int(height), width=int(width))

    def crop(self, top: int, left: int, height: int, width: int) -> "Cameras":
        """Cameras of the ``height x width`` crop starting at row ``top``, column ``left``."""
        return replace(self, K=crop_intrinsics(self.K, left, top), height=int(height), width=int(width))

    @staticmethod
    def static(num_frames: int, height: int, width: int, fov_deg: float = 60.0) -> "Cameras":
        """``num_frames`` identical cameras at the origin (identity pose) with :func:`default_intrinsics`."""
        K = default_intrinsics(height, width, fov_deg)
        return Cameras(torch.eye(4).repeat(num_frames, 1, 1), K.repeat(num_frames, 1, 1), int(height), int(width))
