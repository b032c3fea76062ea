"""Camera accuracy of a generated video: does it follow the requested trajectory?

Method (classical two-view geometry, OpenCV, no learned network):

1. frames to 8-bit grey;
2. corners (``goodFeaturesToTrack``: up to 2000, quality 0.01, 5 px apart) in the reference frame,
   tracked by pyramidal Lucas-Kanade (21x21 window, 4 levels) with a forward-backward check
   (kept when the round trip lands within 1 px);
   ``reference="first"``: corners of frame 0 tracked frame to frame, pairs ``(0, t)``;
   ``reference="consecutive"``: fresh corners in each frame ``t - 1``, pairs ``(t - 1, t)``;
3. the points normalised by each frame's intrinsics ``K^-1 [x, y, 1]``; the essential matrix by the
   5-point algorithm in RANSAC (``findEssentialMat``, confidence 0.999, threshold 1 px expressed in
   normalised units), then ``recoverPose`` (cheirality) gives ``R, t`` with ``x_t = R x_ref + t``
   (``|t| = 1``);
4. against the target relative pose ``w2c_t w2c_ref^-1 = [R*, t*]``: the rotation error is the
   geodesic angle of ``R R*^T`` (degrees); the translation direction error is the angle between
   ``t`` and ``t*`` (degrees; scale-free, since monocular scale is unknown). Where the target
   translation vanishes (a pure rotation: pan, tilt, zoom) the direction is undefined and not scored.

A pair is a **failure** (counted, never skipped in silence) when fewer than ``min_points`` tracks
survive, when RANSAC finds no essential matrix, or when fewer than ``min_points`` inliers pass the
cheirality check. Failures have ``None`` in the per-frame lists and raise ``failure_rate``; the mean
errors are over the successful pairs (``Unavailable`` when none succeeded).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch

from vnvs.geometry.se3 import invert_se3, rotation_angle

MIN_POINTS = 15
_LK = {"winSize": (21, 21), "maxLevel": 4, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}


def _grey(video: torch.Tensor) -> np.ndarray:
    v = (video.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (v.float() * weights).sum(1).round().clamp(0, 255).to(torch.uint8).numpy()


def _corners(img: np.ndarray) -> np.ndarray:
    pts = cv2.goodFeaturesToTrack(img, maxCorners=2000, qualityLevel=0.001, minDistance=4, blockSize=7)
    return np.zeros((0, 1, 2), np.float32) if pts is None else pts.astype(np.float32)


def _track(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Track ``(N, 1, 2)`` points from ``a`` to ``b``; returns the new points and the kept flags."""
    if len(pts) == 0:
        return pts, np.zeros(0, bool)
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(b, a, nxt, None, **_LK)
    ok = (st[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - pts)[:, 0], axis=1) < 1.0)
    return nxt, ok


def _normalise(pts: np.ndarray, K: np.ndarray) -> np.ndarray:
    h = np.concatenate([pts.reshape(-1, 2), np.ones((len(pts.reshape(-1, 2)), 1))], 1)
    n = h @ np.linalg.inv(K).T
    return n[:, :2] / n[:, 2:]


def relative_pose(p_ref: np.ndarray, p_t: np.ndarray, K_ref: np.ndarray, K_t: np.ndarray,
                  min_points: int = MIN_POINTS) -> tuple[np.ndarray, np.ndarray] | None:
    """Relative pose ``(R (3, 3), t (3,) unit)`` with ``x_t = R x_ref + t`` from pixel matches
    ``(N, 2)`` in two frames with intrinsics ``K_ref``, ``K_t``; None when estimation fails."""
    if len(p_ref) < min_points:
        return None
    a, b = _normalise(p_ref, K_ref), _normalise(p_t, K_t)
    focal = float(np.mean([K_ref[0, 0], K_ref[1, 1], K_t[0, 0], K_t[1, 1]]))
    E, inliers = cv2.findEssentialMat(a, b, np.eye(3), method=cv2.USAC_ACCURATE, prob=0.999, threshold=1.0 / focal)
    if E is None or E.shape[0] < 3 or inliers is None or int(inliers.sum()) < min_points:
        return None
    n, R, t, _ = cv2.recoverPose(E[:3], a, b, np.eye(3), mask=inliers.copy())
    if n < min_points:
        return None
    return R, t[:, 0] / max(np.linalg.norm(t), 1e-12)


