"""Run builders over work items and write shards: in this process, a process pool, or Ray Data.

Every task builds one work item and writes its shard itself, so the engines only move small stats
dicts around. The per-item seed depends only on the run seed and the item key, so the shards do not
depend on the engine, the number of workers or the order of execution. See ``docs/data.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import logging
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vnvs.data.builders import get_builder
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import WorkItem
from vnvs.data.shards import INDEX_NAME, is_complete, list_sidecars, write_index, write_shard
from vnvs.errors import InputError, MissingDependencyError, VnvsError
from vnvs.utils.outputs import check_destination
from vnvs.utils.processes import die_with_parent
from vnvs.utils.progress import progress_bar
from vnvs.utils.threads import serial, worker_threads

ENGINES = ("local", "ray")

log = logging.getLogger(__name__)


def item_seed(seed: int, key: str) -> int:
    """Seed of one work item: a hash of the run seed and the item key (31 bits)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()[:8], "little") % (2**31)


@dataclass
class Summary:
    """What a prepare run did."""

    output: str
    kind: str
    engine: str
    workers: int | None
    inputs: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failed_items: list[dict[str, str]] = field(default_factory=list)
    samples: int = 0
    frames: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    total_samples: int = 0
    seconds: float = 0.0
    samples_per_second: float = 0.0
    frames_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def problem(self) -> str | None:
        """Why the run produced nothing usable, in one line (None when it did, or had nothing to do)."""
        if self.failed and not self.done and not self.skipped:
            first = self.failed_items[0]
            return f"every input failed ({self.failed}); the first, {first['source']}: {first['error']}"
        if self.done and not self.samples and not self.total_samples:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none built"
            return (f"no samples were kept from {self.done} input(s) (dropped: {reasons}); the thresholds are "
                    "min_coverage and min_consistency, see docs/data.md")
        return None

    def line(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"{self.done} of {self.inputs} inputs done now, {self.skipped} already done{failed}; "
                f"{self.samples} samples ({self.total_samples} in {self.output}/index.json) in {self.seconds:.1f} s "
                f"({self.samples_per_second:.2f} samples/s, {self.frames_per_second:.1f} frames/s)")


def _sample_frames(sample: dict) -> int:
    """Frames of one sample: T for pairs (the target clip), T * V for grids."""
    if "grid" in sample:
        return int(sample["grid"].shape[0] * sample["grid"].shape[1])
    if "target" in sample:
        return int(sample["target"].shape[0])
    return 0


def run_item(job: dict[str, Any], builder: Callable | None = None) -> dict[str, Any]:
    """Build one work item and write its shard; return small stats (top-level: picklable, spawn-safe).

    ``job`` holds ``item`` (WorkItem fields), ``output``, ``kind``, ``config`` (dict) and ``seed``
    (the run seed). ``builder`` overrides ``get_builder(kind)`` (a picklable callable). A :class:`VnvsError` of the builder (an undecodable video, a bad depth file) is
    reported as ``status="failed"``; anything else is a bug and propagates.
    """
    item = WorkItem(**job["item"])
    source = item.path if item.path is not None else f"scene:{item.scene}"
    stats = {"key": item.key, "source": source, "status": "done", "samples": 0, "frames": 0, "dropped": {},
             "seconds": 0.0, "error": ""}
    start = time.perf_counter()
    config = PrepareConfig(**job["config"])
    seed = item_seed(job["seed"], item.key)
    try:
        build = builder if builder is not None else get_builder(job["kind"])
        with serial():  # builders are small tensor ops around OpenCV and numba kernels
            result = build(item, config, seed)
    except VnvsError as exc:
        stats.update(status="failed", error=" ".join(str(exc).split()), seconds=time.perf_counter() - start)
        return stats
    seconds = time.perf_counter() - start
    write_shard(job["output"], item, job["kind"], result, config=job["config"], seed=seed, seconds=seconds)
    stats.update(samples=len(result.samples), frames=sum(_sample_frames(s) for s in result.samples),
                 dropped=dict(result.dropped), seconds=time.perf_counter() - start)
    return stats


def _ray_task(row: dict[str, Any], builder: Callable | None = None) -> dict[str, Any]:
    """Ray Data map function: rows carry JSON strings so block schemas never vary between items."""
    return {"stats": json.dumps(run_item(json.loads(row["job"]), builder))}


def _worker_init(threads: int, parent: int) -> None:
    import torch

    die_with_parent(parent)
    torch.set_num_threads(threads)


