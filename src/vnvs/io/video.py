"""Video files: probe, read (whole or streamed in chunks), write (H.264 mp4), all through PyAV.

Frames at the public boundary are ``(T, 3, H, W)`` float32 in [0, 1]; sizes are ``(height, width)``.

Reading applies, per frame and in this order: the container's display rotation (phone videos come
out upright), an optional resize, and an optional centre crop. The :class:`FrameTransform` returned
with the frames records the resize factors and crop offsets, so intrinsics estimated on the source
can be carried to the output with :meth:`FrameTransform.adapt_intrinsics`.

Errors a user can cause (missing, empty, unreadable or truncated files) raise
:class:`vnvs.errors.VideoError` with a one-line message naming the file; no PyAV traceback escapes.

Writing goes through :func:`vnvs.utils.atomic.atomic_path`: the file appears only once complete.
H.264 in yuv420p needs even sizes, so a frame with an odd height or width is padded by one row
(bottom) or one column (right) that repeats the edge pixels; the written file is then up to one
pixel larger than the frames (:func:`read_video` with ``size=`` and ``fit="crop"`` gets the
original back).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import cv2
import numpy as np
import torch

from vnvs.io.transform import _FITS, Fit, FrameTransform, plan_transform
from vnvs.errors import VideoError
from vnvs.utils.atomic import atomic_path

_FRAME_COUNT_SLACK = 2
"""A file may decode up to this many frames fewer than its container declares without being called
truncated: MP4 edit lists (common in camera files) make FFmpeg drop a frame or two at the start."""



# --------------------------------------------------------------------------------------------------
# Data types


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, from its container (and a decode where the container is silent)."""

    num_frames: int
    """Number of frames: the container's count, or the decoded count where it gives none."""
    fps: float
    """Frames per second of the source."""
    height: int
    """Frame height in pixels as displayed (after the container's rotation)."""
    width: int
    """Frame width in pixels as displayed (after the container's rotation)."""
    duration: float
    """Duration in seconds (``num_frames / fps`` where the container gives none)."""
    rotation: int = 0
    """Counter-clockwise display rotation in degrees (0, 90, 180 or 270) that reading applies."""

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` as displayed."""
        return (self.height, self.width)


@dataclass
class Video:
    """Decoded frames and what it takes to relate them to the source file."""

    frames: torch.Tensor
    """``(T, 3, H, W)`` float32 in [0, 1]."""
    fps: float
    """Effective frame rate of ``frames``: source fps / stride."""
    source_fps: float
    """Frame rate of the source file."""
    source_size: tuple[int, int]
    """``(H, W)`` of the source frames as displayed."""
    transform: FrameTransform
    """Resize and crop applied to every frame."""
    frame_indices: list[int]
    """Source frame index of each output frame (``start + i * stride``)."""

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of ``frames``."""
        return (int(self.frames.shape[-2]), int(self.frames.shape[-1]))

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frames.shape[0])


# --------------------------------------------------------------------------------------------------
# Opening and probing


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"video file {path} does not exist")
    if path.is_dir():
        raise VideoError(f"video file {path} is a folder, not a file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise VideoError(f"cannot read video {path}: {e.strerror or e}") from None
    if size == 0:
        raise VideoError(f"cannot decode video {path}: the file is empty")


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` for reading; return the container and its first video stream."""
    _check_file(path)
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as e:
        raise VideoError(f"cannot decode video {path}: {_open_reason(path, e)}") from None
    except OSError as e:
        raise VideoError(f"cannot read video {path}: {e.strerror or e}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"cannot decode video {path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _open_reason(path: Path, e: Exception) -> str:
    """A short reason why FFmpeg could not open ``path``."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":  # an MP4/MOV header without a readable index: cut-off download/copy
        return "truncated MP4/MOV file (no readable index)"
    return f"not a video file ({_ffmpeg_message(e)})"


