"""``vnvs render``: a user's video + a depth file -> novel view along a trajectory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vnvs.cameras import Cameras, default_intrinsics
from vnvs.cameras.trajectory import resolve_trajectory
from vnvs.errors import DepthError
from vnvs.generators import DEFAULT_GENERATOR, get_generator
from vnvs.io import load_depth, probe_video, read_video, side_by_side, transform_depth, write_video
from vnvs.io.video import Video
from vnvs.pipelines.novel_view import conditioning_frames, render_novel_view
from vnvs.utils.progress import progress_bar


@dataclass
class RenderConfig:
    """Settings of ``vnvs render``."""

    video: Path
    """Input video file (anything FFmpeg decodes)."""
    depth: Path
    """Depth file (``.npy``/``.npz``, one map per frame of the video or per decoded frame)."""
    trajectory: str = "orbit:30"
    """A preset (``orbit:30``, ``dolly:0.3``, ...) or a trajectory file."""
    output: Path = Path("vnvs_render")
    """Output folder."""
    mode: str = "gradual"
    """``gradual`` or ``direct`` (see docs/trajectories.md)."""
    fov: float = 60.0
    """Horizontal field of view of the source camera in degrees (across the longer side)."""
    stride: int = 1
    """Use every ``stride``-th frame."""
    max_frames: int | None = None
    """Use at most this many frames."""
    size: int | None = None
    """Resize so the shorter side has this many pixels (default: keep the video's size)."""
    generator: str = DEFAULT_GENERATOR
    """Generator filling the disoccluded regions."""
    seed: int = 0
    """Generator seed."""


def match_depth_to_video(depth: torch.Tensor, valid: torch.Tensor, video: Video, total_frames: int, path: Path):
    """Pick and resize depth maps so there is one per decoded frame at the decoded size.

    A depth file may hold one map per decoded frame or one per frame of the whole video; its maps
    may have the video's original size or the decoded size (nearest-neighbour resize, so depth is
    never blended across object edges).
    """
    T = depth.shape[0]
    if T == video.num_frames:
        pass
    elif T == total_frames and max(video.frame_indices) < T:
        idx = torch.tensor(video.frame_indices)
        depth, valid = depth[idx], valid[idx]
    else:
        raise DepthError(f"depth file {path} holds {T} maps but the video has {total_frames} frames "
                         f"({video.num_frames} decoded)")
    size = tuple(depth.shape[-2:])
    if size == video.size:
        return depth, valid
    if size != tuple(video.source_size):
        raise DepthError(f"depth file {path} holds {size[0]}x{size[1]} maps but the video is "
                         f"{video.source_size[0]}x{video.source_size[1]} ({video.size[0]}x{video.size[1]} decoded)")
    return transform_depth(depth, valid, video.transform)


def run_render(config: RenderConfig) -> dict:
    """Render the novel view and write ``novel.mp4``, ``conditioning.mp4``, ``side_by_side.mp4`` and
    ``trajectory.json`` into ``config.output``. Returns a short summary."""
    start = time.perf_counter()
    generator = get_generator(config.generator)
    with progress_bar("render", total=4, unit="step") as bar:
        bar.set_postfix_str("reading video")
        info = probe_video(config.video)
        video = read_video(config.video, stride=config.stride, max_frames=config.max_frames, size=config.size)
        bar.update()
        bar.set_postfix_str("depth and cameras")
        maps = load_depth(config.depth)
        depth, valid = match_depth_to_video(maps.depth, maps.valid, video, info.num_frames, Path(config.depth))
        if not valid.any():
            raise DepthError(f"depth file {config.depth} has no valid depth")
        H, W = video.size
        K0 = default_intrinsics(*video.source_size, fov_deg=config.fov)
        K = video.transform.adapt_intrinsics(K0)
        source = Cameras(torch.eye(4).repeat(video.num_frames, 1, 1), K.expand(video.num_frames, 3, 3).clone(), H, W)
        look_at = float(depth[valid].median())
        traj = resolve_trajectory(config.trajectory, source, look_at, mode=config.mode)
        bar.update()
        bar.set_postfix_str("novel view")
        result = render_novel_view(video.frames, depth, source, traj, generator, valid=valid, seed=config.seed)
        bar.update()
        bar.set_postfix_str("writing")
        out = Path(config.output)
        out.mkdir(parents=True, exist_ok=True)
        fps = video.fps
        write_video(out / "novel.mp4", result.frames, fps)
        write_video(out / "conditioning.mp4", conditioning_frames(result.warped, result.mask), fps)
        write_video(out / "side_by_side.mp4",
                    side_by_side([video.frames[result.source_index], result.warped, result.frames]), fps)
        traj.save(out / "trajectory.json")
        bar.update()
    return {"frames": int(result.frames.shape[0]), "height": traj.height, "width": traj.width,
            "generator": generator.name, "coverage": float(result.mask.float().mean()),
            "seconds": time.perf_counter() - start}
