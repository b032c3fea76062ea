"""Renderers of the control signal on held-out procedural scenes against exact ground truth.

For each evaluation seed, the scenes of `vnvs.evaluation.synthetic.eval_scene_numbers(scenes, seed)`,
built as that module's `make_scene` builds them (source motion, source video, random target trajectory
drawn from the scene number; the z-buffer control signal is checked equal to `make_scene`'s on the
first scene). Each method carries the source frame of each target time to the target camera:

  * `zbuffer`: `forward_splat` (one point per source pixel, nearest target pixel, z-buffer);
  * `zbuffer + fill_cracks`: the same, then `fill_cracks` twice with `min_neighbours=4`;
  * `soft splat`: `soft_splat` (bilinear weights, soft depth test);
  * `mesh`: `mesh_render` (depth mesh, discontinuities cut, z-buffered, interpolated).

Measured per method, against the exact co-visible region (target pixels whose surface point the
source frame sees): PSNR of the warped frame over all co-visible pixels (pixels the method did not
reach are black there, as the conditioning shows them), PSNR over the co-visible pixels it reached,
coverage of the co-visible region, crack fraction (co-visible pixels not reached), seconds per
frame (min over repeats, whole clip) and the ratio to the z-buffer splat's time in the same run.
Then the generators `warp+inpaint`, `warp+inpaint+refine` (`vnvs render`'s default) and `default` are fed
each method's control signal and scored full-frame, co-visible and disoccluded against the ground truth.

Usage: python benchmarks/renderers.py [--seeds 0 1] [--scenes 6] [--frames 25] [--size 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import save
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.data.builders._sampling import random_trajectory_spec
from vnvs.evaluation.synthetic import SOURCE_MOTIONS, eval_scene_numbers, make_scene
from vnvs.generators import get_generator
from vnvs.geometry import build_control_signal, fill_cracks, forward_splat, mesh_render, render_control, soft_splat
from vnvs.metrics import psnr
from vnvs.synthetic import correspondence, generate_scene, look_at_depth, render_source_video, render_views

METHODS = ("zbuffer", "zbuffer + fill_cracks", "soft splat", "mesh")


def build(number: int, frames: int, size: int):
    """Source video, target cameras, ground truth and co-visibility of benchmark scene ``number``,
    drawn exactly as :func:`vnvs.evaluation.synthetic.make_scene` draws them."""
    rng = np.random.default_rng(int(number))
    scene = generate_scene(int(number))
    motion = str(rng.choice(SOURCE_MOTIONS))
    video = render_source_video(scene, frames, size=(size, size), seed=int(rng.integers(0, 2**31 - 1)), motion=motion)
    look = look_at_depth(scene, video)
    spec, mode = random_trajectory_spec(rng, 30.0)
    source = Cameras(video.w2c, video.K, size, size)
    traj = resolve_trajectory(spec, source, look, mode=mode)
    ti = traj.times.long()
    t = video.times[ti]
    target = render_views(scene, traj.w2c, traj.K, traj.height, traj.width, t, local_points=False).rgb
    _, covisible = correspondence(scene, video.w2c[ti], video.K[ti], t, traj.w2c, traj.K, t, traj.height, traj.width,
                                  src_size=(size, size))
    args = (video.frames[ti], video.depth[ti], video.K[ti], video.w2c[ti], traj.K, traj.w2c)
    return {"number": number, "motion": motion, "trajectory": spec, "mode": mode, "args": args, "ti": ti,
            "video": video, "traj": traj, "target": target, "covisible": covisible}


def run_method(name: str, args, size: int):
    """(warped, mask, corr) of one method on a clip."""
    if name == "zbuffer":
        r = forward_splat(*args)
        return r.warped, r.mask, r.corr
    if name == "zbuffer + fill_cracks":
        r = forward_splat(*args)
        warped, mask = r.warped, r.mask[:, None]
        for _ in range(2):
            warped, mask = fill_cracks(warped, mask, min_neighbours=4)
        # the filled pixels carry no correspondence of their own: C stays the splat's (0 there)
        return warped, mask[:, 0], r.corr
    if name == "soft splat":
        r = soft_splat(*args)
        return r.warped, r.mask, r.corr
    if name == "mesh":
        r = mesh_render(*args)
        return r.warped, r.mask, r.corr
    raise ValueError(name)


def min_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def spread(values: list[float]) -> dict:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals),
            "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generators", nargs="*", default=["warp+inpaint", "warp+inpaint+refine", "default"])
    args = ap.parse_args()
    started = time.perf_counter()
    gens = {g: get_generator(g) for g in args.generators}
    per_seed = {}
    scenes_info = []
    for seed in args.seeds:
        numbers = eval_scene_numbers(args.scenes, seed)
        acc: dict = {m: {"psnr_covisible": [], "psnr_covisible_reached": [], "coverage": [], "crack_fraction": [],
                         "seconds_per_frame": [], "time_ratio": []} for m in METHODS}
        gen_acc: dict = {g: {m: {"psnr": [], "psnr_covisible": [], "psnr_disoccluded": []} for m in METHODS} for g in gens}
        for i, number in enumerate(numbers):
            sc = build(number, args.frames, args.size)
            if i == 0 and seed == args.seeds[0]:  # the mirror of make_scene is exact
                ref = make_scene(number, args.frames, args.size)
                v, tr = sc["video"], sc["traj"]
                mine = render_control(v.frames, v.depth, v.K, v.w2c, tr.K, tr.w2c, (tr.height, tr.width), times=sc["ti"])
                assert torch.equal(mine, ref.control) and torch.equal(sc["covisible"], ref.covisible)
            cov, target = sc["covisible"], sc["target"]
            n = target.shape[0]
            scenes_info.append({"seed": seed, "scene": number, "motion": sc["motion"], "trajectory": sc["trajectory"],
                                "mode": sc["mode"], "covisible_fraction": float(cov.float().mean())})
            times = {m: min_seconds(lambda m=m: run_method(m, sc["args"], args.size), args.repeats) / n for m in METHODS}
            for m in METHODS:
                warped, mask, corr = run_method(m, sc["args"], args.size)
                a = acc[m]
                reached = (mask & cov).sum().item()
                a["psnr_covisible"].append(psnr(warped.clamp(0, 1), target, cov))
                a["psnr_covisible_reached"].append(psnr(warped.clamp(0, 1), target, cov & mask))
                a["coverage"].append(reached / max(1, int(cov.sum())))
                a["crack_fraction"].append(1.0 - a["coverage"][-1])
                a["seconds_per_frame"].append(times[m])
                a["time_ratio"].append(times[m] / times["zbuffer"])
                control = build_control_signal(sc["args"][0], corr, warped.clamp(0, 1), mask)
                for g, gen in gens.items():
                    pred = gen(control, seed=seed).detach().float().clamp(0, 1)
                    b = gen_acc[g][m]
                    b["psnr"].append(psnr(pred, target))
                    b["psnr_covisible"].append(psnr(pred, target, cov))
                    b["psnr_disoccluded"].append(psnr(pred, target, ~cov) if (~cov).any() else None)
            print(f"seed {seed} scene {i}: " + ", ".join(
                f"{m} {acc[m]['psnr_covisible'][-1]:.2f} dB cov {acc[m]['coverage'][-1]:.4f} "
                f"{1e3 * times[m]:.2f} ms/f" for m in METHODS), flush=True)
        per_seed[str(seed)] = {
            "methods": {m: {k: statistics.fmean([x for x in v if x is not None]) for k, v in acc[m].items()} for m in METHODS},
            "generators": {g: {m: {k: statistics.fmean([x for x in v if x is not None]) for k, v in d.items()}
                               for m, d in gen_acc[g].items()} for g in gens},
        }
    seeds = [str(s) for s in args.seeds]
    summary = {m: {k: spread([per_seed[s]["methods"][m][k] for s in seeds]) for k in per_seed[seeds[0]]["methods"][m]}
               for m in METHODS}
    gen_summary = {g: {m: {k: spread([per_seed[s]["generators"][g][m][k] for s in seeds])
                           for k in per_seed[seeds[0]]["generators"][g][m]} for m in METHODS} for g in gens}
    save("renderers", {
        "seeds": args.seeds, "scenes_per_seed": args.scenes, "frames": args.frames, "size": args.size,
        "repeats": args.repeats, "generators": {g: str(getattr(gen, "name", g)) for g, gen in gens.items()},
        "methods": summary, "generator_in_loop": gen_summary, "per_seed": per_seed, "scenes": scenes_info,
        "seconds": time.perf_counter() - started,
    })


if __name__ == "__main__":
    main()
