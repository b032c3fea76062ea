"""The CUDA paths on a GPU machine, in one run: the Gaussian rasterizer (gsplat) against the pure-torch
reference on the same GPU and the numba path on the same machine's CPU, 4D Gaussian reconstruction of the
procedural grids of ``benchmarks/recon.py`` on the GPU, and the depth-mesh renderer's torch path on the GPU
against its numba path.

GPU timings synchronise the device before the clock stops (``torch.cuda.synchronize``); min / median / max
of several runs after a warm-up. The numba kernels' first call (compilation) and gsplat's first call
(its CUDA extension, built on first use) are not in the timings.

Usage (on a machine with CUDA and the ``gpu`` extra): python benchmarks/gpu.py [--gaussians 100000] [--size 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from common import save, timeit
from vnvs.geometry.mesh_render import mesh_render
from vnvs.metrics.image import psnr, ssim
from vnvs.recon.config import ReconSettings
from vnvs.recon.optimize import reconstruct, render_views
from vnvs.recon.rasterize import rasterize
from vnvs.synthetic.grids import procedural_grid
from vnvs.utils.threads import configure_threads


def synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def rasterizer(n: int, size: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.4, 2.4, 2.0]) + torch.tensor([0.0, 0.0, 3.0])
    cpu = [means, torch.randn(n, 3, generator=g) * 0.2 + torch.log(torch.tensor(0.006)),
           torch.randn(n, 4, generator=g), torch.randn(n, generator=g), torch.rand(n, 3, generator=g)]
    K = torch.tensor([[size * 1.0, 0, (size - 1) / 2], [0, size * 1.0, (size - 1) / 2], [0, 0, 1]])
    wi = torch.rand(3, size, size, generator=g)

    def step(params, w2c, K, wi, backend):
        params = [p.detach().requires_grad_() for p in params]
        out = rasterize(*params, w2c, K, size, size, background=torch.zeros(3, device=w2c.device), backend=backend)
        loss = (out.image * wi).sum() + out.alpha.sum() + 0.01 * out.depth.sum()
        loss.backward()
        return out

    dev = [p.cuda() for p in cpu]
    eye_c, K_c, wi_c = torch.eye(4).cuda(), K.cuda(), wi.cuda()
    t = time.perf_counter()
    synced(lambda: step(dev, eye_c, K_c, wi_c, "gsplat"))()
    first = time.perf_counter() - t
    timings = {"gsplat on the GPU (forward + backward)": timeit(synced(lambda: step(dev, eye_c, K_c, wi_c, "gsplat")),
                                                              repeats)}
    with torch.no_grad():
        timings["gsplat on the GPU (forward only)"] = timeit(synced(lambda: rasterize(
            *dev, eye_c, K_c, size, size, backend="gsplat")), repeats)
    timings["reference torch on the GPU (forward + backward)"] = timeit(
        synced(lambda: step(dev, eye_c, K_c, wi_c, "reference")), 1)
    timings["numba on the CPU (forward + backward)"] = timeit(lambda: step(cpu, torch.eye(4), K, wi, "numba"), 2)
    with torch.no_grad():
        a = rasterize(*dev, eye_c, K_c, size, size, backend="gsplat")
        b = rasterize(*cpu, torch.eye(4), K, size, size, backend="numba")
    fb = timings["gsplat on the GPU (forward + backward)"]["median"]
    return {"gaussians": n, "size": size, "first_call_seconds": first, "timings": timings,
            "mean_abs_image_difference_gsplat_numba": float((a.image.cpu() - b.image).abs().mean()),
            "speedup_over_reference_gpu": timings["reference torch on the GPU (forward + backward)"]["median"] / fb,
            "speedup_over_numba_cpu": timings["numba on the CPU (forward + backward)"]["median"] / fb}


def recon(scenes: list[int], holdout: int = 4) -> dict:
    settings = ReconSettings(device="cuda")
    rows = []
    for scene in scenes:
        grid = procedural_grid(scene, views=8, frames=24, size=128)
        train = [v for v in range(8) if v != holdout]
        torch.cuda.synchronize()
        result = reconstruct(grid, settings, train_views=train, seed=0)
        torch.cuda.synchronize()
        imgs, _, _ = render_views(result.scene, grid.w2c[holdout], grid.K[holdout], grid.time, 128, 128)
        rows.append({"scene": scene, "psnr_heldout": psnr(imgs, grid.frames[holdout]),
                     "ssim_heldout": ssim(imgs, grid.frames[holdout]), "seconds": result.seconds,
                     "gaussians": len(result.scene), "steps": result.steps})
        print(rows[-1], flush=True)
    return {"views": 8, "frames": 24, "size": 128, "heldout_view": holdout, "settings": settings.to_dict(),
            "scenes": rows, "psnr_heldout_mean": statistics.mean(r["psnr_heldout"] for r in rows),
            "seconds_mean": statistics.mean(r["seconds"] for r in rows)}


def mesh(frames: int, size: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    img, depth = torch.rand(frames, 3, size, size, generator=g), 1 + torch.rand(frames, size, size, generator=g)
    K = torch.tensor([[size * 1.0, 0, size / 2], [0, size * 1.0, size / 2], [0, 0, 1]]).expand(frames, 3, 3)
    w2c = torch.eye(4).expand(frames, 4, 4).clone()
    w2t = w2c.clone()
    w2t[:, 0, 3] = 0.05
    args = (img, depth, K, w2c, K, w2t)
    cuda_args = [x.cuda() for x in args]
    timings = {"torch on the GPU": timeit(synced(lambda: mesh_render(*cuda_args, backend="torch")), repeats),
               "numba on the CPU": timeit(lambda: mesh_render(*args, backend="numba"), 2)}
    a, b = mesh_render(*cuda_args, backend="torch"), mesh_render(*args, backend="numba")
    return {"frames": frames, "size": size, "timings": timings,
            "max_abs_image_difference": float((a.warped.cpu() - b.warped).abs().max()),
            "speedup": timings["numba on the CPU"]["median"] / timings["torch on the GPU"]["median"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scenes", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: benchmarks/gpu.py needs a CUDA device")
    configure_threads()
    out = {"gpu": torch.cuda.get_device_name(0), "cpu_cores": os.cpu_count()}
    out["rasterize"] = rasterizer(args.gaussians, args.size, args.repeats)
    print(out["rasterize"], flush=True)
    out["mesh_render"] = mesh(49, args.size, args.repeats)
    print(out["mesh_render"], flush=True)
    out["recon"] = recon(args.scenes)
    print(f"wrote {save('gpu', out)}")


if __name__ == "__main__":
    main()
