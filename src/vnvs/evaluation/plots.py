"""Figures of a benchmark report: PNG plots (matplotlib, Agg) and contact sheets (OpenCV).

* ``plots/bars.png``: per metric, one bar per method at the mean over items, the spread across items
  (one standard deviation) as an error bar and each item as a dot;
* ``plots/per_frame_<metric>.png``: the metric at each frame index, one line per method (mean over
  the items that have that frame);
* ``sheets/<item>.png``: for the first items, the truth, the input (the warped frames) and each
  method's frames, a few frames across, one labelled row each.

matplotlib is optional (``pip install 'vnvs[eval]'``): without it the plots are skipped and the
report says so; contact sheets need only OpenCV.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from vnvs.evaluation.report import LABELS, is_number
from vnvs.io.images import write_contact_sheet

PLOT_HINT = "plots skipped: matplotlib is not installed (pip install 'vnvs[eval]')"


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    """A file name for an item name (``scene/cam1`` -> ``scene_cam1``).

    Example:
        >>> safe_name("scn02900/v3 a")
        'scn02900_v3_a'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "item"


def _plot_keys(report: dict) -> list[str]:
    skip = set(report.get("set_metrics", [])) | {"seconds_per_frame", "seconds_per_cell"}
    return [k for k in report["metrics"] if k not in skip
            and any(is_number(r.get(k)) for m in report["methods"].values() for r in m["items"])]


def write_plots(report: dict, folder: Path) -> list[str] | str:
    """Write the plots of ``report`` into ``folder`` (created); returns the file names, or the reason
    they were skipped."""
    plt = _pyplot()
    if plt is None:
        return PLOT_HINT
    keys = _plot_keys(report)
    if not keys:
        return "no per-item metric to plot"
    folder.mkdir(parents=True, exist_ok=True)
    labels = list(report["methods"])
    written = []
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        for j, label in enumerate(labels):
            vals = [r[k] for r in report["methods"][label]["items"] if is_number(r.get(k))]
            if not vals:
                continue
            ax.bar(j, float(np.mean(vals)), yerr=float(np.std(vals)), capsize=4, color=f"C{j}", alpha=0.75)
            ax.scatter(np.full(len(vals), j) + np.linspace(-0.15, 0.15, len(vals)), vals, s=9, color="k", zorder=3)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(LABELS.get(k, k), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"{report['benchmark']}: mean over {len(report['items'])} {report['item_name']}s "
                 "(bar: 1 std across items, dots: items)", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "bars.png", dpi=100)
    plt.close(fig)
    written.append("bars.png")
    for k in keys:
        series = {}
        for label in labels:
            frames = [r["per_frame"][k] for r in report["methods"][label]["items"]
                      if isinstance(r.get("per_frame"), dict) and k in r["per_frame"]]
            if not frames:
                continue
            n = max(len(f) for f in frames)
            grid = np.full((len(frames), n), np.nan)
            for i, f in enumerate(frames):
                grid[i, : len(f)] = [np.nan if v is None else v for v in f]
            with np.errstate(all="ignore"):
                counts = np.isfinite(grid).sum(0)
                series[label] = np.where(counts > 0, np.nansum(grid, 0) / np.maximum(counts, 1), np.nan)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for j, (label, y) in enumerate(series.items()):
            ax.plot(np.arange(len(y)), y, marker="o", ms=3, color=f"C{labels.index(label)}", label=label)
        ax.set_xlabel("frame")
        ax.set_ylabel(LABELS.get(k, k))
        ax.set_title(f"{LABELS.get(k, k)} per frame (mean over {report['item_name']}s)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"per_frame_{k}.png"
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written


def write_sheets(sheets, folder: Path) -> list[str]:
    """Write one contact sheet per :class:`~vnvs.evaluation.scoring.Sheet` into ``folder``; returns the names."""
    if not sheets:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for s in sheets:
        name = f"{safe_name(s.name)}.png"
        write_contact_sheet(folder / name, s.rows, labels=s.labels, columns=len(s.rows[0]))
        names.append(name)
    return names


def write_figures(report: dict, folder: Path, sheets=()) -> str:
    """Plots into ``folder/plots``, contact sheets into ``folder/sheets``; returns the sentence
    ``report.md`` ends with (what was written, or why the plots were skipped)."""
    plots = write_plots(report, Path(folder) / "plots")
    names = write_sheets(list(sheets), Path(folder) / "sheets")
    parts = [f"Plots: {', '.join('plots/' + p for p in plots)}." if isinstance(plots, list) else f"{plots[0].upper()}{plots[1:]}."]
    if names:
        parts.append(f"Contact sheets (truth, input, each method): {', '.join('sheets/' + n for n in names)}.")
    return " ".join(parts)
