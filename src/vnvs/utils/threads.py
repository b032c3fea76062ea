"""The thread policy of vnvs's CPU stages: large kernels in parallel, small tensor ops serial.

On a few cores, torch's intra-op threads cost more than they give on small tensors (a 16-frame
256x256 consistency check, packing frames to uint8, SSIM statistics): the fork/join of every op
dominates, and on a busy machine a thread that waits for a core stalls the whole op. Large kernels
(transformer GEMMs, the numba splat, which runs frames in parallel on numba's own pool) do scale.

The policy:

* :func:`configure_threads` sets the budget once per process: the ``threads`` argument (the CLI's
  ``--threads``), else ``OMP_NUM_THREADS``, else the CPU count. torch's intra-op threads and OpenCV's
  threads are set to it.
* :func:`serial` runs a block with one torch thread: the stages made of small
  ops (``prepare`` builders, the render loop's splat bookkeeping, metrics) run under it.
* :func:`parallel` runs a block with the whole budget: generators (learned models) and depth models.
* :func:`worker_threads` splits the budget among worker processes (``vnvs prepare --workers``).
* :func:`numba_launch` wraps every launch of a parallel numba kernel: numba's OpenMP threading layer
  sets the launching thread's OpenMP thread count to numba's own at each launch, which torch then reads
  as its own, so without it every "serial" torch op after the first kernel ran on all threads again.

Example:
    >>> n = configure_threads(2)
    >>> with serial():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == n
    True
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import cv2
import torch

_budget: int | None = None


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(value.split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


def thread_budget() -> int:
    """The threads this process may use: the configured budget, else ``OMP_NUM_THREADS``, else the CPU count."""
    if _budget is not None:
        return _budget
    return _env_threads() or max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Set this process's thread budget and apply it to torch and OpenCV; returns it.

    Args:
        threads: the budget (the CLI's ``--threads``); None: ``OMP_NUM_THREADS`` when set, else the
            CPU count.
    """
    global _budget
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    _budget = int(threads) if threads is not None else (_env_threads() or max(1, os.cpu_count() or 1))
    torch.set_num_threads(_budget)
    cv2.setNumThreads(_budget)
    return _budget


@contextlib.contextmanager
def _threads(n: int) -> Iterator[int]:
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def serial() -> contextlib.AbstractContextManager[int]:
    """A block run with one torch thread (small tensor ops); restores the setting after. OpenCV keeps its
    threads (its kernels split whole images)."""
    return _threads(1)


def parallel() -> contextlib.AbstractContextManager[int]:
    """A block run with the whole budget of torch threads (:func:`thread_budget`): large GEMMs, models."""
    return _threads(thread_budget())


@contextlib.contextmanager
def numba_launch() -> Iterator[None]:
    """Launch parallel numba kernels in this block: torch's thread count is put back afterwards.

    numba's OpenMP threading layer calls ``omp_set_num_threads`` with numba's thread count on the
    launching thread, and torch reads that setting as its own: after a kernel, torch ops of a
    :func:`serial` block would run in parallel again. The kernels themselves keep numba's threads.

    Example:
        >>> with serial(), numba_launch():
        ...     pass  # a numba kernel here
        >>> torch.get_num_threads() == thread_budget()
        True
    """
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_threads(workers: int) -> int:
    """Threads of each of ``workers`` worker processes sharing the budget (at least 1)."""
    return max(1, thread_budget() // max(1, int(workers)))


__all__ = ["configure_threads", "numba_launch", "parallel", "serial", "thread_budget", "worker_threads"]
