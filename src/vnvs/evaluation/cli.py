"""The ``vnvs eval`` subcommand: its arguments and handler (hooked into :mod:`vnvs.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vnvs.evaluation.report import markdown_table
from vnvs.evaluation.runner import BENCHMARKS, DEFAULT_SCENES, EvalConfig, run_eval
from vnvs.utils.argtypes import positive_int as _positive_int


def add_eval_parser(sub) -> None:
    """Add ``eval`` to the ``vnvs`` subcommands."""
    d = EvalConfig()
    p = sub.add_parser("eval", help="score methods on a benchmark (PSNR / SSIM over co-visible and disoccluded regions)",
                       description="Run methods on a benchmark and write report.json and report.md. "
                                   "See docs/evaluation.md.")
    p.add_argument("--benchmark", "-b", choices=BENCHMARKS, default=d.benchmark,
                   help="synthetic: held-out procedural scenes with exact ground truth; real: prepared flow pairs "
                        f"of held-out videos (default {d.benchmark})")
    p.add_argument("--methods", "-m", default=d.methods,
                   help="comma-separated generators: warp, warp+inpaint, default, or a saved model folder; "
                        f"LABEL=NAME gives a name in the report (default {d.methods})")
    p.add_argument("--output", "-o", type=Path, default=d.output, help=f"report folder (default {d.output})")
    p.add_argument("--scenes", "-n", type=_positive_int, default=None,
                   help=f"synthetic: number of scenes (default {DEFAULT_SCENES}); real: at most N clips (default all)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"held-out scene set and generator seed (default {d.seed})")
    p.add_argument("--frames", type=_positive_int, default=d.frames, help=f"synthetic: frames per scene (default {d.frames})")
    p.add_argument("--size", type=_positive_int, default=d.size, help=f"synthetic: frame height and width (default {d.size})")
    p.add_argument("--trajectory", "-t", default=d.trajectory,
                   help="synthetic: 'random' (a random orbit+arc+dolly per scene, as in training) or a preset "
                        f"(orbit:30, ...) or trajectory file for every scene (default {d.trajectory})")
    p.add_argument("--mode", choices=["gradual", "direct"], default=d.mode,
                   help="synthetic: mode of a fixed --trajectory (random ones draw their own)")
    p.add_argument("--max-orbit", type=float, default=d.max_orbit,
                   help=f"synthetic: largest orbit of random trajectories, degrees (default {d.max_orbit:g})")
    p.add_argument("--cache", type=Path, default=None,
                   help="synthetic: folder keeping rendered scenes between runs (rendering is the slow part)")
    p.add_argument("--data", type=Path, default=None, help="real: folder written by vnvs prepare --kind flow-pairs")
    p.add_argument("--kind", default=d.kind, help=f"real: sample kind to score (default {d.kind})")
    p.add_argument("--steps", type=_positive_int, default=None, help="learned methods: sampling steps")
    p.add_argument("--guidance", type=float, default=None, help="learned methods: guidance scale on the control (default 1)")
    p.add_argument("--device", default=None, help="learned methods: cpu, cuda, ... (default: CUDA when available)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``vnvs eval``: run, print the table, say where the reports are."""
    report = run_eval(EvalConfig(benchmark=args.benchmark, methods=args.methods, output=args.output,
                                 scenes=args.scenes, seed=args.seed, frames=args.frames, size=args.size,
                                 trajectory=args.trajectory, mode=args.mode, max_orbit=args.max_orbit,
                                 cache=args.cache, data=args.data, kind=args.kind, steps=args.steps,
                                 guidance=args.guidance, device=args.device))
    print(json.dumps({label: m["mean"] for label, m in report["methods"].items()}))
    print(markdown_table(report))
    print(f"wrote {args.output}/report.json, report.md")
    return 0
