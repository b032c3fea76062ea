"""Procedural scene rendering and the demo, end to end.

Times `render_source_video` (RGB, depth, instance ids) for 49 frames at 256x256, the exact
correspondence of a 49-frame orbit, and `vnvs demo` with its defaults as a fresh process
(including Python start-up and imports).

Usage: python benchmarks/synthetic.py [--repeats 5]
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

from common import save, timeit
from vnvs.cameras import Cameras
from vnvs.cameras.presets import make_preset_trajectory
from vnvs.synthetic import correspondence, generate_scene, render_source_video
from vnvs.utils.memory import tune_allocator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tune_allocator()
    scene = generate_scene(0)
    render = timeit(lambda: render_source_video(scene, num_frames=49, size=(256, 256), seed=0), args.repeats)
    video = render_source_video(scene, num_frames=49, size=(256, 256), seed=0)
    traj = make_preset_trajectory("orbit:30", Cameras(video.w2c, video.K, 256, 256), float(video.depth.median()))
    corr = timeit(lambda: correspondence(scene, video.w2c, video.K, video.times, traj.w2c, traj.K, video.times, 256, 256),
                  args.repeats)
    demo_runs = []
    metrics = None
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            env = {"VNVS_PROGRESS": "0", "PATH": "/usr/bin:/bin"}
            if "PYTHONPATH" in os.environ:  # the vnvs being measured (e.g. PYTHONPATH=src), not an installed one
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            subprocess.run([sys.executable, "-m", "vnvs.cli", "demo", "--output", tmp], check=True,
                           capture_output=True, env=env)
            demo_runs.append(time.perf_counter() - t)
            metrics = json.loads((Path(tmp) / "metrics.json").read_text())
    save("synthetic", {
        "render_49x256": render, "correspondence_49x256": corr,
        "demo_seconds": {"min": min(demo_runs), "median": sorted(demo_runs)[1], "max": max(demo_runs), "repeats": 3},
        "demo_metrics": metrics,
    })
    print(json.dumps({"render": render, "correspondence": corr, "demo": demo_runs}, indent=1))


if __name__ == "__main__":
    main()
