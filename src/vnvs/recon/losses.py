"""Photometric losses of reconstruction: visibility-weighted L1 and D-SSIM, and the visibility weights.

The weights follow SV4D 2.0's visibility weighting: a pixel seen at a grazing angle (its surface normal,
from the grid's depth, nearly perpendicular to the viewing ray) carries texture that generated views
agree on least, so it counts less; pixels without valid depth count ``invalid_weight``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from vnvs.geometry.projection import unproject_depth


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@functools.lru_cache(maxsize=16)
def _blur_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, n)`` matrix ``B`` with ``B @ x`` = the 11-tap Gaussian blur of ``x`` along its first axis with
    reflect padding (reflect-101, as ``F.pad(mode="reflect")``) folded in."""
    g = _gaussian().double()
    r = g.numel() // 2
    if n <= r:
        raise ValueError(f"SSIM needs images larger than {r} pixels on each side, got {n}")
    i = torch.arange(n)[:, None]
    j = i + torch.arange(-r, r + 1)[None]  # (n, 11) source index of each tap
    j = torch.where(j < 0, -j, j)
    j = torch.where(j > n - 1, 2 * (n - 1) - j, j)
    B = torch.zeros(n, n, dtype=torch.float64)
    B.index_put_((i.expand_as(j).reshape(-1), j.reshape(-1)), g.repeat(n), accumulate=True)
    return B.to(device=device, dtype=dtype)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM map of ``(C, H, W)`` images (11 x 11 Gaussian window, sigma 1.5, reflect
    padding): ``(H, W)``, the mean over channels.

    The separable blur is two matrix products with banded matrices that hold the padding
    (``B_h @ X @ B_w^T``): on the CPU these and their backward cost a fraction of a convolution's on
    images this small (:func:`_ssim_map_conv` is the convolution form, kept as the reference).

    Example:
        >>> img = torch.rand(3, 16, 16)
        >>> float(ssim_map(img, img).mean())
        1.0
    """
    C, H, W = x.shape
    Bh, Bw = _blur_matrix(H, x.device, x.dtype), _blur_matrix(W, x.device, x.dtype)
    stats = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * C, H, W)
    stats = torch.matmul(torch.matmul(Bh, stats), Bw.T).reshape(5, C, H, W)
    return _ssim_from_stats(stats)


def _ssim_from_stats(stats: torch.Tensor) -> torch.Tensor:
    mx, my, exx, eyy, exy = stats.unbind(0)
    c1, c2 = 0.01**2, 0.03**2
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(0)


def _ssim_map_conv(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:func:`ssim_map` with reflect padding and separable ``conv2d`` (the reference it is tested against)."""
    C, H, W = x.shape
    g = _gaussian().to(x)
    pad = g.numel() // 2
    stats = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * C, 1, H, W)
    stats = F.pad(stats, (pad, pad, pad, pad), mode="reflect")
    stats = F.conv2d(F.conv2d(stats, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1)).reshape(5, C, H, W)
    return _ssim_from_stats(stats)


def photometric_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                     ssim_weight: float = 0.2) -> torch.Tensor:
    """``(1 - l) * weighted L1 + l * weighted (1 - SSIM)`` of ``(3, H, W)`` images, ``weight`` ``(H, W)``."""
    l1 = (pred - target).abs().mean(0)
    w = torch.ones_like(l1) if weight is None else weight
    norm = w.sum().clamp_min(1e-8)
    loss = (1 - ssim_weight) * (l1 * w).sum() / norm
    if ssim_weight > 0:
        loss = loss + ssim_weight * ((1 - ssim_map(pred, target)) * w).sum() / norm
    return loss


def visibility_weights(depth: torch.Tensor, K: torch.Tensor, valid: torch.Tensor, floor: float = 0.2,
                       invalid_weight: float = 0.0) -> torch.Tensor:
    """Soft visibility ``max(|cos(normal, ray)|, floor)`` per pixel from depth.

    Args:
        depth, valid: ``(n, H, W)``; K: ``(n, 3, 3)``.

    Returns:
        ``(n, H, W)`` weights in ``[floor, 1]`` where valid, ``invalid_weight`` elsewhere.

    Example:
        >>> K = torch.tensor([[[10.0, 0, 4], [0, 10, 4], [0, 0, 1]]])
        >>> w = visibility_weights(torch.full((1, 9, 9), 2.0), K, torch.ones(1, 9, 9, dtype=torch.bool))
        >>> round(float(w[0, 4, 4]), 3)  # a wall facing the camera
        1.0
    """
    pts = unproject_depth(depth, K)  # (n, H, W, 3)
    dx = torch.zeros_like(pts)
    dy = torch.zeros_like(pts)
    dx[:, :, 1:-1] = pts[:, :, 2:] - pts[:, :, :-2]
    dx[:, :, 0], dx[:, :, -1] = pts[:, :, 1] - pts[:, :, 0], pts[:, :, -1] - pts[:, :, -2]
    dy[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dy[:, 0], dy[:, -1] = pts[:, 1] - pts[:, 0], pts[:, -1] - pts[:, -2]
    n = torch.linalg.cross(dx, dy, dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ray = pts / pts.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (n * ray).sum(-1).abs()
    w = cos.clamp(min=floor, max=1.0)
    return torch.where(valid, w, torch.full_like(w, invalid_weight))
