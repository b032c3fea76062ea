"""Retry work on smaller pieces when the GPU runs out of memory."""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def is_oom(exc: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_halving(fn: Callable[[int, int], T], start: int, stop: int, size: int, *, what: str = "chunk",
                on_halve: Callable[[int], None] | None = None) -> tuple[list[T], int]:
    """Run ``fn(a, b)`` over ``[start, stop)`` in pieces of at most ``size``; on out-of-memory, halve.

    After an out-of-memory error the piece is retried at half the size (the CUDA cache is emptied
    first), down to one item; the smaller size is kept for the remaining pieces and returned, so
    callers can carry it over to later calls. The user is told on stderr each time the size drops.

    Args:
        fn: work on items ``a..b-1``.
        start, stop: the range.
        size: the first piece size (>= 1).
        what: what a piece is called in the message.
        on_halve: called with the new size after each halving.

    Returns:
        The results of every call in order, and the piece size in use at the end.

    Example:
        >>> run_halving(lambda a, b: b - a, 0, 10, 4)
        ([4, 4, 2], 4)
    """
    size = max(1, int(size))
    out: list[T] = []
    a = start
    while a < stop:
        b = min(a + size, stop)
        try:
            out.append(fn(a, b))
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled
            if not is_oom(exc) or size == 1:
                raise
            size = max(1, (b - a) // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"vnvs: out of GPU memory; retrying with {what}s of {size}", file=sys.stderr)
            if on_halve is not None:
                on_halve(size)
            continue
        a = b
    return out, size
