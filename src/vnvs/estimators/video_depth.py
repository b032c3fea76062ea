"""Depth for a video that is decoded a chunk at a time: a model or a depth file, matched to the
decoded frames and aligned to one scale when it is relative.

``VideoDepth(spec, ...)`` is called on consecutive chunks of decoded frames and returns their depth;
nothing it keeps grows with the video's length (a depth file is read a range of frames at a time,
and scale alignment carries only the previous frame).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from vnvs.errors import DepthError, InputError
from vnvs.estimators.depth import (
    DEFAULT_DEPTH_MODEL,
    DepthScaleAligner,
    TransformersDepth,
    is_depth_file,
)
from vnvs.io.depth import DepthReader, check_aspect
from vnvs.io.transform import FrameTransform, transform_depth


class VideoDepth:
    """Depth for consecutive chunks of a decoded video.

    Args:
        spec: a depth file (``.npy`` / ``.npz``: one map per frame of the file or per decoded frame,
            at the decoded size or at any size with the video's aspect ratio, resampled nearest to the
            decoded frames; a MegaSaM npz works as is) or a
            transformers depth model (hub id or local folder).
        num_frames: decoded frames.
        frame_indices: index in the file of each decoded frame.
        total_frames: frames in the file.
        transform: resize-and-crop from the file's frames to the decoded ones.
        kind: what a depth file holds, ``"metric"`` (default) or ``"relative"``; models say themselves.
        align: ``"auto"`` (align relative depth only), ``"on"`` or ``"off"``: temporal scale alignment
            along optical flow (:class:`vnvs.estimators.depth.DepthScaleAligner`).
        flow: flow backend for alignment.
        device, batch_size, max_side: for models (see :class:`vnvs.estimators.depth.TransformersDepth`).

    Example:
        >>> depth = VideoDepth("depth.npz", num_frames=4, frame_indices=[0, 1, 2, 3], total_frames=4,
        ...                    transform=plan_transform((48, 64)))  # doctest: +SKIP
        >>> d, valid = depth(0, frames[:2]); d, valid = depth(2, frames[2:])  # doctest: +SKIP
    """

    def __init__(self, spec: str | Path = DEFAULT_DEPTH_MODEL, *, num_frames: int, frame_indices,
                 total_frames: int, transform: FrameTransform, kind: str | None = None, align: str = "auto",
                 flow: str = "dis", device: str | None = None, batch_size: int = 8,
                 max_side: int = 518) -> None:
        if align not in ("auto", "on", "off"):
            raise InputError(f"depth alignment must be 'auto', 'on' or 'off', got {align!r}")
        self.spec = str(spec)
        self.num_frames = int(num_frames)
        self.frame_indices = [int(i) for i in frame_indices]
        self.transform = transform
        self._reader: DepthReader | None = None
        self._file_transform: FrameTransform | None = None
        self._model: TransformersDepth | None = None
        if is_depth_file(spec):
            if kind not in (None, "metric", "relative"):
                raise InputError(f"depth kind must be 'metric' or 'relative', got {kind!r}")
            self.kind = kind or "metric"
            self.name = f"file:{Path(spec).name}"
            self._reader = DepthReader(spec)
            self._match_file(total_frames)
        else:
            self._model = TransformersDepth(self.spec, device=device, batch_size=batch_size, max_side=max_side)
            self.kind = self._model.kind
            self.name = self.spec
        self.align = align == "on" or (align == "auto" and self.kind == "relative")
        self._aligner = DepthScaleAligner(flow) if self.align else None

    def _match_file(self, total_frames: int) -> None:
        r = self._reader
        assert r is not None
        n = r.num_frames
        if n == self.num_frames:
            self._rows = list(range(self.num_frames))
        elif n == total_frames and max(self.frame_indices) < n:
            self._rows = self.frame_indices
        else:
            raise DepthError(f"depth file {self.spec} holds {n} maps but the video has {total_frames} frames "
                             f"({self.num_frames} used); give one map per frame")
        if tuple(r.size) != tuple(self.transform.size):  # maps of the file's frames, at any size
            check_aspect(self.spec, r.size, self.transform.source_size)
            self._file_transform = replace(self.transform, source_size=tuple(r.size))

    def __call__(self, start: int, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Depth of decoded frames ``start .. start + t - 1``.

        Args:
            start: index of the first frame among the decoded frames; chunks must come in order.
            frames: ``(t, 3, H, W)`` in [0, 1].

        Returns:
            ``depth (t, H, W)`` float32 (0 where invalid), ``valid (t, H, W)`` bool.
        """
        t = frames.shape[0]
        if self._reader is not None:
            rows = self._rows[start:start + t]
            lo, hi = rows[0], rows[-1] + 1
            maps = self._reader.read(lo, hi)
            pick = torch.tensor(rows) - lo
            depth, valid = maps.depth[pick], maps.valid[pick]
            if self._file_transform is not None:
                depth, valid = transform_depth(depth, valid, self._file_transform)
        else:
            assert self._model is not None
            pred = self._model(frames)
            depth, valid = pred.depth, pred.valid
        if self._aligner is not None:
            depth, _, _ = self._aligner(depth, valid, frames)
            valid = valid & (depth > 0)
        return depth, valid

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
