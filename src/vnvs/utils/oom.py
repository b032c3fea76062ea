"""Retry work on fewer frames when the GPU runs out of memory: one detector, one halving policy.

:class:`OomHalving` holds how many frames a call may take. After an out-of-memory error the call is
retried on about half as many frames (:func:`halve`), down to one; the smaller size stays for the
rest of the run, and the user is told once, through :mod:`logging`. Depth chunks (disjoint pieces,
:meth:`OomHalving.run_pieces`) and generator windows (overlapping, cross-faded:
:class:`vnvs.generators.windows.OomRetry`) both go through it. An error that one ``OomHalving``
already retried down to one frame is not retried again by an enclosing one, so retries never nest.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

import torch

T = TypeVar("T")

log = logging.getLogger(__name__)

_EXHAUSTED = "_vnvs_oom_exhausted"
"""Attribute set on an out-of-memory error that was already retried down to one frame."""


def is_oom(exc: BaseException) -> bool:
    """``torch.cuda.OutOfMemoryError``, or another backend's out-of-memory ``RuntimeError`` (e.g. MPS)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def halve(size: int, temporal_multiple: int = 1) -> int:
    """The next smaller size to try after running out of memory on ``size`` frames: about half, still
    valid for a model that needs ``(size - 1) % temporal_multiple == 0``; never below 1.

    Example:
        >>> halve(49, 4), halve(16), halve(7), halve(2), halve(5, 4)
        (25, 8, 3, 1, 1)
    """
    m = max(1, int(temporal_multiple))
    size = int(size)
    half = max(1, size // 2)
    up = ((half - 1 + m - 1) // m) * m + 1  # smallest valid length >= half
    return up if up < size else max(1, ((half - 1) // m) * m + 1)


class OomHalving:
    """Frames per call, halved after an out-of-memory error and kept reduced for later calls.

    Args:
        size: frames per call (None: as many as given, until the first out-of-memory error).
        what: what runs out of memory, for the message (``"depth"``, a generator's name).
        temporal_multiple: sizes keep ``(size - 1) % temporal_multiple == 0`` (see :func:`halve`).

    Example:
        >>> OomHalving(4, what="test").run_pieces(lambda a, b: b - a, 0, 10)
        [4, 4, 2]
    """

    def __init__(self, size: int | None = None, *, what: str, temporal_multiple: int = 1) -> None:
        if size is not None and int(size) < 1:
            raise ValueError(f"size must be at least 1 frame, got {size}")
        self.size = None if size is None else int(size)
        self.what = what
        self.temporal_multiple = int(temporal_multiple)
        self._warned = False

    def run(self, fn: Callable[[int | None], T], length: int) -> T:
        """``fn(self.size)`` on work of ``length`` frames, retried with a halved size on out-of-memory."""
        while True:
            try:
                return fn(self.size)
            except Exception as exc:  # only out-of-memory is handled
                if not self._shrink(exc, length if self.size is None else min(self.size, length)):
                    raise

    def run_pieces(self, fn: Callable[[int, int], T], start: int, stop: int) -> list[T]:
        """``fn(a, b)`` over ``[start, stop)`` in consecutive pieces of at most ``self.size`` frames.

        A piece that runs out of memory is retried at about half its size; the results of every
        call come back in order.
        """
        out: list[T] = []
        a = start
        while a < stop:
            b = stop if self.size is None else min(a + self.size, stop)
            try:
                out.append(fn(a, b))
            except Exception as exc:  # only out-of-memory is handled
                if not self._shrink(exc, b - a):
                    raise
                continue
            a = b
        return out

    def _shrink(self, exc: Exception, frames: int) -> bool:
        """After ``exc`` on a call of ``frames`` frames: halve the size and return True, or return False
        when ``exc`` is to be raised (not out-of-memory, or already down to one frame)."""
        if not is_oom(exc) or getattr(exc, _EXHAUSTED, False):
            return False
        if frames <= 1:
            setattr(exc, _EXHAUSTED, True)
            return False
        self.size = halve(frames, self.temporal_multiple)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        level = logging.INFO if self._warned else logging.WARNING
        log.log(level, "%s ran out of GPU memory on %d frames; retrying %d frames at a time for the rest of this run",
                self.what, frames, self.size)
        self._warned = True
        return True
