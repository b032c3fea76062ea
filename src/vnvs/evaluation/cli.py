"""The ``vnvs eval`` subcommand: its options (from :class:`~vnvs.evaluation.config.EvalConfig`) and handler."""

from __future__ import annotations

import argparse
import json

from vnvs.evaluation.config import EvalConfig
from vnvs.evaluation.report import markdown_table
from vnvs.evaluation.runner import run_eval
from vnvs.utils.config_cli import add_config_arguments, config_from_args


def add_eval_parser(sub) -> None:
    """Add ``eval`` to the ``vnvs`` subcommands."""
    p = sub.add_parser("eval", help="score methods on a benchmark (PSNR / SSIM over co-visible and disoccluded regions)",
                       description="Run methods on a benchmark and write report.json and report.md. "
                                   "See docs/evaluation.md.")
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``vnvs eval``: run, print the table, say where the reports are."""
    config = config_from_args(EvalConfig, args)
    report = run_eval(config)
    print(json.dumps({label: m["mean"] for label, m in report["methods"].items()}))
    print(markdown_table(report))
    print(f"wrote {config.output}/report.json, report.md")
    return 0
