"""``vnvs grid``: a video -> depth -> a time x view grid (a grid folder, :mod:`vnvs.io.grid`).

Row 0 is the input video. View ``v`` follows the source camera path offset by the trajectory at
fraction ``v / (V - 1)`` (:func:`vnvs.cameras.grid.grid_cameras`). Methods:

* ``independent`` (baseline): every view ``v >= 1`` is rendered on its own by the novel-view generator
  (``--generator``, as ``vnvs render`` does: control signal of the source frames at the view's cameras,
  sliding windows over time).
* a grid model (``4real``, ``sv4d``, ``full4d`` or a saved grid model folder): column 0 is first
  rendered as a freeze-time (bullet-time) sweep of the first frame along the views by the novel-view
  generator (the Scaling4D path); the grid model then fills the other ``(V - 1) x (T - 1)`` cells from
  the given first row and column and the per-cell cameras, in sliding windows over both axes, at the
  resolution it was trained at (:class:`vnvs.generators.grid.GridGenerator`). With ``composite`` (the
  default) the video warped to every cell's camera is kept wherever it landed and the model paints
  only the holes (``seamless``: their colours blended into the warp).

The grid folder is written atomically (temporary folder, renamed), with the depth of row 0 (the
other rows marked invalid), per-cell cameras and ``meta`` naming the method, source and trajectory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from vnvs.apps.config import DEFAULT_RENDERER, generator_options
from vnvs.apps.grid_config import GRID_METHODS, GridConfig
from vnvs.apps.render import LOOK_AT_FRAMES, check_trajectory_in_front
from vnvs.apps.source_stream import open_source
from vnvs.cameras.grid import grid_cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.errors import DepthError, InputError
from vnvs.generators import get_generator
from vnvs.generators.grid import get_grid_generator
from vnvs.geometry.control import render_control, warp_cells
from vnvs.io.grid import Grid, write_grid
from vnvs.utils.progress import progress_bar
from vnvs.utils.threads import parallel

log = logging.getLogger(__name__)


def run_grid(config: GridConfig) -> dict:
    """Build the grid of ``config.video`` and write it to ``config.output``; return a summary."""
    start = time.perf_counter()
    out = Path(config.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot write grid folder {out}: a file exists there")
    grid_gen = None if config.method == "independent" else get_grid_generator(
        config.method, steps=config.steps, device=config.device, window=(config.window_views, config.window_times),
        resolution=config.grid_resolution, seamless=config.seamless)
    generator = get_generator(config.generator, **generator_options(config))
    video, cameras, depth_est, source, indices = open_source(config)
    N, (H, W) = video.num_frames, video.size
    try:
        lead, lead_valid = source.leading_depth(LOOK_AT_FRAMES)
        if not lead_valid.any():
            raise DepthError(f"depth of the first {lead.shape[0]} frames has no valid pixel")
        look_at = float(lead[lead_valid].median())
        source.keep(None)
        source.ensure(N - 1, 0)
        T = source.count
        if T < 2:
            raise InputError(f"{config.video}: a grid needs at least 2 frames, the video has {T}")
        frames, depth, valid = source.get(torch.arange(T))
    finally:
        source.close()
        depth_est.close()
    if T < N:
        log.warning("the video decoded %d frames, fewer than its container declares; the grid has %d times", T, T)
        cameras = type(cameras)(cameras.w2c[:T], cameras.K[:T], cameras.height, cameras.width)
    traj = resolve_trajectory(config.trajectory, cameras, look_at, mode="direct")
    check_trajectory_in_front(traj, cameras, look_at)
    V = int(config.views)
    w2c, K = grid_cameras(cameras, traj, V)
    renderer = config.renderer or DEFAULT_RENDERER
    bar = progress_bar("grid", total=V * T, unit="cell")
    try:
        out_frames = torch.zeros(V, T, 3, H, W)
        out_frames[0] = frames
        bar.update(T)
        if grid_gen is None:
            for v in range(1, V):
                control = render_control(frames, depth, cameras.K, cameras.w2c, K[v], w2c[v], (H, W), valid=valid,
                                         renderer=renderer)
                with parallel():
                    out_frames[v] = generator(control, seed=config.seed + v * T).clamp(0, 1)
                bar.update(T)
        else:
            # column 0: a bullet-time sweep of the first frame along the views (novel-view generator)
            control = render_control(frames, depth, cameras.K, cameras.w2c, K[:, 0], w2c[:, 0], (H, W),
                                     times=torch.zeros(V, dtype=torch.long), valid=valid, renderer=renderer)
            with parallel():
                column = generator(control, seed=config.seed).clamp(0, 1)
            out_frames[1:, 0] = column[1:]
            bar.update(V - 1)
            known = torch.zeros(V, T, dtype=torch.bool)
            known[0], known[:, 0] = True, True
            grid_depth = torch.zeros(V, T, H, W)
            grid_depth[0] = torch.where(valid, depth, torch.zeros_like(depth))
            warped = warped_mask = None
            if config.composite:
                warped, warped_mask = warp_cells(frames, depth, cameras.K, cameras.w2c, K, w2c, valid=valid,
                                                 renderer=renderer)
            with parallel():
                out_frames = grid_gen(out_frames, known, w2c, K, depth=grid_depth, depth_valid=_row0(valid, V),
                                      warped=warped, warped_mask=warped_mask, seed=config.seed,
                                      progress=lambda n: bar.update(n))
    finally:
        bar.close()
    out_depth = torch.zeros(V, T, H, W)
    out_valid = torch.zeros(V, T, H, W, dtype=torch.bool)
    out_depth[0], out_valid[0] = torch.where(valid, depth, torch.zeros_like(depth)), valid
    meta = {"method": config.method if config.method in GRID_METHODS
            else str(Path(config.method).resolve().name),
            "source": str(config.video), "trajectory": config.trajectory, "generator": generator.name,
            "renderer": renderer, "look_at_depth": look_at, "seed": int(config.seed),
            "depth": depth_est.name}
    if grid_gen is not None:
        meta["grid_model"] = grid_gen.name
    grid = Grid(out_frames.clamp(0, 1), w2c, K, fps=video.fps, time_index=torch.tensor(indices[:T]),
                depth=out_depth, valid=out_valid, meta=meta)
    write_grid(out, grid)
    return {"views": V, "times": T, "height": H, "width": W, "method": meta["method"], "generator": generator.name,
            "depth": depth_est.name, "output": str(out), "seconds": time.perf_counter() - start}


def _row0(valid: torch.Tensor, views: int) -> torch.Tensor:
    out = torch.zeros(views, *valid.shape, dtype=torch.bool)
    out[0] = valid
    return out