def _run_local(jobs: list[dict], workers: int, on_result, builder: Callable | None) -> None:
    if workers <= 1:
        for job in jobs:
            on_result(run_item(job, builder))
        return
    import multiprocessing

    threads = worker_threads(workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads, os.getpid()))
    try:
        futures = [pool.submit(run_item, job, builder) for job in jobs]
        for future in as_completed(futures):
            on_result(future.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("the ray engine needs Ray Data: pip install 'vnvs[scale]'") from None
    return ray


def _run_ray(jobs: list[dict], workers: int | None, on_result, builder: Callable | None) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)  # connects to the cluster named by RAY_ADDRESS
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"job": json.dumps(job)} for job in jobs], override_num_blocks=len(jobs))
        for row in ds.map(_ray_task, fn_kwargs={"builder": builder}, num_cpus=1).iter_rows():
            on_result(json.loads(row["stats"]))
    finally:
        if started:
            ray.shutdown()


def prepare(items: list[WorkItem], output: str | os.PathLike, kind: str, config: PrepareConfig | None = None,
            seed: int = 0, engine: str = "local", workers: int | None = None,
            builder: Callable | None = None) -> Summary:
    """Build and store every work item whose shard is not complete yet, then rebuild ``index.json``.

    Args:
        items: from :func:`vnvs.data.inputs.collect_inputs`.
        output: output folder (for ``ray`` on a cluster, a folder every node can write).
        kind: builder kind (``flow-pairs``, ``covis``, ``affine4d``, ``synthetic``).
        engine: ``local`` (this process if ``workers == 1``, else a spawn process pool) or ``ray``.
        workers: processes (local; default: CPU count, at most the number of pending items) or
            CPUs of a local Ray instance (ray; ignored when connecting to a cluster via ``RAY_ADDRESS``).
        builder: a custom ``build(item, config, seed)`` instead of ``get_builder(kind)``; it must be
            picklable (a top-level function of an importable module) for process pools and Ray.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if workers is not None and workers <= 0:
        raise InputError(f"workers must be positive, got {workers}")
    config = config or PrepareConfig()
    output = Path(output)
    check_destination(output, "folder")
    if engine == "ray":
        _import_ray()  # fail before doing anything
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pending = [it for it in items if not is_complete(output, it.key)]
    summary = Summary(output=str(output), kind=kind, engine=engine, workers=workers, inputs=len(items),
                      skipped=len(items) - len(pending))
    config_dict = config.to_dict()
    jobs = [{"item": dataclasses.asdict(it), "output": str(output), "kind": kind, "config": config_dict,
             "seed": int(seed)} for it in pending]

    def nothing_kept() -> bool:
        return not list_sidecars(output) and not (output / INDEX_NAME).exists()

    try:
        with progress_bar(f"prepare {kind}", total=len(jobs), unit="input") as bar:
            def on_result(stats: dict[str, Any]) -> None:
                if stats["status"] == "failed":
                    summary.failed += 1
                    summary.failed_items.append({"source": stats["source"], "error": stats["error"]})
                    log.warning("skipped %s: %s", stats["source"], stats["error"])
                else:
                    summary.done += 1
                    summary.samples += stats["samples"]
                    summary.frames += stats["frames"]
                    for reason, n in stats["dropped"].items():
                        summary.dropped[reason] = summary.dropped.get(reason, 0) + n
                bar.update(1)

            if jobs:
                if engine == "local":
                    n = workers if workers is not None else min(os.cpu_count() or 1, len(jobs))
                    summary.workers = n
                    _run_local(jobs, n, on_result, builder)
                else:
                    _run_ray(jobs, workers, on_result, builder)

        index = {"totals": {"samples": 0}} if summary.done == 0 and nothing_kept() else write_index(output)
    except BaseException:
        if created and nothing_kept():
            shutil.rmtree(output, ignore_errors=True)
        raise
    if created and nothing_kept():  # nothing was kept: leave no empty output folder behind
        shutil.rmtree(output, ignore_errors=True)
    summary.failed_items.sort(key=lambda f: f["source"])
    summary.dropped = dict(sorted(summary.dropped.items()))
    summary.total_samples = index["totals"]["samples"]
    summary.seconds = round(time.perf_counter() - start, 3)
    elapsed = max(summary.seconds, 1e-9)
    summary.samples_per_second = round(summary.samples / elapsed, 3)
    summary.frames_per_second = round(summary.frames / elapsed, 3)
    return summary
