"""``affine4d`` (4Real-Video): pseudo-4D time x view grids from 2D affine transforms of one clip.

Each of ``pairs_per_video`` clips gets one random continuous affine path ``A(u)``, ``u`` in
[0, 1]; view ``v`` of ``V = config.views`` is the clip warped by ``A(v / (V - 1))`` (``A(0)`` is the
identity, so view 0 is the clip). Every frame of a view uses the same map, like a synchronized
camera that is static per view.

Parametrisation (``s = affine_strength``, pixels, about the image centre ``c``)::

    A(u): x -> M(u) (x - c) + c + u t,   M(u) = R(u theta) diag(e^{u l}, e^{u l}) [[1, u k], [0, 1]]

with rotation ``|theta|`` uniform in [0.5, 1] x 8 deg x s (random sign), log-scale ``l`` uniform
in ``log(1 +- 0.1 s)``, shear ``k`` uniform in [-0.05, 0.05] x s, translation ``t`` of length
uniform in [0.5, 1] x 0.1 s x size in a uniformly random direction. Stored ``affine[v]`` is the
``2 x 3`` matrix ``[M | c + u t - M c]``: a source pixel ``(x, y)`` lands at ``A @ [x, y, 1]``.

Views are rendered by inverse mapping (``grid_sample``, bilinear, ``align_corners=True``) with
border *reflection* about the outer pixel centres, so no black borders appear.

Drops: ``too_short`` (no clip fits).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from vnvs.data.builders._sampling import (
    clip_indices,
    clip_span,
    draw_clip_start,
    gather_frames,
    stack_frames,
    video_transform,
)
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import BuildResult, WorkItem, to_uint8
from vnvs.geometry import normalize_coords, pixel_grid


def random_affine_path(rng: np.random.Generator, views: int, height: int, width: int,
                       strength: float) -> torch.Tensor:
    """``(V, 2, 3)`` float32 affine maps (pixels) at ``u = v / (V - 1)``; ``[0]`` is the identity."""
    s = float(strength)
    theta = math.radians(8.0) * s * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    log_scale = math.log(max(1e-3, 1.0 + 0.1 * s * rng.uniform(-1.0, 1.0)))
    shear = 0.05 * s * rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2 * math.pi)
    mag = 0.1 * s * max(height, width) * rng.uniform(0.5, 1.0)
    t = np.array([math.cos(phi), math.sin(phi)]) * mag
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    out = np.zeros((views, 2, 3), dtype=np.float64)
    for v in range(views):
        u = v / (views - 1) if views > 1 else 0.0
        a = u * theta
        R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        M = R @ (math.exp(u * log_scale) * np.array([[1.0, u * shear], [0.0, 1.0]]))
        out[v, :, :2] = M
        out[v, :, 2] = c + u * t - M @ c
    out[0] = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return torch.from_numpy(out).to(torch.float32)


def warp_views(clip: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Warp a clip ``(T, 3, H, W)`` by each map of ``affine (V, 2, 3)`` -> ``(T, V, 3, H, W)`` float.

    Output pixel ``q`` of view ``v`` samples the clip at ``A_v^{-1} q`` (bilinear, reflection at
    the borders). View maps equal to the identity copy the clip exactly.
    """
    T, C, H, W = clip.shape
    V = affine.shape[0]
    A = torch.cat([affine.double(), torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(V, 1, 3)], 1)
    Ainv = torch.linalg.inv(A)[:, :2]  # (V, 2, 3)
    q = pixel_grid(H, W, dtype=torch.float64).reshape(2, -1)  # (2, P)
    src = Ainv[:, :, :2] @ q + Ainv[:, :, 2:]  # (V, 2, P)
    grid = normalize_coords(src.reshape(V, 2, H, W), H, W).permute(0, 2, 3, 1).to(clip.dtype)
    inp = clip.reshape(1, T * C, H, W).expand(V, T * C, H, W)
    out = F.grid_sample(inp, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    out = out.reshape(V, T, C, H, W).permute(1, 0, 2, 3, 4).contiguous()
    ident = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for v in range(V):
        if torch.equal(affine[v].float(), ident):
            out[:, v] = clip
    return out


def build(item: WorkItem, config: PrepareConfig, seed: int) -> BuildResult:
    """Affine pseudo-4D grids of one video; see the module docstring."""
    result = BuildResult()
    rng = np.random.default_rng(int(seed))
    num_frames, _ = video_transform(item.path, config.size)
    T, stride = int(config.clip_frames), int(config.frame_stride)
    starts = [draw_clip_start(rng, num_frames, clip_span(T, stride)) for _ in range(int(config.pairs_per_video))]
    if any(s is None for s in starts):
        result.drop("too_short", int(config.pairs_per_video))
        return result
    clips = [clip_indices(s, T, stride) for s in starts]
    frames = gather_frames(item.path, [i for c in clips for i in c], config.size)
    name = os.path.basename(str(item.path))
    for idx in clips:
        if any(i not in frames for i in idx):
            result.drop("too_short")
            continue
        clip = stack_frames(frames, idx)
        H, W = clip.shape[-2:]
        affine = random_affine_path(rng, int(config.views), H, W, config.affine_strength)
        grid = warp_views(clip, affine)
        result.add({"grid": to_uint8(grid), "affine": affine},
                   {"kind": "affine4d", "source": name, "frames": idx, "seed": int(seed),
                    "affine_strength": float(config.affine_strength)})
    return result
