"""The resize-and-centre-crop that turns a video's frames into the frames vnvs works on, and what it
does to intrinsics and depth maps (pixel centres at integer coordinates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vnvs.errors import VideoError

Fit = Literal["resize", "crop", "resize_crop"]
_FITS = ("resize", "crop", "resize_crop")


@dataclass(frozen=True)
class FrameTransform:
    """How output frames relate to source frames: a resize, then a centre crop.

    A source pixel ``(x, y)`` lands at ``((x + 0.5) * scale_x - 0.5 - crop_left,
    (y + 0.5) * scale_y - 0.5 - crop_top)`` in the output (pixel centres at integers).
    """

    source_size: tuple[int, int]
    """``(H, W)`` of the source frames as displayed."""
    resized_size: tuple[int, int]
    """``(H, W)`` after the resize, before the crop (equals ``source_size`` without a resize)."""
    crop_top: int
    """Rows removed at the top by the centre crop, in resized pixels."""
    crop_left: int
    """Columns removed at the left by the centre crop, in resized pixels."""
    size: tuple[int, int]
    """``(H, W)`` of the output frames."""

    @property
    def scale_y(self) -> float:
        """Vertical resize factor ``resized_H / source_H``."""
        return self.resized_size[0] / self.source_size[0]

    @property
    def scale_x(self) -> float:
        """Horizontal resize factor ``resized_W / source_W``."""
        return self.resized_size[1] / self.source_size[1]

    @property
    def is_identity(self) -> bool:
        """True when output frames are the source frames unchanged."""
        return self.size == self.source_size and self.resized_size == self.source_size

    def adapt_intrinsics(self, K: torch.Tensor) -> torch.Tensor:
        """Carry intrinsics of the source frames to the output frames.

        Args:
            K: ``(..., 3, 3)`` intrinsics in source pixels.
        Returns:
            ``(..., 3, 3)`` intrinsics in output pixels.
        """
        K = K.clone()
        sx, sy = self.scale_x, self.scale_y
        K[..., 0, :] *= sx
        K[..., 1, :] *= sy
        # x -> (x + 0.5) s - 0.5 - left: the principal point takes the half-pixel shift and crop.
        K[..., 0, 2] += 0.5 * sx - 0.5 - self.crop_left
        K[..., 1, 2] += 0.5 * sy - 0.5 - self.crop_top
        return K


def _round_multiple(x: float, m: int, mode: str) -> int:
    if mode == "floor":
        return max(m, int(x // m) * m)
    return max(m, int(np.floor(x / m + 0.5)) * m)  # half up: 40 -> 48 for m = 16


def plan_transform(
    source_size: tuple[int, int],
    size: int | tuple[int, int] | None = None,
    *,
    multiple: int = 1,
    fit: Fit = "resize",
) -> FrameTransform:
    """Work out the resize and centre crop that turn ``source_size`` frames into the output.

    Args:
        source_size: ``(H, W)`` of the source frames.
        size: ``(H, W)`` of the output, an int for the short side (the long side keeps the
            aspect), or None for the source size.
        multiple: the output height and width are rounded to a multiple of this (e.g. 16).
        fit: ``"resize"`` resizes straight to the rounded size (the aspect may change slightly);
            ``"crop"`` centre-crops without resampling (the size is rounded down, and must fit in
            the source); ``"resize_crop"`` resizes keeping the aspect so the frame covers the
            rounded size, then centre-crops.
    Returns:
        The :class:`FrameTransform`.
    """
    if fit not in _FITS:
        raise VideoError(f"unknown fit {fit!r}; use one of {', '.join(_FITS)}")
    if int(multiple) < 1:
        raise VideoError(f"multiple must be a positive integer, got {multiple}")
    multiple = int(multiple)
    H0, W0 = int(source_size[0]), int(source_size[1])
    if size is None:
        th, tw = float(H0), float(W0)
    elif isinstance(size, (int, np.integer)):
        if size < 1:
            raise VideoError(f"size must be positive, got {size}")
        s = float(size) / min(H0, W0)
        th, tw = (float(size), W0 * s) if H0 <= W0 else (H0 * s, float(size))
    else:
        if len(size) != 2 or min(size) < 1:
            raise VideoError(f"size must be (height, width) with positive entries, got {tuple(size)}")
        th, tw = float(size[0]), float(size[1])

    if fit == "crop":
        H, W = _round_multiple(th, multiple, "floor"), _round_multiple(tw, multiple, "floor")
        if H > H0 or W > W0:
            raise VideoError(
                f"cannot crop {H0}x{W0} frames to {H}x{W}: the crop is larger than the frame "
                f"(use fit='resize' or 'resize_crop')"
            )
        resized = (H0, W0)
    elif fit == "resize":
        H, W = _round_multiple(th, multiple, "round"), _round_multiple(tw, multiple, "round")
        resized = (H, W)
    else:  # resize_crop
        H, W = _round_multiple(th, multiple, "round"), _round_multiple(tw, multiple, "round")
        s = max(H / H0, W / W0)
        resized = (max(H, int(round(H0 * s))), max(W, int(round(W0 * s))))
    top, left = (resized[0] - H) // 2, (resized[1] - W) // 2
    return FrameTransform((H0, W0), resized, top, left, (H, W))


def transform_depth(depth: torch.Tensor, valid: torch.Tensor,
                    transform: FrameTransform) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a frame resize-and-crop (as returned with decoded frames) to depth maps.

    Nearest sampling keeps depth edges sharp (no blend of foreground and background depth);
    validity is carried the same way and cleared where depth is not positive.

    Args:
        depth: ``(T, H, W)`` depth at ``transform.source_size``.
        valid: ``(T, H, W)`` bool.
        transform: the resize and crop applied to the frames.

    Returns:
        ``depth``, ``valid`` ``(T, h, w)`` at ``transform.size``.
    """
    if transform.is_identity:
        return depth, valid
    d, v = depth, valid
    if tuple(transform.resized_size) != tuple(depth.shape[-2:]):
        d = F.interpolate(d[:, None].float(), size=transform.resized_size, mode="nearest-exact")[:, 0]
        v = F.interpolate(v[:, None].float(), size=transform.resized_size, mode="nearest-exact")[:, 0] > 0.5
    h, w = transform.size
    top, left = transform.crop_top, transform.crop_left
    d = d[:, top:top + h, left:left + w].contiguous()
    v = v[:, top:top + h, left:left + w].contiguous()
    return d, v & (d > 0)
