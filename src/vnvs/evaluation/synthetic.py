"""The ``synthetic`` benchmark: held-out procedural scenes with exact ground truth.

Scene ``i`` of a run with seed ``S`` is ``generate_scene(EVAL_SCENE_BASE + S * EVAL_SEED_STRIDE + i)``.
Training scenes are ``generate_scene(k)`` for ``k`` in ``0..N-1`` (``vnvs prepare --kind synthetic
--input N``, see :mod:`vnvs.data.builders.synthetic`), so the two never meet unless someone prepares
more than ``2**40`` (about 10^12) training scenes. A numpy seed fixes the scene, so distinct numbers
are distinct scenes.

Per scene (all drawn from ``numpy.random.default_rng(scene number)``): a source camera motion
(gentle, orbit, dolly or pan, as in training), the source video of ``frames`` frames at
``size x size``, and a target trajectory: ``--trajectory random`` (default) draws
``orbit:A+arc:B+dolly:C`` and a mode as the training builder does (within ``--max-orbit``
degrees), any other value is a preset or trajectory file used for every scene. The control signal
is the source forward-splatted with its exact depth (z-buffer, as at inference); the ground truth is
the scene rendered along the trajectory; co-visible target pixels are those whose surface point the
source frame sees (exact geometry, :func:`vnvs.synthetic.correspondence`), the rest is disoccluded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vnvs import __version__
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.data.builders._sampling import random_trajectory_spec
from vnvs.errors import InputError
from vnvs.geometry.control import control_mask, render_control
from vnvs.metrics import nan_to_none, psnr, ssim_from_map, ssim_map
from vnvs.synthetic import (
    correspondence,
    generate_scene,
    look_at_depth,
    render_source_video,
    render_views,
)
from vnvs.utils.atomic import atomic_path
from vnvs.utils.progress import progress_bar

EVAL_SCENE_BASE = 2**40
"""First scene number of the evaluation scenes; training scenes are numbered from 0."""
EVAL_SEED_STRIDE = 2**20
"""Scene numbers reserved per evaluation seed (so at most this many scenes per run)."""
MAX_EVAL_SEED = 2**20
"""Evaluation seeds are in ``[0, MAX_EVAL_SEED)``: every evaluation scene number stays below ``2**41``."""
SOURCE_MOTIONS = ("gentle", "orbit", "dolly", "pan")
"""Source camera motions, as in the training builder."""
METRICS = ["psnr", "ssim", "psnr_covisible", "ssim_covisible", "psnr_disoccluded", "ssim_disoccluded",
           "seconds_per_frame"]


def eval_scene_numbers(count: int, seed: int = 0) -> list[int]:
    """Scene numbers (``generate_scene`` seeds) of the ``count`` scenes of an evaluation with ``seed``.

    Example:
        >>> eval_scene_numbers(2, seed=1) == [2**40 + 2**20, 2**40 + 2**20 + 1]
        True
    """
    count, seed = int(count), int(seed)
    if count < 1:
        raise InputError(f"scenes must be positive, got {count}")
    if count > EVAL_SEED_STRIDE:
        raise InputError(f"scenes must be at most {EVAL_SEED_STRIDE}, got {count}")
    if not 0 <= seed < MAX_EVAL_SEED:
        raise InputError(f"seed must be in [0, {MAX_EVAL_SEED}) for the synthetic benchmark, got {seed}")
    start = EVAL_SCENE_BASE + seed * EVAL_SEED_STRIDE
    return list(range(start, start + count))


@dataclass
class EvalScene:
    """One benchmark scene: the control signal of the target view and its ground truth."""

    number: int
    """Scene number (``generate_scene`` seed)."""
    motion: str
    """Source camera motion."""
    trajectory: str
    """Target trajectory (preset spec or file)."""
    mode: str
    """Trajectory mode (``gradual`` / ``direct``)."""
    control: torch.Tensor
    """``(N, 9, H, W)`` control signal of the target frames."""
    target: torch.Tensor
    """``(N, 3, H, W)`` ground-truth target frames."""
    covisible: torch.Tensor
    """``(N, H, W)`` bool, target pixels the source frame sees."""

    def info(self, index: int) -> dict:
        """JSON description for the report."""
        return {"index": index, "name": f"scene-{self.number}", "scene": self.number, "motion": self.motion,
                "trajectory": self.trajectory, "mode": self.mode, "frames": int(self.target.shape[0]),
                "covisible_fraction": float(self.covisible.float().mean()),
                "warp_coverage": float(control_mask(self.control).float().mean())}


def make_scene(number: int, frames: int, size: int, trajectory: str = "random", mode: str = "gradual",
               max_orbit: float = 30.0) -> EvalScene:
    """Build benchmark scene ``number`` (see the module docstring)."""
    rng = np.random.default_rng(int(number))
    scene = generate_scene(int(number))
    motion = str(rng.choice(SOURCE_MOTIONS))
    S = int(size)
    video = render_source_video(scene, int(frames), size=(S, S), seed=int(rng.integers(0, 2**31 - 1)), motion=motion)
    look = look_at_depth(scene, video)
    if trajectory == "random":
        spec, mode = random_trajectory_spec(rng, max_orbit)
    else:
        spec = trajectory
    source = Cameras(video.w2c, video.K, S, S)
    traj = resolve_trajectory(spec, source, look, mode=mode)
    ti = traj.times.long()
    if int(ti.max()) >= video.frames.shape[0] or int(ti.min()) < 0:
        raise InputError(f"trajectory {spec!r} refers to source frame {int(ti.max())} but the scenes have {frames} frames")
    t = video.times[ti]
    gt = render_views(scene, traj.w2c, traj.K, traj.height, traj.width, t)  # local points: reused by correspondence
    _, covisible = correspondence(scene, video.w2c[ti], video.K[ti], t, traj.w2c, traj.K, t, traj.height, traj.width,
                                  src_size=(S, S), target=gt)
    target = gt.rgb
    control = render_control(video.frames, video.depth, source.K, source.w2c, traj.K, traj.w2c,
                             (traj.height, traj.width), times=ti)
    return EvalScene(int(number), motion, spec, mode, control, target, covisible)


CACHE_VERSION = 1
"""Bumped when the scene format changes; part of every cache key (with the vnvs version)."""


def scene_cache_path(cache: str | os.PathLike, number: int, frames: int, size: int, trajectory: str, mode: str,
                     max_orbit: float) -> Path | None:
    """Cache file of a benchmark scene, or None when it cannot be cached (a trajectory file may change)."""
    if trajectory != "random" and Path(trajectory).exists():
        return None
    key = [CACHE_VERSION, __version__, int(number), int(frames), int(size), trajectory,
           mode if trajectory != "random" else None, float(max_orbit) if trajectory == "random" else None]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return Path(cache) / f"scene-{int(number)}-{digest}.safetensors"


def load_scene(number: int, frames: int, size: int, trajectory: str = "random", mode: str = "gradual",
               max_orbit: float = 30.0, cache: str | os.PathLike | None = None) -> EvalScene:
    """:func:`make_scene`, through an optional cache folder (scenes are deterministic, rendering them is
    the slow part of a run; cached tensors are stored exactly, so results do not change)."""
    path = scene_cache_path(cache, number, frames, size, trajectory, mode, max_orbit) if cache is not None else None
    if path is not None and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in ("control", "target", "covisible")}
        return EvalScene(int(number), meta["motion"], meta["trajectory"], meta["mode"], t["control"], t["target"],
                         t["covisible"].bool())
    sc = make_scene(number, frames, size, trajectory, mode, max_orbit)
    if path is not None:
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file({"control": sc.control.contiguous(), "target": sc.target.contiguous(),
                       "covisible": sc.covisible.to(torch.uint8).contiguous()}, str(tmp),
                      metadata={"motion": sc.motion, "trajectory": sc.trajectory, "mode": sc.mode})
    return sc


def score(pred: torch.Tensor, target: torch.Tensor, regions: dict[str, torch.Tensor | None]) -> dict:
    """PSNR and SSIM of ``pred`` against ``target`` over each region (``{"": None}`` = the full frame).

    Keys are ``psnr``/``ssim`` plus ``_<region>``; empty regions give ``None``.
    """
    out = {}
    smap = ssim_map(pred, target)  # one map for every region
    for name, mask in regions.items():
        suffix = f"_{name}" if name else ""
        out[f"psnr{suffix}"] = nan_to_none(psnr(pred, target, mask))
        out[f"ssim{suffix}"] = nan_to_none(ssim_from_map(smap, mask))
    return out


def warm_up(generators: dict[str, object], control: torch.Tensor) -> None:
    """Run each generator once on the first frame, so one-time costs (CUDA context, kernel selection,
    lazy imports) stay out of the timings."""
    for gen in generators.values():
        gen(control[:1], seed=0)


def timed(generator, control: torch.Tensor, seed: int) -> tuple[torch.Tensor, float]:
    """The generator's frames (clamped to [0, 1], float32 on the CPU) and its seconds per frame."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    pred = generator(control, seed=seed)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    pred = pred.detach().float().cpu().clamp(0, 1)
    if pred.shape != (control.shape[0], 3) + tuple(control.shape[-2:]):
        raise ValueError(f"generator returned {tuple(pred.shape)} for a control signal {tuple(control.shape)}")
    return pred, seconds / max(1, control.shape[0])


