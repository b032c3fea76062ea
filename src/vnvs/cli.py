"""The ``vnvs`` command.

The options of every subcommand are defined here, from the config dataclasses (light modules); a
command's own modules (and torch) load only when it runs, so ``vnvs --help`` answers at once.

Every subcommand reports user errors (bad files, malformed trajectories, impossible options) as one
line ``error: ...`` on stderr with exit code 2, and never leaves a partial output file behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vnvs import __version__
from vnvs.apps.config import DEMO_FILES, RENDER_FILES, DemoConfig, FinetuneConfig, RenderConfig
from vnvs.apps.grid_config import GridConfig
from vnvs.apps.recon_config import (
    RENDER_SCENE_FILES,
    SCENE_FILES,
    ReconstructConfig,
    RenderSceneConfig,
    ViewConfig,
)
from vnvs.data.config import PrepareRun
from vnvs.errors import InputError, TrajectoryError, VnvsError
from vnvs.evaluation.config import EvalConfig
from vnvs.utils.argtypes import positive_float as _positive_float
from vnvs.utils.argtypes import positive_int as _positive_int
from vnvs.utils.config_cli import add_config_arguments, config_from_args
from vnvs.utils.logs import configure_cli_logging
from vnvs.utils.memory import tune_allocator
from vnvs.utils.atomic import check_output_folder
from vnvs.utils.outputs import check_destination, describe_write_error

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vnvs", description="Re-render monocular videos from new camera paths.")
    parser.add_argument("--version", action="version", version=f"vnvs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the whole pipeline offline on a procedural scene with ground truth")
    add_config_arguments(p, DemoConfig)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("render", help="re-render a video along a new camera path (depth from a model or a file)")
    add_config_arguments(p, RenderConfig)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("grid", help="lift a video to a time x view grid (row 0 the video; a grid model or per-view renders)",
                       description="Write a grid folder (grid.json, one video per view, depth, contact sheet) of VIEWS "
                                   "views offset by fractions of the trajectory. See docs/grids.md.")
    add_config_arguments(p, GridConfig)
    p.set_defaults(func=_cmd_grid)

    p = sub.add_parser("trajectory", help="write a preset or convert a camera file to a vnvs trajectory JSON")
    p.add_argument("spec", help="preset NAME:PARAMS or a camera/trajectory file")
    p.add_argument("--output", "-o", type=Path, required=True, help="trajectory JSON to write")
    p.add_argument("--frames", type=_positive_int, default=None,
                   help="number of frames (default: 49 for a preset, the file's own count for a camera file)")
    p.add_argument("--height", type=_positive_int, default=480, help="image height for presets (default 480)")
    p.add_argument("--width", type=_positive_int, default=480, help="image width for presets (default 480)")
    p.add_argument("--fov", type=float, default=60.0, help="source field of view for presets (default 60)")
    p.add_argument("--look-at-depth", "--depth", dest="depth", type=float, default=1.0,
                   help="distance from the source camera to the point presets orbit (default 1; --depth is the old name)")
    p.add_argument("--mode", choices=["gradual", "direct"], default="gradual",
                   help="gradual: reach the full offset at the last frame; direct: full offset from the first frame")
    p.set_defaults(func=_cmd_trajectory)

    _add_prepare_parser(sub)
    p = sub.add_parser("eval", help="score methods on a benchmark (synthetic, real, grid, dycheck, kubric4d, videos)",
                       description="Run methods on a benchmark and write report.json and report.md. "
                                   "See docs/evaluation.md.")
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=_cmd_eval)
    _add_train_parser(sub).set_defaults(func=_cmd_train)
    p = sub.add_parser("finetune", help="adapt a learned generator to one video (test-time finetuning, CogNVS)",
                       description="Cut self-supervised pairs from the video (co-visibility pairs for inpainting "
                                   "models, flow pairs for the others), finetune the model on them and write the "
                                   "adapted model folder for `vnvs render --generator OUTPUT`. See docs/training.md.")
    add_config_arguments(p, FinetuneConfig)
    p.set_defaults(func=_cmd_finetune)
    p = sub.add_parser("reconstruct", help="fit a 4D Gaussian scene (deformable 3D Gaussians) to a time x view grid folder",
                       description="Fit deformable 3D Gaussians to a grid folder and write a scene folder (scene.json, "
                                   "3DGS PLY files, deformation weights). See docs/recon.md.")
    add_config_arguments(p, ReconstructConfig)
    p.set_defaults(func=_cmd_reconstruct)
    p = sub.add_parser("render-scene", help="render a 4D Gaussian scene along any camera path and time to a video",
                       description="Render a scene folder written by `vnvs reconstruct` along a trajectory preset or "
                                   "file (bullet time included) to render.mp4. See docs/recon.md.")
    add_config_arguments(p, RenderSceneConfig)
    p.set_defaults(func=_cmd_render_scene)
    p = sub.add_parser("view", help="open a scene folder, 3DGS PLY, grid folder or render output in the browser (viser)",
                       description="Serve a 4D Gaussian scene folder, a 3DGS PLY file, a grid folder or a `vnvs render` "
                                   "output folder with viser: time slider and play button, source and target camera "
                                   "paths, and a trajectory editor that saves keyframes as a vnvs trajectory JSON. "
                                   "Needs pip install 'vnvs[viewer]'. See docs/viewer.md.")
    add_config_arguments(p, ViewConfig)
    p.set_defaults(func=_cmd_view)
    for command in sub.choices.values():
        command.add_argument("--threads", type=_positive_int, default=None,
                             help="CPU threads for torch and OpenCV (default: OMP_NUM_THREADS, else the CPU count; "
                                  "see docs/performance.md)")
    return parser


def reference_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """Every subcommand's options with their meaning and default, as Markdown (``docs/cli.md``)."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help for a in sub._choices_actions}
    lines = []
    for name, p in sub.choices.items():
        lines += [f"## `vnvs {name}`", "", summaries.get(name, ""), "", "| option | meaning |", "|---|---|"]
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest}` (positional)"
            text = " ".join((action.help or "").replace("%%", "%").split()).replace("|", "\\|")
            if action.required and action.option_strings:
                text += " (required)"
            lines.append(f"| {flags} | {text} |")
        lines.append("")
    return "\n".join(lines)


def _add_train_parser(sub) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``sub`` (the caller sets its ``func``); return its parser."""
    p = sub.add_parser(
        "train", help="train a novel-view model with flow matching on prepared pairs (Accelerate; 1..N GPUs or the CPU)",
        description="Train on samples written by `vnvs prepare`. Checkpoints go to OUTPUT/checkpoints, the loss log to "
                    "OUTPUT/log.jsonl, the final (EMA) model to OUTPUT/model. For several GPUs or nodes run it under "
                    "`accelerate launch`. See docs/training.md.")
    p.add_argument("--config", "-c", default=None,
                   help="training preset (tiny, dit-small, ... see docs/training.md) or a .json/.toml config file "
                        "(optional with --resume: the checkpoint's config)")
    p.add_argument("--data", "-d", type=Path, required=True, help="folder written by `vnvs prepare` (index.json), or a folder of such folders "
                        "(e.g. data/ holding data/flow and data/synthetic)")
    p.add_argument("--output", "-o", type=Path, required=True, help="run folder (checkpoints, logs, model)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest complete checkpoint in OUTPUT (start fresh if there is none)")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="optimizer steps of the whole run")
    p.add_argument("--seed", type=int, default=None, help="run seed (init, data order, noise)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="samples per process per micro-batch")
    p.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate")
    p.add_argument("--num-workers", type=int, default=None, help="data loader processes per training process")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help="checkpoint every N steps")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=None, help="autocast precision")
    return p


def _add_prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="cut training samples (pairs, grids) from videos or procedural scenes into shards",
                       description="Build training samples and store them as shards with an index.json; "
                                   "reruns skip finished inputs. See docs/data.md.")
    add_config_arguments(p, PrepareRun)
    p.set_defaults(func=_cmd_prepare)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vnvs.apps.demo import run_demo

    config = config_from_args(DemoConfig, args)
    _check_before_work(config, DEMO_FILES)
    metrics = run_demo(config)
    keys = ("psnr", "ssim", "psnr_covisible", "psnr_disoccluded", "generator", "seconds")
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f"wrote {config.output}/novel.mp4, conditioning.mp4, comparison.png, metrics.json, trajectory.json")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from vnvs.apps.render import run_render

    config = config_from_args(RenderConfig, args)
    _check_before_work(config, RENDER_FILES)
    if config.ttf:
        from vnvs.apps.finetune import render_with_ttf

        summary = render_with_ttf(config)
    else:
        summary = run_render(config)
    print(json.dumps(summary))
    print(f"wrote {', '.join(f'{config.output}/{n}' for n in summary['files'])}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from vnvs.apps.grid import run_grid
    from vnvs.io.grid import GRID_FILES

    config = config_from_args(GridConfig, args)
    _check_before_work(config, GRID_FILES)
    summary = run_grid(config)
    print(json.dumps(summary))
    print(f"wrote grid folder {config.output} ({summary['views']} views x {summary['times']} times)")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from vnvs.apps.finetune import finetune

    config = config_from_args(FinetuneConfig, args)
    _check_before_work(config)
    summary = finetune(config)
    print(json.dumps(summary))
    print(f"finetuned {summary['kind']} pairs for {summary['steps']} steps; wrote {config.output}")
    return 0


def _cmd_trajectory(args: argparse.Namespace) -> int:
    from vnvs.cameras import Cameras
    from vnvs.cameras.resolve import read_camera_file, resolve_trajectory

    if args.output.suffix.lower() != ".json":
        raise InputError(f"{args.output}: a vnvs trajectory is written as JSON; name the output *.json")
    check_destination(args.output, "file")
    frames = args.frames
    if frames is None:  # presets: 49 frames; camera files: as many as they hold
        try:
            frames = len(read_camera_file(args.spec, (args.height, args.width)))
        except TrajectoryError:
            frames = 49
    source = Cameras.static(frames, args.height, args.width, fov_deg=args.fov)
    traj = resolve_trajectory(args.spec, source, args.depth, mode=args.mode)
    traj.save(args.output)
    print(f"wrote {args.output} ({len(traj.w2c)} frames, {traj.height}x{traj.width})")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs

    run = config_from_args(PrepareRun, args)
    items = collect_inputs(run.input, run.kind, run.limit, depth_dir=run.depth_dir, cameras_dir=run.cameras_dir,
                           config=run.build, seed=run.seed)
    summary = prepare(items, run.output, run.kind, run.build, seed=run.seed, engine=run.engine, workers=run.workers)
    print(json.dumps(summary.to_dict()))
    print(summary.line())
    problem = summary.problem()
    if problem is not None:
        raise InputError(problem)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vnvs.training.cli import run_train

    return run_train(args)


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from vnvs.apps.reconstruct import run_reconstruct

    config = config_from_args(ReconstructConfig, args)
    _check_before_work(config, SCENE_FILES)
    summary = run_reconstruct(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}))
    print(f"wrote {config.output}/ ({', '.join(summary['files'])})")
    return 0


def _cmd_render_scene(args: argparse.Namespace) -> int:
    from vnvs.apps.reconstruct import run_render_scene

    config = config_from_args(RenderSceneConfig, args)
    _check_before_work(config, RENDER_SCENE_FILES)
    summary = run_render_scene(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}))
    print(f"wrote {', '.join(f'{config.output}/{n}' for n in summary['files'])}")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from vnvs.apps.view import run_view

    run_view(config_from_args(ViewConfig, args))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from vnvs.evaluation.cli import cmd_eval

    return cmd_eval(args)


def _check_before_work(config, output_files: tuple[str, ...] | None = None) -> None:
    """Refuse, before any work, an output folder that cannot be written (or, given the names a command writes,
    one holding files vnvs did not write) and an unknown or absent ``device``, even where the chosen method
    runs without one."""
    check_destination(config.output, "folder")
    if output_files is not None:
        check_output_folder(config.output, output_files)
    device = getattr(config, "device", None) or getattr(getattr(config, "recon", None), "device", None)
    if device is not None:
        from vnvs.utils.device import resolve_device

        resolve_device(device)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line like every other user error: one ``error:`` line, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    configure_cli_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from vnvs.utils.threads import configure_threads

        configure_threads(args.threads)
        return args.func(args)
    except VnvsError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a full disk or read-only output met while writing: one line too
        message = describe_write_error(exc, getattr(args, "output", None))
        if message is None:
            raise
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
