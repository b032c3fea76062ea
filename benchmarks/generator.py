"""The learned generator against the classical baselines, and the paper's ablations.

Scores, with `vnvs eval`, the models trained by `scripts/train_shipped.sh` (folder RUNS/<preset>/model)
and the baselines:

1. the synthetic benchmark: held-out procedural scenes (seeds disjoint from training), PSNR / SSIM
   over the full frame, the co-visible and the disoccluded region, seconds per frame;
2. the real benchmark: the self-supervised task on flow pairs of held-out real videos (HELDOUT:
   a folder written by `vnvs prepare --kind flow-pairs`).

Every learned model is sampled with the same settings (those of the shipped model's
`sampling.json`); the shipped model (`default`: RUNS/dit-small, trained on past the ablations'
step count) is also scored without compositing (`raw output`). It also reads the
training throughput from each run's `log.jsonl` and times `vnvs demo` with the default generator as
a fresh process.

Usage: python benchmarks/generator.py RUNS HELDOUT [--scenes 8] [--frames 25] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save
from vnvs.evaluation.runner import EvalConfig, run_eval
from vnvs.sampling import SamplingConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SAMPLING = ROOT / "src" / "vnvs" / "checkpoints" / "vnvs-dit-small" / "sampling.json"
ABLATIONS = {"full (dit-small)": "dit-small-700", "DoubleProj": "dit-small-doubleproj",
             "w/o real data": "dit-small-no-real", "w/o synthetic data": "dit-small-no-synthetic"}
"""The paper's ablations, all at the same step count (RUNS/dit-small-700 is the shipped run's model at
that count, exported before the run went on)."""
SHIPPED_RUN = "dit-small"


def model_variant(model: Path, folder: Path, **sampling) -> Path:
    """A folder with the model's weights (linked) and the given sampling settings."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).exists():
            os.symlink(model.resolve() / name, folder / name)
    SamplingConfig(**sampling).save(folder)
    return folder


def throughput(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["samples_per_s"] for r in rows if r.get("samples_per_s")]
    return {"steps": rows[-1]["step"], "final_loss": rows[-1]["loss"], "seconds": rows[-1]["seconds"],
            "samples_per_s_median": statistics.median(rates) if rates else None}


def time_demo(out: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vnvs.cli", "demo", "--output", str(out)], capture_output=True,
                          text=True, env={**os.environ, "VNVS_PROGRESS": "0"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"vnvs demo failed: {proc.stderr}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seconds": seconds, "generator": metrics["generator"], "psnr": metrics["psnr"],
            "psnr_covisible": metrics["psnr_covisible"], "psnr_disoccluded": metrics["psnr_disoccluded"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="folder with <preset>/model and <preset>/log.jsonl")
    parser.add_argument("heldout", type=Path, help="flow pairs of held-out real videos (vnvs prepare output)")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sampling = json.loads(SHIPPED_SAMPLING.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        methods = ["warp", "warp+inpaint", "default"]
        for label, preset in ABLATIONS.items():
            folder = model_variant(args.runs / preset / "model", tmp / "models" / preset, **sampling)
            methods.append(f"{label}={folder}")
        raw = model_variant(args.runs / SHIPPED_RUN / "model", tmp / "models" / "raw", **{**sampling, "composite": False})
        methods.append(f"default (raw output)={raw}")
        spec = ",".join(methods)
        t = time.perf_counter()
        synthetic = run_eval(EvalConfig(benchmark="synthetic", methods=spec, output=tmp / "synthetic",
                                        scenes=args.scenes, seed=args.seed, frames=args.frames, size=args.size,
                                        cache=tmp / "cache"))
        synthetic_seconds = time.perf_counter() - t
        t = time.perf_counter()
        real = run_eval(EvalConfig(benchmark="real", methods=spec, output=tmp / "real", data=args.heldout,
                                   seed=args.seed))
        real_seconds = time.perf_counter() - t
        demo = time_demo(tmp / "demo")
    for report in (synthetic, real):
        for m in report["methods"].values():
            m.pop("items", None)
            m["spec"] = Path(m.get("spec", "")).name if "/" in str(m.get("spec", "")) else m.get("spec")
        report["settings"]["methods"] = list(report["methods"])
        report["settings"]["output"] = report["settings"]["cache"] = None
    train = {label: throughput(args.runs / preset) for label, preset in ABLATIONS.items()}
    train["default (shipped)"] = throughput(args.runs / SHIPPED_RUN)
    path = save("generator", {"sampling": sampling, "synthetic": synthetic, "real": real,
                              "synthetic_seconds": synthetic_seconds, "real_seconds": real_seconds,
                              "training": train, "demo": demo})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
