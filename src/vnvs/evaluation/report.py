"""Benchmark reports: ``report.json`` (everything) and ``report.md`` (a table), written atomically.

``report.json``::

    {"benchmark": "synthetic", "version": 1, "created": "...", "settings": {...}, "machine": {...},
     "metrics": ["psnr", "ssim", ...],
     "items": [{"index": 0, "scene": ..., ...}],            # what was scored (scenes or clips)
     "methods": {"warp": {"spec": "warp", "generator": "warp",
                          "mean": {"psnr": 21.3, ...},      # over items, empty masks skipped
                          "items": [{"psnr": 20.9, ...}, ...]}}}

Metric values are floats, or ``null`` where a region is empty (e.g. nothing disoccluded).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from vnvs import __version__
from vnvs.utils.atomic import atomic_path

REPORT_VERSION = 1

LABELS = {
    "psnr": "PSNR", "ssim": "SSIM",
    "psnr_covisible": "PSNR co-vis", "ssim_covisible": "SSIM co-vis",
    "psnr_disoccluded": "PSNR disocc", "ssim_disoccluded": "SSIM disocc",
    "psnr_mask": "PSNR M", "ssim_mask": "SSIM M",
    "psnr_nonmask": "PSNR not M", "ssim_nonmask": "SSIM not M",
    "seconds_per_frame": "s / frame",
    "view_error": "view err", "time_error": "time err", "seconds_per_cell": "s / cell",
}
"""Column titles of the Markdown table."""


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str | torch.device | None = None) -> dict:
    """CPU, GPU, library versions: what a timing in the report depends on."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "device": str(device) if device is not None else ("cuda" if gpu else "cpu"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if gpu else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "vnvs": __version__,
        "torch_threads": torch.get_num_threads(),
    }


def mean_metrics(rows: list[dict], keys: list[str]) -> dict:
    """Mean of each metric over rows, skipping ``None`` (empty regions); ``None`` when no row has it."""
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None and not math.isnan(r[k])]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key.startswith("psnr"):
        return f"{value:.2f}"
    if key.startswith("ssim"):
        return f"{value:.4f}"
    return f"{value:.3g}"


def markdown_table(report: dict) -> str:
    """The methods' mean values as a Markdown table (one row per method)."""
    keys = report["metrics"]
    head = "| method | " + " | ".join(LABELS.get(k, k) for k in keys) + " |"
    rule = "|---|" + "---:|" * len(keys)
    rows = [f"| {label} | " + " | ".join(_fmt(k, m["mean"].get(k)) for k in keys) + " |"
            for label, m in report["methods"].items()]
    return "\n".join([head, rule, *rows])


def render_markdown(report: dict) -> str:
    """``report.md``: settings, the mean table, per-item PSNR, the machine."""
    s, mach = report["settings"], report["machine"]
    lines = [f"# vnvs eval: {report['benchmark']} benchmark", ""]
    lines.append(", ".join(f"{k} = {v}" for k, v in s.items() if v is not None and not isinstance(v, (list, dict))))
    lines += ["", "Mean over " + f"{len(report['items'])} {report['item_name']}s "
              "(regions that are empty in an item are skipped):", "", markdown_table(report), ""]
    if report.get("notes"):
        lines += [report["notes"], ""]
    keys = [k for k in report["metrics"] if k.startswith("psnr")]
    if report["items"] and keys:
        lines += [f"PSNR per {report['item_name']}:", ""]
        labels = list(report["methods"])
        lines.append(f"| {report['item_name']} | " + " | ".join(f"{lab} {LABELS.get(k, k)}" for lab in labels for k in keys) + " |")
        lines.append("|---|" + "---:|" * (len(labels) * len(keys)))
        for i, item in enumerate(report["items"]):
            vals = [_fmt(k, report["methods"][lab]["items"][i].get(k)) for lab in labels for k in keys]
            lines.append(f"| {item['name']} | " + " | ".join(vals) + " |")
        lines.append("")
    gpu = mach["gpu"] or "none"
    lines.append(f"Machine: {mach['cpu']} ({mach['cpu_count']} CPUs), GPU {gpu}, device {mach['device']}, "
                 f"torch {mach['torch']}, vnvs {mach['vnvs']}, Python {mach['python']}.")
    return "\n".join(lines) + "\n"


def build_report(benchmark: str, item_name: str, settings: dict, items: list[dict], methods: dict[str, dict],
                 metrics: list[str], device=None, notes: str | None = None) -> dict:
    """Assemble the report dict; ``methods[label]`` holds ``spec``, ``generator`` and per-item ``items``."""
    for m in methods.values():
        m["mean"] = mean_metrics(m["items"], metrics)
    return {"benchmark": benchmark, "version": REPORT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "item_name": item_name, "settings": settings, "machine": machine_info(device), "metrics": metrics,
            "notes": notes, "items": items, "methods": methods}


def write_report(report: dict, output: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``output``, each atomically."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(render_markdown(report))
    return json_path, md_path
