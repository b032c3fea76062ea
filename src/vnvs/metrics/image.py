"""Image quality metrics over videos, optionally restricted to a mask.

PSNR and SSIM are computed per frame and averaged over frames (the convention of the video
novel-view literature). Masked variants average over the pixels inside the mask; frames with an
empty mask are skipped.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (T, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                   max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each frame; with a mask, the MSE is taken over the mask's
    pixels and all channels (DyCheck's ``compute_psnr``: a masked mean of the squared error).

    Args:
        pred, target: ``(T, C, H, W)`` in [0, ``max_val``].
        mask: ``(T, H, W)`` bool; only these pixels count.

    Returns:
        ``(T,)`` float64: NaN where a frame's mask is empty; capped at 100 dB for exact matches.

    Example:
        >>> x = torch.zeros(2, 3, 4, 4); y = x + 0.1
        >>> psnr_per_frame(x, y).round(decimals=2).tolist()
        [20.0, 20.0]
    """
    _check(pred, target)
    err = (pred.double() - target.double()).pow(2).mean(1)  # (T, H, W)
    if mask is None:
        mse = err.flatten(1).mean(1)
        keep = torch.ones_like(mse, dtype=torch.bool)
    else:
        m = mask.to(err.device).double()
        count = m.flatten(1).sum(1)
        mse = (err * m).flatten(1).sum(1) / count.clamp(min=1)
        keep = count > 0
    vals = 10 * torch.log10(max_val**2 / mse.clamp(min=1e-10))
    return torch.where(keep, vals, torch.full_like(vals, float("nan")))


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, per frame then averaged.

    Args:
        pred, target: ``(T, C, H, W)`` in [0, ``max_val``].
        mask: ``(T, H, W)`` bool; only these pixels count.

    Returns:
        Mean PSNR over frames (frames with an empty mask skipped, NaN when the mask is empty everywhere;
        capped at 100 dB for exact matches).

    Example:
        >>> x = torch.zeros(1, 3, 4, 4); y = x + 0.1
        >>> round(psnr(x, y), 2)
        20.0
    """
    return nanmean(psnr_per_frame(pred, target, mask, max_val))


def nanmean(values: torch.Tensor) -> float:
    """Mean of the finite-or-infinite entries of a 1-D tensor, ignoring NaN; NaN when all are NaN.

    Example:
        >>> nanmean(torch.tensor([1.0, float("nan"), 3.0]))
        2.0
    """
    keep = ~torch.isnan(values)
    return float(values[keep].double().mean()) if keep.any() else float("nan")


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def _check_ssim(pred: torch.Tensor, target: torch.Tensor) -> None:
    _check(pred, target)
    if min(pred.shape[-2:]) <= _WINDOW // 2:
        raise ValueError(f"SSIM needs frames larger than {_WINDOW // 2} pixels on each side, got {tuple(pred.shape[-2:])}")


_WINDOW, _SIGMA = 11, 1.5


def _ssim_map_reference(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, chunk: int = 2) -> torch.Tensor:
    """The plain torch SSIM map (reflect padding, separable ``conv2d``): the reference the OpenCV
    path of :func:`ssim_map` is tested against, and the path for tensors on a GPU."""
    _check(pred, target)
    T, C, H, W = pred.shape
    g = _gaussian_window(_WINDOW, _SIGMA, dtype=torch.float32).to(pred.device)
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


def _ssim_map_opencv(pred: torch.Tensor, target: torch.Tensor, max_val: float) -> torch.Tensor:
    """SSIM map on OpenCV's separable filter: per frame, the five statistics (``(H, W, C)`` float32
    images) are blurred by ``sepFilter2D`` with the reference's window and reflect-101 border (the
    padding of the reference), then combined with in-place numpy operations."""
    T, C, H, W = pred.shape
    g = _gaussian_window(_WINDOW, _SIGMA, dtype=torch.float32).numpy()
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    x_all = pred.detach().float().contiguous().numpy()  # (T, C, H, W)
    y_all = target.detach().float().contiguous().numpy()
    out = np.empty((T, H, W), dtype=np.float32)
    channel_mean = np.full(C, 1.0 / C, dtype=np.float32)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(img, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)

    for t in range(T):
        x, y = cv2.merge(list(x_all[t])).reshape(H, W, C), cv2.merge(list(y_all[t])).reshape(H, W, C)
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x), blur(y * y), blur(x * y)
        mxy = mx * my
        mx *= mx  # mx^2
        my *= my  # my^2
        sxx -= mx
        syy -= my
        sxy -= mxy
        # numerator (2 mx my + c1)(2 sxy + c2), denominator (mx^2 + my^2 + c1)(sxx + syy + c2)
        mxy *= 2
        mxy += c1
        sxy *= 2
        sxy += c2
        mxy *= sxy
        mx += my
        mx += c1
        sxx += syy
        sxx += c2
        mx *= sxx
        mxy /= mx
        np.dot(mxy.reshape(H * W, C), channel_mean, out=out[t].reshape(H * W))  # mean over channels
    return torch.from_numpy(out)


def ssim_map(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0, chunk: int = 2) -> torch.Tensor:
    """Per-pixel SSIM (Gaussian window 11, sigma 1.5; Wang et al. 2004), averaged over channels.

    On CPU the Gaussian blurs run through OpenCV's separable filter (one call per frame for all
    statistics and channels); on a GPU through torch convolutions. Both give the values of the plain
    torch reference (``_ssim_map_reference``) to float32 rounding.

    Args:
        pred, target: ``(T, C, H, W)``.
        chunk: frames per step of the GPU path (small steps reuse memory).

    Returns:
        ``(T, H, W)`` float32 SSIM values (reflect-padded borders, same size as the input).
    """
    _check(pred, target)
    if pred.device.type != "cpu" or target.device.type != "cpu" or 5 * pred.shape[1] > 512:  # OpenCV images hold at most 512 channels
        return _ssim_map_reference(pred, target, max_val, chunk)
    _check_ssim(pred, target)
    return _ssim_map_opencv(pred, target, max_val)


def ssim_from_map(s: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean SSIM of a ``(T, H, W)`` map from :func:`ssim_map`, per frame then over frames; with a mask,
    averaged inside it (frames with an empty mask skipped; NaN when it is empty everywhere).

    One map serves several masks (full frame, co-visible, disoccluded) without recomputing it.
    """
    if mask is None:
        return float(s.flatten(1).mean(1).mean())
    m = mask.to(s.device).double()
    count = m.flatten(1).sum(1)
    keep = count > 0
    if not keep.any():
        return float("nan")
    return float(((s * m).flatten(1).sum(1)[keep] / count[keep]).mean())


def ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_val: float = 1.0) -> float:
    """Structural similarity, per frame then averaged; with a mask, the SSIM map is averaged inside it.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> round(ssim(x, x), 6)
        1.0
    """
    return ssim_from_map(ssim_map(pred, target, max_val), mask)


def nan_to_none(value: float) -> float | None:
    """JSON-friendly metric value: NaN (e.g. an empty mask) becomes None."""
    return None if value is None or math.isnan(value) else value
