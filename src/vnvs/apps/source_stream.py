"""The source side of ``vnvs render``: decoded frames and their depth, a chunk at a time, kept until rendered.

:class:`SourceStream` decodes the video in chunks, estimates each chunk's depth (pieces halve on GPU
out-of-memory), checks it is finite, hands it to a depth sink (``--save-depth``) and keeps frames
and depth by source index until no later target frame needs them. Frames are kept in memory and
released as rendering moves on (target time indices that only move forward), or, for trajectories
whose time indices go back, all kept in memory-mapped files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vnvs.cameras import Cameras
from vnvs.cameras.source import source_cameras
from vnvs.errors import DepthError
from vnvs.estimators.video_depth import VideoDepth
from vnvs.io import VideoStream
from vnvs.utils.oom import OomHalving
from vnvs.utils.progress import progress_bar

Chunk = tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(first source index, frames (t, 3, H, W) float32 in [0, 1], depth (t, H, W), valid (t, H, W))``."""

DepthSink = Callable[[int, torch.Tensor, torch.Tensor], None]
"""``sink(first source index, depth (t, H, W), valid (t, H, W))``, called on every chunk in order."""


class _SourceBuffer:
    """Decoded frames (uint8), depth and validity by source index, in memory or memory-mapped.

    In memory, frames are held until :meth:`drop_before` releases them; memory-mapped (``spill``:
    a folder for ``frames.npy``, ``depth.npy``, ``valid.npy``), every frame stays available.
    """

    def __init__(self, num_frames: int, size: tuple[int, int], spill: Path | None) -> None:
        self.items: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.spill = spill is not None
        self.count = 0
        """Frames put so far (source indices ``0 .. count - 1``)."""
        if spill is not None:
            H, W = size
            self.frames = np.lib.format.open_memmap(spill / "frames.npy", "w+", np.uint8, (num_frames, 3, H, W))
            self.depth = np.lib.format.open_memmap(spill / "depth.npy", "w+", np.float32, (num_frames, H, W))
            self.valid = np.lib.format.open_memmap(spill / "valid.npy", "w+", np.bool_, (num_frames, H, W))

    def put(self, start: int, frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> None:
        """Keep source frames ``start .. start + t - 1``: ``frames (t, 3, H, W)`` in [0, 1], ``depth``, ``valid (t, H, W)``."""
        u8 = (frames * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        if self.spill:
            stop = start + frames.shape[0]
            self.frames[start:stop] = u8.numpy()
            self.depth[start:stop] = depth.numpy()
            self.valid[start:stop] = valid.numpy()
        else:
            for i in range(frames.shape[0]):
                self.items[start + i] = (u8[i].clone(), depth[i].clone(), valid[i].clone())
        self.count = start + frames.shape[0]

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``frames (n, 3, H, W)`` float32, ``depth (n, H, W)``, ``valid (n, H, W)`` of source indices ``idx``."""
        if self.spill:
            i = idx.numpy()
            f = torch.from_numpy(np.asarray(self.frames[i]))
            d = torch.from_numpy(np.asarray(self.depth[i]))
            v = torch.from_numpy(np.asarray(self.valid[i]))
        else:
            f = torch.stack([self.items[int(k)][0] for k in idx])
            d = torch.stack([self.items[int(k)][1] for k in idx])
            v = torch.stack([self.items[int(k)][2] for k in idx])
        return f.float().div_(255.0), d, v

    def drop_before(self, index: int) -> None:
        """Release the frames before source index ``index`` (nothing to release when memory-mapped)."""
        for k in [k for k in self.items if k < index]:
            del self.items[k]


class SourceStream:
    """A video's decoded frames with their depth, decoded on demand and kept until released.

    Use: :meth:`leading_depth` (the depth of the first frames, decoded before the trajectory is
    known), then :meth:`keep` (where frames are kept, and where depth goes), then :meth:`ensure` /
    :meth:`get` / :meth:`release_before` while rendering, :meth:`drain` for the rest of the depth, and
    :meth:`close`.

    Args:
        video: the decoder.
        depth: depth of consecutive chunks of decoded frames.
        chunk_frames: frames decoded (and given to ``depth``) at a time.
    """

    def __init__(self, video: VideoStream, depth: VideoDepth, chunk_frames: int) -> None:
        self.num_frames = video.num_frames
        self.size = video.size
        self.decoded = 0
        """Frames decoded so far."""
        self._chunks = video.chunks(chunk_frames)
        self._depth = depth
        self._halving = OomHalving(what="depth")
        self._done = False
        self._pending: list[Chunk] = []
        self._buffer: _SourceBuffer | None = None
        self._sink: DepthSink | None = None
        self._bar = progress_bar("depth", total=self.num_frames, unit="frame", position=0)

    @property
    def count(self) -> int:
        """Frames kept so far (source indices ``0 .. count - 1`` were decoded and handed to the buffer)."""
        assert self._buffer is not None, "keep() first"
        return self._buffer.count

    def leading_depth(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``depth``, ``valid (m, H, W)`` of the first ``m = min(n, frames decoded)`` source frames.

        The chunks decoded for it are held until :meth:`keep` stores them.
        """
        while self.decoded < min(self.num_frames, n):
            chunk = self._next()
            if chunk is None:
                break
            self._pending.append(chunk)
        depth = torch.cat([c[2] for c in self._pending])[:n]
        valid = torch.cat([c[3] for c in self._pending])[:n]
        return depth, valid

    def keep(self, spill: Path | None, sink: DepthSink | None = None) -> None:
        """Start keeping frames: in memory, or memory-mapped in the folder ``spill`` (for any order of
        access); ``sink`` gets the depth of every chunk, in order."""
        self._buffer = _SourceBuffer(self.num_frames, self.size, spill)
        self._sink = sink
        for chunk in self._pending:
            self._store(chunk)
        self._pending = []

    def ensure(self, index: int, keep_from: int) -> bool:
        """Decode until source frame ``index`` is kept, releasing frames before ``keep_from`` as it goes;
        False when the video ends first."""
        assert self._buffer is not None, "keep() first"
        while self._buffer.count <= index:
            chunk = self._next()
            if chunk is None:
                return False
            self._buffer.drop_before(keep_from)
            self._store(chunk)
        return True

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``frames (n, 3, H, W)`` float32 in [0, 1], ``depth``, ``valid (n, H, W)`` of kept source indices ``idx``."""
        assert self._buffer is not None, "keep() first"
        return self._buffer.get(idx)

    def release_before(self, index: int) -> None:
        """No target frame to come needs source frames before ``index`` (kept in memory: released)."""
        assert self._buffer is not None, "keep() first"
        self._buffer.drop_before(index)

    def drain(self) -> None:
        """Decode the rest of the video, for its depth (the frames are not needed any more)."""
        while not self._done:
            self.ensure(self.count, self.count)

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()

    def _next(self) -> Chunk | None:
        """Decode the next chunk and estimate its depth; None at the end of the video."""
        if self._done:
            return None
        try:
            first, frames = next(self._chunks)
        except StopIteration:
            self._done = True
            return None
        depth, valid = self._estimate(first, frames)
        self.decoded = first + frames.shape[0]
        self._bar.update(frames.shape[0])
        return first, frames, depth, valid

    def _estimate(self, first: int, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``depth``, ``valid (t, H, W)`` of source frames ``first .. first + t - 1``; refuses non-finite depth."""
        parts = self._halving.run_pieces(lambda a, b: self._depth(first + a, frames[a:b]), 0, frames.shape[0])
        depth = torch.cat([p[0] for p in parts])
        valid = torch.cat([p[1] for p in parts])
        if not torch.isfinite(depth).all():
            raise DepthError(f"depth of frames {first}..{first + frames.shape[0] - 1} is not finite")
        return depth, valid

    def _store(self, chunk: Chunk) -> None:
        assert self._buffer is not None
        first, frames, depth, valid = chunk
        self._buffer.put(first, frames, depth, valid)
        if self._sink is not None:
            self._sink(first, depth, valid)


def open_source(config) -> tuple[VideoStream, Cameras, VideoDepth, SourceStream, list[int]]:
    """The input video of ``vnvs render`` / ``vnvs grid`` settings (``RenderConfig`` fields) opened for streaming:
    the decoder, the source cameras, the depth (file or model), the :class:`SourceStream` over both, and the
    source frame index of every decoded frame. The caller closes the stream and the depth."""
    video = VideoStream(config.video, stride=config.stride, max_frames=config.max_frames, size=config.size)
    N = video.num_frames
    indices = [video.frame_index(i) for i in range(N)]
    cameras = source_cameras(N, indices, video.info.num_frames, video.info.size, video.transform,
                             fov=config.fov, intrinsics=config.intrinsics, cameras=config.cameras)
    depth = VideoDepth(config.depth, num_frames=N, frame_indices=indices, total_frames=video.info.num_frames,
                       transform=video.transform, kind=config.depth_kind, align=config.align_depth,
                       device=config.device, max_side=config.depth_size)
    return video, cameras, depth, SourceStream(video, depth, config.chunk_frames), indices
