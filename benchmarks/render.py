"""`vnvs render` on long videos (peak memory, speed) and depth scale alignment (flicker).

1. Writes a procedural video of 1,000 frames at 256x256 (H.264) and its exact depth (``.npy``), then
   runs `vnvs render` as a fresh process on its first 100 frames and on all 1,000 frames
   (``orbit:20``, ``warp+inpaint``, chunks of 16), reporting wall time, frames per second and the
   peak resident memory of the process.
2. Flicker: a procedural clip with a *static* scene and its exact depth, whose disparity is corrupted
   by a random affine map per frame (the flicker of per-frame relative depth models), is aligned by
   :class:`vnvs.estimators.depth.DepthScaleAligner` streamed in chunks of 8 frames; reports
   :func:`vnvs.estimators.depth.depth_flicker` of the exact, corrupted and aligned depth, and the
   median relative error of the aligned depth against the exact depth after one global scale.

Usage: python benchmarks/render.py [--frames 1000] [--short 100] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import save
from vnvs.estimators.depth import DepthScaleAligner, depth_flicker
from vnvs.io import VideoWriter
from vnvs.synthetic import SceneConfig, generate_scene, render_source_video

_CHILD = ("import resource, sys\nfrom vnvs.cli import main\ncode = main(sys.argv[1:])\n"
          "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)\n")


def write_long_video(folder: Path, frames: int, size: int) -> tuple[Path, Path]:
    """A long video of procedural clips and its exact depth, streamed to disk chunk by chunk."""
    video_path, depth_path = folder / "long.mp4", folder / "long_depth.npy"
    depth = np.lib.format.open_memmap(depth_path, "w+", np.float32, (frames, size, size))
    with VideoWriter(video_path, fps=24) as w:
        for start in range(0, frames, 50):
            n = min(50, frames - start)
            clip = render_source_video(generate_scene(4000 + start // 50), num_frames=n, size=(size, size), seed=start)
            w.write(clip.frames)
            depth[start:start + n] = clip.depth.numpy()
    depth.flush()
    del depth
    return video_path, depth_path


def run_render(video: Path, depth: Path, out: Path, max_frames: int) -> dict:
    args = ["render", str(video), "--depth", str(depth), "--max-frames", str(max_frames), "--trajectory", "orbit:20",
            "--chunk-frames", "16", "--output", str(out)]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True,
                          env={**os.environ, "VNVS_PROGRESS": "0"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"vnvs render failed: {proc.stderr}")
    lines = proc.stdout.splitlines()
    summary = json.loads(lines[0])
    rss_kb = int(next(line.split()[1] for line in lines if line.startswith("PEAK_RSS_KB")))
    return {"frames": summary["frames"], "seconds": seconds, "fps": summary["frames"] / seconds,
            "peak_rss_mb": rss_kb / 1024, "coverage": summary["coverage"], "generator": summary["generator"]}


def flicker_benchmark(size: int, frames: int = 24, chunk: int = 8, seed: int = 0) -> dict:
    scene = generate_scene(7, SceneConfig(static=True))
    video = render_source_video(scene, num_frames=frames, size=(size, size), seed=7)
    g = torch.Generator().manual_seed(seed)
    scale = torch.exp(torch.randn(frames, generator=g) * 0.3)
    shift = torch.rand(frames, generator=g) * 0.05
    disp = 1.0 / video.depth
    corrupted = 1.0 / (disp * scale[:, None, None] + shift[:, None, None])
    aligner = DepthScaleAligner()
    t = time.perf_counter()
    aligned = torch.cat([aligner(corrupted[a:a + chunk], None, video.frames[a:a + chunk])[0]
                         for a in range(0, frames, chunk)])
    seconds = time.perf_counter() - t
    k = float((video.depth / aligned).median())
    rel = ((aligned * k - video.depth).abs() / video.depth).median()
    return {"frames": frames, "size": size, "chunk": chunk,
            "flicker_exact": depth_flicker(video.depth, None, video.frames),
            "flicker_corrupted": depth_flicker(corrupted, None, video.frames),
            "flicker_aligned": depth_flicker(aligned, None, video.frames),
            "median_rel_error_aligned": float(rel), "align_seconds": seconds,
            "corruption": "disparity * exp(N(0, 0.3^2)) + U(0, 0.05) per frame"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        video, depth = write_long_video(tmp, args.frames, args.size)
        print(f"wrote {args.frames} frames in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        runs = {}
        for n in (args.short, args.frames):
            runs[str(n)] = run_render(video, depth, tmp / f"out_{n}", n)
            print(f"{n} frames: {runs[str(n)]}", file=sys.stderr)
    flicker = flicker_benchmark(args.size)
    print(f"flicker: {flicker}", file=sys.stderr)
    path = save("render", {"size": args.size, "trajectory": "orbit:20", "chunk_frames": 16, "runs": runs,
                           "flicker": flicker})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
