"""``covis`` (CogNVS): 3D-aware co-visibility training samples from a video with depth.

Needs ``item.depth`` (``.npy``/``.npz``, one map per source frame, any resolution: it is carried
to the output grid by the frames' resize-and-crop with nearest sampling) and optionally
``item.cameras`` (any camera file :func:`vnvs.cameras.source.source_cameras` reads, one camera per
frame, its intrinsics rescaled to the video's size). Without cameras the video is taken as shot by a static camera with
``default_intrinsics(H, W, fov=config.fov)`` of the original frames. All intrinsics are carried
to the stored frames with the video transform's ``adapt_intrinsics``.

Each of ``pairs_per_video`` clips gets ``covis_trajectories`` random novel trajectories (see
:func:`vnvs.data.builders._sampling.random_trajectory_spec`: orbit + arc + dolly with random signs
and magnitudes within ``max_orbit_deg``, mode ``direct`` or ``gradual``), around a look-at point at
the clip's median depth. The source pixels co-visible from the source and the novel view
(surviving the novel view's z-buffer of the splatted source) are rendered back into the source
view: ``warped`` = source where co-visible, ``mask`` = co-visible, ``corr`` = identity pixel grid
where masked, ``source`` = ``target`` = the clip. One sample per (clip, trajectory). A source pixel is
hidden in the novel view when it lies behind the source depth mesh rendered there (crack-free, see
:func:`~vnvs.data.builders._sampling.covis_sample`). ``covis_masks = "2d"`` replaces the mask by random
smooth 2-D blobs of the same coverage (the CogNVS ablation).

Drops: ``no_depth`` (no depth file: one per input), ``too_short`` (no clip fits),
``low_coverage`` (mask mean < ``min_coverage``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vnvs.cameras.source import source_cameras
from vnvs.data.builders._sampling import (
    clip_indices,
    clip_span,
    covis_sample,
    draw_clip_start,
    gather_frames,
    mask_rng,
    mask_seed,
    random_trajectory_spec,
    resize_depth,
    stack_frames,
    video_transform,
)
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import BuildResult, WorkItem
from vnvs.io.depth import load_depth


def build(item: WorkItem, config: PrepareConfig, seed: int) -> BuildResult:
    """Co-visibility samples of one video; see the module docstring."""
    result = BuildResult()
    if not item.depth:
        result.drop("no_depth")
        return result
    rng = np.random.default_rng(int(seed))
    masks_rng = mask_rng(seed)
    num_frames, transform = video_transform(item.path, config.size)
    depth_maps = load_depth(item.depth, allow_invalid=True)
    n = min(num_frames, depth_maps.num_frames)
    T, stride = int(config.clip_frames), int(config.frame_stride)
    span = clip_span(T, stride)
    starts = [draw_clip_start(rng, n, span) for _ in range(int(config.pairs_per_video))]
    if any(s is None for s in starts):
        result.drop("too_short", int(config.pairs_per_video) * int(config.covis_trajectories))
        return result
    cameras = source_cameras(num_frames, range(num_frames), num_frames, transform.source_size, transform,
                             fov=None if item.cameras else config.fov, cameras=item.cameras)
    w2c_all, K_all = cameras.w2c, cameras.K
    clips = [clip_indices(s, T, stride) for s in starts]
    frames = gather_frames(item.path, [i for c in clips for i in c], config.size)
    name = os.path.basename(str(item.path))
    for idx in clips:
        if any(i not in frames for i in idx):
            result.drop("too_short", int(config.covis_trajectories))
            continue
        clip = stack_frames(frames, idx)
        sel = torch.tensor(idx)
        depth, valid = resize_depth(depth_maps.depth[sel], depth_maps.valid[sel], transform)
        if not bool(valid.any()):
            result.drop("low_coverage", int(config.covis_trajectories))
            continue
        look_at = float(depth[valid].median())
        for _ in range(int(config.covis_trajectories)):
            spec, mode = random_trajectory_spec(rng, config.max_orbit_deg)
            tensors, coverage, _, _ = covis_sample(clip, depth, valid, K_all[sel], w2c_all[sel], spec, mode, look_at,
                                                   masks=config.covis_masks, mask_seed=mask_seed(masks_rng))
            if coverage < config.min_coverage:
                result.drop("low_coverage")
                continue
            result.add(tensors, {"kind": "covis", "source": name, "trajectory": spec, "mode": mode,
                                 "masks": config.covis_masks,
                                 "look_at_depth": look_at, "frames": idx, "seed": int(seed), "coverage": coverage})
    return result
