"""Fit training batches to what a model accepts: frame size multiples, frame count, window.

Cropping keeps the control signal exact: the correspondence channels ``C`` (normalised source pixel
coordinates, ``align_corners=True``) are re-expressed in the cropped source frame, and target pixels
whose source pixel falls outside the crop lose their mask (and their ``C`` and ``I_r``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.errors import InputError
from vnvs.geometry.warp import denormalize_coords, normalize_coords


def fit_frame_count(T: int, temporal_multiple: int = 1, window: int | None = None, max_frames: int | None = None) -> int:
    """Largest ``T' <= min(T, window, max_frames)`` with ``(T' - 1) % temporal_multiple == 0`` (0 if none)."""
    limit = min(x for x in (T, window, max_frames) if x is not None)
    if limit < 1:
        return 0
    return (limit - 1) // temporal_multiple * temporal_multiple + 1


def crop_control(control: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Crop a control signal ``(..., 9, H, W)`` (source and target grids alike) to a window.

    The source frame ``I_s`` is cropped with the same window, so ``C`` is moved into the cropped
    frame; target pixels whose correspondence leaves it are masked out.
    """
    H, W = control.shape[-2:]
    win = control[..., top:top + height, left:left + width]
    src, corr, warped, mask = win[..., 0:3, :, :], win[..., 3:5, :, :], win[..., 5:8, :, :], win[..., 8:9, :, :] > 0.5
    xy = denormalize_coords(corr, H, W)
    xy = xy - torch.tensor([left, top], dtype=xy.dtype, device=xy.device).view(2, 1, 1)
    inside = ((xy[..., 0:1, :, :] >= 0) & (xy[..., 0:1, :, :] <= width - 1)
              & (xy[..., 1:2, :, :] >= 0) & (xy[..., 1:2, :, :] <= height - 1))
    m = (mask & inside).to(control.dtype)
    return torch.cat([src, normalize_coords(xy, height, width) * m, warped * m, m], dim=-3)


def resize_control(control: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize a control signal ``(B, T, 9, H, W)``: images bilinear (antialiased), ``C`` and ``M`` nearest.

    ``C`` is normalised with ``align_corners=True``, so it keeps its meaning in the resized source.
    """
    B, T, _, H, W = control.shape
    flat = control.reshape(B * T, 9, H, W)
    images = F.interpolate(flat[:, [0, 1, 2, 5, 6, 7]], size=(height, width), mode="bilinear", align_corners=False,
                           antialias=True)
    nearest = F.interpolate(flat[:, [3, 4, 8]], size=(height, width), mode="nearest-exact")
    m = nearest[:, 2:3]
    out = torch.cat([images[:, 0:3], nearest[:, 0:2] * m, images[:, 3:6] * m, m], dim=1)
    return out.reshape(B, T, 9, height, width)


def fit_batch(control: torch.Tensor, target: torch.Tensor, *, spatial_multiple: int = 1, temporal_multiple: int = 1,
              window: int | None = None, max_frames: int | None = None,
              mode: str = "crop") -> tuple[torch.Tensor, torch.Tensor]:
    """Make a pair batch acceptable to a model.

    Args:
        control: ``(B, T, 9, H, W)``; target: ``(B, T, 3, H, W)``.
        spatial_multiple, temporal_multiple, window: the model's constraints (``NovelViewModel``).
        max_frames: a further cap on the frame count.
        mode: ``crop`` (centre crop to multiples of ``spatial_multiple``), ``resize`` (to the same size
            by resizing), or ``none`` (raise :class:`InputError` unless the batch already fits).
            Frames are always cut to the first ``T'`` (:func:`fit_frame_count`) unless ``none``.

    Returns:
        ``(control, target)`` with ``(T', H', W')``.
    """
    T, _, H, W = target.shape[-4:]
    T2 = fit_frame_count(T, temporal_multiple, window, max_frames)
    H2, W2 = H // spatial_multiple * spatial_multiple, W // spatial_multiple * spatial_multiple
    if T2 < 1 or H2 < 1 or W2 < 1:
        raise InputError(f"samples of {T} frames of {H}x{W} cannot fit the model (frames must be multiples of "
                         f"{spatial_multiple}, (T - 1) % {temporal_multiple} == 0); prepare larger samples")
    if (T2, H2, W2) == (T, H, W):
        return control, target
    if mode == "none":
        raise InputError(f"samples of {T} frames of {H}x{W} do not fit the model (size multiple {spatial_multiple}, "
                         f"(T - 1) % {temporal_multiple} == 0, window {window}, max_frames {max_frames}); "
                         "set adapt_frames to crop or resize, or prepare fitting samples")
    control, target = control[:, :T2], target[:, :T2]
    if (H2, W2) == (H, W):
        return control, target
    if mode == "crop":
        top, left = (H - H2) // 2, (W - W2) // 2
        return crop_control(control, top, left, H2, W2), target[..., top:top + H2, left:left + W2]
    B = target.shape[0]
    target = F.interpolate(target.reshape(B * T2, 3, H, W), size=(H2, W2), mode="bilinear", align_corners=False,
                           antialias=True).reshape(B, T2, 3, H2, W2)
    return resize_control(control, H2, W2), target