def _ffmpeg_message(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return " ".join(str(msg).split())  # one line


def _stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def _declared_frames(stream: av.video.stream.VideoStream) -> int | None:
    n = int(stream.frames or 0)
    return n if n > 0 else None


def _rotation_k(frame: av.VideoFrame) -> int:
    """Number of counter-clockwise quarter turns the display matrix asks for."""
    try:
        rot = float(frame.rotation or 0)
    except Exception:  # noqa: BLE001 - malformed side data: show the frame as stored
        return 0
    return int(round(rot / 90.0)) % 4


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's frame count, frame rate, size and duration.

    The container's frame count is used where it has one; otherwise the frames are decoded (without
    colour conversion) and counted. The size is as displayed, after the container's rotation.
    """
    path = Path(path)
    container, stream = _open(path)
    try:
        declared = _declared_frames(stream)
        first, count = None, 0
        for frame in _decode(container, stream, path):
            if first is None:
                first = frame
                if declared is not None:
                    break
            count += 1
        if first is None:
            raise VideoError(f"cannot decode video {path}: no decodable frames")
        k = _rotation_k(first)
        h, w = (first.height, first.width) if k % 2 == 0 else (first.width, first.height)
        num_frames = declared if declared is not None else count
        fps = _stream_fps(stream)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if fps is None:
            if not duration:
                raise VideoError(f"cannot decode video {path}: the frame rate is unknown")
            fps = num_frames / duration
        if not duration:
            duration = num_frames / fps
        return VideoInfo(num_frames, fps, h, w, duration, rotation=90 * k)
    finally:
        container.close()


def _decode(container, stream, path: Path) -> Iterator[av.VideoFrame]:
    """Yield decoded frames; decode failures become a one-line VideoError."""
    count = 0
    declared = _declared_frames(stream)
    it = container.decode(stream)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as e:
            reason = _ffmpeg_message(e)
            if count == 0:
                raise VideoError(
                    f"cannot decode video {path}: no decodable frames, the data is truncated or "
                    f"corrupt ({reason})"
                ) from None
            of = f" of {declared}" if declared else ""
            raise VideoError(
                f"cannot decode video {path}: truncated or corrupt: decoding failed after "
                f"{count}{of} frames ({reason})"
            ) from None
        count += 1
        yield frame


# --------------------------------------------------------------------------------------------------
# Output geometry


def _apply(img: np.ndarray, tf: FrameTransform) -> np.ndarray:
    """Resize then crop one ``(H, W, 3)`` uint8 frame."""
    if tf.resized_size != tf.source_size:
        h, w = tf.resized_size
        shrink = h * w < tf.source_size[0] * tf.source_size[1]
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if tf.size != tf.resized_size:
        h, w = tf.size
        img = img[tf.crop_top : tf.crop_top + h, tf.crop_left : tf.crop_left + w]
    return img


# --------------------------------------------------------------------------------------------------
# Reading


@dataclass
class _Reader:
    """Decodes selected frames of one file as uint8 ``(H, W, 3)`` arrays, streaming."""

    path: Path
    stride: int = 1
    max_frames: int | None = None
    size: int | tuple[int, int] | None = None
    multiple: int = 1
    fit: Fit = "resize"
    start: int = 0
    select: tuple[int, ...] | None = None
    """Sorted source indices to keep instead of ``start`` / ``stride`` / ``max_frames``."""

    def __post_init__(self) -> None:
        if int(self.stride) < 1:
            raise VideoError(f"stride must be a positive integer, got {self.stride}")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise VideoError(f"max_frames must be positive, got {self.max_frames}")
        if int(self.start) < 0:
            raise VideoError(f"start must be >= 0, got {self.start}")
        if self.fit not in _FITS:
            raise VideoError(f"unknown fit {self.fit!r}; use one of {', '.join(_FITS)}")
        self.path = Path(self.path)
        self.source_fps: float = 0.0
        self.transform: FrameTransform | None = None
        self.indices: list[int] = []

    def frames(self) -> Iterator[np.ndarray]:
        """The selected frames, in order (their source indices are appended to ``self.indices``)."""
        wanted = self._wanted()
        container, stream = _open(self.path)
        try:
            declared = _declared_frames(stream)
            fps = _stream_fps(stream)
            self.source_fps = fps if fps is not None else 30.0
            n_out, decoded, rot_k = 0, 0, 0
            src_hw: tuple[int, int] | None = None
            for i, frame in _decode_indexed(container, stream, self.path, wanted):
                decoded = i + 1
                if not wanted.keep(i):
                    continue  # skipped frames are decoded (the codec needs them) but not converted
                if src_hw is None:
                    src_hw = (frame.height, frame.width)
                    rot_k = _rotation_k(frame)
                    disp = src_hw if rot_k % 2 == 0 else src_hw[::-1]
                    self.transform = plan_transform(disp, self.size, multiple=self.multiple, fit=self.fit)
                if (frame.height, frame.width) != src_hw:  # mid-stream size change: keep the first
                    img = frame.to_ndarray(format="rgb24", width=src_hw[1], height=src_hw[0])
                else:
                    img = frame.to_ndarray(format="rgb24")
                if rot_k:
                    img = np.rot90(img, rot_k)
                img = np.ascontiguousarray(_apply(img, self.transform))
                self.indices.append(i)
                yield img
                n_out += 1
                if wanted.done(n_out, i):
                    return
            if decoded == 0:
                raise VideoError(f"cannot decode video {self.path}: no decodable frames")
            if declared is not None and decoded < declared - _FRAME_COUNT_SLACK:
                raise VideoError(
                    f"cannot decode video {self.path}: truncated: decoded {decoded} of {declared} frames"
                )
            if n_out == 0:
                raise VideoError(
                    f"video {self.path} has {decoded} frames, none at or after start={self.start}"
                )
        finally:
            container.close()

    def _wanted(self) -> "_Selection":
        return _Selection(start=int(self.start), stride=int(self.stride), max_frames=self.max_frames,
                          select=self.select)


@dataclass
class _Selection:
    """Which decoded frames a reader keeps: ``start + k * stride`` (at most ``max_frames``), or the
    sorted source indices ``select``."""

    start: int = 0
    stride: int = 1
    max_frames: int | None = None
    select: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self._set = frozenset(self.select) if self.select is not None else None

    def keep(self, i: int) -> bool:
        if self._set is not None:
            return i in self._set
        return i >= self.start and (i - self.start) % self.stride == 0

    def done(self, n_out: int, i: int) -> bool:
        if self.select is not None:
            return i >= self.select[-1]
        return self.max_frames is not None and n_out >= self.max_frames

    def next_wanted(self, i: int) -> int | None:
        """The first kept index at or after ``i`` (None: no more)."""
        if self.select is not None:
            k = int(np.searchsorted(self.select, i))
            return self.select[k] if k < len(self.select) else None
        if i <= self.start:
            return self.start
        return self.start + -(-(i - self.start) // self.stride) * self.stride


# --------------------------------------------------------------------------------------------------
# Seeking


@dataclass(frozen=True)
class _PacketIndex:
    """Presentation order of a stream's frames, from its packets (demuxed, not decoded)."""

    pts: dict[int, int]
    """Presentation timestamp -> source frame index (the index sequential decoding gives)."""
    keyframes: np.ndarray
    """Sorted source frame indices of the keyframes (where decoding can start after a seek)."""
    keyframe_pts: np.ndarray
    """Their timestamps."""


