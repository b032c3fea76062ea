"""``flow-pairs`` (Scaling4D): training pairs from one monocular video via optical flow.

For each of ``config.pairs_per_video`` candidates a source clip (``clip_frames`` frames, step
``frame_stride``, start ``s``) and a target clip starting at ``s + offset`` (offset uniform in
``[min_offset, max_offset]``, both clips inside the video) are drawn. Per frame pair the flow
source -> target is estimated with ``config.flow``; its forward-backward consistency mask selects
the source pixels that are forward-splatted along the flow with a seeded random pick among
collisions (Scaling4D). Stored: source, target (the target clip), warped, mask, corr.

Memory does not grow with the video's length: all windows are decided from the frame count in the
header, then the video is decoded once, seeking past the stretches no window uses and converting only the
frames the windows use (kept as uint8, the stored form).

Drops: ``too_short`` (no pair fits: all ``pairs_per_video`` candidates), ``inconsistent_flow``
(consistent fraction < ``min_consistency``, checked first), ``low_coverage`` (mask mean <
``min_coverage``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vnvs.data.builders._sampling import (
    clip_indices,
    clip_span,
    gather_frames,
    video_transform,
)
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import BuildResult, WorkItem
from vnvs.estimators.flow import flow_with_consistency, get_flow_estimator
from vnvs.geometry import forward_splat_flow


def draw_windows(num_frames: int, config: PrepareConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``pairs_per_video`` windows ``(start, offset)``; empty when no pair fits in the video."""
    span = clip_span(config.clip_frames, config.frame_stride)
    max_off = min(int(config.max_offset), num_frames - span)
    min_off = max(0, int(config.min_offset))
    if max_off < min_off:
        return []
    out = []
    for _ in range(int(config.pairs_per_video)):
        offset = int(rng.integers(min_off, max_off + 1))
        start = int(rng.integers(0, num_frames - span - offset + 1))
        out.append((start, offset))
    return out


def build(item: WorkItem, config: PrepareConfig, seed: int) -> BuildResult:
    """Flow pairs of one video (``item.path``); see the module docstring."""
    result = BuildResult()
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    num_frames, _ = video_transform(item.path, config.size)
    windows = draw_windows(num_frames, config, rng)
    if not windows:
        result.drop("too_short", int(config.pairs_per_video))
        return result
    T, stride = int(config.clip_frames), int(config.frame_stride)
    plans = [(clip_indices(s, T, stride), clip_indices(s + o, T, stride), o) for s, o in windows]
    frames = gather_frames(item.path, [i for src, tgt, _ in plans for i in src + tgt], config.size)
    estimator = get_flow_estimator(config.flow)
    name = os.path.basename(str(item.path))
    for src_idx, tgt_idx, offset in plans:
        if any(i not in frames for i in src_idx + tgt_idx):  # header over-counted the frames
            result.drop("too_short")
            continue
        src_u8 = torch.stack([frames[i] for i in src_idx])  # the stored uint8 frames, gathered once per clip
        tgt_u8 = torch.stack([frames[i] for i in tgt_idx])
        # flow and splat take the uint8 frames: the same flows as of the float frames (u / 255), and the
        # warped frames come out as uint8, equal to to_uint8 of the float splat (both tested)
        flow_fw, _, consistent = flow_with_consistency(estimator, src_u8, tgt_u8)
        splat = forward_splat_flow(src_u8, flow_fw, valid=consistent, mode="random", generator=gen)
        consistency = float(consistent.float().mean())
        coverage = float(splat.mask.float().mean())
        if consistency < config.min_consistency:
            result.drop("inconsistent_flow")
            continue
        if coverage < config.min_coverage:
            result.drop("low_coverage")
            continue
        tensors = {
            "source": src_u8,
            "target": tgt_u8,
            "warped": splat.warped,
            "mask": splat.mask.to(torch.uint8),
            "corr": splat.corr.to(torch.float32).contiguous(),
        }
        meta = {"kind": "flow-pairs", "source": name, "source_frames": src_idx, "target_frames": tgt_idx,
                "offset": offset, "seed": int(seed), "coverage": coverage, "consistency": consistency,
                "flow": config.flow}
        result.add(tensors, meta)
    return result
