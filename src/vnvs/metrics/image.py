"""Image quality metrics over videos, optionally restricted to a mask.

PSNR and SSIM are computed per frame and averaged over frames (the convention of the video
novel-view literature). Masked variants average over the pixels inside the mask; frames with an
empty mask are skipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (T, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, per frame then averaged.

    Args:
        pred, target: ``(T, C, H, W)`` in [0, ``max_val``].
        mask: ``(T, H, W)`` bool; only these pixels count.

    Returns:
        Mean PSNR over frames (NaN when the mask is empty everywhere; capped at 100 dB for exact matches).

    Example:
        >>> x = torch.zeros(1, 3, 4, 4); y = x + 0.1
        >>> round(psnr(x, y), 2)
        20.0
    """
    _check(pred, target)
    err = (pred.double() - target.double()).pow(2).mean(1)  # (T, H, W)
    if mask is None:
        mse = err.flatten(1).mean(1)
        keep = torch.ones_like(mse, dtype=torch.bool)
    else:
        m = mask.double()
        count = m.flatten(1).sum(1)
        mse = (err * m).flatten(1).sum(1) / count.clamp(min=1)
        keep = count > 0
    if not keep.any():
        return float("nan")
    vals = 10 * torch.log10(max_val**2 / mse[keep].clamp(min=1e-10))
    return float(vals.mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def ssim_map(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, chunk: int = 2) -> torch.Tensor:
    """Per-pixel SSIM (Gaussian window 11, sigma 1.5; Wang et al. 2004), averaged over channels.

    Args:
        pred, target: ``(T, C, H, W)``.
        chunk: frames per step; small steps reuse memory instead of faulting in fresh pages,
            which on CPU costs more than the convolutions.

    Returns:
        ``(T, H, W)`` SSIM values (reflect-padded borders, same size as the input).
    """
    _check(pred, target)
    T, C, H, W = pred.shape
    g = _gaussian_window(dtype=torch.float32).to(pred.device)
    pad = g.numel() // 2
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    out = torch.empty(T, H, W, dtype=torch.float32, device=pred.device)
    for start in range(0, T, chunk):
        x, y = pred[start:start + chunk].float(), target[start:start + chunk].float()
        n = x.shape[0]
        # the five local statistics blurred by one single-channel separable convolution
        stats = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * n * C, 1, H, W)
        stats = F.pad(stats, (pad, pad, pad, pad), mode="reflect")
        stats = F.conv2d(F.conv2d(stats, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
        mx, my, exx, eyy, exy = stats.reshape(5, n, C, H, W).unbind(0)
        sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        out[start:start + n] = s.mean(1)
    return out


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_val: float = 1.0) -> float:
    """Structural similarity, per frame then averaged; with a mask, the SSIM map is averaged inside it.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> round(ssim(x, x), 6)
        1.0
    """
    s = ssim_map(pred, target, max_val)
    if mask is None:
        return float(s.flatten(1).mean(1).mean())
    m = mask.double()
    count = m.flatten(1).sum(1)
    keep = count > 0
    if not keep.any():
        return float("nan")
    return float(((s * m).flatten(1).sum(1)[keep] / count[keep]).mean())


def nan_to_none(value: float) -> float | None:
    """JSON-friendly metric value: NaN (e.g. an empty mask) becomes None."""
    return None if value is None or math.isnan(value) else value