@functools.lru_cache(maxsize=64)
def _packet_index_cached(path: str, size: int, mtime_ns: int) -> _PacketIndex | None:
    try:
        container = av.open(path, "r")
    except (av.FFmpegError, OSError):
        return None
    try:
        stream = container.streams.video[0]
        stamps, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:  # flush packet, or no timestamps: cannot seek
                if packet.size == 0:
                    continue
                return None
            if packet.is_discard:  # edit list: the decoder drops these frames
                continue
            stamps.append(int(packet.pts))
            if packet.is_keyframe:
                keys.append(int(packet.pts))
    except (av.FFmpegError, OSError):
        return None
    finally:
        container.close()
    order = sorted(stamps)
    if not order or len(set(order)) != len(order):
        return None
    pts = {p: i for i, p in enumerate(order)}
    key_idx = np.array(sorted(pts[k] for k in keys), dtype=np.int64)
    if key_idx.size == 0 or key_idx[0] != 0:
        return None
    return _PacketIndex(pts, key_idx, np.array([order[k] for k in key_idx], dtype=np.int64))


def _packet_index(path: Path) -> _PacketIndex | None:
    """The packet index of ``path`` (cached per file version), or None when seeking is not safe."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _packet_index_cached(str(path), st.st_size, st.st_mtime_ns)


def _decode_indexed(container, stream, path: Path, wanted: _Selection) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(source index, frame)`` from the first wanted frame on, seeking over stretches of
    unwanted frames that hold a keyframe (decoding from the start of the file otherwise).

    Indices are those of sequential decoding: a frame's index is found from its timestamp in the
    file's packet index. Where a file has no usable index (no timestamps, duplicates, a frame the
    index does not know), decoding is sequential from frame 0.
    """
    first = wanted.next_wanted(0)
    index = _packet_index(path) if first is not None and (first > 0 or wanted.select is not None) else None
    if index is None:
        yield from enumerate(_decode(container, stream, path))
        return
    pos = 0  # index of the next frame sequential decoding would give
    target = first
    while True:
        k = int(np.searchsorted(index.keyframes, target, side="right") - 1)
        if int(index.keyframes[k]) > pos:  # skip to the last keyframe at or before the target
            container.seek(int(index.keyframe_pts[k]), stream=stream, backward=True, any_frame=False)
        target = None
        for frame in _decode(container, stream, path):
            i = index.pts.get(frame.pts) if frame.pts is not None else None
            if i is None:
                raise VideoError(f"cannot decode video {path}: a decoded frame is missing from the file's index")
            if i < pos:
                continue
            yield i, frame
            pos = i + 1
            nxt = wanted.next_wanted(pos)
            if nxt is None:
                return
            if nxt > pos and int(index.keyframes[np.searchsorted(index.keyframes, nxt, side="right") - 1]) > pos:
                target = nxt  # a keyframe lies between here and the next wanted frame: seek to it
                break
        if target is None:
            return


