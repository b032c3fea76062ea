"""4D Gaussian reconstruction of a *generated* grid, scored against the exact scene.

For each scene: the exact ``procedural_grid(scene, views=8, frames=24, size=128)`` gives the cameras,
the source row (row 0, with its exact depth) and the ground truth. The other rows are generated from
the source row the way ``vnvs grid --method independent`` does (each view rendered on its own by a
novel-view generator, ``--generator``), and, as in a ``vnvs grid`` folder, only row 0 carries depth.
That grid is fitted by :func:`vnvs.recon.optimize.reconstruct` with view 4 held out, once as is and
once with the generator-backed stage 2 (``--stage2``, a learned generator; skipped with ``--stage2 none``).
Scores: PSNR / SSIM of the held-out view against the exact frames, beside the PSNR of the generated
view 4 itself (what the grid generator alone gives for that camera).

Usage: python benchmarks/recon_generated.py [--scenes 0 1] [--generator warp+inpaint] [--stage2 default]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common import save
from vnvs.generators import get_generator
from vnvs.geometry.control import render_control
from vnvs.io.grid import Grid
from vnvs.io.images import write_contact_sheet
from vnvs.metrics.image import psnr, ssim
from vnvs.recon.config import ReconSettings
from vnvs.recon.optimize import reconstruct, render_views
from vnvs.recon.stage2 import generator_refiner
from vnvs.synthetic.grids import procedural_grid
from vnvs.utils.memory import tune_allocator
from vnvs.utils.threads import configure_threads

HOLDOUT = 4


def generated_grid(exact: Grid, generator, seed: int = 0) -> Grid:
    """Rows 1.. generated from row 0 (exact frames and depth) by ``generator``; depth on row 0 only."""
    V, T, _, H, W = exact.frames.shape
    frames = exact.frames.clone()
    for v in range(1, V):
        control = render_control(exact.frames[0], exact.depth[0], exact.K[0], exact.w2c[0], exact.K[v], exact.w2c[v],
                                 (H, W), valid=exact.valid[0])
        frames[v] = generator(control, seed=seed + v * T).clamp(0, 1)
    depth = torch.zeros_like(exact.depth)
    depth[0] = exact.depth[0]
    return Grid(frames, exact.w2c, exact.K, fps=exact.fps, time=exact.time, depth=depth, valid=depth > 0,
                meta={**exact.meta, "method": "independent"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--generator", default="warp+inpaint")
    ap.add_argument("--stage2", default="default", help="learned generator of stage 2, or 'none'")
    ap.add_argument("--steps", type=int, default=ReconSettings().steps)
    ap.add_argument("--stage2-steps", type=int, default=300)
    ap.add_argument("--stage2-strength", type=float, default=0.4)
    args = ap.parse_args()
    tune_allocator()
    configure_threads()
    settings = ReconSettings(steps=args.steps, device="cpu")
    novel = get_generator(args.generator)
    refiner = None if args.stage2 == "none" else get_generator(args.stage2)
    train = [v for v in range(8) if v != HOLDOUT]
    rows = []
    for scene in args.scenes:
        exact = procedural_grid(scene, views=8, frames=24, size=128)
        grid = generated_grid(exact, novel)
        truth = exact.frames[HOLDOUT]
        row = {"scene": scene, "psnr_generated_view": psnr(grid.frames[HOLDOUT], truth),
               "ssim_generated_view": ssim(grid.frames[HOLDOUT], truth)}
        runs = {"generated": None}
        if refiner is not None:
            runs["generated + stage 2"] = generator_refiner(refiner, grid, strength=args.stage2_strength)
        images = {}
        for name, stage2 in runs.items():
            t = time.perf_counter()
            cpu = time.process_time()
            result = reconstruct(grid, settings, train_views=train, seed=0, stage2=stage2,
                                 stage2_steps=args.stage2_steps if stage2 is not None else 0)
            imgs, _, _ = render_views(result.scene, exact.w2c[HOLDOUT], exact.K[HOLDOUT], exact.time, 128, 128)
            images[name] = imgs
            row[name] = {"psnr_heldout": psnr(imgs, truth), "ssim_heldout": ssim(imgs, truth),
                         "seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu,
                         "steps": result.steps, "gaussians": len(result.scene)}
        print(row, flush=True)
        figure = Path(__file__).resolve().parent.parent / "docs" / "figures" / f"recon_generated_scene{scene}.png"
        write_contact_sheet(figure, [truth, grid.frames[HOLDOUT], *images.values()], columns=6,
                            labels=[f"exact view {HOLDOUT}", f"generated view {HOLDOUT}",
                                    *(f"{k}, held out" for k in images)])
        rows.append(row)
    runs = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    path = save("recon_generated", {
        "views": 8, "frames": 24, "size": 128, "heldout_view": HOLDOUT, "generator": args.generator,
        "stage2": None if refiner is None else {"generator": args.stage2, "steps": args.stage2_steps,
                                                "strength": args.stage2_strength},
        "settings": settings.to_dict(), "scenes": rows,
        "mean": {k: statistics.mean(r[k]["psnr_heldout"] for r in rows) for k in runs}
        | {"generated view": statistics.mean(r["psnr_generated_view"] for r in rows)}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
