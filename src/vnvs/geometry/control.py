"""The 9-channel control signal ``I_s | C (normalised) | I_r | M`` (Scaling4D)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.geometry.warp import denormalize_coords, normalize_coords

CONTROL_CHANNELS = 9


def build_control_signal(source: torch.Tensor, corr: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Stack the control signal in the order fixed by the design: ``I_s (3) | C (2) | I_r (3) | M (1)``.

    Args:
        source: ``(T, 3, H_s, W_s)`` source frames in [0, 1]; resized to the target grid if needed.
        corr: ``(T, 2, H_t, W_t)`` source pixel coordinates on the target grid.
        warped: ``(T, 3, H_t, W_t)`` warped frames.
        mask: ``(T, H_t, W_t)`` bool.

    Returns:
        ``(T, 9, H_t, W_t)`` float32; ``C`` normalised to [-1, 1] with the source size, and ``C``,
        ``I_r`` zero where ``mask`` is False.

    Example:
        >>> sig = build_control_signal(torch.rand(2, 3, 8, 8), torch.zeros(2, 2, 8, 8), torch.rand(2, 3, 8, 8),
        ...                            torch.zeros(2, 8, 8, dtype=torch.bool))
        >>> tuple(sig.shape), float(sig[:, 3:].abs().sum())
        ((2, 9, 8, 8), 0.0)
    """
    T, _, Hs, Ws = source.shape
    Ht, Wt = corr.shape[-2:]
    if warped.shape[-2:] != (Ht, Wt) or mask.shape[-2:] != (Ht, Wt):
        raise ValueError("corr, warped and mask must share the target grid size")
    m = mask[:, None].to(torch.float32)
    src = source.float()
    if (Hs, Ws) != (Ht, Wt):
        src = F.interpolate(src, size=(Ht, Wt), mode="bilinear", align_corners=False, antialias=True)
    c = normalize_coords(corr.float(), Hs, Ws) * m
    return torch.cat([src, c, warped.float() * m, m], dim=1)


def split_control_signal(signal: torch.Tensor, source_size: tuple[int, int] | None = None):
    """Unpack a control signal ``(..., 9, H, W)`` into ``(I_s, C, I_r, M)``.

    ``C`` comes back in pixel coordinates of ``source_size`` (default: the signal's own size);
    ``M`` as bool ``(..., H, W)``.
    """
    if signal.shape[-3] != CONTROL_CHANNELS:
        raise ValueError(f"control signal must have {CONTROL_CHANNELS} channels, got {signal.shape[-3]}")
    H, W = source_size if source_size is not None else signal.shape[-2:]
    mask = signal[..., 8, :, :] > 0.5
    corr = denormalize_coords(signal[..., 3:5, :, :], H, W) * mask[..., None, :, :]
    return signal[..., 0:3, :, :], corr, signal[..., 5:8, :, :], mask
