"""Long videos through short-window generators: overlapping sliding windows with linear cross-fades,
and a retry that halves the window when the GPU runs out of memory.

A model made for ``W`` frames (``model.window``) renders a longer clip window by window, as
4Real-Video extends its grids: windows of ``W`` frames start every ``W - O`` frames (the last one is
aligned with the end of the clip), and in the ``O`` frames two neighbouring windows share, the
result fades linearly from the earlier window to the later one. Every frame is covered; a frame
seen by several windows is their weighted mean with weights summing to one, so windows that agree
on their shared frames give back exactly those frames.

Works for any generator (``vnvs.generators.Generator``) and, through :func:`run_windows`, for any
function of a ``(T, ...)`` tensor that returns a ``(T, ...)`` tensor.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import torch

from vnvs.errors import InputError

WindowFn = Callable[[torch.Tensor, int], torch.Tensor]
"""``fn(chunk (t, ...), seed) -> (t, ...)``: renders one window of frames."""


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window: every ``window - overlap`` frames, the last window ending at the last frame.

    Example:
        >>> window_starts(10, 4, 1)
        [0, 3, 6]
        >>> window_starts(11, 4, 1)
        [0, 3, 6, 7]
        >>> window_starts(3, 4, 1)
        [0]
    """
    if window < 1:
        raise InputError(f"window must be at least 1 frame, got {window}")
    if not 0 <= overlap < window:
        raise InputError(f"overlap must be in [0, window), got overlap {overlap} for window {window}")
    if num_frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def blend_weights(num_frames: int, start: int, length: int, overlap: int) -> torch.Tensor:
    """``(length,)`` cross-fade weights of the window ``[start, start + length)`` in a clip of ``num_frames``.

    The first ``overlap`` frames ramp up ``1/(O+1), ..., O/(O+1)`` unless the window starts the clip,
    the last ``overlap`` frames ramp down ``O/(O+1), ..., 1/(O+1)`` unless it ends the clip; the ramps
    of two windows overlapping by exactly ``O`` frames sum to one on every shared frame.
    """
    w = torch.ones(length, dtype=torch.float64)
    o = min(int(overlap), length)
    if o > 0:
        ramp = torch.arange(1, o + 1, dtype=torch.float64) / (o + 1)
        if start > 0:
            w[:o] = torch.minimum(w[:o], ramp)
        if start + length < num_frames:
            w[-o:] = torch.minimum(w[-o:], ramp.flip(0))
    return w


def run_windows(fn: WindowFn, x: torch.Tensor, window: int | None, overlap: int, seed: int = 0) -> torch.Tensor:
    """Apply ``fn`` to overlapping windows of ``x`` (along dim 0) and cross-fade the results.

    Args:
        fn: renders one window: ``fn(x[s:e], seed + s)`` -> ``(e - s, ...)``.
        x: ``(T, ...)`` input (e.g. a control signal ``(T, 9, H, W)``).
        window: frames per window (None or ``>= T``: one call on the whole clip).
        overlap: frames shared by neighbouring windows (clamped below ``window``).
        seed: seed of the first window; window starting at frame ``s`` gets ``seed + s``.

    Returns:
        ``(T, ...)``: each frame the weighted mean of the windows covering it (weights of
        :func:`blend_weights`).
    """
    T = x.shape[0]
    if window is None or window >= T:
        return fn(x, seed)
    overlap = max(0, min(int(overlap), int(window) - 1))
    out = None
    total = torch.zeros(T, dtype=torch.float64)
    for s in window_starts(T, int(window), overlap):
        e = s + int(window)
        y = fn(x[s:e], seed + s)
        if y.shape[0] != e - s:
            raise ValueError(f"window function returned {y.shape[0]} frames for a window of {e - s}")
        if out is None:
            out = torch.zeros((T,) + tuple(y.shape[1:]), dtype=torch.float64, device=y.device)
        w = blend_weights(T, s, e - s, overlap)
        out[s:e] += y.double() * w.to(y.device).view(-1, *([1] * (y.dim() - 1)))
        total[s:e] += w
    return (out / total.to(out.device).view(-1, *([1] * (out.dim() - 1)))).to(y.dtype)


