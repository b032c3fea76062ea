"""Shared helpers of the benchmark scripts: machine description, timing, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    import numba
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numba": numba.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> dict:
    """Wall-clock seconds of ``fn`` over ``repeats`` runs after ``warmup`` runs: min / median / max."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"min": min(times), "median": statistics.median(times), "max": max(times), "repeats": repeats}


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "date": time.strftime("%Y-%m-%d"), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


SHIPPED_VARIANTS = {"default (not seamless)": "default", "cognvs (not seamless)": "cognvs"}
"""Method label -> shipped generator whose composite runs without the seamless blend."""


def expand_variants(methods: str, folder: Path) -> str:
    """``methods`` (a ``vnvs eval --methods`` list) with the labels of :data:`SHIPPED_VARIANTS` turned into
    ``LABEL=FOLDER``: a copy of that shipped model under ``folder`` whose ``sampling.json`` says
    ``"seamless": false``."""
    import shutil

    from vnvs.generators import SHIPPED_MODELS, shipped_checkpoint

    out = []
    for method in methods.split(","):
        base = SHIPPED_VARIANTS.get(method)
        if base is None:
            out.append(method)
            continue
        dest = folder / f"{SHIPPED_MODELS[base]}-not-seamless"
        if not dest.is_dir():
            shutil.copytree(shipped_checkpoint(SHIPPED_MODELS[base]), dest)
            sampling = json.loads((dest / "sampling.json").read_text())
            (dest / "sampling.json").write_text(json.dumps({**sampling, "seamless": False}) + "\n")
        out.append(f"{method}={dest}")
    return ",".join(out)


def collect_seed(per_seed: dict[str, dict[int, dict]], report_file: Path, seed: int) -> int:
    """Add the per-method means of a ``vnvs eval`` ``report.json`` to ``per_seed[label][seed]``; returns its items."""
    report = json.loads(Path(report_file).read_text())
    for label, m in report["methods"].items():
        per_seed.setdefault(label, {})[seed] = dict(m["mean"])
    return len(report["items"])


def summarize_seeds(per_seed: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict]]:
    """``{label: {metric: {mean, min, max}}}`` over the seeds, for the metrics every seed measured."""
    summary = {}
    for label, runs in per_seed.items():
        keys = sorted({k for r in runs.values() for k, v in r.items() if isinstance(v, (int, float))})
        summary[label] = {k: {"mean": statistics.fmean(r[k] for r in runs.values()),
                              "min": min(r[k] for r in runs.values()), "max": max(r[k] for r in runs.values())}
                          for k in keys if all(isinstance(r.get(k), (int, float)) for r in runs.values())}
    return summary
