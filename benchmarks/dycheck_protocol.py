"""DyCheck's protocol on held-out procedural scenes: `vnvs eval --benchmark dycheck` for every vnvs method.

Per evaluation seed, the held-out scenes of the synthetic benchmark (``vnvs.evaluation.synthetic.eval_scene_numbers``)
are exported in DyCheck's iPhone layout (``vnvs.evaluation.datasets.export_dycheck_scene``: a monocular training
video, two static held-out cameras, exact depth and DyCheck's co-visibility masks) and scored with
``vnvs eval --benchmark dycheck``: masked mPSNR / mSSIM on the co-visible pixels, PSNR / SSIM on the whole
frame. Each seed draws different scenes and seeds the generators; the summary is the mean over seeds with its
spread (min .. max over seeds, and the standard deviation across all items). Writes
``benchmarks/results/dycheck_protocol.json``.

Usage: python benchmarks/dycheck_protocol.py [--seeds 0,1] [--scenes 4] [--frames 16] [--size 128]
                                              [--methods warp,warp+inpaint,default]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

KEYS = ["psnr", "ssim", "mpsnr", "mssim", "lpips", "mlpips", "seconds_per_frame"]


def main() -> None:
    from vnvs.evaluation.datasets import export_dycheck_scenes
    from vnvs.evaluation.synthetic import eval_scene_numbers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--methods", default="warp,warp+inpaint,default")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[str, dict[int, dict]] = {}
    items: dict[str, list[dict]] = {}
    protocol = None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in seeds:
            data = tmp / f"dycheck-{seed}"
            export_dycheck_scenes(eval_scene_numbers(args.scenes, seed), data, frames=args.frames, size=args.size,
                                  val_cameras=2, factors=(1,))
            out = tmp / f"eval-{seed}"
            subprocess.run([sys.executable, "-m", "vnvs.cli", "eval", "--benchmark", "dycheck", "--data", str(data),
                            "--methods", args.methods, "--seed", str(seed), "--device", "cpu", "--output", str(out)],
                           check=True, capture_output=True)
            report = json.loads((out / "report.json").read_text())
            protocol = report["protocol"]
            for label, m in report["methods"].items():
                per_seed.setdefault(label, {})[seed] = {k: m["mean"].get(k) for k in KEYS}
                items.setdefault(label, []).extend({k: it.get(k) for k in KEYS} for it in m["items"])
    summary = {}
    for label, runs in per_seed.items():
        summary[label] = {}
        for k in KEYS:
            vals = [r[k] for r in runs.values() if isinstance(r.get(k), (int, float))]
            per_item = [i[k] for i in items[label] if isinstance(i.get(k), (int, float))]
            if vals:
                summary[label][k] = {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
                                     "item_std": statistics.pstdev(per_item) if len(per_item) > 1 else 0.0,
                                     "items": len(per_item)}
            else:
                reason = next((r[k]["unavailable"] for r in runs.values() if isinstance(r.get(k), dict)), "not measured")
                summary[label][k] = {"unavailable": reason}
    best = max(summary, key=lambda m: summary[m]["mpsnr"]["mean"])
    path = save("dycheck_protocol", {"seeds": seeds, "scenes_per_seed": args.scenes, "frames": args.frames,
                                     "size": args.size, "val_cameras": 2, "methods": args.methods,
                                     "protocol": protocol, "per_seed": per_seed, "summary": summary, "best": best,
                                     "seconds": time.perf_counter() - start})
    print(f"best mPSNR: {best}; wrote {path}")


if __name__ == "__main__":
    main()
