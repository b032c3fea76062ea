"""The ``grid`` benchmark: held-out procedural time x view grids with exact ground truth.

Scene ``i`` of a run with seed ``S`` is the same held-out scene number as in the ``synthetic``
benchmark (:func:`vnvs.evaluation.synthetic.eval_scene_numbers`); its exact grid is
:func:`vnvs.synthetic.procedural_grid` (``views`` rows orbiting up to ``max_orbit`` degrees about the
look-at point, ``frames`` columns, gentle source motion). Every method gets what ``vnvs grid`` gets:
the source video (row 0), its exact depth and cameras, and the per-cell cameras.

* ``independent``: each view rendered on its own by the novel-view generator (``grid_generator``).
* a grid method (``4real``, ``sv4d``, ``full4d``, the 4Real-Video ablations ``4real-sequential``,
  ``4real-hard``, ``4real-soft-free``, ``4real-hard-free``, or a saved grid model folder): column 0
  is the freeze-time sweep of frame 0 by the novel-view generator, the grid model fills the rest; with
  ``composite`` (the default, as ``vnvs grid``) the source video warped to each cell is kept wherever
  it landed and the model paints only the holes.

Metrics per scene (cells of row 0 and column 0 are given, so they are excluded):

* ``psnr``, ``ssim``: over the cells ``v >= 1, t >= 1`` against the exact grid.
* ``view_error``: cross-view consistency, the mean absolute difference (8-bit levels) between a
  generated cell ``(v, t)`` and generated cell ``(v - 1, t)`` carried to it along the exact
  correspondence (scene geometry and cameras), over the pixels both see, for ``v >= 2``.
* ``time_error``: temporal consistency, the same between ``(v, t)`` and ``(v, t - 1)`` along the exact
  scene flow (moving objects included), for ``v >= 1, t >= 2``.
* ``seconds_per_cell``: the method's wall time over the ``(V - 1) T`` cells it produces.

The errors of the exact grid itself (interpolation only) are in the report's notes.
"""

from __future__ import annotations

import time

import torch

from vnvs.evaluation.synthetic import eval_scene_numbers
from vnvs.generators import get_generator
from vnvs.generators.grid import get_grid_generator
from vnvs.geometry.control import render_control, warp_cells
from vnvs.geometry.warp import backward_warp
from vnvs.metrics import nan_to_none, psnr, ssim_from_map, ssim_map
from vnvs.synthetic import correspondence, generate_scene, procedural_grid
from vnvs.utils.progress import progress_bar

METRICS = ["psnr", "ssim", "view_error", "time_error", "seconds_per_cell"]
GRID_METHODS_DEFAULT = "independent,4real,sv4d,full4d,4real-sequential,4real-hard,4real-soft-free,4real-hard-free"
"""Methods of ``vnvs eval --benchmark grid`` when none are named."""


def pair_error(scene, grid_frames: torch.Tensor, grid, pairs: list[tuple[int, int, int, int]]) -> float | None:
    """Mean absolute difference (0-255) between cell ``(v, t)`` and cell ``(v2, t2)`` warped to it along the
    exact correspondence, over co-visible pixels, for ``pairs`` of ``(v, t, v2, t2)``; None without pairs."""
    if not pairs:
        return None
    tv, tt, sv, st = (torch.tensor(x) for x in zip(*pairs))
    H, W = grid.size
    C, vis = correspondence(scene, grid.w2c[sv, st], grid.K[sv, st], grid.time[st],
                            grid.w2c[tv, tt], grid.K[tv, tt], grid.time[tt], H, W)
    warped = backward_warp(grid_frames[sv, st], C, vis)
    diff = (grid_frames[tv, tt] - warped).abs().mean(1)  # (N, H, W)
    n = vis.sum()
    return float((diff * vis).sum() / n * 255) if n > 0 else None


def _cell_pairs(V: int, T: int) -> tuple[list, list]:
    view = [(v, t, v - 1, t) for v in range(2, V) for t in range(1, T)]
    times = [(v, t, v, t - 1) for v in range(1, V) for t in range(2, T)]
    return view, times


