"""SSIM as DyCheck computes it (Gao et al. 2022, ``dycheck/core/metrics/image.py``), masked or not.

DyCheck's ``compute_ssim`` follows ``tf.image.ssim``: a separable Gaussian window (11 taps,
sigma 1.5) applied in *valid* mode (no padding: the map is ``(H - 10, W - 10)``), the variances
clipped to be non-negative and the covariance to ``sqrt(var_x var_y)``, and the map averaged.
With a mask, each blur is a partial convolution (Liu et al. 2018): the masked signal ``z * m`` is
blurred by the Gaussian, and rescaled by ``taps / (box-filtered mask)`` where the box-filtered mask
is non-zero (zero elsewhere). The horizontal pass runs first; the vertical pass uses, as its mask,
the pixels the horizontal pass reached (``box(m) != 0``). The five statistics share the mask.

Two properties of the reference that this module keeps, on purpose:

- the masked map is averaged over **all** valid-mode pixels, not only those inside the mask: far
  from the mask all statistics are 0 and the map there is exactly 1 (``c1 c2 / (c1 c2)``), so mSSIM
  grows with the share of the frame outside the mask's neighbourhood;
- without a mask (or with a full one) the value is the mean of the interior SSIM map, which is what
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` returns (it crops 5 pixels from each border before
  averaging), up to the covariance clip, which only acts where float rounding makes the
  Cauchy-Schwarz bound fail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.metrics.image import _check, _gaussian_window

TAPS, SIGMA = 11, 1.5


def _partial_blur(z: torch.Tensor, m: torch.Tensor, g: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One valid-mode partial convolution along ``dim`` (-1: width, -2: height).

    z: ``(T, K, H, W)`` signals; m: ``(T, 1, H, W)`` 0/1 mask. Returns the blurred signals and the
    new 0/1 mask (where the box-filtered mask is non-zero), both shrunk by ``taps - 1`` along ``dim``.
    """
    T, K, H, W = z.shape
    shape = (1, 1, 1, -1) if dim == -1 else (1, 1, -1, 1)
    zz = F.conv2d((z * m).reshape(T * K, 1, H, W), g.view(shape)).reshape(T, K, *([H, W - TAPS + 1] if dim == -1 else [H - TAPS + 1, W]))
    box = F.conv2d(m, torch.ones_like(g).view(shape))  # mask pixels under the window (exact small integers)
    reached = box != 0
    out = torch.where(reached, zz * TAPS / box.clamp(min=1), torch.zeros((), dtype=z.dtype, device=z.device))
    return out, reached.to(z.dtype)


def dycheck_ssim_per_frame(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                           max_val: float = 1.0, chunk: int = 4) -> torch.Tensor:
    """DyCheck's (masked) SSIM of each frame.

    Args:
        pred, target: ``(T, C, H, W)`` in [0, ``max_val``], ``H, W >= 11``.
        mask: ``(T, H, W)`` bool (or 0/1 float); None is a full mask.
        chunk: frames per step (bounds memory; the result does not depend on it).

    Returns:
        ``(T,)`` float64 SSIM values; NaN for frames whose mask is empty.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> dycheck_ssim_per_frame(x, x).tolist()
        [1.0, 1.0]
        >>> m = torch.zeros(2, 16, 16, dtype=torch.bool); m[1, 4:8, 4:8] = True
        >>> dycheck_ssim_per_frame(x, (x + 0.1).clamp(0, 1), m)[0].isnan().item()
        True
    """
    _check(pred, target)
    T, C, H, W = pred.shape
    if min(H, W) < TAPS:
        raise ValueError(f"DyCheck SSIM needs frames of at least {TAPS}x{TAPS} pixels, got {H}x{W}")
    if mask is not None and tuple(mask.shape) != (T, H, W):
        raise ValueError(f"mask must be (T, H, W) = {(T, H, W)}, got {tuple(mask.shape)}")
    dev = pred.device
    g = _gaussian_window(TAPS, SIGMA, dtype=torch.float64).to(dev)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    out = torch.empty(T, dtype=torch.float64, device=dev)
    for s in range(0, T, chunk):
        x, y = pred[s:s + chunk].double(), target[s:s + chunk].double()
        n = x.shape[0]
        m = torch.ones(n, 1, H, W, dtype=torch.float64, device=dev) if mask is None else mask[s:s + chunk].to(dev, torch.float64).unsqueeze(1)
        stats = torch.cat([x, y, x * x, y * y, x * y], 1)  # (n, 5C, H, W)
        z, reached = _partial_blur(stats, m, g, -1)
        z, _ = _partial_blur(z, reached, g, -2)
        mx, my, exx, eyy, exy = z.split(C, 1)
        mxx, myy, mxy = mx * mx, my * my, mx * my
        sxx = (exx - mxx).clamp(min=0)
        syy = (eyy - myy).clamp(min=0)
        sxy = exy - mxy
        sxy = torch.sign(sxy) * torch.minimum(torch.sqrt(sxx * syy), sxy.abs())
        smap = ((2 * mxy + c1) * (2 * sxy + c2)) / ((mxx + myy + c1) * (sxx + syy + c2))
        vals = smap.flatten(1).mean(1)
        empty = m.flatten(1).sum(1) == 0
        out[s:s + n] = torch.where(empty, torch.full_like(vals, float("nan")), vals)
    return out