def _to_float(frames: Sequence[np.ndarray], out: torch.Tensor | None = None) -> torch.Tensor:
    """Stack ``(H, W, 3)`` uint8 frames into ``(T, 3, H, W)`` float32 in [0, 1]."""
    arr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8 view
    if out is None:
        out = torch.empty(arr.shape, dtype=torch.float32)
    return out.copy_(arr).div_(255.0)  # one cast-and-transpose pass, then in place


def read_video(
    path: str | os.PathLike,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    multiple: int = 1,
    fit: Fit = "resize",
    start: int = 0,
) -> Video:
    """Decode a video file into ``(T, 3, H, W)`` float32 frames in [0, 1].

    Args:
        path: the video file (anything FFmpeg reads: mp4, mov, mkv, webm, ...).
        stride: keep every ``stride``-th frame from ``start`` (skipped frames are not converted).
        max_frames: keep at most this many frames (after the stride).
        size: ``(H, W)`` of the output, an int for the short side keeping the aspect, or None.
        multiple: round the output height and width to a multiple of this (e.g. 16).
        fit: ``"resize"``, ``"crop"`` or ``"resize_crop"`` (see :func:`plan_transform`).
        start: index of the first source frame to keep.
    Returns:
        A :class:`Video`; ``fps`` is the source rate divided by ``stride``.
    Raises:
        VideoError: the file is missing, not a video, empty or truncated, or the options do not fit.
    """
    reader = _Reader(Path(path), stride, max_frames, size, multiple, fit, start)
    chunks: list[np.ndarray] = list(reader.frames())  # uint8: 4x smaller than the float result
    frames = torch.empty((len(chunks), 3, *chunks[0].shape[:2]), dtype=torch.float32)
    for i in range(0, len(chunks), 64):  # convert in blocks: peak memory ~ output + uint8 frames
        _to_float(chunks[i : i + 64], out=frames[i : i + 64])
    del chunks
    assert reader.transform is not None
    return Video(
        frames=frames,
        fps=reader.source_fps / reader.stride,
        source_fps=reader.source_fps,
        source_size=reader.transform.source_size,
        transform=reader.transform,
        frame_indices=reader.indices,
    )


