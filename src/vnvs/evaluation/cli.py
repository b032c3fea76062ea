"""``vnvs eval``: from parsed options to a report (the options are built from
:class:`~vnvs.evaluation.config.EvalConfig` in :mod:`vnvs.cli`)."""

from __future__ import annotations

import argparse
import json

from vnvs.evaluation.config import EVAL_FILES, EvalConfig
from vnvs.evaluation.report import markdown_table
from vnvs.evaluation.runner import run_eval
from vnvs.utils.atomic import check_output_folder
from vnvs.utils.config_cli import config_from_args
from vnvs.utils.outputs import check_destination


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``vnvs eval``: run, print the table, say where the reports are."""
    config = config_from_args(EvalConfig, args)
    check_destination(config.output, "folder")
    check_output_folder(config.output, EVAL_FILES)
    report = run_eval(config)
    print(json.dumps({label: m["mean"] for label, m in report["methods"].items()}))
    print(markdown_table(report))
    print(f"wrote {config.output}/report.json, report.md, items.csv" + ("" if "skipped" in (report.get("figures") or "")
          else ", plots/") + (", sheets/" if "sheets/" in (report.get("figures") or "") else ""))
    return 0
