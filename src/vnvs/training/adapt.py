"""Fit training batches to what a model accepts: frame size multiples, frame count, window.

Cropping keeps the control signal exact: the correspondence channels ``C`` (normalised source pixel
coordinates, ``align_corners=True``) are re-expressed in the cropped source frame, and target pixels
whose source pixel falls outside the crop lose their mask (and their ``C`` and ``I_r``). Resizing follows
:func:`vnvs.geometry.control.resize_control`, the rule the generators apply at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.errors import InputError
from vnvs.geometry.control import crop_control, resize_control


def fit_frame_count(T: int, temporal_multiple: int = 1, window: int | None = None, max_frames: int | None = None) -> int:
    """Largest ``T' <= min(T, window, max_frames)`` with ``(T' - 1) % temporal_multiple == 0`` (0 if none)."""
    limit = min(x for x in (T, window, max_frames) if x is not None)
    if limit < 1:
        return 0
    return (limit - 1) // temporal_multiple * temporal_multiple + 1


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
    return resize_control(control, (H2, W2)), target
