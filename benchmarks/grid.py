"""Time x view grids: the independent per-view baseline, the three grid models and 4Real-Video's ablations.

Trains small grid checkpoints from the shipped DiT on procedural grids (``vnvs prepare --kind
synthetic``, the ``synthetic-grid`` samples; single thread each, one after the other), then scores
everything with ``vnvs eval --benchmark grid`` on held-out procedural grids (scene numbers disjoint
from training): trained models (``RUNS/<preset>/model``) and the training-free variants (the
grid presets on the shipped DiT with their new layers at initialisation), beside the shipped
``4real-trained`` model, on every evaluation seed. Grid models are scored as ``vnvs grid`` runs them
(composite: the source warped to each cell kept wherever it landed, the holes blended in seamlessly),
composited without the seamless blend, and on their own cells (no composite); and the baseline and the
shipped model once more with `warp+inpaint` and with `vnvs grid`'s default novel-view generator
(`warp+inpaint+refine`) for the independent views and column 0. Writes ``benchmarks/results/grid.json``; ``python benchmarks/report.py`` puts it into
BENCHMARKS.md.

Usage: python benchmarks/grid.py RUNS [--train-steps 200] [--scenes 3] [--frames 8] [--size 32] [--views 4]
       [--sample-steps 8] [--train-scenes 48] [--seeds 0,1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from common import save
from vnvs.defaults import TRAINED_GRID_METHOD
from vnvs.evaluation.runner import EvalConfig, run_eval

TRAINED = {"4real soft (trained)": "grid-4real", "4real soft (only sync layers trained)": "grid-4real-sync",
           "4real hard (trained)": "grid-4real-hard", "4real sequential (trained)": "grid-4real-sequential",
           "sv4d (trained)": "grid-sv4d", "full4d (trained)": "grid-full4d"}
"""Table label -> training preset (its model folder RUNS/<preset>/model)."""
TRAINING_FREE = {"4real soft (training-free)": "4real-soft-free", "4real hard (training-free)": "4real-hard-free",
                 "4real sequential (training-free)": "4real-sequential", "sv4d (untrained layers)": "sv4d",
                 "full4d (untrained layers)": "full4d"}
"""Table label -> grid model preset used without training."""


def vnvs(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    subprocess.run([sys.executable, "-m", "vnvs.cli", *args, "--threads", "1"], check=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--train-scenes", type=int, default=48)
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--sample-steps", type=int, default=8)
    ap.add_argument("--seeds", default="0,1", help="evaluation seeds, comma-separated")
    ap.add_argument("--jobs", type=int, default=2, help="evaluation runs at once (one thread each)")
    args = ap.parse_args()
    runs = args.runs
    data = runs / "data"
    if not (data / "index.json").is_file():
        vnvs("prepare", "--kind", "synthetic", "--input", str(args.train_scenes), "--size", str(args.size),
             "--clip-frames", str(args.frames), "--views", str(args.views), "--workers", "1", "-o", str(data))
    training = {}
    for label, preset in TRAINED.items():
        out = runs / preset
        if not (out / "model" / "config.json").is_file():
            cfg = runs / f"{preset}.json"
            cfg.write_text(json.dumps({"preset": preset, "max_steps": args.train_steps,
                                       "checkpoint_every": args.train_steps, "data": {"synthetic-grid": 1.0}}))
            vnvs("train", "--config", str(cfg), "--data", str(data), "-o", str(out))
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
        training[label] = {"preset": preset, "steps": log[-1]["step"], "final_loss": log[-1]["loss"],
                           "seconds": log[-1]["seconds"]}
    methods = ["independent", f"4real-trained (shipped)={TRAINED_GRID_METHOD}"]
    methods += [f"{label}={runs / preset / 'model'}" for label, preset in TRAINED.items()]
    raw_methods = methods[1:]
    methods += [f"{label}={preset}" for label, preset in TRAINING_FREE.items()]
    seeds = [int(x) for x in args.seeds.split(",")]
    common = dict(scenes=args.scenes, frames=args.frames, size=args.size, views=args.views, steps=args.sample_steps,
                  max_orbit=30.0)
    classical = {**common, "grid_generator": "warp+inpaint"}
    refined = {**common, "grid_generator": "warp+inpaint+refine"}
    jobs = [(seed, True, True, ",".join(methods), runs / f"eval_seed{seed}", common) for seed in seeds]
    jobs += [(seed, True, False, ",".join(raw_methods), runs / f"eval_seed{seed}_seams", common) for seed in seeds]
    jobs += [(seed, False, False, ",".join(raw_methods), runs / f"eval_seed{seed}_raw", common) for seed in seeds]
    jobs += [(seed, True, True, ",".join(methods[:2]), runs / f"eval_seed{seed}_classical", classical) for seed in seeds]
    jobs += [(seed, True, True, ",".join(methods[:2]), runs / f"eval_seed{seed}_refine", refined) for seed in seeds]
    with ProcessPoolExecutor(max_workers=min(len(jobs), args.jobs), mp_context=get_context("spawn")) as pool:
        reports = list(pool.map(_evaluate, jobs))
    runs_out = [{"seed": seed, "composite": comp, "seamless": seamless,
                 "generator": settings.get("grid_generator", "default"), "report": rep}
                for (seed, comp, seamless, _, _, settings), rep in zip(jobs, reports)]
    path = save("grid", {"runs": runs_out, "training": training,
                         "settings": {"train_steps": args.train_steps, "train_scenes": args.train_scenes,
                                      "scenes": args.scenes, "frames": args.frames, "size": args.size,
                                      "views": args.views, "sample_steps": args.sample_steps, "seeds": seeds}})
    print(f"wrote {path}")


def _evaluate(job) -> dict:
    """One ``vnvs eval --benchmark grid`` run on one thread: ``(seed, composite, seamless, methods, output,
    settings)``."""
    seed, composite, seamless, methods, output, common = job
    import torch

    torch.set_num_threads(1)
    return run_eval(EvalConfig(benchmark="grid", methods=methods, output=output, seed=seed, grid_composite=composite,
                               grid_seamless=seamless, **common))


if __name__ == "__main__":
    main()
