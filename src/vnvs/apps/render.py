"""``vnvs render``: a user's video -> depth -> novel view along a trajectory, streamed in chunks.

Frames flow through decoding, depth (a model or a file, aligned to one scale when relative),
rendering (z-buffer splat or depth mesh) and generation a chunk at a time, and the outputs are encoded as they come, so
peak memory does not grow with the video's length. Source frames are kept only until no later
target frame needs them (target time indices that only move forward, as every preset's do); a
trajectory whose time indices go back keeps the source frames and depth in memory-mapped files in
the output's temporary folder instead (:class:`vnvs.apps.source_stream.SourceStream`). Generators
run window by window through :class:`vnvs.generators.windows.StreamWindows`.

All outputs are written into a temporary folder beside the output folder and moved into it at the
end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from vnvs.apps.config import DEFAULT_RENDERER, RENDER_FILES, RenderConfig, generator_options
from vnvs.apps.novel_view import conditioning_frames
from vnvs.apps.source_stream import SourceStream, open_source
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import DepthError, TrajectoryError
from vnvs.generators import get_generator
from vnvs.generators.windows import StreamWindows
from vnvs.geometry.control import WARPED, control_mask, render_control
from vnvs.io import VideoWriter, side_by_side
from vnvs.utils.atomic import staged_output
from vnvs.utils.oom import OomHalving
from vnvs.utils.progress import progress_bar
from vnvs.utils.threads import parallel, serial

log = logging.getLogger(__name__)


LOOK_AT_FRAMES = 8
"""The look-at distance of presets is the median depth over this many leading frames."""


# --------------------------------------------------------------------------------------------------
# Checks


def check_trajectory_in_front(traj: Trajectory, source: Cameras, look_at: float) -> None:
    """Refuse a trajectory that puts the camera behind the scene or turns it away from it.

    For target frame ``i`` (source time ``t``), the camera centre is expressed in source camera
    ``t``'s frame; the scene is taken to lie around the look-at point at depth ``look_at`` on the source
    optical axis. The camera is *behind the scene* when its centre is farther along the source axis
    than the look-at point (``orbit`` beyond 90 degrees, ``dolly`` beyond 1); it *faces away* when the
    look-at point is not in front of it.
    """
    times = traj.times.long()
    src = source.w2c[times].double()
    tgt = traj.w2c.double()
    c2w_t = torch.linalg.inv(tgt)
    centre = (src @ c2w_t)[:, :3, 3]  # target camera centre in source camera coordinates
    tol = 1e-3 * look_at
    behind = centre[:, 2] > look_at + tol
    if bool(behind.any()):
        i = int(torch.nonzero(behind)[0])
        raise TrajectoryError(
            f"the trajectory moves the camera behind the scene (frame {i}: {float(centre[i, 2]):.3g} along the "
            f"view axis, the scene's look-at point is at {look_at:.3g}); use a smaller orbit or dolly")
    look = torch.tensor([0.0, 0.0, look_at, 1.0], dtype=torch.float64)
    in_target = (tgt @ torch.linalg.inv(src) @ look)[:, 2]
    away = in_target <= tol
    if bool(away.any()):
        i = int(torch.nonzero(away)[0])
        raise TrajectoryError(f"the trajectory turns the camera away from the scene (frame {i}); "
                              "use a smaller pan, tilt or orbit")


# --------------------------------------------------------------------------------------------------
# Outputs


class _Outputs:
    """The output videos, written as frames come into the staged output folder (swapped into place whole)."""

    def __init__(self, staging: Path, fps: float, save_depth: bool, depth_shape: tuple[int, int, int]) -> None:
        self.tmp = Path(staging)  # the staged output folder (vnvs.utils.atomic.staged_output)
        self.novel = VideoWriter(self.tmp / "novel.mp4", fps)
        self.cond = VideoWriter(self.tmp / "conditioning.mp4", fps)
        self.sbs = VideoWriter(self.tmp / "side_by_side.mp4", fps)
        self.depth = self.valid = None
        self.depth_shape = depth_shape
        if save_depth:  # raw bytes appended in frame order, packed into depth.npz at the end
            self.depth = open(self.tmp / "depth.raw", "wb")
            self.valid = open(self.tmp / "valid.raw", "wb")
        self.depth_frames = 0

    def scratch(self) -> Path:
        """A hidden folder inside the temporary output for working files (never moved into the output)."""
        path = self.tmp / ".scratch"
        path.mkdir(exist_ok=True)
        return path

    def write(self, source: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, novel: torch.Tensor) -> None:
        self.novel.write(novel)
        self.cond.write(conditioning_frames(warped, mask))
        self.sbs.write(side_by_side([source, warped, novel]))

    def write_depth(self, start: int, depth: torch.Tensor, valid: torch.Tensor) -> None:
        if self.depth is not None:
            assert start == self.depth_frames, "depth must be written in frame order"
            self.depth.write(depth.numpy().astype(np.float32, copy=False).tobytes())
            self.valid.write(valid.numpy().astype(np.bool_, copy=False).tobytes())
            self.depth_frames = start + depth.shape[0]

    def finish(self, traj: Trajectory, cameras: Cameras) -> list[str]:
        for w in (self.novel, self.cond, self.sbs):
            w.close()
        traj.save(self.tmp / "trajectory.json")
        Trajectory.from_cameras(cameras, meta={"role": "source cameras"}).save(self.tmp / "cameras.json")
        if self.depth is not None:
            self.depth.close()
            self.valid.close()
            _, H, W = self.depth_shape
            shape = (self.depth_frames, H, W)
            with zipfile.ZipFile(self.tmp / "depth.npz.part", "w", zipfile.ZIP_DEFLATED) as z:
                for name, dtype in (("depth", np.float32), ("valid", np.bool_)):
                    with z.open(f"{name}.npy", "w", force_zip64=True) as f, open(self.tmp / f"{name}.raw", "rb") as raw:
                        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                                  "shape": shape}
                        np.lib.format.write_array_header_1_0(f, header)
                        shutil.copyfileobj(raw, f, 1 << 22)
            self.depth = self.valid = None
            os.replace(self.tmp / "depth.npz.part", self.tmp / "depth.npz")
            (self.tmp / "depth.raw").unlink()
            (self.tmp / "valid.raw").unlink()
        shutil.rmtree(self.tmp / ".scratch", ignore_errors=True)
        return sorted(p.name for p in self.tmp.iterdir() if p.is_file() and not p.name.startswith("."))

    def abort(self) -> None:
        for w in (self.novel, self.cond, self.sbs):
            try:
                w._abort(RuntimeError("aborted"))
            except Exception:  # noqa: BLE001 - cleaning up after an earlier error
                pass
        for f in (self.depth, self.valid):
            if f is not None:
                f.close()
        self.depth = self.valid = None
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The pipeline


def run_render(config: RenderConfig) -> dict:
    """Render the novel view and write ``novel.mp4``, ``conditioning.mp4``, ``side_by_side.mp4``,
    ``trajectory.json``, ``cameras.json`` (the source cameras) and ``depth.npz`` (when asked) into
    ``config.output``. Returns a summary."""
    start_time = time.perf_counter()
    generator = get_generator(config.generator, **generator_options(config))
    video, cameras, depth, source, _ = open_source(config)
    N, (H, W) = video.num_frames, video.size
    outputs: _Outputs | None = None
    staged = contextlib.ExitStack()
    try:
        look_at = _look_at(source)
        traj = resolve_trajectory(config.trajectory, cameras, look_at, mode=config.mode)
        _check_trajectory(traj, cameras, look_at, N)
        outputs = _Outputs(staged.enter_context(staged_output(config.output, RENDER_FILES)), video.fps,
                           config.save_depth, (N, H, W))
        if config.renderer is not None:  # a choice of the user's, once the inputs are known to be usable
            _check_renderer(generator, config.renderer)
        source.keep(None if _moves_forward(traj) else outputs.scratch(), outputs.write_depth if config.save_depth else None)
        with serial():  # the loop's small ops; the generator (and the numba splat's own pool) stay parallel
            written, coverage = _render(source, cameras, traj, generator, config, outputs)
        if config.save_depth:
            source.drain()  # the rest of the depth, for depth.npz
        traj = _first_frames(traj, written)
        names = outputs.finish(traj, cameras)
        staged.close()  # the staged folder replaces the output folder whole
    except BaseException:
        if outputs is not None:
            outputs.abort()
        staged.__exit__(*sys.exc_info())
        raise
    finally:
        source.close()
        depth.close()
    return {"frames": written, "source_frames": source.decoded, "height": traj.height, "width": traj.width,
            "generator": generator.name, "renderer": config.renderer or DEFAULT_RENDERER, "depth": depth.name, "depth_kind": depth.kind,
            "depth_aligned": depth.align, "coverage": coverage, "files": names,
            "seconds": time.perf_counter() - start_time}


def _check_renderer(generator, renderer: str) -> None:
    """Warn when a learned generator was trained on a control signal of another renderer (its ``sampling.json``)."""
    trained = getattr(getattr(generator, "sampling", None), "renderer", None)
    if trained is not None and trained != renderer:
        log.warning("generator %s was trained with the %s renderer but renderer is %s: its conditioning differs "
                    "from its training pairs (renderer %s matches them)", generator.name, trained, renderer, trained)


def _look_at(source: SourceStream) -> float:
    """The look-at distance of presets: the median valid depth of the first :data:`LOOK_AT_FRAMES` frames."""
    depth, valid = source.leading_depth(LOOK_AT_FRAMES)
    if not valid.any():
        raise DepthError(f"depth of the first {depth.shape[0]} frames has no valid pixel")
    return float(depth[valid].median())


def _check_trajectory(traj: Trajectory, source: Cameras, look_at: float, num_frames: int) -> None:
    """Refuse a trajectory that refers to frames past the video's end or leaves the scene."""
    times = traj.times.long()
    if times.numel() and int(times.max()) >= num_frames:
        raise TrajectoryError(f"trajectory refers to source frame {int(times.max())} but the video has "
                              f"{num_frames} frames")
    check_trajectory_in_front(traj, source, look_at)


