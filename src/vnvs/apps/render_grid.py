"""A ``vnvs render`` output folder read as a two-row grid, so ``vnvs reconstruct`` can lift it to 4D.

Row 0 is the source video (the left panel of ``side_by_side.mp4``, with ``cameras.json`` and the
source depth of ``depth.npz``, which ``vnvs render --save-depth`` writes); row 1 is ``novel.mp4`` along
``trajectory.json``. Column ``i`` is target frame ``i`` and the source frame it was rendered from
(``trajectory.json``'s time index), at the size of the novel video (the source row is resized to it,
its intrinsics scaled). Only row 0 carries depth, as in a ``vnvs grid`` folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vnvs.apps.view_data import source_frames
from vnvs.cameras.camera import scale_intrinsics
from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import InputError, TrajectoryError
from vnvs.io.depth import load_depth
from vnvs.io.grid import Grid
from vnvs.io.video import probe_video, read_video

RENDER_INPUT_FILES = ("novel.mp4", "side_by_side.mp4", "trajectory.json", "cameras.json", "depth.npz")
"""What a render output folder needs to be reconstructed."""


def is_render_output(path: Path) -> bool:
    """A folder written by ``vnvs render`` (it has ``trajectory.json`` and ``side_by_side.mp4``, no ``grid.json``)."""
    path = Path(path)
    return (path.is_dir() and not (path / "grid.json").exists() and (path / "trajectory.json").is_file()
            and (path / "side_by_side.mp4").is_file())


def grid_from_render_output(path: str | Path) -> Grid:
    """The two-row grid of a ``vnvs render`` output folder (see the module docstring)."""
    path = Path(path)
    missing = [n for n in RENDER_INPUT_FILES if not (path / n).is_file()]
    if missing:
        hint = " (render with --save-depth)" if "depth.npz" in missing else ""
        hint = hint or (" (written by vnvs render since cameras.json exists: render again)" if "cameras.json" in missing else "")
        raise InputError(f"{path}: a render output needs {', '.join(missing)} to be reconstructed{hint}")
    try:
        target = Trajectory.load(path / "trajectory.json")
        source = Trajectory.load(path / "cameras.json")
    except TrajectoryError as e:
        raise InputError(str(e)) from None
    novel = read_video(path / "novel.mp4").frames.float()  # (N, 3, H, W) in [0, 1]
    N, _, H, W = novel.shape
    if N != len(target):
        raise InputError(f"{path}/novel.mp4 has {N} frames; trajectory.json has {len(target)}")
    times = target.times.long()
    if int(times.min()) < 0 or int(times.max()) >= len(source):
        raise InputError(f"{path}/trajectory.json names source frames outside 0..{len(source) - 1}")
    maps = load_depth(path / "depth.npz", allow_invalid=True)
    if tuple(maps.depth.shape) != (len(source), source.height, source.width):
        raise InputError(f"{path}/depth.npz holds {tuple(maps.depth.shape)} maps; cameras.json has "
                         f"{len(source)} frames of {source.height}x{source.width}")
    valid = maps.valid if maps.valid is not None else maps.depth > 0
    panels = source_frames(path / "side_by_side.mp4", target, (H, W))
    if any(int(t) not in panels for t in times.tolist()):
        raise InputError(f"{path}/side_by_side.mp4 is shorter than trajectory.json")
    src = torch.stack([panels[int(t)] for t in times.tolist()])
    K_src = scale_intrinsics(source.K[times], W / source.width, H / source.height)
    depth = F.interpolate(maps.depth[times][:, None].float(), size=(H, W), mode="nearest")[:, 0]
    ok = F.interpolate(valid[times][:, None].float(), size=(H, W), mode="nearest")[:, 0] > 0.5
    frames = torch.stack([src.float() / 255, novel])  # source panels are uint8
    span = max(len(source) - 1, 1)
    fps = probe_video(path / "novel.mp4").fps or 24.0
    return Grid(frames, torch.stack([source.w2c[times], target.w2c]), torch.stack([K_src, target.K]), fps=fps,
                time=times.float() / span, time_index=times,
                depth=torch.stack([torch.where(ok, depth, torch.zeros_like(depth)), torch.zeros_like(depth)]),
                valid=torch.stack([ok, torch.zeros_like(ok)]),
                meta={"source": str(path), "method": "vnvs render"})