def read_frames_at(
    path: str | os.PathLike,
    indices: Sequence[int],
    *,
    size: int | tuple[int, int] | None = None,
    multiple: int = 1,
    fit: Fit = "resize",
) -> tuple[dict[int, np.ndarray], FrameTransform]:
    """Decode only the frames at source ``indices``, as ``(H, W, 3)`` uint8 arrays.

    One pass through the file: stretches without a wanted frame are skipped by seeking to the last
    keyframe before the next wanted frame (where the file's packets give a usable index; otherwise
    frames are decoded in order from the start), and only the wanted frames are converted to RGB,
    resized and cropped (as :func:`read_video` does). The frames equal those of :func:`read_video`.

    Returns:
        ``{source index: frame}`` for every requested index the video holds (indices past the
        frames it decodes are missing), and the frames' :class:`FrameTransform`.
    Raises:
        VideoError: as :func:`read_video`; a negative index.
    """
    want = tuple(sorted(set(int(i) for i in indices)))
    if not want:
        raise VideoError("read_frames_at needs at least one frame index")
    if want[0] < 0:
        raise VideoError(f"frame indices must be >= 0, got {want[0]}")
    reader = _Reader(Path(path), 1, None, size, multiple, fit, want[0], select=want)
    out: dict[int, np.ndarray] = {}
    for img in reader.frames():
        out[reader.indices[len(out)]] = img
    assert reader.transform is not None
    return out, reader.transform


def iter_video_chunks(
    path: str | os.PathLike,
    chunk_size: int,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    multiple: int = 1,
    fit: Fit = "resize",
    start: int = 0,
) -> Iterator[torch.Tensor]:
    """Decode a video in chunks of ``chunk_size`` frames; memory does not grow with its length.

    Takes the options of :func:`read_video`. Yields ``(t, 3, H, W)`` float32 tensors in [0, 1],
    ``t == chunk_size`` except possibly for the last; their concatenation equals
    ``read_video(path, ...).frames``. Errors (including truncation, found at the end) are raised
    when reached, so earlier chunks may already have been yielded.
    """
    if int(chunk_size) < 1:
        raise VideoError(f"chunk_size must be positive, got {chunk_size}")
    reader = _Reader(Path(path), stride, max_frames, size, multiple, fit, start)  # checks options now
    return _chunks(reader, int(chunk_size))