def score_grid(pred: torch.Tensor, grid, scene) -> dict:
    """Metrics of a predicted grid ``(V, T, 3, H, W)`` against the exact ``grid`` (module docstring)."""
    gen_p, gen_t = pred[1:, 1:].flatten(0, 1), grid.frames[1:, 1:].flatten(0, 1)
    view, times = _cell_pairs(grid.views, grid.times)
    return {"psnr": nan_to_none(psnr(gen_p, gen_t)), "ssim": nan_to_none(ssim_from_map(ssim_map(gen_p, gen_t))),
            "view_error": pair_error(scene, pred, grid, view), "time_error": pair_error(scene, pred, grid, times)}


def run_grid_methods(methods: dict[str, str], *, scenes: int, seed: int, views: int, frames: int, size: int,
                     orbit: float, generator: str = "default", steps: int | None = None,
                     device: str | None = None, composite: bool = True,
                     seamless: bool = True) -> tuple[list[dict], dict[str, dict], dict]:
    """Score ``methods`` (``{label: spec}``) on the grid benchmark.

    Returns:
        scene descriptions, ``{label: {"spec", "generator", "items": [metrics per scene]}}``, and the
        errors of the exact grids (``{"view_error", "time_error"}``, mean over scenes).
    """
    numbers = eval_scene_numbers(scenes, seed)
    novel = get_generator(generator, **({"steps": steps} if steps else {}), **({"device": device} if device else {}))
    grid_gens = {label: None if spec == "independent" else get_grid_generator(spec, steps=steps, device=device,
                                                                              seamless=seamless)
                 for label, spec in methods.items()}
    results = {label: {"spec": methods[label], "generator": "independent" if g is None else g.name, "items": []}
               for label, g in grid_gens.items()}
    items, floor = [], {"view_error": [], "time_error": []}
    bar = progress_bar("grid benchmark", total=len(numbers) * len(methods), unit="run")
    try:
        for i, number in enumerate(numbers):
            grid = procedural_grid(number, views=views, frames=frames, size=size, orbit_deg=orbit, seed=number % 2**31)
            scene = generate_scene(number)
            items.append({"index": i, "name": f"scene-{number}", "scene": number, "views": views, "frames": frames,
                          "size": size, "orbit_deg": orbit})
            exact = score_grid(grid.frames, grid, scene)
            for k in floor:
                if exact[k] is not None:
                    floor[k].append(exact[k])
            V, T = grid.views, grid.times
            src, depth = grid.frames[0], grid.depth[0]
            w2c0, K0 = grid.w2c[0], grid.K[0]
            for label, ggen in grid_gens.items():
                start = time.perf_counter()
                out = grid.frames.clone()
                out[1:] = 0
                if ggen is None:
                    for v in range(1, V):
                        control = render_control(src, depth, K0, w2c0, grid.K[v], grid.w2c[v], (size, size))
                        out[v] = novel(control, seed=seed + v * T).clamp(0, 1)
                else:
                    control = render_control(src, depth, K0, w2c0, grid.K[:, 0], grid.w2c[:, 0], (size, size),
                                             times=torch.zeros(V, dtype=torch.long))
                    out[1:, 0] = novel(control, seed=seed).clamp(0, 1)[1:]
                    known = torch.zeros(V, T, dtype=torch.bool)
                    known[0], known[:, 0] = True, True
                    gd = torch.zeros_like(grid.depth)
                    gd[0] = depth
                    dv = torch.zeros_like(grid.valid)
                    dv[0] = grid.valid[0]
                    warped = mask = None
                    if composite:
                        warped, mask = warp_cells(src, depth, K0, w2c0, grid.K, grid.w2c)
                    out = ggen(out, known, grid.w2c, grid.K, depth=gd, depth_valid=dv, warped=warped, warped_mask=mask,
                               seed=seed)
                seconds = time.perf_counter() - start
                results[label]["items"].append({**score_grid(out, grid, scene),
                                                "seconds_per_cell": seconds / ((V - 1) * T)})
                bar.update(1)
    finally:
        bar.close()
    mean = {k: (sum(v) / len(v) if v else None) for k, v in floor.items()}
    return items, results, mean
