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

import csv
import io
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
    "lpips": "LPIPS", "mpsnr": "mPSNR", "mssim": "mSSIM", "mlpips": "mLPIPS", "fid": "FID", "fvd": "FVD",
    "rot_err_deg": "RotErr (deg)", "trans_dir_err_deg": "TransErr (deg)",
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


def is_number(value) -> bool:
    """A metric value that counts: a finite or infinite float/int, not None, NaN or ``{"unavailable": ...}``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def unavailable_reason(rows: list[dict], key: str) -> str | None:
    """The reason a metric is unavailable in rows (``{"unavailable": reason}``), or None."""
    for r in rows:
        v = r.get(key)
        if isinstance(v, dict) and "unavailable" in v:
            return str(v["unavailable"])
    return None


def mean_metrics(rows: list[dict], keys: list[str]) -> dict:
    """Mean of each metric over rows, skipping ``None`` (empty regions); ``None`` when no row has it, or
    ``{"unavailable": reason}`` when the metric could not be computed for any row."""
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if is_number(r.get(k))]
        reason = None if vals else unavailable_reason(rows, k)
        out[k] = sum(vals) / len(vals) if vals else ({"unavailable": reason} if reason else None)
    return out


def spread_metrics(rows: list[dict], keys: list[str]) -> dict:
    """Standard deviation (population) of each metric over rows; None with fewer than two values."""
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if is_number(r.get(k))]
        if len(vals) < 2:
            out[k] = None
            continue
        m = sum(vals) / len(vals)
        out[k] = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
    return out


def _fmt(key: str, value) -> str:
    if isinstance(value, dict):
        return "n/a"
    if value is None:
        return "-"
    if "psnr" in key or key in ("fid", "fvd"):
        return f"{value:.2f}"
    if "ssim" in key or "lpips" in key:
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
    if report.get("protocol"):
        lines += ["Protocol:", ""] + [f"- {k}: {v}" for k, v in report["protocol"].items()] + [""]
    missing = {}
    for m in report["methods"].values():
        for k, v in m["mean"].items():
            if isinstance(v, dict) and "unavailable" in v:
                missing.setdefault(k, v["unavailable"])
    if missing:
        lines += ["Not measured (n/a): " + "; ".join(f"{LABELS.get(k, k)}: {r}" for k, r in missing.items()) + ".", ""]
    if report.get("figures"):
        lines += [report["figures"], ""]
    keys = [k for k in report["metrics"] if "psnr" in k]
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
        m["std"] = spread_metrics(m["items"], metrics)
    return {"benchmark": benchmark, "version": REPORT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "item_name": item_name, "settings": settings, "machine": machine_info(device), "metrics": metrics,
            "notes": notes, "items": items, "methods": methods}


def items_csv(report: dict) -> str:
    """``items.csv``: one row per item x method with every per-item metric (empty: not measured or empty region)."""
    keys = [k for k in report["metrics"] if k not in report.get("set_metrics", [])]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", report["item_name"], "method", *keys])
    for label, m in report["methods"].items():
        for i, row in enumerate(m["items"]):
            name = report["items"][i].get("name", i) if i < len(report["items"]) else i
            w.writerow([i, name, label, *[repr(float(row[k])) if is_number(row.get(k)) else "" for k in keys]])
    return buf.getvalue()


def write_report(report: dict, output: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md`` and ``items.csv`` into ``output``, each atomically."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(render_markdown(report))
    with atomic_path(out / "items.csv") as tmp:
        tmp.write_text(items_csv(report))
    return json_path, md_path
