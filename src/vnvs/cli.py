"""The ``vnvs`` command.

Every subcommand reports user errors (bad files, malformed trajectories, impossible options) as one
line ``error: ...`` on stderr with exit code 2, and never leaves a partial output file behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vnvs import __version__
from vnvs.errors import VnvsError
from vnvs.utils.argtypes import positive_int as _positive_int

EXIT_USER_ERROR = 2


def _add_trajectory_args(p: argparse.ArgumentParser, default: str | None = "orbit:30") -> None:
    from vnvs.cameras.presets import PRESETS

    names = ", ".join(PRESETS)
    p.add_argument("--trajectory", "-t", default=default, required=default is None,
                   help=f"preset NAME:PARAMS ({names}; combine with '+') or a trajectory file "
                        "(vnvs JSON, transforms.json, COLMAP text folder, MegaSaM .npz, TrajectoryCrafter .txt)"
                        + (f"; default {default}" if default else ""))
    p.add_argument("--mode", choices=["gradual", "direct"], default="gradual",
                   help="gradual: reach the full offset at the last frame; direct: full offset from the first frame")


def _generator_arg(p: argparse.ArgumentParser) -> None:
    from vnvs.generators import DEFAULT_GENERATOR, GENERATORS

    p.add_argument("--generator", "-g", default=DEFAULT_GENERATOR,
                   help=f"what fills disoccluded regions: {', '.join(GENERATORS)} (default {DEFAULT_GENERATOR})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vnvs", description="Re-render monocular videos from new camera paths.")
    parser.add_argument("--version", action="version", version=f"vnvs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the whole pipeline offline on a procedural scene with ground truth")
    p.add_argument("--output", "-o", type=Path, default=Path("vnvs_demo"), help="output folder (default vnvs_demo)")
    p.add_argument("--seed", type=int, default=0, help="scene and generator seed (default 0)")
    p.add_argument("--frames", type=_positive_int, default=49, help="number of frames (default 49)")
    p.add_argument("--size", type=_positive_int, default=256, help="frame height and width (default 256)")
    _add_trajectory_args(p)
    _generator_arg(p)
    p.set_defaults(func=_cmd_demo)

    from vnvs.estimators.depth import DEFAULT_DEPTH_MODEL

    p = sub.add_parser("render", help="re-render a video along a new camera path (depth from a model or a file)")
    p.add_argument("video", type=Path, help="input video (any length, size and aspect ratio)")
    p.add_argument("--depth", "-d", default=DEFAULT_DEPTH_MODEL,
                   help="depth file (.npy/.npz, one map per frame) or transformers depth model (hub id or "
                        f"local folder); default {DEFAULT_DEPTH_MODEL}")
    p.add_argument("--depth-kind", choices=["metric", "relative"], default=None,
                   help="what a depth file holds (default metric)")
    p.add_argument("--align-depth", choices=["auto", "on", "off"], default="auto",
                   help="align depth to one scale along optical flow (default auto: relative depth only)")
    p.add_argument("--output", "-o", type=Path, default=Path("vnvs_render"), help="output folder (default vnvs_render)")
    p.add_argument("--fov", type=float, default=None,
                   help="source field of view in degrees across the longer side (default: from --cameras, else 60)")
    p.add_argument("--intrinsics", type=Path, default=None, help="source intrinsics file (JSON or text)")
    p.add_argument("--cameras", type=Path, default=None,
                   help="source camera poses (transforms.json, COLMAP text, MegaSaM npz, vnvs JSON); default static")
    p.add_argument("--stride", type=_positive_int, default=1, help="use every N-th frame")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="use at most N frames")
    p.add_argument("--size", type=_positive_int, default=None, help="resize so the shorter side is N pixels")
    p.add_argument("--chunk-frames", type=_positive_int, default=16,
                   help="frames per chunk through depth, rendering and generation (default 16)")
    p.add_argument("--save-depth", action="store_true", help="also write depth.npz (the depth used)")
    p.add_argument("--device", default=None, help="device for the depth model (default: cuda when available)")
    p.add_argument("--depth-size", type=_positive_int, default=518,
                   help="longer side of the depth model's input in pixels (default 518)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    _add_trajectory_args(p)
    _generator_arg(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("trajectory", help="write a preset or convert a camera file to a vnvs trajectory JSON")
    p.add_argument("spec", help="preset NAME:PARAMS or a camera/trajectory file")
    p.add_argument("--output", "-o", type=Path, required=True, help="trajectory JSON to write")
    p.add_argument("--frames", type=_positive_int, default=49, help="number of frames (default 49)")
    p.add_argument("--height", type=_positive_int, default=480, help="image height for presets (default 480)")
    p.add_argument("--width", type=_positive_int, default=480, help="image width for presets (default 480)")
    p.add_argument("--fov", type=float, default=60.0, help="source field of view for presets (default 60)")
    p.add_argument("--depth", type=float, default=1.0, help="look-at distance for presets (default 1)")
    p.add_argument("--mode", choices=["gradual", "direct"], default="gradual")
    p.set_defaults(func=_cmd_trajectory)

    _add_prepare_parser(sub)
    from vnvs.evaluation.cli import add_eval_parser

    add_eval_parser(sub)
    from vnvs.training.cli import add_train_parser

    add_train_parser(sub).set_defaults(func=_cmd_train)
    return parser


def _add_prepare_parser(sub) -> None:
    from vnvs.data.config import PrepareConfig
    from vnvs.data.schema import PREPARE_KINDS

    d = PrepareConfig()
    p = sub.add_parser("prepare", help="cut training samples (pairs, grids) from videos or procedural scenes into shards",
                       description="Build training samples and store them as shards with an index.json; "
                                   "reruns skip finished inputs. See docs/data.md.")
    p.add_argument("--input", "-i", required=True,
                   help="video file, folder (searched recursively) or glob; for --kind synthetic, a number of scenes")
    p.add_argument("--output", "-o", type=Path, required=True, help="output folder (shards/ and index.json)")
    p.add_argument("--kind", "-k", required=True, choices=PREPARE_KINDS, help="what to build")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this machine (process pool); ray: Ray Data, on a cluster when RAY_ADDRESS is set")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel processes (local) or CPUs of a local Ray instance (default: CPU count)")
    p.add_argument("--limit", type=_positive_int, default=None, help="use only the first N inputs (sorted)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--size", type=_positive_int, default=d.size, help=f"frame height and width (default {d.size})")
    p.add_argument("--clip-frames", type=_positive_int, default=d.clip_frames,
                   help=f"frames per clip (default {d.clip_frames})")
    p.add_argument("--pairs-per-video", type=_positive_int, default=d.pairs_per_video,
                   help=f"candidate samples per input before dropping (default {d.pairs_per_video})")
    p.add_argument("--frame-stride", type=_positive_int, default=d.frame_stride,
                   help=f"step between clip frames, in source frames (default {d.frame_stride})")
    p.add_argument("--min-offset", type=_positive_int, default=d.min_offset,
                   help=f"flow-pairs: smallest source-target offset in frames (default {d.min_offset})")
    p.add_argument("--max-offset", type=_positive_int, default=d.max_offset,
                   help=f"flow-pairs: largest source-target offset in frames (default {d.max_offset})")
    p.add_argument("--views", type=_positive_int, default=d.views, help=f"grids: views per grid (default {d.views})")
    p.add_argument("--flow", default=d.flow, help=f"optical flow backend for flow-pairs (default {d.flow})")
    p.add_argument("--depth-dir", type=Path, default=None, help="covis: depth files <stem>.npz|.npy")
    p.add_argument("--cameras-dir", type=Path, default=None, help="covis: camera files <stem>.npz|.json|.txt")
    p.set_defaults(func=_cmd_prepare)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vnvs.apps.demo import DemoConfig, run_demo

    metrics = run_demo(DemoConfig(output=args.output, seed=args.seed, trajectory=args.trajectory, mode=args.mode,
                                  frames=args.frames, size=args.size, generator=args.generator))
    keys = ("psnr", "ssim", "psnr_covisible", "psnr_disoccluded", "generator", "seconds")
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f"wrote {args.output}/novel.mp4, conditioning.mp4, comparison.png, metrics.json")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from vnvs.apps.render import RenderConfig, run_render

    summary = run_render(RenderConfig(
        video=args.video, depth=args.depth, trajectory=args.trajectory, output=args.output, mode=args.mode,
        fov=args.fov, intrinsics=args.intrinsics, cameras=args.cameras, depth_kind=args.depth_kind,
        align_depth=args.align_depth, stride=args.stride, max_frames=args.max_frames, size=args.size,
        generator=args.generator, seed=args.seed, chunk_frames=args.chunk_frames, save_depth=args.save_depth,
        device=args.device, depth_size=args.depth_size))
    print(json.dumps(summary))
    print(f"wrote {', '.join(f'{args.output}/{n}' for n in summary['files'])}")
    return 0


def _cmd_trajectory(args: argparse.Namespace) -> int:
    from vnvs.cameras import Cameras
    from vnvs.cameras.resolve import resolve_trajectory

    source = Cameras.static(args.frames, args.height, args.width, fov_deg=args.fov)
    traj = resolve_trajectory(args.spec, source, args.depth, mode=args.mode)
    traj.save(args.output)
    print(f"wrote {args.output} ({len(traj.w2c)} frames, {traj.height}x{traj.width})")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from vnvs.data.config import PrepareConfig
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs
    from vnvs.errors import InputError

    config = PrepareConfig(size=args.size, clip_frames=args.clip_frames, pairs_per_video=args.pairs_per_video,
                           flow=args.flow, frame_stride=args.frame_stride, min_offset=args.min_offset,
                           max_offset=args.max_offset, views=args.views)
    if config.min_offset > config.max_offset:
        raise InputError(f"--min-offset {config.min_offset} is larger than --max-offset {config.max_offset}")
    items = collect_inputs(args.input, args.kind, args.limit, depth_dir=args.depth_dir,
                           cameras_dir=args.cameras_dir, config=config, seed=args.seed)
    summary = prepare(items, args.output, args.kind, config, seed=args.seed, engine=args.engine,
                      workers=args.workers)
    print(json.dumps(summary.to_dict()))
    print(summary.line())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vnvs.training.cli import run_train

    return run_train(args)


def main(argv: list[str] | None = None) -> int:
    from vnvs.utils.memory import tune_allocator

    tune_allocator()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except VnvsError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
