"""``vnvs reconstruct`` (grid folder -> 4D Gaussian scene folder) and ``vnvs render-scene`` (scene -> video)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch

from vnvs.apps.render_grid import grid_from_render_output, is_render_output
from vnvs.apps.recon_config import RENDER_SCENE_FILES, ReconstructConfig, RenderSceneConfig, SCENE_FILES
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.errors import InputError
from vnvs.generators import get_generator
from vnvs.io.grid import read_grid
from vnvs.io.video import write_video
from vnvs.metrics.image import psnr
from vnvs.recon.formats import read_scene, write_scene
from vnvs.recon.optimize import reconstruct, render_views
from vnvs.recon.stage2 import generator_refiner
from vnvs.utils.atomic import staged_output
from vnvs.utils.device import resolve_device

log = logging.getLogger(__name__)


def parse_columns(spec: str, T: int) -> list[int]:
    """``--ply-times``: ``middle``, ``first``, ``last``, ``all`` or comma-separated columns in ``[0, T)``.

    Example:
        >>> parse_columns("0,middle,last", 5)
        [0, 2, 4]
    """
    out: list[int] = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        named = {"middle": [T // 2], "first": [0], "last": [T - 1], "all": list(range(T))}.get(part)
        if named is None:
            try:
                c = int(part)
            except ValueError:
                raise InputError(f"ply times: {part!r} is not a column number, middle, first, last or all") from None
            if not 0 <= c < T:
                raise InputError(f"ply times: column {c} is outside the grid's 0..{T - 1}")
            named = [c]
        out += [c for c in named if c not in out]
    return sorted(out)


def _parse_views(spec: str, V: int) -> list[int]:
    views = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        try:
            v = int(part)
        except ValueError:
            raise InputError(f"holdout views: {part!r} is not a view number") from None
        if not 0 <= v < V:
            raise InputError(f"holdout views: view {v} is outside the grid's 0..{V - 1}")
        views.append(v)
    if len(set(views)) >= V:
        raise InputError("holdout views: at least one view must remain to fit")
    return sorted(set(views))


def _rounded(x: torch.Tensor) -> list:
    return torch.round(x.double() * 1e6).div(1e6).tolist()


def checkpoint_dir(output: Path) -> Path:
    """Where an interrupted reconstruction's checkpoints live (beside the scene folder)."""
    return output.parent / f".{output.name}.checkpoints"


def run_reconstruct(config: ReconstructConfig) -> dict:
    """Fit a scene to a grid folder and write the scene folder atomically. Returns a summary."""
    start = time.perf_counter()
    grid = grid_from_render_output(config.input) if is_render_output(config.input) else read_grid(config.input)
    V, T = grid.views, grid.times
    H, W = grid.size
    if grid.depth is None:
        raise InputError(f"{config.input}: reconstruction needs the grid's depth (depth.npz); write the grid with depth")
    columns = parse_columns(config.ply_times, T)
    holdout = _parse_views(config.holdout_views, V)
    train = [v for v in range(V) if v not in holdout]
    if config.output.exists() and not config.output.is_dir():
        raise InputError(f"{config.output}: exists and is not a folder")
    ckpt = checkpoint_dir(config.output)
    stage2 = None
    if config.stage2 is not None:
        options = {"device": config.recon.device} if config.recon.device is not None else {}
        if config.stage2_sampling_steps is not None:
            options["steps"] = config.stage2_sampling_steps
        stage2 = generator_refiner(get_generator(config.stage2, **options), grid, strength=config.stage2_strength,
                                   seed=config.seed)
    result = reconstruct(grid, config.recon, train_views=train, seed=config.seed, checkpoint_dir=ckpt,
                         resume=config.resume, stage2=stage2, stage2_steps=config.stage2_steps)
    bg = torch.ones(3) if config.recon.background == "white" else torch.zeros(3)
    scores = {}
    mid = T // 2
    for name, views in (("train", train), ("heldout", holdout)):
        if views:
            imgs, _, _ = render_views(result.scene, grid.w2c[views, mid], grid.K[views, mid],
                                      grid.time[mid].repeat(len(views)), H, W, bg, config.recon.backend)
            scores[f"psnr_{name}_middle_column"] = round(psnr(imgs, grid.frames[views, mid]), 3)
    valid_depth = grid.depth[grid.valid]
    info = {
        "height": H, "width": W, "fps": float(grid.fps), "views": V, "times": T,
        "time_range": [float(grid.time.min()), float(grid.time.max())],
        "time": [round(float(t), 6) for t in grid.time], "time_index": [int(i) for i in grid.time_index],
        "look_at_depth": float(grid.meta.get("look_at_depth", float(valid_depth.median()) if valid_depth.numel() else 1.0)),
        "cameras": {"w2c": _rounded(grid.w2c), "K": _rounded(grid.K)},
        "source": str(config.input), "train_views": train, "holdout_views": holdout, "seed": config.seed,
        "settings": config.recon.to_dict(), "steps": result.steps,
        "stage2": None if config.stage2 is None else {"generator": config.stage2, "steps": config.stage2_steps,
                                                      "strength": config.stage2_strength}, "seconds": round(result.seconds, 2),
        "scores": scores,
    }
    with staged_output(config.output, SCENE_FILES) as tmp:
        files = write_scene(tmp, result.scene.cpu(), info, columns, grid.time)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"gaussians": len(result.scene), "steps": result.steps, "seconds": round(time.perf_counter() - start, 2),
            **scores, "files": files}


def run_render_scene(config: RenderSceneConfig) -> dict:
    """Render a scene folder along a trajectory (presets relative to a grid view) to ``render.mp4``."""
    scene, doc = read_scene(config.scene)
    scene = scene.to(resolve_device(config.device))
    H, W, T, V = int(doc["height"]), int(doc["width"]), int(doc["times"]), int(doc["views"])
    if config.view >= V:
        raise InputError(f"view {config.view} is outside the scene's grid views 0..{V - 1}")
    try:
        w2c = torch.tensor(doc["cameras"]["w2c"], dtype=torch.float32)[config.view]
        K = torch.tensor(doc["cameras"]["K"], dtype=torch.float32)[config.view]
        times = torch.tensor(doc["time"], dtype=torch.float32)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise InputError(f"{config.scene}/scene.json: malformed cameras or times ({e})") from None
    source = Cameras(w2c, K, H, W)
    traj = resolve_trajectory(config.trajectory, source, float(doc.get("look_at_depth", 1.0)), mode=config.mode,
                              num_frames=config.frames)
    if config.time is not None:
        frame_times = torch.full((len(traj),), float(config.time))
    else:  # the trajectory's time index names grid columns (bullet time holds one)
        frame_times = times[traj.times.clamp(0, T - 1)]
    bg = torch.ones(3) if config.background == "white" else torch.zeros(3)
    imgs, alpha, _ = render_views(scene, traj.w2c, traj.K, frame_times, traj.height, traj.width, bg, config.backend,
                                  desc="render-scene")
    fps = float(config.fps if config.fps is not None else doc.get("fps", 24.0))
    traj.meta = {**traj.meta, "scene": str(config.scene)}
    with staged_output(config.output, RENDER_SCENE_FILES) as tmp:
        write_video(tmp / "render.mp4", imgs, fps)
        traj.save(tmp / "trajectory.json")
    return {"frames": len(traj), "height": traj.height, "width": traj.width,
            "coverage": round(float(alpha.mean()), 4), "files": ["render.mp4", "trajectory.json"]}
