"""Procedural time x view grids with exact ground truth, in the grid-folder layout of :mod:`vnvs.io.grid`.

Row 0 is the monocular source video of a procedural scene; row ``v`` follows the same camera path
orbited by ``v / (V - 1) * orbit_deg`` degrees around the look-at point at the clip's median depth
(so column 0 is a freeze-time sweep of the first frame, the layout ``vnvs grid`` produces). Every
cell is rendered exactly, with its depth.

Example:
    >>> grid = procedural_grid(3, views=3, frames=4, size=32)
    >>> grid.frames.shape, grid.depth.shape, round(float(grid.w2c[0, 0, 2, 3]), 3) == round(float(grid.w2c[2, 0, 2, 3]), 3)
    (torch.Size([3, 4, 3, 32, 32]), torch.Size([3, 4, 32, 32]), False)
"""

from __future__ import annotations

import torch

from vnvs.cameras import Cameras, make_preset_trajectory
from vnvs.io.grid import Grid
from vnvs.synthetic.paths import look_at_depth, render_source_video
from vnvs.synthetic.render import render
from vnvs.synthetic.scene import generate_scene


def procedural_grid(scene: int, *, views: int = 8, frames: int = 24, size: int = 128, orbit_deg: float = 30.0,
                    motion: str = "gentle", seed: int = 0, fps: float = 12.0) -> Grid:
    """The exact ``views x frames`` grid of procedural scene ``scene`` (see the module docstring).

    Args:
        scene: procedural scene number (:func:`vnvs.synthetic.generate_scene`).
        views: ``V`` rows, including the source row.
        frames: ``T`` columns (times ``linspace(0, 1, T)``).
        size: square frame size in pixels.
        orbit_deg: orbit of the last row relative to the source camera path (degrees, signed).
        motion: source camera motion (:data:`vnvs.synthetic.SOURCE_MOTIONS`).
        seed: source camera path seed.
        fps: frame rate recorded in the grid.
    Returns:
        :class:`~vnvs.io.grid.Grid` with depth, ``meta`` naming the scene and its settings.
    """
    sc = generate_scene(int(scene))
    S, T, V = int(size), int(frames), int(views)
    video = render_source_video(sc, T, size=(S, S), seed=int(seed), motion=motion)
    look = look_at_depth(sc, video)
    src = Cameras(video.w2c, video.K, S, S)
    w2c, K = [video.w2c], [video.K]
    for v in range(1, V):
        deg = float(orbit_deg) * v / max(V - 1, 1)
        traj = make_preset_trajectory(f"orbit:{deg:.6f}", src, look, mode="direct")
        w2c.append(traj.w2c)
        K.append(traj.K)
    w2c, K = torch.stack(w2c), torch.stack(K)
    out = render(sc, w2c.reshape(V * T, 4, 4), K.reshape(V * T, 3, 3), S, S, video.times.repeat(V), local_points=False)
    meta = {"source": f"scene-{int(scene)}", "scene": int(scene), "motion": motion, "seed": int(seed),
            "orbit_deg": float(orbit_deg), "look_at_depth": look, "method": "procedural"}
    return Grid(out.rgb.reshape(V, T, 3, S, S), w2c, K, fps=fps, time=video.times,
                depth=out.depth.reshape(V, T, S, S), meta=meta)
