"""Throughput and memory of `vnvs prepare --kind flow-pairs`.

Writes procedural videos (H.264, 256x256) to a temporary folder, then times `vnvs prepare` as a
fresh process with the local engine (1 and 2 workers) and the Ray engine (1, 2 and 4 workers, a local
Ray instance started by the command), reporting pairs/s and frames/s (stored frames: source + target
clips). Then measures the peak resident memory of a single-process run on a short and on a long
video: it must not grow with video length, because frames are streamed.

Usage: python benchmarks/prepare.py [--videos 6] [--frames 48]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save
from vnvs.io import VideoWriter
from vnvs.synthetic import generate_scene, render_source_video


def write_videos(folder: Path, count: int, frames: int, size: int) -> None:
    for i in range(count):
        video = render_source_video(generate_scene(2000 + i), num_frames=frames, size=(size, size), seed=2000 + i)
        with VideoWriter(folder / f"video_{i:03d}.mp4", fps=24) as w:
            w.write(video.frames)


def write_long_video(path: Path, frames: int, size: int) -> None:
    """A long video made of procedural clips, streamed to disk chunk by chunk."""
    with VideoWriter(path, fps=24) as w:
        for start in range(0, frames, 48):
            n = min(48, frames - start)
            w.write(render_source_video(generate_scene(3000 + start), num_frames=n, size=(size, size), seed=start).frames)


def run_prepare(args: list[str]) -> tuple[float, dict, float]:
    """Run `vnvs prepare` in a child process; returns (seconds, summary, peak RSS of the child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vnvs.cli", "prepare", *args], capture_output=True, text=True,
                          env={**os.environ, "VNVS_PROGRESS": "0"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"vnvs prepare failed: {proc.stderr.strip()[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[0])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, summary, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--clip-frames", type=int, default=16)
    ap.add_argument("--pairs-per-video", type=int, default=2)
    args = ap.parse_args()
    common = ["--kind", "flow-pairs", "--size", str(args.size), "--clip-frames", str(args.clip_frames),
              "--pairs-per-video", str(args.pairs_per_video), "--seed", "0"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "videos").mkdir()
        write_videos(tmp / "videos", args.videos, args.frames, args.size)
        for name, extra in (("local, 1 worker", ["--engine", "local", "--workers", "1"]),
                            ("local, 2 workers", ["--engine", "local", "--workers", "2"]),
                            ("ray, 1 worker", ["--engine", "ray", "--workers", "1"]),
                            ("ray, 2 workers", ["--engine", "ray", "--workers", "2"]),
                            ("ray, 4 workers", ["--engine", "ray", "--workers", "4"])):
            out = tmp / name.replace(", ", "_").replace(" ", "")
            seconds, summary, _ = run_prepare(["--input", str(tmp / "videos"), "--output", str(out), *common, *extra])
            pairs = summary["samples"]
            frames = pairs * 2 * args.clip_frames
            rows[name] = {"seconds": seconds, "pairs": pairs, "pairs_per_s": pairs / seconds,
                          "frames_per_s": frames / seconds, "dropped": summary.get("dropped", {})}
            print(name, rows[name], flush=True)

        memory = {}
        for frames in (240, 1200, 2400):
            video = tmp / f"long_{frames}.mp4"
            write_long_video(video, frames, args.size)
            out = tmp / f"long_out_{frames}"
            # a fresh child each time: RUSAGE_CHILDREN keeps the maximum over children, so measure
            # through a wrapper process that reports its own peak
            code = ("import resource, subprocess, sys, json;"
                    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
                    "print(json.dumps({'rc': p.returncode, 'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,"
                    " 'err': p.stderr[-500:]}))")
            cmd = [sys.executable, "-c", code, sys.executable, "-m", "vnvs.cli", "prepare", "--input", str(video),
                   "--output", str(out), *common, "--engine", "local", "--workers", "1", "--pairs-per-video", "4",
                   "--max-offset", "16"]
            t = time.perf_counter()
            res = json.loads(subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "VNVS_PROGRESS": "0"}).stdout)
            if res["rc"] != 0:
                raise SystemExit(f"vnvs prepare failed on the long video: {res['err']}")
            memory[str(frames)] = {"peak_rss_mb": res["peak_mb"], "seconds": time.perf_counter() - t}
            print(frames, memory[str(frames)], flush=True)
    save("prepare", {"videos": args.videos, "frames_per_video": args.frames, "size": args.size,
                     "clip_frames": args.clip_frames, "pairs_per_video": args.pairs_per_video,
                     "throughput": rows, "memory": memory})


if __name__ == "__main__":
    main()