def camera_errors(video: torch.Tensor, K: torch.Tensor, w2c_target: torch.Tensor, reference: str = "first",
                  min_points: int = MIN_POINTS) -> dict[str, Any]:
    """Rotation and translation-direction errors of the camera motion seen in a video.

    Args:
        video: ``(T, 3, H, W)`` in [0, 1], ``T >= 2``.
        K: ``(3, 3)`` or ``(T, 3, 3)`` intrinsics in pixels of the video's frames.
        w2c_target: ``(T, 4, 4)`` requested world-to-camera poses (OpenCV convention).
        reference: "first" (pairs ``(0, t)``) or "consecutive" (pairs ``(t - 1, t)``).
        min_points: fewest tracks / inliers for a pair to count as estimated.

    Returns:
        ``{"rot_err_deg", "trans_dir_err_deg"}``: means over successful pairs (None when none);
        ``"frames"``: pairs evaluated (``T - 1``); ``"failures"``, ``"failure_rate"``;
        ``"trans_undefined"``: successful pairs whose target translation is zero;
        ``"per_frame"``: ``{"rot_err_deg", "trans_dir_err_deg"}`` lists of ``T - 1`` (None where not scored).
    """
    if video.dim() != 4 or video.shape[1] != 3 or video.shape[0] < 2:
        raise ValueError(f"video must be (T >= 2, 3, H, W), got {tuple(video.shape)}")
    T = video.shape[0]
    Ks = K.double().expand(T, 3, 3) if K.dim() == 2 else K.double()
    if tuple(Ks.shape) != (T, 3, 3) or tuple(w2c_target.shape) != (T, 4, 4):
        raise ValueError(f"K must be (3, 3) or (T, 3, 3) and w2c_target (T, 4, 4) for T = {T}, got {tuple(K.shape)} and {tuple(w2c_target.shape)}")
    if reference not in ("first", "consecutive"):
        raise ValueError(f"reference must be 'first' or 'consecutive', got {reference!r}")
    grey = _grey(video)
    refs = torch.zeros(T - 1, dtype=torch.long) if reference == "first" else torch.arange(T - 1)
    w2c = w2c_target.double()
    rel = w2c[1:] @ invert_se3(w2c[refs])  # (T - 1, 4, 4): reference camera -> camera t
    Kn = Ks.numpy()
    rot_err: list[float | None] = []
    dir_err: list[float | None] = []
    failures = undefined = 0
    pts = _corners(grey[0]) if reference == "first" else None
    for i in range(1, T):
        if reference == "first":
            nxt, ok = _track(grey[i - 1], grey[i], pts)
            if i == 1:
                start = pts
            start, pts = start[ok], nxt[ok]
            p_ref, p_t = start, pts
        else:
            p_ref = _corners(grey[i - 1])
            nxt, ok = _track(grey[i - 1], grey[i], p_ref)
            p_ref, p_t = p_ref[ok], nxt[ok]
        est = relative_pose(p_ref.reshape(-1, 2), p_t.reshape(-1, 2), Kn[int(refs[i - 1])], Kn[i], min_points)
        if est is None:
            failures += 1
            rot_err.append(None)
            dir_err.append(None)
            continue
        R, t = est
        R_gt, t_gt = rel[i - 1, :3, :3], rel[i - 1, :3, 3]
        rot_err.append(math.degrees(float(rotation_angle(torch.from_numpy(R) @ R_gt.T))))
        if float(t_gt.norm()) < 1e-9:
            undefined += 1
            dir_err.append(None)
        else:
            cos = float(np.clip(np.dot(t, (t_gt / t_gt.norm()).numpy()), -1.0, 1.0))
            dir_err.append(math.degrees(math.acos(cos)))

    def mean(vals):
        kept = [v for v in vals if v is not None]
        return float(np.mean(kept)) if kept else None

    return {"rot_err_deg": mean(rot_err), "trans_dir_err_deg": mean(dir_err), "frames": T - 1, "failures": failures,
            "failure_rate": failures / (T - 1), "trans_undefined": undefined, "reference": reference,
            "per_frame": {"rot_err_deg": rot_err, "trans_dir_err_deg": dir_err}}