def is_out_of_memory(exc: BaseException) -> bool:
    """``torch.cuda.OutOfMemoryError``, or another backend's out-of-memory ``RuntimeError`` (e.g. MPS)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def halve_window(window: int, temporal_multiple: int = 1) -> int:
    """The next smaller window to try after running out of memory: about half, still valid for a model
    that needs ``(window - 1) % temporal_multiple == 0``; never below 1.

    Example:
        >>> halve_window(49, 4), halve_window(16), halve_window(2), halve_window(5, 4)
        (25, 8, 1, 1)
    """
    m = max(1, int(temporal_multiple))
    window = int(window)
    half = max(1, window // 2)
    up = ((half - 1 + m - 1) // m) * m + 1  # smallest valid length >= half
    return up if up < window else max(1, ((half - 1) // m) * m + 1)


@dataclass
class OomRetry:
    """Runs windows through ``fn`` and halves the window after ``torch.cuda.OutOfMemoryError``.

    The reduced window is kept for later calls (a long render calls the generator chunk after
    chunk), and the user is told once, on stderr, per object.
    """

    window: int | None = None
    """Frames per window (None: whole clips until the first out-of-memory error)."""
    overlap: int = 4
    """Frames shared by neighbouring windows (reduced with the window: at most half of it)."""
    temporal_multiple: int = 1
    """Windows keep ``(window - 1) % temporal_multiple == 0``."""
    label: str = "generator"
    """Name used in the warning."""
    warned: bool = field(default=False, repr=False)
    """Whether the user was already told about a reduced window."""

    def __call__(self, fn: WindowFn, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """``run_windows(fn, x, self.window, overlap, seed)``, retried with halved windows on OOM."""
        while True:
            window = self.window
            overlap = self.overlap if window is None else min(self.overlap, window // 2)
            try:
                return run_windows(fn, x, window, overlap, seed)
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                current = x.shape[0] if window is None or window > x.shape[0] else window
                if current <= 1:
                    raise
                self.window = halve_window(current, self.temporal_multiple)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if not self.warned:
                    print(f"warning: {self.label} ran out of GPU memory on {current} frames; "
                          f"retrying in windows of {self.window} frames (smaller windows stay for this run)",
                          file=sys.stderr)
                    self.warned = True


@dataclass
class WindowedGenerator:
    """Any generator, run in overlapping sliding windows with an out-of-memory retry.

    Example:
        >>> from vnvs.generators import WarpGenerator
        >>> gen = WindowedGenerator(WarpGenerator(), window=8, overlap=2)
        >>> gen(torch.zeros(20, 9, 4, 4)).shape
        torch.Size([20, 3, 4, 4])
    """

    generator: object
    """A :class:`vnvs.generators.Generator`."""
    window: int | None = None
    """Frames per call of ``generator`` (None: the generator's own ``window`` attribute, else whole clips)."""
    overlap: int = 4
    """Frames shared by neighbouring windows."""

    def __post_init__(self):
        window = self.window if self.window is not None else getattr(self.generator, "window", None)
        self._retry = OomRetry(window=window, overlap=self.overlap,
                               temporal_multiple=getattr(self.generator, "temporal_multiple", 1),
                               label=str(getattr(self.generator, "name", "generator")))

    @property
    def name(self) -> str:
        """The wrapped generator's name."""
        return str(getattr(self.generator, "name", "generator"))

    def __call__(self, control: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        """``(T, 9, H, W)`` control signal -> ``(T, 3, H, W)`` frames."""
        return self._retry(lambda chunk, s: self.generator(chunk, seed=s), control, seed)
