"""Test-time finetuning gain (CogNVS's TTF) on held-out procedural scenes.

For each held-out benchmark scene (the `vnvs eval` synthetic benchmark: scene numbers disjoint from
training, the scene's exact depth, a random novel trajectory, ground-truth target frames), the model
renders the novel view before and after `vnvs finetune` on that scene's source video (the pairs the
model's kind calls for: co-visibility pairs for inpainting models, flow pairs for the others). PSNR /
SSIM over the full frame, the co-visible and the disoccluded region; the gain per scene and its
mean and standard deviation over scenes and evaluation seeds.

Usage: python benchmarks/ttf.py [MODEL ...] [--scenes 2] [--seeds 0 1] [--steps 30] [--frames 17]
  MODEL: model folders or `default` (the shipped model; the default). Writes benchmarks/results/ttf.json
  (models measured earlier with the same settings are kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import RESULTS, save
from vnvs.apps.config import FinetuneConfig
from vnvs.apps.finetune import finetune, resolve_model
from vnvs.evaluation.synthetic import SOURCE_MOTIONS, eval_scene_numbers, make_scene, score
from vnvs.generators.learned import LearnedGenerator
from vnvs.io import write_video
from vnvs.sampling import SamplingConfig
from vnvs.synthetic import generate_scene, render_source_video

KEYS = ("psnr", "ssim", "psnr_covisible", "psnr_disoccluded")


def source_video(number: int, frames: int, size: int):
    """The source video of benchmark scene ``number``, drawn exactly as :func:`make_scene` draws it."""
    rng = np.random.default_rng(int(number))
    scene = generate_scene(int(number))
    motion = str(rng.choice(SOURCE_MOTIONS))
    return render_source_video(scene, int(frames), size=(size, size), seed=int(rng.integers(0, 2**31 - 1)), motion=motion)


def evaluate(model: Path, sc, seed: int) -> dict:
    gen = LearnedGenerator(model)
    with torch.no_grad():
        pred = gen(sc.control, seed=seed).clamp(0, 1)
    return score(pred, sc.target, {"": None, "covisible": sc.covisible, "disoccluded": ~sc.covisible})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["default"])
    ap.add_argument("--scenes", type=int, default=2, help="scenes per evaluation seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="evaluation seeds (scene sets)")
    ap.add_argument("--steps", type=int, default=30, help="finetuning steps")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--pairs", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {}
    for spec in args.models:
        base = resolve_model(spec)
        size = SamplingConfig.load(base).resolution or 64
        rows = []
        for seed in args.seeds:
            for number in eval_scene_numbers(args.scenes, seed):
                sc = make_scene(number, args.frames, size)
                video = source_video(number, args.frames, size)
                with tempfile.TemporaryDirectory() as tmp:
                    tmp = Path(tmp)
                    write_video(tmp / "clip.mp4", video.frames, fps=10, crf=10)
                    np.save(tmp / "depth.npy", video.depth.numpy())
                    before = evaluate(base, sc, seed)
                    t = time.perf_counter()
                    ft = finetune(FinetuneConfig(video=tmp / "clip.mp4", output=tmp / "ft", generator=str(base),
                                                 depth=str(tmp / "depth.npy"), steps=args.steps, pairs=args.pairs,
                                                 seed=seed, checkpoint_every=args.steps), warn_unused_depth=False)
                    seconds = time.perf_counter() - t
                    after = evaluate(tmp / "ft", sc, seed)
                row = {"seed": seed, "scene": number, "trajectory": sc.trajectory, "kind": ft["kind"],
                       "finetune_seconds": seconds, "final_loss": ft["final_loss"],
                       "before": {k: before[k] for k in KEYS}, "after": {k: after[k] for k in KEYS},
                       "gain": {k: (after[k] - before[k]) if None not in (after[k], before[k]) else None for k in KEYS}}
                print(spec, number, {k: round(v, 3) for k, v in row["gain"].items() if v is not None}, flush=True)
                rows.append(row)
        summary = {}
        for k in KEYS:
            gains = [r["gain"][k] for r in rows if r["gain"][k] is not None]
            summary[k] = {"before": statistics.mean(r["before"][k] for r in rows if r["before"][k] is not None),
                          "after": statistics.mean(r["after"][k] for r in rows if r["after"][k] is not None),
                          "gain_mean": statistics.mean(gains) if gains else None,
                          "gain_std": statistics.stdev(gains) if len(gains) > 1 else None,
                          "gain_min": min(gains) if gains else None, "gain_max": max(gains) if gains else None}
        results[base.name] = {"model": str(base), "size": size, "rows": rows, "summary": summary,
                              "finetune_seconds_mean": statistics.mean(r["finetune_seconds"] for r in rows)}
    settings = {"scenes_per_seed": args.scenes, "seeds": args.seeds, "steps": args.steps, "frames": args.frames,
                "pairs": args.pairs, "threads": 1}
    previous = RESULTS / "ttf.json"
    if previous.is_file():  # models measured earlier with the same settings stay in the file
        old = json.loads(previous.read_text())
        if old.get("settings") == settings:
            results = {**old["models"], **results}
    path = save("ttf", {"settings": settings, "models": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