class VideoStream:
    """A video opened for streaming: what it holds is known before any frame is decoded.

    The resize-and-crop is planned from the probed size, so depth files and intrinsics can be
    matched before decoding; :meth:`chunks` then decodes the selected frames in order, a chunk at a
    time, so memory does not grow with the video's length.

    Args: those of :func:`read_video`.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory(); path = f"{tmp.name}/clip.mp4"
        >>> _ = write_video(path, torch.zeros(8, 3, 32, 48), fps=24)
        >>> stream = VideoStream(path, size=16)  # shorter side 16
        >>> stream.num_frames, stream.size
        (8, (16, 24))
        >>> for start, frames in stream.chunks(3):
        ...     print(start, tuple(frames.shape))
        0 (3, 3, 16, 24)
        3 (3, 3, 16, 24)
        6 (2, 3, 16, 24)
        >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike, *, stride: int = 1, max_frames: int | None = None,
                 size: int | tuple[int, int] | None = None, multiple: int = 1, fit: Fit = "resize",
                 start: int = 0) -> None:
        self.path = Path(path)
        self._reader = _Reader(self.path, stride, max_frames, size, multiple, fit, start)
        self.info: VideoInfo = probe_video(self.path)
        stride, start = int(stride), int(start)
        available = max(0, -(-(self.info.num_frames - start) // stride))
        self.num_frames: int = available if max_frames is None else min(available, int(max_frames))
        """Frames the stream is expected to yield (the container's count; decoding may give up to 2 fewer)."""
        if self.num_frames == 0:
            raise VideoError(f"video {self.path} has {self.info.num_frames} frames, none at or after start={start}")
        self.transform: FrameTransform = plan_transform(self.info.size, size, multiple=multiple, fit=fit)
        self.fps: float = self.info.fps / stride
        self.stride, self.start = stride, start

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the decoded frames."""
        return self.transform.size

    def frame_index(self, i: int) -> int:
        """Index in the file of selected frame ``i``."""
        return self.start + i * self.stride

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first selected index, (t, 3, H, W) float32 frames)`` in order."""
        if int(chunk_size) < 1:
            raise VideoError(f"chunk_size must be positive, got {chunk_size}")
        done = 0
        for frames in _chunks(self._reader, int(chunk_size)):
            yield done, frames
            done += frames.shape[0]


def _chunks(reader: _Reader, chunk_size: int) -> Iterator[torch.Tensor]:
    buf: list[np.ndarray] = []
    for img in reader.frames():
        buf.append(img)
        if len(buf) == chunk_size:
            yield _to_float(buf)
            buf = []
    if buf:
        yield _to_float(buf)


# --------------------------------------------------------------------------------------------------
# Writing


def _to_uint8_hwc(frames, what: str = "frames") -> np.ndarray:
    """``(T, 3, H, W)`` or ``(3, H, W)`` float [0, 1] / uint8, torch or numpy -> ``(T, H, W, 3)`` uint8."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor or numpy array, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"{what} must be (T, 3, H, W), got shape {tuple(frames.shape)}")
    frames = frames.detach().cpu()
    if frames.dtype != torch.uint8:
        if not frames.is_floating_point():
            raise ValueError(f"{what} must be float in [0, 1] or uint8, got {frames.dtype}")
        frames = frames.float().nan_to_num(0.0).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return frames.permute(0, 2, 3, 1).contiguous().numpy()


_X264_AVX2_LEVEL = 0x4F3FF
"""x264 CPU flags up to AVX2 (MMX .. SSE4.2, LZCNT, AVX, FMA3, BMI1/2, AVX2, 64-byte cache lines)."""


@functools.lru_cache(maxsize=1)
def _x264_cpu_option() -> dict[str, str]:
    """x264 options that keep its output a function of its input alone.

    On CPUs with AVX-512, x264's AVX-512 kernels make the bitstream differ from run to run for the
    same frames (seen with the libx264 of PyAV 17 and 18), which breaks the same-seed-same-output
    promise. There x264 is limited to its AVX2 kernels (every AVX-512 CPU has them), at the same speed.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return {}
    return {"x264-params": f"asm={_X264_AVX2_LEVEL}"} if " avx512f" in flags else {}


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(float(fps)).limit_denominator(1001)


class VideoWriter:
    """Streaming H.264 (libx264, yuv420p) writer; the file appears only when closed cleanly.

    Frames with an odd height or width are padded to even by repeating the last row / column.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> chunks = torch.linspace(0, 1, 9).view(3, 3, 1, 1, 1).expand(3, 3, 3, 31, 48)  # 3 chunks of 3 frames
        >>> with VideoWriter(f"{tmp.name}/out.mp4", fps=24) as w:
        ...     for chunk in chunks:
        ...         w.write(chunk)  # (t, 3, H, W) float in [0, 1] or uint8
        >>> w.num_frames, w.size, probe_video(f"{tmp.name}/out.mp4").size  # the odd height was padded
        (9, (31, 48), (32, 48))
        >>> tmp.cleanup()
    """

    def __init__(
        self, path: str | os.PathLike, fps: float, *, crf: int = 18, preset: str = "medium"
    ) -> None:
        """Args: path (.mp4/.mov/.mkv), fps (> 0), crf (0 = lossless .. 51), x264 preset."""
        self.path = Path(path)
        if not (np.isfinite(fps) and fps > 0):
            raise VideoError(f"cannot write video {self.path}: fps must be positive, got {fps}")
        if not 0 <= int(crf) <= 51:
            raise VideoError(f"cannot write video {self.path}: crf must be in 0..51, got {crf}")
        self.fps, self.crf, self.preset = float(fps), int(crf), preset
        self.size: tuple[int, int] | None = None
        """``(H, W)`` of the frames written (before padding to even)."""
        self.num_frames = 0
        """Frames written so far."""
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._container = None
        self._stream = None
        self._done = False
        try:
            options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
            self._container = av.open(str(self._tmp), "w", options=options)
        except (av.FFmpegError, ValueError) as e:
            self._abort(e)
            raise VideoError(f"cannot write video {self.path}: {_ffmpeg_message(e)}") from None
        except BaseException as e:
            self._abort(e)
            raise

    def write(self, frames) -> None:
        """Append ``(t, 3, H, W)`` (or one ``(3, H, W)``) float [0, 1] or uint8 frames."""
        if self._done:
            raise RuntimeError(f"VideoWriter for {self.path} is already closed")
        try:
            arr = _to_uint8_hwc(frames)
            h, w = arr.shape[1:3]
            if self.size is None:
                self._start(h, w)
            elif (h, w) != self.size:
                raise ValueError(f"frame size {h}x{w} differs from the first frames' {self.size[0]}x{self.size[1]}")
            if h % 2 or w % 2:
                arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for img in arr:
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = self.num_frames
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.num_frames += 1
        except av.FFmpegError as e:
            self._abort(e)
            raise VideoError(f"cannot write video {self.path}: {_ffmpeg_message(e)}") from None
        except BaseException as e:
            self._abort(e)
            raise

    def _start(self, h: int, w: int) -> None:
        self.size = (h, w)
        rate = _fps_fraction(self.fps)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / rate
        stream.codec_context.time_base = 1 / rate
        stream.options = {"crf": str(self.crf), "preset": self.preset, **_x264_cpu_option()}
        self._stream = stream

    def close(self) -> None:
        """Flush the encoder, close the file and move it into place."""
        if self._done:
            return
        try:
            if self._stream is None:
                raise VideoError(f"cannot write video {self.path}: no frames were written")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except av.FFmpegError as e:
            self._abort(e)
            raise VideoError(f"cannot write video {self.path}: {_ffmpeg_message(e)}") from None
        except BaseException as e:
            self._abort(e)
            raise
        self._done = True
        self._atomic.__exit__(None, None, None)  # renames the temporary file to ``path``

    def _abort(self, exc: BaseException) -> None:
        """Close whatever is open and remove the temporary file."""
        if self._done:
            return
        self._done = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - already failing; the original error matters
                pass
            self._container = None
        try:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: BLE001 - atomic_path re-raises ``exc``; callers raise it
            pass

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)


def write_video(path: str | os.PathLike, frames, fps: float, *, crf: int = 18, preset: str = "medium") -> Path:
    """Write frames as an H.264 (yuv420p) video; atomic.

    Args:
        path: output file (.mp4 recommended).
        frames: ``(T, 3, H, W)`` float in [0, 1] or uint8, torch or numpy. Odd sizes are padded to
            even by edge replication (right column / bottom row).
        fps: frames per second.
        crf: x264 quality (0 lossless, 18 visually lossless, 23 default).
    Returns:
        ``path``.
    """
    if getattr(frames, "ndim", None) != 4:
        raise ValueError(f"frames must be (T, 3, H, W), got shape {tuple(getattr(frames, 'shape', ()))}")
    with VideoWriter(path, fps, crf=crf, preset=preset) as writer:
        for i in range(0, frames.shape[0], 32):  # blocks: the uint8 copy never holds the whole video
            writer.write(frames[i : i + 32])
    return Path(path)
