"""``synthetic``: procedural dynamic scenes with exact ground truth.

Work item ``scene = n`` is the dynamic scene ``generate_scene(n)`` (the scene number fixes the
scene, like a file fixes a video); ``seed`` draws everything else: the source camera motion
(gentle, orbit, dolly or pan; ``render_source_video(..., seed=seed)``) and the novel trajectories.
The source video has ``clip_frames`` frames at ``size x size`` with times ``linspace(0, 1, T)``.

One sample of each kind per scene (``pairs_per_video`` does not apply):

* ``synthetic-pairs``: a random novel trajectory (orbit + arc + dolly within ``max_orbit_deg``,
  see :func:`vnvs.data.builders._sampling.random_trajectory_spec`); ``target`` is rendered along
  it; the exact correspondence and visibility give ``corr`` and ``mask``; ``warped`` is the source
  backward-warped (bilinear) by ``corr`` where visible.
* ``synthetic-covis``: as ``covis`` with the scene's exact depth and cameras; the novel view's
  depth is rendered exactly, so occluders the source does not see also hide points.
* ``synthetic-grid``: ``V = views`` fixed cameras orbiting the look-at point from the middle source
  camera (view 0) to ``+-max_orbit_deg`` (random sign), rendered at every clip time:
  ``grid``, ``w2c``, ``K``.

Drops: ``low_coverage`` for a pair or covis sample whose mask mean is below ``min_coverage``.
"""

from __future__ import annotations

import numpy as np
import torch

from vnvs.cameras import Cameras, make_preset_trajectory
from vnvs.data.builders._sampling import covis_sample, random_trajectory_spec
from vnvs.data.builders._sampling import mask_rng, mask_seed
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import BuildResult, WorkItem, to_uint8
from vnvs.errors import InputError
from vnvs.geometry import backward_warp
from vnvs.synthetic import (
    correspondence,
    generate_scene,
    look_at_depth,
    render_grid,
    render_source_video,
    render_views,
)

MOTIONS = ("gentle", "orbit", "dolly", "pan")


def build(item: WorkItem, config: PrepareConfig, seed: int) -> BuildResult:
    """The three synthetic samples of one procedural scene; see the module docstring."""
    if item.scene is None:
        raise InputError(f"synthetic work item {item.key!r} has no scene number")
    result = BuildResult()
    rng = np.random.default_rng(int(seed))
    scene = generate_scene(int(item.scene))
    S, T = int(config.size), int(config.clip_frames)
    motion = str(rng.choice(MOTIONS))
    video = render_source_video(scene, T, size=(S, S), seed=int(rng.integers(0, 2**31 - 1)), motion=motion)
    look = look_at_depth(scene, video)
    src_cams = Cameras(video.w2c, video.K, S, S)
    name = f"scene-{int(item.scene)}"
    base = {"source": name, "scene": int(item.scene), "seed": int(seed), "motion": motion, "look_at_depth": look}
    source = to_uint8(video.frames)

    # (a) pairs with exact correspondence
    spec, mode = random_trajectory_spec(rng, config.max_orbit_deg)
    traj = make_preset_trajectory(spec, src_cams, look, mode=mode)
    target = render_views(scene, traj.w2c, traj.K, S, S, video.times, local_points=False).rgb
    corr, visible = correspondence(scene, video.w2c, video.K, video.times, traj.w2c, traj.K, video.times, S, S)
    coverage = float(visible.float().mean())
    if coverage < config.min_coverage:
        result.drop("low_coverage")
    else:
        warped = backward_warp(video.frames, corr, visible)
        result.add({"source": source, "target": to_uint8(target), "warped": to_uint8(warped),
                    "mask": visible.to(torch.uint8), "corr": corr.to(torch.float32).contiguous()},
                   {"kind": "synthetic-pairs", "trajectory": spec, "mode": mode, "coverage": coverage, **base})

    # (b) co-visibility with exact depth, cameras and novel-view depth
    spec, mode = random_trajectory_spec(rng, config.max_orbit_deg)

    def novel_depth(w2c, K):
        return render_views(scene, w2c, K, S, S, video.times, rgb=False, local_points=False).depth

    tensors, coverage, _, _ = covis_sample(video.frames, video.depth, video.depth > 0, video.K, video.w2c, spec, mode,
                                           look, novel_depth_fn=novel_depth, masks=config.covis_masks,
                                           mask_seed=mask_seed(mask_rng(seed)))
    if coverage < config.min_coverage:
        result.drop("low_coverage")
    else:
        result.add(tensors, {"kind": "synthetic-covis", "trajectory": spec, "mode": mode, "coverage": coverage,
                             "masks": config.covis_masks, **base})

    # (c) time x view grid orbiting the look-at point of the middle source camera
    V = int(config.views)
    deg = float(config.max_orbit_deg) * float(rng.choice([-1.0, 1.0]))
    spec = f"orbit:{deg:.2f}"
    mid = src_cams[T // 2]
    views = make_preset_trajectory(spec, Cameras(mid.w2c.expand(V, 4, 4).clone(), mid.K.expand(V, 3, 3).clone(), S, S),
                                   look, mode="gradual")
    grid = render_grid(scene, views.w2c, views.K, video.times, S, S).rgb
    result.add({"grid": to_uint8(grid), "w2c": views.w2c.to(torch.float32).contiguous(),
                "K": views.K.to(torch.float32).contiguous()},
               {"kind": "synthetic-grid", "trajectory": spec, "views": V, **base})
    return result
