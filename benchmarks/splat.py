"""Forward splatting of 49 frames x 480x480 (11.3M points) to an orbiting camera.

Compares, on one procedural scene's exact depth:
  * the z-buffer splat of `vnvs.geometry.forward_splat` with each backend (numba = CPU default,
    torch = scatter_reduce over packed keys, reference = sort-based definition);
  * a plain numpy baseline (`np.minimum.at` z-buffer, then the smallest index among the nearest);
  * the bilinear soft-z-buffer splat (`vnvs.geometry.soft_splat`).
All outputs are complete (warped frame, mask, correspondence, depth). The numba kernel's one-time
compilation is timed separately (it is cached on disk afterwards).

Usage: python benchmarks/splat.py [--frames 49] [--size 480] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import save, timeit
from vnvs.utils.memory import tune_allocator
from vnvs.cameras import Cameras
from vnvs.cameras.presets import make_preset_trajectory
from vnvs.geometry import forward_splat, soft_splat
from vnvs.geometry.splat import project_depth_to_pixels
from vnvs.synthetic import generate_scene, render_source_video


def numpy_minimum_at(image, depth, K, w2c, Kt, w2t):
    """Baseline: vectorised projection, ``np.minimum.at`` z-buffer, ties to the smallest index."""
    T, C, H, W = image.shape
    x, y, z = (a.numpy() for a in project_depth_to_pixels(depth, K, w2c, Kt, w2t))
    ok = (z > 1e-4) & (x >= 0) & (y >= 0) & (x < W) & (y < H)
    frame = np.broadcast_to(np.arange(T)[:, None, None], ok.shape)
    pix = (frame * H * W + y * W + x)[ok].astype(np.int64)
    zf = z[ok].astype(np.float32)
    src = np.broadcast_to(np.arange(H * W).reshape(1, H, W), ok.shape)[ok]
    zbuf = np.full(T * H * W, np.inf, np.float32)
    np.minimum.at(zbuf, pix, zf)
    near = zf == zbuf[pix]
    win = np.full(T * H * W, np.iinfo(np.int64).max)
    np.minimum.at(win, pix[near], src[near])
    hit = win != np.iinfo(np.int64).max
    flat = image.reshape(T, C, H * W).permute(1, 0, 2).reshape(C, -1).numpy()
    frame_of = np.arange(T * H * W) // (H * W)
    warped = np.zeros((C, T * H * W), np.float32)
    warped[:, hit] = flat[:, frame_of[hit] * H * W + win[hit]]
    return warped, hit, zbuf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--size", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--orbit", type=float, default=20.0, help="target orbit in degrees")
    ap.add_argument("--no-tune", action="store_true",
                    help="keep glibc's default allocator settings (the vnvs command tunes them)")
    args = ap.parse_args()
    tuned = False if args.no_tune else tune_allocator()

    scene = generate_scene(0)
    video = render_source_video(scene, num_frames=args.frames, size=(args.size, args.size), seed=0)
    source = Cameras(video.w2c, video.K, args.size, args.size)
    w2t = make_preset_trajectory(f"orbit:{args.orbit}", source, float(video.depth.median()), mode="direct").w2c
    inputs = (video.frames, video.depth, video.K, video.w2c, video.K, w2t)
    points = args.frames * args.size * args.size

    t = time.perf_counter()
    forward_splat(video.frames[:1], video.depth[:1], video.K[:1], video.w2c[:1], video.K[:1], w2t[:1])
    first_call = time.perf_counter() - t

    rows = {}
    for backend in ("numba", "torch", "reference"):
        repeats = args.repeats if backend != "reference" else 1
        rows[f"zbuffer ({backend})"] = timeit(lambda: forward_splat(*inputs, backend=backend), repeats)
        print(backend, rows[f"zbuffer ({backend})"], flush=True)
    rows["zbuffer (numpy minimum.at baseline)"] = timeit(lambda: numpy_minimum_at(*inputs), max(1, args.repeats // 2))
    rows["soft bilinear splat (torch)"] = timeit(lambda: soft_splat(*inputs), max(1, args.repeats // 2))
    for k in list(rows)[-2:]:
        print(k, rows[k], flush=True)

    ref = forward_splat(*inputs, backend="reference")
    fast = forward_splat(*inputs)
    soft = soft_splat(*inputs)
    agree = bool(torch.equal(ref.index, fast.index))
    coverage = {"zbuffer": float(fast.mask.float().mean()), "soft": float(soft.mask.float().mean())}
    save("splat" if not args.no_tune else "splat_untuned", {
        "allocator_tuned": tuned, "frames": args.frames, "size": args.size, "points": points, "orbit_deg": args.orbit,
        "first_call_seconds": first_call, "timings": rows, "numba_equals_reference": agree, "coverage": coverage,
    })


if __name__ == "__main__":
    main()
