"""The second stage of reconstruction: renders of the fitted scene, noised and denoised by a generator,
become the new targets (Full-4D's distillation idea; SV4D 2.0's two-stage optimisation).

After stage 1 the scene is consistent across views by construction but blurred where the grid's views
disagreed; a generator redraws detail. For each training view ``v`` the renders of all its cells form a
fixed-view video; its control signal is the grid's source row (view ``source_view``, with its depth)
carried to view ``v``'s cameras, as a novel-view generator expects, and the generator refines the renders
with :meth:`vnvs.generators.LearnedGenerator.refine` (SDEdit: noised to ``sigma = strength``, then
denoised). The source row keeps its own frames: they are the input video.

Example:
    >>> from vnvs.generators import get_generator                      # doctest: +SKIP
    >>> fn = generator_refiner(get_generator("default"), grid, strength=0.4)  # doctest: +SKIP
    >>> reconstruct(grid, settings, stage2=fn, stage2_steps=300)       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vnvs.errors import InputError
from vnvs.geometry.control import render_control
from vnvs.io.grid import Grid


def generator_refiner(generator, grid: Grid, *, strength: float = 0.4, seed: int = 0, source_view: int = 0,
                      renderer: str = "zbuffer") -> Callable[[torch.Tensor, list[tuple[int, int]]], torch.Tensor]:
    """A ``stage2`` function for :func:`vnvs.recon.optimize.reconstruct`.

    Args:
        generator: a generator with a ``refine(control, frames, strength=, seed=)`` method (the learned ones).
        grid: the grid being reconstructed (it must carry depth).
        strength: noise level the renders are taken to, in (0, 1].
        seed: seed of the noise (view ``v`` uses ``seed + v``).
        source_view: the grid row holding the input video.
        renderer: how the source row reaches the other views (``zbuffer``: as the shipped model was trained).

    Returns:
        ``fn(renders (n, 3, H, W), cells [(view, column)]) -> targets (n, 3, H, W)``.
    """
    if not callable(getattr(generator, "refine", None)):
        name = getattr(generator, "name", type(generator).__name__)
        raise InputError(f"stage 2 needs a learned generator (it noises and denoises the renders); {name!r} is not one")
    if grid.depth is None:
        raise InputError("stage 2 needs the grid's depth (the source row is carried to the other views)")
    if not 0 < float(strength) <= 1:
        raise InputError(f"stage-2 strength must be in (0, 1], got {strength}")
    H, W = grid.size

    def refine(renders: torch.Tensor, cells: list[tuple[int, int]]) -> torch.Tensor:
        out = renders.clone()
        views: dict[int, list[int]] = {}
        for i, (v, _) in enumerate(cells):
            views.setdefault(int(v), []).append(i)
        for v, rows in views.items():
            cols = torch.tensor([int(cells[i][1]) for i in rows])
            if v == source_view:
                out[rows] = grid.frames[source_view, cols].float()
                continue
            src = (torch.full_like(cols, source_view), cols)
            control = render_control(grid.frames[src].float(), grid.depth[src].float(), grid.K[src].float(),
                                     grid.w2c[src].float(), grid.K[v, cols].float(), grid.w2c[v, cols].float(), (H, W),
                                     valid=grid.valid[src], renderer=renderer)
            out[rows] = generator.refine(control, renders[rows], strength=float(strength), seed=int(seed) + v)
        return out

    return refine