def _moves_forward(traj: Trajectory) -> bool:
    """True when the trajectory's source time indices never go back (source frames can be released)."""
    times = traj.times.long()
    return bool((times[1:] >= times[:-1]).all()) if len(times) > 1 else True


def _first_frames(traj: Trajectory, n: int) -> Trajectory:
    """The trajectory's first ``n`` frames (all of it when it has no more)."""
    if n >= len(traj):
        return traj
    return Trajectory(traj.w2c[:n], traj.K[:n], traj.height, traj.width,
                      traj.time_index[:n] if traj.time_index is not None else None, traj.meta)


def _render(source: SourceStream, cameras: Cameras, traj: Trajectory, generator, config: RenderConfig,
            outputs: _Outputs) -> tuple[int, float]:
    """Splat, generate and write the target frames window by window, as the source frames they need come.

    A generator with a ``window`` gets windows of that many frames overlapping by a quarter of it,
    cross-faded (:class:`vnvs.generators.windows.StreamWindows`); any other gets ``chunk_frames`` at a
    time. Returns the frames written (fewer than the trajectory's when the video ends early) and
    their mean coverage (fraction of pixels some source pixel landed on).
    """
    times = traj.times.long()
    window = getattr(generator, "window", None)
    windows = StreamWindows(len(traj), int(window) if window else config.chunk_frames,
                            int(window) // 4 if window else 0)
    retry = OomHalving(what=f"generator {generator.name}")
    bar = progress_bar("render", total=len(traj), unit="frame", position=1)
    written, coverage = 0, 0.0
    try:
        while (span := windows.next()) is not None:
            s, e = span
            if not source.ensure(int(times[s:e].max()), int(times[s])):
                windows.end_at(int((times < source.count).long().cumprod(0).sum()))
                log.warning("the video decoded %d frames, fewer than its container declares; rendering %d frames",
                            source.count, windows.num_frames)
                if (span := windows.next()) is None:
                    break
                s, e = span
            ti = times[s:e]
            frames, depth, valid = source.get(ti)
            control = render_control(frames, depth, cameras.K[ti], cameras.w2c[ti], traj.K[s:e], traj.w2c[s:e],
                                     (traj.height, traj.width), valid=valid, renderer=config.renderer or DEFAULT_RENDERER)
            novel = windows.blend(_generate(generator, control, config.seed + s, retry))
            k = novel.shape[0]
            mask = control_mask(control[:k])
            outputs.write(frames[:k], control[:k, WARPED], mask, novel)
            coverage += float(mask.float().mean()) * k
            written += k
            bar.update(k)
            if windows.start < windows.num_frames:
                source.release_before(int(times[windows.start]))
    finally:
        bar.close()
    return written, coverage / max(written, 1)


def _generate(generator, control: torch.Tensor, seed: int, retry: OomHalving) -> torch.Tensor:
    """``(t, 9, H, W)`` control signal -> ``(t, 3, H, W)`` frames in [0, 1], in pieces that halve on GPU
    out-of-memory; the piece starting at frame ``a`` gets ``seed + a``."""
    with parallel():  # models are large GEMMs: every thread of the budget
        parts = retry.run_pieces(lambda a, b: generator(control[a:b], seed=seed + a).clamp(0, 1), 0, control.shape[0])
    return torch.cat(parts)
