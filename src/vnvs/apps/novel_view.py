"""Source video + depth + cameras + trajectory -> control signal -> generator -> novel view."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from vnvs.cameras import Cameras
from vnvs.cameras.trajectory import Trajectory
from vnvs.generators.base import Generator
from vnvs.errors import TrajectoryError
from vnvs.geometry.control import WARPED, control_mask, render_control
from vnvs.utils.progress import progress_bar


@dataclass
class NovelView:
    """A novel-view video and what it was generated from."""

    frames: torch.Tensor
    """``(N, 3, H_t, W_t)`` generated frames in [0, 1]."""
    warped: torch.Tensor
    """``(N, 3, H_t, W_t)`` warped source frames ``I_r`` (zero where ``mask`` is False)."""
    mask: torch.Tensor
    """``(N, H_t, W_t)`` bool, pixels some source point reached (``M``)."""
    source_index: torch.Tensor
    """``(N,)`` int64, the source frame each target frame was rendered from (its time index)."""


def render_novel_view(
    frames: torch.Tensor,
    depth: torch.Tensor,
    source: Cameras,
    trajectory: Trajectory,
    generator: Generator,
    *,
    valid: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int = 16,
    renderer: str = "zbuffer",
    progress=None,
) -> NovelView:
    """Re-render a video along a trajectory.

    Target frame ``i`` shows source time ``trajectory.times[i]``: that source frame is forward-splatted
    with the z-buffer to the target camera, the 9-channel control signal is built, and the
    generator fills the view. Frames are processed in chunks of ``chunk_size``.

    Args:
        frames: ``(T, 3, H, W)`` source video in [0, 1].
        depth: ``(T, H, W)`` source depth.
        source: the ``T`` source cameras.
        trajectory: ``N`` target cameras (and time indices into the source).
        generator: see :mod:`vnvs.generators`.
        valid: ``(T, H, W)`` bool, source pixels with valid depth.
        seed: generator seed.
        renderer: how source frames reach the target cameras (see :func:`vnvs.geometry.control.render_control`).
        progress: a progress bar to advance frame by frame (default: a bar of its own).

    Returns:
        :class:`NovelView`.
    """
    times = trajectory.times.long()
    T = frames.shape[0]
    if times.numel() and (int(times.min()) < 0 or int(times.max()) >= T):
        raise TrajectoryError(f"trajectory refers to source frame {int(times.max())} but the video has {T} frames")
    out_h, out_w = trajectory.height, trajectory.width
    N = len(times)
    novel = torch.empty(N, 3, out_h, out_w)
    warped = torch.empty(N, 3, out_h, out_w)
    mask = torch.empty(N, out_h, out_w, dtype=torch.bool)
    with contextlib.nullcontext(progress) if progress is not None else progress_bar("novel view", total=N,
                                                                                   unit="frame") as bar:
        for start in range(0, N, chunk_size):
            sl = slice(start, min(start + chunk_size, N))
            ti = times[sl]
            control = render_control(frames, depth, source.K, source.w2c, trajectory.K[sl], trajectory.w2c[sl],
                                     (out_h, out_w), times=ti, valid=valid, chunk=chunk_size, renderer=renderer)
            novel[sl] = generator(control, seed=seed + start).clamp(0, 1)
            warped[sl], mask[sl] = control[:, WARPED], control_mask(control)
            bar.update(sl.stop - sl.start)
    return NovelView(novel, warped, mask, times)


def conditioning_frames(warped: torch.Tensor, mask: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """A viewable conditioning video: the warped frames beside the mask (white where ``M`` is 1).

    Args:
        warped: ``(N, 3, H, W)``; mask: ``(N, H, W)``.

    Returns:
        ``(N, 3, H, 2 W + pad)``.
    """
    N, _, H, W = warped.shape
    out = torch.ones(N, 3, H, 2 * W + pad)
    out[..., :W] = warped * mask[:, None]
    out[..., W + pad:] = mask[:, None].float().expand(-1, 3, -1, -1)
    return out
