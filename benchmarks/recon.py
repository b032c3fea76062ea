"""4D Gaussian reconstruction of exact procedural grids, one view held out.

For each scene: ``procedural_grid(scene, views=8, frames=24, size=128)`` (exact frames and depth),
fitted by :func:`vnvs.recon.optimize.reconstruct` on 7 views (view 4, between its neighbours, held
out), then the held-out view is rendered at all 24 times and scored with PSNR / SSIM against the
exact frames. The CPU seconds (all threads of the process) are recorded beside the wall time, with
the 1-minute load average at the end of the fit: on a shared machine the wall time measures the other
users as much as the code. Wall time counts the reconstruction only (not making the grid), in one process, torch
at one intra-op thread (`vnvs.utils.threads.serial`) and the numba kernels on all cores.

Usage: python benchmarks/recon.py [--scenes 0 1] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


from common import save
from pathlib import Path
from vnvs.io.images import write_contact_sheet
from vnvs.metrics.image import psnr, ssim
from vnvs.recon.config import ReconSettings
from vnvs.recon.optimize import reconstruct, render_views
from vnvs.synthetic.grids import procedural_grid
from vnvs.utils.memory import tune_allocator
from vnvs.utils.threads import configure_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=ReconSettings().steps)
    ap.add_argument("--holdout", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tune_allocator()
    configure_threads()
    settings = ReconSettings(steps=args.steps)
    rows = []
    for scene in args.scenes:
        t = time.perf_counter()
        grid = procedural_grid(scene, views=8, frames=24, size=128)
        grid_seconds = time.perf_counter() - t
        train = [v for v in range(8) if v != args.holdout]
        cpu = time.process_time()
        result = reconstruct(grid, settings, train_views=train, seed=args.seed)
        cpu = time.process_time() - cpu
        S = 128
        h = args.holdout
        imgs, _, _ = render_views(result.scene, grid.w2c[h], grid.K[h], grid.time, S, S)
        train_imgs, _, _ = render_views(result.scene, grid.w2c[0], grid.K[0], grid.time, S, S)
        row = {"scene": scene, "heldout_view": h, "psnr_heldout": psnr(imgs, grid.frames[h]),
               "ssim_heldout": ssim(imgs, grid.frames[h]), "psnr_train_view0": psnr(train_imgs, grid.frames[0]),
               "seconds": result.seconds, "cpu_seconds": cpu, "load_average": os.getloadavg()[0],
               "grid_seconds": grid_seconds, "gaussians": len(result.scene),
               "steps": result.steps, "history": result.history[-1] if result.history else None}
        print(row, flush=True)
        figure = Path(__file__).resolve().parent.parent / "docs" / "figures" / f"recon_scene{scene}.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        write_contact_sheet(figure, [grid.frames[h], imgs], columns=6,
                            labels=[f"exact view {h}", f"held out, {row['psnr_heldout']:.1f} dB"])
        rows.append(row)
    p = [r["psnr_heldout"] for r in rows]
    s = [r["seconds"] for r in rows]
    path = save("recon", {
        "views": 8, "frames": 24, "size": 128, "settings": settings.to_dict(), "seed": args.seed, "scenes": rows,
        "psnr_heldout_mean": statistics.mean(p), "psnr_heldout_min": min(p), "psnr_heldout_max": max(p),
        "seconds_mean": statistics.mean(s), "seconds_max": max(s),
        "targets": {"psnr_heldout": 28.0, "seconds": 300.0}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
