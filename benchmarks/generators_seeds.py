"""The shipped generators on held-out procedural scenes, over several evaluation seeds.

`vnvs eval --benchmark synthetic` (its default 6 scenes per seed, scene numbers disjoint from
training) for `warp+inpaint`, the shipped Scaling4D model (`default`), the shipped CogNVS-style
inpainting model (`cognvs`) and both shipped models composited without the seamless blend. Seeds 0
and 2 by default: the shipped model's sampling steps were chosen on seed 1. Writes
``benchmarks/results/generators_seeds.json``; `benchmarks/real_footage.py` is its real-footage twin.

Usage: python benchmarks/generators_seeds.py [--seeds 0,2] [--methods ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import collect_seed, expand_variants, save, summarize_seeds  # noqa: E402

METHODS = "warp+inpaint,warp+inpaint+refine,default,default (not seamless),cognvs,cognvs (not seamless)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,2")
    ap.add_argument("--methods", default=METHODS)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        methods = expand_variants(args.methods, tmp)
        for seed in seeds:
            out = tmp / f"eval-{seed}"
            subprocess.run([sys.executable, "-m", "vnvs.cli", "eval", "--benchmark", "synthetic", "--methods", methods,
                            "--seed", str(seed), "--output", str(out), "--threads", "1"], check=True,
                           capture_output=True)
            scenes = collect_seed(per_seed, out / "report.json", seed)
    summary = summarize_seeds(per_seed)
    path = save("generators_seeds", {"seeds": seeds, "scenes_per_seed": scenes, "methods": args.methods,
                                     "per_seed": per_seed, "summary": summary})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
