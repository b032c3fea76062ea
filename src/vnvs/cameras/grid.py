"""Per-cell cameras of a time x view grid: the source camera path offset by a trajectory, in fractions.

Row ``v`` of a ``V``-view grid follows the source camera path offset by the trajectory's camera
offset at fraction ``f_v = v / (V - 1)``: with ``D_t`` the trajectory's offset of frame ``t`` relative
to its source camera (``w2c_traj[t] = D_t @ w2c_src[t]``, the trajectory resolved in ``direct`` mode,
full offset at every frame), cell ``(v, t)`` has ``w2c = D_t^{f_v} @ w2c_src[t]``
(:func:`vnvs.geometry.se3.se3_fraction`: an orbit by 30 degrees becomes orbits by ``30 f_v``) and
``K = (1 - f_v) K_src[t] + f_v K_traj[t]`` (zoom). Row 0 is the source path; column 0 sweeps the
first frame's camera along the trajectory (a bullet-time sweep). Time indices of the trajectory are
not used: column ``t`` always shows source frame ``t``.

Example:
    >>> from vnvs.cameras.presets import make_preset_trajectory
    >>> src = Cameras.static(4, 32, 32)
    >>> traj = make_preset_trajectory("orbit:30", src, 2.0, mode="direct")
    >>> w2c, K = grid_cameras(src, traj, views=3)
    >>> tuple(w2c.shape), bool(torch.allclose(w2c[0], src.w2c)), bool(torch.allclose(w2c[2], traj.w2c, atol=1e-5))
    ((3, 4, 4, 4), True, True)
"""

from __future__ import annotations

import torch

from vnvs.cameras.camera import Cameras
from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import TrajectoryError
from vnvs.geometry.se3 import invert_se3, se3_fraction


def view_fractions(views: int) -> torch.Tensor:
    """``(V,)`` float64 fractions ``v / (V - 1)`` (``[0]`` for one view)."""
    if views < 1:
        raise TrajectoryError(f"a grid needs at least 1 view, got {views}")
    return torch.linspace(0, 1, views, dtype=torch.float64) if views > 1 else torch.zeros(1, dtype=torch.float64)


def grid_cameras(source: Cameras, trajectory: Trajectory, views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``w2c (V, T, 4, 4)`` and ``K (V, T, 3, 3)`` float32 of a ``views x len(source)`` grid (module docstring).

    ``trajectory`` must have one frame per source frame and the source's image size.
    """
    T = len(source)
    if len(trajectory) != T:
        raise TrajectoryError(f"the trajectory has {len(trajectory)} frames, the video {T}")
    if (trajectory.height, trajectory.width) != (source.height, source.width):
        raise TrajectoryError(f"the trajectory's image size {trajectory.height}x{trajectory.width} differs from the "
                              f"video's {source.height}x{source.width}")
    src = source.w2c.double()
    offset = trajectory.w2c.double() @ invert_se3(src)  # (T, 4, 4): D_t
    f = view_fractions(views)  # (V,)
    D = se3_fraction(offset[None].expand(views, T, 4, 4), f[:, None].expand(views, T))
    w2c = D @ src[None]
    K = (1 - f)[:, None, None, None] * source.K.double()[None] + f[:, None, None, None] * trajectory.K.double()[None]
    return w2c.float(), K.float()


__all__ = ["grid_cameras", "view_fractions"]
