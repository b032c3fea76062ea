"""Backward warping by correspondence maps and flow <-> correspondence conversion."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.geometry.projection import pixel_grid


def normalize_coords(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates to [-1, 1] (``align_corners=True``: centres 0 and W-1 map to -1 and 1).

    Args:
        coords: ``(..., 2, H_t, W_t)`` pixel coordinates (x, y) in an image of size ``(height, width)``.

    Example:
        >>> normalize_coords(torch.tensor([[[0.0]], [[3.0]]]), 4, 5)
        tensor([[[-1.]],
        <BLANKLINE>
                [[ 1.]]])
    """
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=coords.dtype, device=coords.device)
    return coords * scale.view(2, 1, 1) - 1.0


def denormalize_coords(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`normalize_coords`."""
    scale = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0], dtype=coords.dtype, device=coords.device)
    return (coords + 1.0) * scale.view(2, 1, 1)


def backward_warp(image: torch.Tensor, corr: torch.Tensor, mask: torch.Tensor | None = None,
                  mode: str = "bilinear", padding_mode: str = "zeros") -> torch.Tensor:
    """Sample a source frame at correspondence coordinates (the pull counterpart of splatting).

    Args:
        image: ``(T, C, H_s, W_s)`` source frames.
        corr: ``(T, 2, H_t, W_t)`` source pixel coordinates for every target pixel.
        mask: ``(T, H_t, W_t)`` bool; pixels outside it are set to zero.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(T, C, H_t, W_t)`` warped frames.

    Example:
        >>> img = torch.arange(12.0).reshape(1, 1, 3, 4)
        >>> corr = pixel_grid(3, 4)[None].clone(); corr[:, 0] += 1  # sample one pixel to the right
        >>> backward_warp(img, corr)[0, 0, 0]
        tensor([1., 2., 3., 0.])
    """
    H, W = image.shape[-2:]
    grid = normalize_coords(corr.to(image.dtype), H, W).permute(0, 2, 3, 1)
    out = F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    if mask is not None:
        out = out * mask[:, None].to(out.dtype)
    return out


def correspondence_from_flow(flow: torch.Tensor) -> torch.Tensor:
    """Correspondence on the target grid from the backward flow target -> source.

    Args:
        flow: ``(T, 2, H, W)`` flow ``F_{t->s}`` on the target grid.

    Returns:
        ``(T, 2, H, W)`` source pixel coordinates ``grid + flow``.

    Example:
        >>> correspondence_from_flow(torch.ones(1, 2, 2, 2))[0, :, 1, 0]
        tensor([1., 2.])
    """
    return pixel_grid(*flow.shape[-2:], device=flow.device, dtype=flow.dtype) + flow


def flow_from_correspondence(corr: torch.Tensor) -> torch.Tensor:
    """Backward flow target -> source from a correspondence map (inverse of :func:`correspondence_from_flow`)."""
    return corr - pixel_grid(*corr.shape[-2:], device=corr.device, dtype=corr.dtype)
