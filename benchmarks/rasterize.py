"""Forward + backward of the Gaussian rasterizer: 100k Gaussians at 256x256, compiled CPU path against
the pure-torch reference, in one run.

torch runs with one intra-op thread (`vnvs.utils.threads.serial`, as reconstruction does: on a few busy
cores torch's fork/join per small op costs more than it gives); the numba kernels run tiles in parallel
on numba's own pool. The scene is 100k random Gaussians in a box in front of the camera (2D radii of a few pixels, as in a
fitted scene), float32. One "call" is ``rasterize`` + a backward pass of a weighted sum of image, alpha
and depth. The numba kernels' one-time compilation (cached on disk afterwards) is timed separately.

Usage: python benchmarks/rasterize.py [--gaussians 100000] [--size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import save, timeit
from vnvs.recon.rasterize import bin_tiles, project_gaussians, rasterize
from vnvs.utils.threads import configure_threads, serial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    configure_threads()
    with serial():
        run(args)


def run(args) -> None:
    N, S = args.gaussians, args.size
    g = torch.Generator().manual_seed(0)
    means = (torch.rand(N, 3, generator=g) - 0.5) * torch.tensor([2.4, 2.4, 2.0]) + torch.tensor([0.0, 0.0, 3.0])
    params = [means, torch.randn(N, 3, generator=g) * 0.2 + torch.log(torch.tensor(0.006)),
              torch.randn(N, 4, generator=g), torch.randn(N, generator=g), torch.rand(N, 3, generator=g)]
    params = [p.requires_grad_() for p in params]
    K = torch.tensor([[S * 1.0, 0, (S - 1) / 2], [0, S * 1.0, (S - 1) / 2], [0, 0, 1]])
    w2c = torch.eye(4)
    wi = torch.rand(3, S, S, generator=g)

    def step(backend):
        out = rasterize(*params, w2c, K, S, S, backend=backend)
        loss = (out.image * wi).sum() + out.alpha.sum() + 0.01 * out.depth.sum()
        loss.backward()
        for p in params:
            p.grad = None
        return out

    with torch.no_grad():
        proj = project_gaussians(*[p.detach() for p in params[:3]], w2c, K, S, S)
        lists = bin_tiles(proj.means2d, proj.depths, proj.radii, S, S)
    t = time.perf_counter()
    step("numba")
    first = time.perf_counter() - t
    timings = {"numba (forward + backward)": timeit(lambda: step("numba"), args.repeats)}
    print(timings, flush=True)
    with torch.no_grad():
        timings["numba (forward only)"] = timeit(lambda: rasterize(*params, w2c, K, S, S, backend="numba"), args.repeats)
    timings["reference torch (forward + backward)"] = timeit(lambda: step("reference"), 1, warmup=0)
    print(timings, flush=True)
    a = rasterize(*params, w2c, K, S, S, backend="numba")
    b = rasterize(*params, w2c, K, S, S, backend="reference")
    speedup = timings["reference torch (forward + backward)"]["median"] / timings["numba (forward + backward)"]["median"]
    path = save("rasterize", {
        "gaussians": N, "size": S, "intersections": int(lists.gid.numel()),
        "drawn": int((proj.radii > 0).sum()), "mean_alpha": float(a.alpha.detach().mean()),
        "max_abs_image_difference": float((a.image - b.image).detach().abs().max()),
        "first_call_seconds": first, "timings": timings, "speedup": speedup})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
