"""``vnvs demo``: the whole pipeline on a procedural scene with exact ground truth."""

from __future__ import annotations

import json
import time

import torch


from vnvs.apps.config import DEFAULT_RENDERER, DEMO_FILES, DemoConfig, generator_options
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import check_trajectory_spec, resolve_trajectory
from vnvs.generators import get_generator
from vnvs.io import write_contact_sheet, write_video
from vnvs.metrics import nan_to_none, psnr, ssim_from_map, ssim_map
from vnvs.apps.novel_view import conditioning_frames, render_novel_view
from vnvs.synthetic import correspondence, generate_scene, render_source_video, render_views
from vnvs.utils.atomic import staged_output
from vnvs.utils.progress import progress_bar
from vnvs.utils.threads import serial


GT_CHUNK = 8
"""Frames of ground truth rendered per step (the progress bar moves after each)."""


def run_demo(config: DemoConfig) -> dict:
    """Render a procedural scene's source video, re-render it along the trajectory, score it against
    the exact ground truth and write the outputs. Returns the metrics written to ``metrics.json``."""
    start = time.perf_counter()
    H = W = int(config.size)
    check_trajectory_spec(config.trajectory, (H, W))
    generator = get_generator(config.generator, **generator_options(config))
    with progress_bar("demo", total=None, unit="frame") as bar:
        scene = generate_scene(config.seed)
        src = render_source_video(scene, num_frames=config.frames, size=(H, W), seed=config.seed)
        source = Cameras(src.w2c, src.K, H, W)
        traj = resolve_trajectory(config.trajectory, source, float(src.depth.median()), mode=config.mode)
        n = len(traj)
        bar.reset(total=config.frames + 3 * n)  # source, ground truth, novel view, writing
        bar.update(config.frames)
        ti = traj.times.long()
        rgb, covisible = [], []
        for s in range(0, n, GT_CHUNK):  # ground truth and exact co-visibility, a few frames at a time
            sl, t = slice(s, min(s + GT_CHUNK, n)), src.times[ti[s:s + GT_CHUNK]]
            gt = render_views(scene, traj.w2c[sl], traj.K[sl], traj.height, traj.width, t)  # with local points
            rgb.append(gt.rgb)
            covisible.append(correspondence(scene, src.w2c[ti[sl]], src.K[ti[sl]], t, traj.w2c[sl], traj.K[sl], t,
                                            traj.height, traj.width, src_size=(H, W), target=gt)[1])
            bar.update(sl.stop - sl.start)
        gt_rgb, covisible = torch.cat(rgb), torch.cat(covisible)
        result = render_novel_view(src.frames, src.depth, source, traj, generator, seed=config.seed,
                                   renderer=config.renderer or DEFAULT_RENDERER, progress=bar)
        with serial():  # per-frame metrics are small ops
            smap = ssim_map(result.frames, gt_rgb)  # one map for the three regions
        metrics = {
            "psnr": psnr(result.frames, gt_rgb),
            "ssim": ssim_from_map(smap),
            "psnr_covisible": nan_to_none(psnr(result.frames, gt_rgb, covisible)),
            "psnr_disoccluded": nan_to_none(psnr(result.frames, gt_rgb, ~covisible)),
            "ssim_covisible": nan_to_none(ssim_from_map(smap, covisible)),
            "ssim_disoccluded": nan_to_none(ssim_from_map(smap, ~covisible)),
            "covisible_fraction": float(covisible.float().mean()),
            "warp_coverage": float(result.mask.float().mean()),
            "frames": int(result.frames.shape[0]),
            "height": traj.height,
            "width": traj.width,
            "generator": generator.name,
            "trajectory": config.trajectory,
            "mode": config.mode,
            "renderer": config.renderer or DEFAULT_RENDERER,
            "seed": config.seed,
        }
        with staged_output(config.output, DEMO_FILES) as out:  # the folder is replaced whole at the end
            write_video(out / "novel.mp4", result.frames, config.fps)
            write_video(out / "conditioning.mp4", conditioning_frames(result.warped, result.mask), config.fps)
            write_contact_sheet(out / "comparison.png", [src.frames[ti], result.warped, result.frames, gt_rgb],
                                labels=["source", "conditioning", "result", "ground truth"])
            traj.save(out / "trajectory.json")
            metrics["seconds"] = time.perf_counter() - start
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        bar.update(n)
    return metrics
