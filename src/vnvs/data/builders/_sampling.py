"""Helpers shared by the builders: clip windows, streamed frame gathering, random trajectories,
co-visibility samples.

Randomness: every helper takes a ``numpy.random.Generator`` (window and trajectory choices) or a
``torch.Generator`` (splat keys), seeded by the builder, so the same seed gives the same samples.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import torch

from vnvs.cameras.camera import Cameras
from vnvs.cameras.presets import make_preset_trajectory
from vnvs.data.schema import to_uint8
from vnvs.geometry import covisibility, pixel_grid
from vnvs.geometry.mesh_render import mesh_render

MASK_KINDS = ("3d", "2d")
"""Co-visibility masks: ``3d`` (CogNVS: the source pixels a novel camera also sees) or ``2d`` (the
paper's ablation: random smooth 2-D masks of the same coverage)."""
from vnvs.io.transform import FrameTransform, plan_transform, transform_depth
from vnvs.io.video import probe_video, read_frames_at

def clip_span(clip_frames: int, frame_stride: int) -> int:
    """Source frames covered by one clip: ``(T - 1) * stride + 1``."""
    return (int(clip_frames) - 1) * int(frame_stride) + 1


def clip_indices(start: int, clip_frames: int, frame_stride: int) -> list[int]:
    """Source frame indices ``start + i * stride`` of one clip."""
    return [int(start) + i * int(frame_stride) for i in range(int(clip_frames))]


def draw_clip_start(rng: np.random.Generator, num_frames: int, span: int) -> int | None:
    """Uniform start of a window of ``span`` frames inside ``num_frames`` (None: it does not fit)."""
    last = num_frames - span
    if last < 0:
        return None
    return int(rng.integers(0, last + 1))


def video_transform(path: str | os.PathLike, size: int) -> tuple[int, FrameTransform]:
    """Frame count and the square ``size x size`` resize-and-centre-crop of a video (from its header)."""
    info = probe_video(path)
    return info.num_frames, plan_transform(info.size, (int(size), int(size)), fit="resize_crop")


def gather_frames(path: str | os.PathLike, indices: Iterable[int], size: int) -> dict[int, torch.Tensor]:
    """Decode only the frames at ``indices``, in one pass through the video.

    Frames are resized on the short side and centre-cropped to ``size x size``. Stretches of the
    video no index falls in are skipped by seeking to a keyframe (:func:`vnvs.io.read_frames_at`),
    and only the kept frames are converted; memory holds the kept frames (as uint8), never the
    whole video.

    Returns:
        ``{source index: (3, size, size) uint8}`` for every requested index present in the video.
    """
    want = sorted(set(int(i) for i in indices))
    if not want:
        return {}
    frames, _ = read_frames_at(path, want, size=(int(size), int(size)), fit="resize_crop")
    return {i: torch.from_numpy(img).permute(2, 0, 1) for i, img in frames.items()}


def stack_frames(frames: dict[int, torch.Tensor], indices: list[int]) -> torch.Tensor:
    """``(T, 3, H, W)`` float32 in [0, 1] of the kept uint8 frames at ``indices``."""
    return torch.stack([frames[i] for i in indices]).to(torch.float32) / 255


def random_trajectory_spec(rng: np.random.Generator, max_orbit_deg: float) -> tuple[str, str]:
    """A random preset composition ``orbit:A+arc:B+dolly:C`` and a mode.

    ``|A|`` is uniform in ``[0.3, 1] * max_orbit_deg`` (random sign), ``|B|`` in ``[0, 0.5] *
    max_orbit_deg`` (random sign), the dolly in ``[-0.15, 0.15]`` of the look-at distance. The mode
    is ``"direct"`` (full offset at every frame) or ``"gradual"`` (ramped from the source camera),
    with equal probability.
    """
    m = float(max_orbit_deg)
    a = rng.uniform(0.3, 1.0) * m * rng.choice([-1.0, 1.0])
    b = rng.uniform(0.0, 0.5) * m * rng.choice([-1.0, 1.0])
    c = rng.uniform(-0.15, 0.15)
    mode = "direct" if rng.uniform() < 0.5 else "gradual"
    return f"orbit:{a:.2f}+arc:{b:.2f}+dolly:{c:.3f}", mode


def covis_sample(frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor,
                 spec: str, mode: str, look_at: float, novel_depth_fn=None, *, masks: str = "3d",
                 mask_seed: int = 0) -> tuple[dict[str, torch.Tensor], float, torch.Tensor, torch.Tensor]:
    """One co-visibility (CogNVS) sample of a clip for a novel trajectory.

    The novel cameras follow ``spec`` from the clip's cameras. Source pixels co-visible in the novel
    view (``covisibility``: inside it, in front, and not hidden there) are kept and rendered back into
    the source view: ``warped`` is the source where co-visible (0 elsewhere), ``mask`` the co-visible
    pixels, ``corr`` the identity pixel grid where masked; ``source`` and ``target`` are the clip.

    A point is hidden in the novel view when it lies behind that view's depth. Without an exact novel
    depth (``novel_depth_fn``) it is the source depth rendered into the novel view as a crack-free
    depth mesh (:func:`~vnvs.geometry.mesh_render.mesh_render`): a z-buffer of splatted points has
    one-pixel cracks wherever the new view stretches a surface, through which background points behind
    a foreground object would pass as co-visible.

    Args:
        frames: ``(T, 3, H, W)`` float in [0, 1]; depth, valid: ``(T, H, W)``; K, w2c: cameras.
        novel_depth_fn: optional ``(w2c, K) -> (T, H, W)`` depth of the novel views (exact scenes);
            default: the source depth mesh rendered into the novel views.
        masks: ``"3d"`` (co-visibility) or ``"2d"``: a random smooth mask of the same coverage
            (:func:`random_masks_2d`, seeded by ``mask_seed``), the CogNVS ablation.

    Returns:
        Stored tensors, coverage, novel ``w2c`` and ``K``.
    """
    if masks not in MASK_KINDS:
        raise ValueError(f"masks must be one of {MASK_KINDS}, got {masks!r}")
    T, _, H, W = frames.shape
    traj = make_preset_trajectory(spec, Cameras(w2c.float(), K.float(), H, W), look_at, mode=mode)
    if novel_depth_fn is not None:
        depth_b = novel_depth_fn(traj.w2c, traj.K)
    else:
        d = depth.float()
        depth_b = mesh_render(d[:, None], d, K.float(), w2c.float(), traj.K, traj.w2c, target_size=(H, W),
                              valid=valid).depth
    mask = covisibility(depth.float(), K.float(), w2c.float(), traj.K, traj.w2c, size_b=(H, W), depth_b=depth_b,
                        valid_a=valid)
    if masks == "2d":
        mask = random_masks_2d(T, H, W, float(mask.float().mean()), torch.Generator().manual_seed(int(mask_seed)))
    m = mask[:, None].to(torch.float32)
    grid = pixel_grid(H, W).expand(T, 2, H, W)
    src = to_uint8(frames)
    tensors = {
        "source": src,
        "target": src.clone(),
        "warped": to_uint8(frames * m),
        "mask": mask.to(torch.uint8),
        "corr": (grid * m).to(torch.float32).contiguous(),
    }
    return tensors, float(mask.float().mean()), traj.w2c, traj.K


def mask_rng(seed: int) -> np.random.Generator:
    """The generator of a builder's random 2-D mask seeds: separate from the builder's own, so that
    ``covis_masks = "2d"`` samples keep the clips and cameras of the ``"3d"`` ones (same seed)."""
    return np.random.default_rng((int(seed), 0x2D))


def mask_seed(rng: np.random.Generator) -> int:
    """Seed of one sample's random 2-D mask (from :func:`mask_rng`)."""
    return int(rng.integers(0, 2**31 - 1))


def random_masks_2d(T: int, H: int, W: int, coverage: float, generator: torch.Generator, cells: int = 4) -> torch.Tensor:
    """Random smooth 2-D masks ``(T, H, W)`` bool keeping a fraction ``coverage`` of every frame.

    A ``cells x cells`` Gaussian field for the first and the last frame, blended linearly over time
    (the holes drift and change shape smoothly), upsampled bicubically to ``H x W`` and thresholded
    per frame at its ``1 - coverage`` quantile: blobs of visible pixels with no relation to the
    scene's 3-D structure.

    Example:
        >>> m = random_masks_2d(3, 32, 32, 0.6, torch.Generator().manual_seed(0))
        >>> m.shape, abs(m.float().mean().item() - 0.6) < 0.02
        (torch.Size([3, 32, 32]), True)
    """
    ends = torch.randn(2, 1, cells, cells, generator=generator)
    w = torch.linspace(0, 1, T).view(T, 1, 1, 1)
    field = torch.nn.functional.interpolate((1 - w) * ends[0:1] + w * ends[1:2], size=(H, W), mode="bicubic",
                                            align_corners=False)[:, 0]
    c = min(max(float(coverage), 0.0), 1.0)
    if c <= 0:
        return torch.zeros(T, H, W, dtype=torch.bool)
    thresh = torch.quantile(field.reshape(T, -1), 1 - c, dim=1).view(T, 1, 1)
    return field >= thresh


def resize_depth(depth: torch.Tensor, valid: torch.Tensor, transform: FrameTransform) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry ``(T, H_d, W_d)`` depth maps to the output grid of a video ``transform``.

    The depth grid may differ from the video's (e.g. estimated at a lower resolution): the same
    resize-and-centre-crop as the frames is planned for its size, then applied with
    :func:`vnvs.io.depth.transform_depth`.
    """
    tf = plan_transform(tuple(depth.shape[-2:]), transform.size, fit="resize_crop")
    return transform_depth(depth, valid, tf)
