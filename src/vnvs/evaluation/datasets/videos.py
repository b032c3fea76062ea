"""A plain folder of videos, each with the target trajectory to render and, optionally, the truth.

Layout (vnvs's own; every file of a video shares its name stem)::

    DIR/
      NAME.mp4                 the source video (any of .mp4 .mov .mkv .webm .avi)
      NAME.trajectory.json     target cameras: a vnvs trajectory JSON (docs/trajectories.md), or any
                               camera file vnvs render --trajectory reads; optional when the run names
                               a preset for every video (trajectory=orbit:30, ...)
      NAME.target.mp4          optional ground truth: the video seen along the trajectory (same frame
                               count and size as the trajectory)
      NAME.depth.npz / .npy    optional depth of the source video (else the depth model of the run)
      NAME.cameras.json        optional source cameras (any camera file vnvs render --cameras reads;
                               default: a static camera, 60 degrees across the longer side)

Protocol: as ``vnvs render``: each target frame's source frame (the trajectory's time index) is
carried to its camera with the source depth and the method completes it. With a target video the
frame metrics are computed over the whole frame (no mask); without one only set metrics (FID / FVD
against the source videos, as 4Real-Video's second FVD) and camera accuracy are reported.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.cameras.source import source_cameras
from vnvs.defaults import DEFAULT_DEPTH_MODEL
from vnvs.errors import InputError
from vnvs.estimators.video_depth import VideoDepth
from vnvs.evaluation.datasets.base import EvalItem, ItemRef
from vnvs.io.video import probe_video, read_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
SIDE_FILES = (".target", ".trajectory", ".depth", ".cameras")


def index_videos(data: str | os.PathLike, *, trajectory: str | None = None, mode: str = "gradual",
                 depth: str = DEFAULT_DEPTH_MODEL, stride: int = 1, max_frames: int | None = None,
                 device: str | None = None) -> list[ItemRef]:
    """Index the source videos of ``data`` (module docstring); checks that each has a trajectory."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist" if not root.exists() else f"data {root} is not a folder")
    sources = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                     and not any(p.stem.endswith(s) for s in SIDE_FILES))
    if not sources:
        raise InputError(f"{root} holds no source video ({', '.join(VIDEO_SUFFIXES)}; NAME.target.* are targets)")
    refs = []
    for video in sources:
        stem = video.stem
        traj = root / f"{stem}.trajectory.json"
        if not traj.is_file():
            if trajectory is None:
                raise InputError(f"missing file {traj} (or give a trajectory preset for every video)")
            traj = None
        target = next((root / f"{stem}.target{s}" for s in VIDEO_SUFFIXES if (root / f"{stem}.target{s}").is_file()),
                      None)
        dfile = next((root / f"{stem}.depth{s}" for s in (".npz", ".npy") if (root / f"{stem}.depth{s}").is_file()), None)
        cams = root / f"{stem}.cameras.json"
        info = {"name": stem, "video": video.name, "trajectory": traj.name if traj else trajectory,
                "target": target.name if target else None, "depth": dfile.name if dfile else depth}
        spec = {"video": video, "traj": str(traj) if traj else trajectory, "mode": mode, "target": target,
                "depth": str(dfile) if dfile else depth, "cameras": cams if cams.is_file() else None,
                "stride": stride, "max_frames": max_frames, "device": device, "info": info}
        refs.append(ItemRef(stem, info, lambda spec=spec: _load(**spec)))
    return refs


def _decode(path: Path, stride: int, max_frames: int | None):
    try:
        return read_video(path, stride=stride, max_frames=max_frames)
    except InputError:
        raise
    except Exception as exc:  # a decoder error on a damaged file
        raise InputError(f"cannot decode {path}: {' '.join(str(exc).split())[:120]}") from None


def _load(*, video, traj, mode, target, depth, cameras, stride, max_frames, device, info) -> EvalItem:
    src = _decode(video, stride, max_frames)
    N = src.num_frames
    total = probe_video(video).num_frames
    cams = source_cameras(N, src.frame_indices, total, src.source_size, src.transform, cameras=cameras)
    est = VideoDepth(depth, num_frames=N, frame_indices=src.frame_indices, total_frames=total,
                     transform=src.transform, device=device)
    try:
        d, valid = est(0, src.frames)
    finally:
        est.close()
    d = torch.where(valid, d, torch.zeros_like(d))
    look = float(d[valid].median()) if bool(valid.any()) else 1.0
    source = Cameras(cams.w2c, cams.K, src.size[0], src.size[1])
    tr = resolve_trajectory(traj, source, look, mode=mode)
    times = tr.times.long()
    if int(times.min()) < 0 or int(times.max()) >= N:
        raise InputError(f"trajectory {traj} refers to source frame {int(times.max())} but {video} gives {N} frames")
    gt = None
    if target is not None:
        gt = _decode(target, stride, max_frames).frames
        if gt.shape[0] != len(tr) or tuple(gt.shape[-2:]) != (tr.height, tr.width):
            raise InputError(f"{target} has {gt.shape[0]} frames of {gt.shape[-1]}x{gt.shape[-2]}; the trajectory has "
                             f"{len(tr)} of {tr.width}x{tr.height}")
    out = dict(info, frames=len(tr), height=tr.height, width=tr.width, source_frames=N)
    return EvalItem(info["name"], src.frames, d, valid, cams.K, cams.w2c, tr.K, tr.w2c, times,
                    (tr.height, tr.width), gt, None, out)