def run_synthetic(generators: dict[str, object], specs: dict[str, str], *, scenes: int = 8, seed: int = 0,
                  frames: int = 25, size: int = 128, trajectory: str = "random", mode: str = "gradual",
                  max_orbit: float = 30.0, cache: str | os.PathLike | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Score every generator on every benchmark scene.

    Args:
        generators: ``{label: generator}``; specs: ``{label: name given}`` (for the report).
        scenes, seed: which held-out scenes (:func:`eval_scene_numbers`); ``seed`` also seeds the generators.
        frames, size: source video length and frame size.
        trajectory, mode, max_orbit: target trajectory (see the module docstring).
        cache: folder keeping rendered scenes between runs (see :func:`load_scene`).

    Returns:
        Scene descriptions and ``{label: {"spec", "generator", "items": [metrics per scene]}}``.
    """
    numbers = eval_scene_numbers(scenes, seed)
    items: list[dict] = []
    results = {label: {"spec": specs[label], "generator": str(getattr(g, "name", label)), "items": []}
               for label, g in generators.items()}
    with progress_bar("eval synthetic", total=len(numbers) * (1 + len(generators)), unit="run") as bar:
        for i, number in enumerate(numbers):
            bar.set_postfix_str(f"scene {i + 1}/{len(numbers)}: rendering")
            sc = load_scene(number, frames, size, trajectory, mode, max_orbit, cache)
            items.append(sc.info(i))
            if i == 0:
                warm_up(generators, sc.control)
            bar.update()
            regions = {"": None, "covisible": sc.covisible, "disoccluded": ~sc.covisible}
            for label, gen in generators.items():
                bar.set_postfix_str(f"scene {i + 1}/{len(numbers)}: {label}")
                pred, spf = timed(gen, sc.control, seed)
                results[label]["items"].append({**score(pred, sc.target, regions), "seconds_per_frame": spf})
                bar.update()
    return items, results
