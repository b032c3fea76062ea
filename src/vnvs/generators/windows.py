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

from dataclasses import dataclass
from typing import Callable

import torch

from vnvs.errors import InputError
from vnvs.utils.oom import OomHalving

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


class StreamWindows:
    """Overlapping windows over a stream of frames, cross-faded and handed out as soon as no later
    window touches them, so memory does not grow with the stream's length.

    Windows of ``window`` frames follow each other, each starting ``overlap`` frames before the
    previous one ends; the last one ends with the stream (it may be shorter). The shared frames are
    the weighted mean of the two windows with the weights of :func:`blend_weights`, computed as
    :func:`run_windows` does. Only the previous window's last ``overlap`` results are kept.

    Example:
        >>> windows = StreamWindows(7, window=4, overlap=1)
        >>> while (span := windows.next()) is not None:
        ...     s, e = span
        ...     print(span, windows.blend(torch.full((e - s,), float(s))).tolist())
        (0, 4) [0.0, 0.0, 0.0]
        (3, 7) [1.5, 3.0, 3.0, 3.0]
    """

    def __init__(self, num_frames: int, window: int, overlap: int) -> None:
        if window < 1 or not 0 <= 2 * overlap <= window:
            raise ValueError(f"need window >= 1 and 0 <= overlap <= window / 2, got window {window}, "
                             f"overlap {overlap}")
        self.num_frames = int(num_frames)
        self.window = int(window)
        self.overlap = int(overlap)
        self.start = 0
        """First frame of the next window (every frame before it was handed out)."""
        self._tail: torch.Tensor | None = None
        """The previous window's results on the frames the next window shares, times its weights."""
        self._tail_weights: torch.Tensor | None = None
        """The weights of those results, ``(k, 1, ..., 1)`` float64."""

    def next(self) -> tuple[int, int] | None:
        """``(s, e)``: the frames of the next window, or None when every frame was handed out."""
        if self.start >= self.num_frames:
            return None
        return self.start, min(self.start + self.window, self.num_frames)

    def end_at(self, num_frames: int) -> None:
        """The stream ends after ``num_frames`` frames (fewer than announced); the next window ends there."""
        self.num_frames = min(self.num_frames, int(num_frames))

    def blend(self, results: torch.Tensor) -> torch.Tensor:
        """Take the results of the window :meth:`next` gave and hand out the frames no later window touches.

        Args:
            results: ``(e - s, ...)`` results of window ``(s, e)``.

        Returns:
            ``(k, ...)`` the final frames ``s .. s + k - 1`` (the window but its last ``overlap``
            frames, or all of it when it ends the stream), cross-faded with the previous window.
        """
        span = self.next()
        if span is None or results.shape[0] != span[1] - span[0]:
            raise ValueError(f"expected results of the window {span}, got {results.shape[0]} frames")
        s, e = span
        w = blend_weights(self.num_frames, s, e - s, self.overlap).to(results.device)
        w = w.view(-1, *([1] * (results.dim() - 1)))
        keep = e - s if e >= self.num_frames else e - s - self.overlap
        out = results[:keep].clone()
        if self._tail is not None:  # sum of weighted results over the sum of weights, as run_windows does
            k = min(self._tail.shape[0], keep)
            shared = self._tail[:k] + results[:k].double() * w[:k]
            out[:k] = (shared / (self._tail_weights[:k] + w[:k])).to(results.dtype)
        self._tail, self._tail_weights = results[keep:].double() * w[keep:], w[keep:]
        self.start = s + keep
        return out


class OomRetry:
    """Runs windows through ``fn`` (:func:`run_windows`) with a window that halves when the GPU runs
    out of memory (:class:`vnvs.utils.oom.OomHalving`); the reduced window stays for later calls.

    Args:
        window: frames per window (None: whole clips until the first out-of-memory error).
        overlap: frames shared by neighbouring windows (at most half the window).
        temporal_multiple: windows keep ``(window - 1) % temporal_multiple == 0``.
        label: what runs out of memory, in the message.
    """

    def __init__(self, window: int | None = None, overlap: int = 4, temporal_multiple: int = 1,
                 label: str = "generator") -> None:
        self.overlap = int(overlap)
        self._halving = OomHalving(window, what=label, temporal_multiple=temporal_multiple)

    @property
    def window(self) -> int | None:
        """Frames per window (None: whole clips); shrinks after an out-of-memory error."""
        return self._halving.size

    def __call__(self, fn: WindowFn, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """``run_windows(fn, x, window, overlap, seed)``, retried with halved windows on out-of-memory."""
        def attempt(window: int | None) -> torch.Tensor:
            overlap = self.overlap if window is None else min(self.overlap, window // 2)
            return run_windows(fn, x, window, overlap, seed)

        return self._halving.run(attempt, x.shape[0])


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
