"""Training-inference gap: end-point error between flow-derived and depth-derived correspondences.

Scaling4D trains on correspondences from optical flow between two clips of a monocular video and
infers with correspondences from depth -> point cloud -> z-buffer render; on static real videos it
reports an end-point error (EPE) of 1.18 px between the two (RAFT, 480x480). This script measures
the same on static procedural scenes, where depth and cameras are exact.

For each of ``--scenes`` static scenes (``generate_scene(1000 + i, SceneConfig(static=True))``) the
source camera follows ``source_camera_path(..., num_frames=49, motion="gentle")`` (the path of
``render_source_video``; only the frames used are rendered). For frame pairs ``(i, i + k)``,
``i`` in ``--starts`` and ``k`` in ``--offsets``, on the target grid of frame ``i + k``:

  * flow path (training): ``flow_with_consistency(estimator, frame_i, frame_i+k)``, then
    ``forward_splat_flow(frame_i, flow_fw, mode="random", seed=...)`` -> ``C_flow``, mask; rows
    ``all`` (every splatted source pixel) and ``consistent`` (only source pixels passing the
    forward-backward check, ``valid=`` as the data builder does);
  * depth path (inference): ``forward_splat(frame_i, exact depth_i, K_i, w2c_i, K_i+k, w2c_i+k,
    mode="zbuffer")`` -> ``C_depth``, mask;
  * EPE = ``|C_flow - C_depth|`` (pixels) over target pixels where both masks are set, pooled over
    all pixels of all pairs: mean, median, fraction within 1 px / 3 px, and the fraction of target
    pixels compared;
  * floors: ``|C_depth - C_exact|`` over pixels where the depth splat landed and the exact
    correspondence (`vnvs.synthetic.correspondence`, exact visibility) is visible: the nearest-pixel
    rounding of splatting (the depth path's own error); and ``|C_flow - C_exact|`` likewise (the
    flow path's error against ground truth);
  * motion: the exact displacement ``|p - C_exact(p)|`` of visible target pixels (how far the
    pixels move between the paired frames).

Flow backends: DIS medium (default), DIS fast, Farneback (RAFT when its weights are present and
``--raft`` is given). Sizes 480x480 (the paper's) and 256x256. Statistics are also kept per offset
``k``; medians come from a histogram of errors rounded to 0.001 px (flow-vs-depth errors are
distances between integer source pixels: 0, 1, 1.414, 2, ...).

Usage: python benchmarks/epe.py [--scenes 8] [--sizes 480 256] [--offsets 1 4 8 16] [--starts 0 16 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import save
from vnvs.estimators.flow import flow_with_consistency, get_flow_estimator
from vnvs.geometry import forward_splat, forward_splat_flow, pixel_grid
from vnvs.synthetic import SceneConfig, clip_times, correspondence, generate_scene, render, source_camera_path

PAPER_EPE = 1.18  # px, Scaling4D: RAFT flow vs. depth correspondence on static real videos, 480x480
BIN = 0.001  # px, histogram bin of the medians (errors are rounded to it)
NBINS = 50001  # up to 50 px; larger errors go to the last bin


class Stats:
    """Pooled error statistics: sum, count, within-thresholds, histogram (for the median)."""

    def __init__(self) -> None:
        self.sum = 0.0
        self.n = 0
        self.within1 = 0
        self.within3 = 0
        self.total = 0  # target pixels considered (for the coverage of the compared set)
        self.hist = np.zeros(NBINS, np.int64)

    def add(self, err: torch.Tensor, total: int) -> None:
        e = err.double()
        self.sum += float(e.sum())
        self.n += int(e.numel())
        self.within1 += int((e <= 1.0).sum())
        self.within3 += int((e <= 3.0).sum())
        self.total += total
        idx = (e / BIN).round().clamp(max=NBINS - 1).long().numpy()
        self.hist += np.bincount(idx, minlength=NBINS)

    def summary(self) -> dict:
        if self.n == 0:
            return {"mean": None, "median": None, "within_1px": None, "within_3px": None, "pixels": 0, "coverage": 0.0}
        cum = np.cumsum(self.hist)
        med = int(np.searchsorted(cum, (self.n + 1) / 2)) * BIN
        return {"mean": self.sum / self.n, "median": med, "within_1px": self.within1 / self.n,
                "within_3px": self.within3 / self.n, "pixels": self.n, "coverage": self.n / max(self.total, 1)}


def epe(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``|a - b|`` over ``mask``: ``a, b (N, 2, H, W)``, ``mask (N, H, W)`` -> 1-D errors."""
    return (a - b).pow(2).sum(1).sqrt()[mask]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[480, 256])
    ap.add_argument("--offsets", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--starts", type=int, nargs="+", default=[0, 16, 32])
    ap.add_argument("--frames", type=int, default=49, help="length of the source clip (the path spans it)")
    ap.add_argument("--motion", default="gentle")
    ap.add_argument("--backends", nargs="+", default=["dis", "dis-fast", "farneback"])
    ap.add_argument("--raft", action="store_true", help="also RAFT (needs torchvision and its weights)")
    args = ap.parse_args()
    backends = list(args.backends) + (["raft"] if args.raft else [])
    pairs = [(i, i + k) for i in args.starts for k in args.offsets if i + k < args.frames]
    t_start = time.perf_counter()

    results, seconds = {}, {"render": 0.0, "exact": 0.0, "depth_splat": 0.0, "flow": {b: 0.0 for b in backends}}
    for size in args.sizes:
        H = W = size
        keys = [(b, v) for b in backends for v in ("all", "consistent")]
        flow_depth = {key: {k: Stats() for k in ["all"] + args.offsets} for key in keys}
        flow_exact = {key: {k: Stats() for k in ["all"] + args.offsets} for key in keys}
        depth_exact = {k: Stats() for k in ["all"] + args.offsets}
        motion = {k: Stats() for k in ["all"] + args.offsets}  # exact |target pixel - source pixel|
        estimators = {b: get_flow_estimator(b) for b in backends}
        for s in range(args.scenes):
            seed = 1000 + s
            scene = generate_scene(seed, SceneConfig(static=True))
            w2c_all, K_all = source_camera_path(scene, args.frames, H, W, seed=seed, motion=args.motion)
            times_all = clip_times(args.frames)
            used = sorted({f for p in pairs for f in p})
            t = time.perf_counter()
            out = render(scene, w2c_all[used], K_all[used], H, W, times_all[used], local_points=False)
            seconds["render"] += time.perf_counter() - t
            pos = {f: n for n, f in enumerate(used)}
            src = torch.tensor([pos[i] for i, _ in pairs])
            tgt = torch.tensor([pos[j] for _, j in pairs])
            frames_s, frames_t, depth_s = out.rgb[src], out.rgb[tgt], out.depth[src]
            w2c_s, K_s, w2c_t, K_t = w2c_all[used][src], K_all[used][src], w2c_all[used][tgt], K_all[used][tgt]
            ks = torch.tensor([j - i for i, j in pairs])
            n_pix = H * W

            t = time.perf_counter()
            c_exact, visible = correspondence(scene, w2c_s, K_s, times_all[used][src], w2c_t, K_t,
                                              times_all[used][tgt], H, W)
            seconds["exact"] += time.perf_counter() - t
            t = time.perf_counter()
            dsp = forward_splat(frames_s, depth_s, K_s, w2c_s, K_t, w2c_t, mode="zbuffer")
            seconds["depth_splat"] += time.perf_counter() - t
            both = dsp.mask & visible
            grid = pixel_grid(H, W)[None]
            for p in range(len(pairs)):
                e = epe(dsp.corr[p:p + 1], c_exact[p:p + 1], both[p:p + 1])
                d = epe(grid, c_exact[p:p + 1], visible[p:p + 1])
                for k in ("all", int(ks[p])):
                    depth_exact[k].add(e, n_pix)
                    motion[k].add(d, n_pix)

            for b in backends:
                t = time.perf_counter()
                flow_fw, _, valid = flow_with_consistency(estimators[b], frames_s, frames_t)
                seconds["flow"][b] += time.perf_counter() - t
                for variant in ("all", "consistent"):
                    fsp = forward_splat_flow(frames_s, flow_fw, valid=valid if variant == "consistent" else None,
                                             mode="random", seed=seed)
                    m_d = fsp.mask & dsp.mask
                    m_x = fsp.mask & visible
                    for p in range(len(pairs)):
                        e_d = epe(fsp.corr[p:p + 1], dsp.corr[p:p + 1], m_d[p:p + 1])
                        e_x = epe(fsp.corr[p:p + 1], c_exact[p:p + 1], m_x[p:p + 1])
                        for k in ("all", int(ks[p])):
                            flow_depth[(b, variant)][k].add(e_d, n_pix)
                            flow_exact[(b, variant)][k].add(e_x, n_pix)
            print(f"{size}px scene {seed} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

        def table(d):
            return {str(k): v.summary() for k, v in d.items()}

        results[str(size)] = {
            "flow_vs_depth": {f"{b}/{v}": table(flow_depth[(b, v)]) for b, v in keys},
            "flow_vs_exact": {f"{b}/{v}": table(flow_exact[(b, v)]) for b, v in keys},
            "depth_vs_exact": table(depth_exact),
            "motion": table(motion),
        }
        for b, v in keys:
            r = results[str(size)]["flow_vs_depth"][f"{b}/{v}"]["all"]
            print(f"{size}px {b:10s} {v:10s} EPE mean {r['mean']:.3f} px, median {r['median']:.3f} px, "
                  f"<=1px {r['within_1px']:.3f}, <=3px {r['within_3px']:.3f}, coverage {r['coverage']:.3f} "
                  f"(paper {PAPER_EPE} px)", flush=True)
        r = results[str(size)]["depth_vs_exact"]["all"]
        print(f"{size}px depth vs exact: mean {r['mean']:.3f} px, median {r['median']:.3f} px", flush=True)

    total = time.perf_counter() - t_start
    save("epe", {
        "paper_epe_px": PAPER_EPE, "scenes": args.scenes, "scene_seeds": [1000 + s for s in range(args.scenes)],
        "frames": args.frames, "motion": args.motion, "offsets": args.offsets, "starts": args.starts,
        "pairs_per_scene": len(pairs), "backends": backends, "sizes": args.sizes,
        "results": results, "seconds": {**seconds, "total": total},
    })
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
