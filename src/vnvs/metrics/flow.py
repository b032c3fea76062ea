"""End-point error (EPE) of optical flow or correspondence fields.

``EPE = mean over valid pixels of ||f_pred - f_gt||_2`` (Baker et al. 2011; the "EPE" of RAFT and
the flow benchmarks), per frame then over frames. Correspondence fields (source pixel
coordinates, ``C`` of the control signal) work the same way: their difference is the flow difference.
Outlier rates use the KITTI-style rule (``Fl``: EPE > 3 px and > 5 % of ``|f_gt|``).
"""

from __future__ import annotations

import torch


def epe_per_frame(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """EPE of each frame.

    Args:
        pred, target: ``(T, 2, H, W)`` flows (or correspondences) in pixels.
        mask: ``(T, H, W)`` bool: pixels where the ground truth is valid (None: all).

    Returns:
        ``(T,)`` float64 mean end-point error in pixels; NaN where the mask is empty.

    Example:
        >>> f = torch.zeros(1, 2, 4, 4); g = f.clone(); g[:, 0] = 3; g[:, 1] = 4
        >>> epe_per_frame(f, g).tolist()
        [5.0]
    """
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 2:
        raise ValueError(f"flows must both be (T, 2, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    err = (pred.double() - target.double()).norm(dim=1)  # (T, H, W)
    if mask is None:
        return err.flatten(1).mean(1)
    if tuple(mask.shape) != tuple(err.shape):
        raise ValueError(f"mask must be (T, H, W) = {tuple(err.shape)}, got {tuple(mask.shape)}")
    m = mask.to(err.device).double()
    count = m.flatten(1).sum(1)
    val = (err * m).flatten(1).sum(1) / count.clamp(min=1)
    return torch.where(count > 0, val, torch.full_like(val, float("nan")))


def flow_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """EPE and outlier rates over a video of flows (pixels of all frames pooled for the rates).

    Returns:
        ``{"epe"}`` (mean of per-frame EPE), ``"1px"``, ``"3px"``, ``"5px"`` (share of pixels within),
        ``"fl"`` (KITTI outlier share). NaN when the mask is empty.

    Example:
        >>> f = torch.zeros(1, 2, 2, 2); g = f.clone(); g[0, 0, 0, 0] = 10
        >>> flow_metrics(f, g)["fl"]
        0.25
    """
    per = epe_per_frame(pred, target, mask)
    err = (pred.double() - target.double()).norm(dim=1)
    mag = target.double().norm(dim=1)
    keep = torch.ones_like(err, dtype=torch.bool) if mask is None else mask.bool().to(err.device)
    e, g = err[keep], mag[keep]
    if e.numel() == 0:
        return {"epe": float("nan"), "1px": float("nan"), "3px": float("nan"), "5px": float("nan"), "fl": float("nan")}
    valid = per[~torch.isnan(per)]
    return {"epe": float(valid.mean()), "1px": float((e < 1).double().mean()), "3px": float((e < 3).double().mean()),
            "5px": float((e < 5).double().mean()), "fl": float(((e > 3) & (e > 0.05 * g)).double().mean())}
