"""``vnvs render``: a user's video -> depth -> novel view along a trajectory, streamed in chunks.

Frames flow through decoding, depth (a model or a file, aligned to one scale when relative),
z-buffer rendering and generation a chunk at a time, and the outputs are encoded as they come, so
peak memory does not grow with the video's length. Source frames are kept only until no later
target frame needs them (target time indices that only move forward, as every preset's do); a
trajectory whose time indices go back keeps the source frames and depth in memory-mapped files in
the output's temporary folder instead.

All outputs are written into a temporary folder beside the output folder and moved into it at the
end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from vnvs.apps.config import RenderConfig
from vnvs.cameras import Cameras
from vnvs.cameras.source import source_cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import DepthError, TrajectoryError, VnvsError
from vnvs.generators import get_generator
from vnvs.geometry.control import WARPED, control_mask, render_control
from vnvs.io import VideoStream, VideoWriter, side_by_side
from vnvs.apps.novel_view import conditioning_frames
from vnvs.utils.oom import run_halving
from vnvs.utils.progress import progress_bar


LOOK_AT_FRAMES = 8
"""The look-at distance of presets is the median depth over this many leading frames."""


# --------------------------------------------------------------------------------------------------
# Source frames kept for rendering


class _SourceBuffer:
    """Decoded frames (uint8), depth and validity by source index, in memory or memory-mapped."""

    def __init__(self, num_frames: int, size: tuple[int, int], spill: Path | None) -> None:
        self.items: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.spill = spill is not None
        self.count = 0
        if spill is not None:
            H, W = size
            self.frames = np.lib.format.open_memmap(spill / "frames.npy", "w+", np.uint8, (num_frames, 3, H, W))
            self.depth = np.lib.format.open_memmap(spill / "depth.npy", "w+", np.float32, (num_frames, H, W))
            self.valid = np.lib.format.open_memmap(spill / "valid.npy", "w+", np.bool_, (num_frames, H, W))

    def put(self, start: int, frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> None:
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
        for k in [k for k in self.items if k < index]:
            del self.items[k]


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
    """The output videos, written as frames come, in a temporary folder moved into place at the end."""

    def __init__(self, out: Path, fps: float, save_depth: bool, depth_shape: tuple[int, int, int]) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent))
        self.novel = VideoWriter(self.tmp / "novel.mp4", fps)
        self.cond = VideoWriter(self.tmp / "conditioning.mp4", fps)
        self.sbs = VideoWriter(self.tmp / "side_by_side.mp4", fps)
        self.depth = self.valid = None
        self.depth_shape = depth_shape
        if save_depth:  # raw bytes appended in frame order, packed into depth.npz at the end
            self.depth = open(self.tmp / "depth.raw", "wb")
            self.valid = open(self.tmp / "valid.raw", "wb")
        self.depth_frames = 0

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

    def finish(self, traj: Trajectory) -> list[str]:
        for w in (self.novel, self.cond, self.sbs):
            w.close()
        traj.save(self.tmp / "trajectory.json")
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
        self.out.mkdir(parents=True, exist_ok=True)
        names = []
        for p in sorted(self.tmp.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                os.replace(p, self.out / p.name)
                names.append(p.name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return names

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
    ``trajectory.json`` (and ``depth.npz`` when asked) into ``config.output``. Returns a summary."""
    from vnvs.estimators.video_depth import VideoDepth

    start_time = time.perf_counter()
    if config.chunk_frames < 1:
        raise VnvsError(f"chunk_frames must be >= 1, got {config.chunk_frames}")
    generator = get_generator(config.generator)
    stream = VideoStream(config.video, stride=config.stride, max_frames=config.max_frames, size=config.size)
    N, (H, W) = stream.num_frames, stream.size
    indices = [stream.frame_index(i) for i in range(N)]
    source = source_cameras(N, indices, stream.info.num_frames, stream.info.size, stream.transform,
                            fov=config.fov, intrinsics=config.intrinsics, cameras=config.cameras)
    depth_est = VideoDepth(config.depth, num_frames=N, frame_indices=indices, total_frames=stream.info.num_frames,
                           transform=stream.transform, kind=config.depth_kind, align=config.align_depth,
                           device=config.device, max_side=config.depth_size)
    outputs: _Outputs | None = None
    try:
        chunk = config.chunk_frames
        chunks = stream.chunks(chunk)
        decoded = 0
        source_done = False
        depth_bar = progress_bar("depth", total=N, unit="frame", position=0)
        render_bar = progress_bar("render", total=None, unit="frame", position=1)

        def estimate(first: int, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            parts, _ = run_halving(lambda a, b: depth_est(first + a, frames[a:b]), 0, frames.shape[0],
                                   frames.shape[0], what="depth chunk")
            d = torch.cat([p[0] for p in parts])
            v = torch.cat([p[1] for p in parts])
            if not torch.isfinite(d).all():
                raise DepthError(f"depth of frames {first}..{first + frames.shape[0] - 1} is not finite")
            return d, v

        def next_chunk() -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None:
            nonlocal decoded, source_done
            if source_done:
                return None
            try:
                first, frames = next(chunks)
            except StopIteration:
                source_done = True
                return None
            d, v = estimate(first, frames)
            decoded = first + frames.shape[0]
            depth_bar.update(frames.shape[0])
            return first, frames, d, v

        head: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        while decoded < min(N, LOOK_AT_FRAMES):
            got = next_chunk()
            if got is None:
                break
            head.append(got)
        d0 = torch.cat([h[2] for h in head])[:LOOK_AT_FRAMES]
        v0 = torch.cat([h[3] for h in head])[:LOOK_AT_FRAMES]
        if not v0.any():
            raise DepthError(f"depth of the first {d0.shape[0]} frames has no valid pixel")
        look_at = float(d0[v0].median())
        del d0, v0
        traj = resolve_trajectory(config.trajectory, source, look_at, mode=config.mode)
        times = traj.times.long()
        if times.numel() and int(times.max()) >= N:
            raise TrajectoryError(f"trajectory refers to source frame {int(times.max())} but the video has {N} frames")
        check_trajectory_in_front(traj, source, look_at)
        render_bar.reset(total=len(traj))
        monotonic = bool((times[1:] >= times[:-1]).all()) if len(times) > 1 else True

        outputs = _Outputs(Path(config.output), stream.fps, config.save_depth, (N, H, W))
        buffer = _SourceBuffer(N, (H, W), None if monotonic else outputs.tmp)
        for first, frames, d, v in head:
            buffer.put(first, frames, d, v)
            outputs.write_depth(first, d, v)
        del head

        def ensure(index: int, keep_from: int) -> bool:
            """Decode until source frame ``index`` is buffered, dropping frames before ``keep_from`` as it
            goes (monotonic times); False if the video ends first."""
            while buffer.count <= index:
                got = next_chunk()
                if got is None:
                    return False
                first, frames, d, v = got
                if monotonic:
                    buffer.drop_before(keep_from)
                buffer.put(first, frames, d, v)
                outputs.write_depth(first, d, v)
            return True

        window = getattr(generator, "window", None)
        gen_size = int(window) if window else chunk
        overlap = max(0, min(gen_size // 4, gen_size - 1)) if window else 0
        n_target = len(traj)
        written = 0
        tail: torch.Tensor | None = None  # generated frames of the previous window still to be blended
        s = 0
        coverage_sum = 0.0
        while s < n_target:
            e = min(s + gen_size, n_target)
            if not ensure(int(times[s:e].max()), int(times[s])):
                ok = int((times < buffer.count).long().cumprod(0).sum())
                e = min(e, ok)
                n_target = ok
                print(f"vnvs: the video decoded {buffer.count} frames, fewer than its container declares; "
                      f"rendering {n_target} frames", file=sys.stderr)
                if e <= s:
                    break
            ti = times[s:e]
            frames, depth, valid = buffer.get(ti)
            control = render_control(frames, depth, source.K[ti], source.w2c[ti], traj.K[s:e], traj.w2c[s:e],
                                     (traj.height, traj.width), valid=valid)
            warped, mask = control[:, WARPED], control_mask(control)
            gen_chunk = gen_size

            def generate(a: int, b: int) -> torch.Tensor:
                return generator(control[a:b], seed=config.seed + s + a).clamp(0, 1)

            parts, gen_chunk = run_halving(generate, 0, e - s, gen_chunk, what="generator chunk")
            novel = torch.cat(parts)
            if tail is not None and tail.shape[0]:
                k = tail.shape[0]
                w = torch.linspace(0, 1, k + 2)[1:-1].view(k, 1, 1, 1)
                novel[:k] = tail * (1 - w) + novel[:k] * w
            last = e >= n_target
            keep = e - s if last else max(1, e - s - overlap)
            tail = None if last else novel[keep:].clone()
            outputs.write(frames[:keep], warped[:keep], mask[:keep], novel[:keep])
            coverage_sum += float(mask[:keep].float().mean()) * keep
            written += keep
            render_bar.update(keep)
            s += keep
            if monotonic and s < n_target:
                buffer.drop_before(int(times[s]))
        while not source_done and config.save_depth:
            ensure(buffer.count, buffer.count)  # the rest of the depth, for depth.npz
        depth_bar.close()
        render_bar.close()
        if written < len(traj):
            traj = Trajectory(traj.w2c[:written], traj.K[:written], traj.height, traj.width,
                              traj.time_index[:written] if traj.time_index is not None else None, traj.meta)
        names = outputs.finish(traj)
    except BaseException:
        if outputs is not None:
            outputs.abort()
        raise
    finally:
        depth_est.close()
    return {"frames": written, "source_frames": decoded, "height": traj.height, "width": traj.width,
            "generator": generator.name, "depth": depth_est.name, "depth_kind": depth_est.kind,
            "depth_aligned": depth_est.align, "coverage": coverage_sum / max(written, 1),
            "files": names, "seconds": time.perf_counter() - start_time}
