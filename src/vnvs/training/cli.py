"""``vnvs train``: parser and handler (Accelerate is imported when the command runs)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from vnvs.errors import InputError
from vnvs.training.checkpoint import latest_checkpoint, read_config
from vnvs.training.presets import PRESETS, load_config
from vnvs.training.trainer import train
from vnvs.utils.argtypes import positive_float as _positive_float
from vnvs.utils.argtypes import positive_int as _positive_int


def add_train_parser(sub) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``sub`` (the caller sets its ``func``); return its parser."""
    p = sub.add_parser(
        "train", help="train a novel-view model with flow matching on prepared pairs (Accelerate; 1..N GPUs or the CPU)",
        description="Train on samples written by `vnvs prepare`. Checkpoints go to OUTPUT/checkpoints, the loss log to "
                    "OUTPUT/log.jsonl, the final (EMA) model to OUTPUT/model. For several GPUs or nodes run it under "
                    "`accelerate launch`. See docs/training.md.")
    p.add_argument("--config", "-c", default=None,
                   help=f"training preset ({', '.join(PRESETS)}) or a .json/.toml config file "
                        "(optional with --resume: the checkpoint's config)")
    p.add_argument("--data", "-d", type=Path, required=True, help="folder written by `vnvs prepare` (index.json), or a folder of such folders (e.g. data/ "
                        "holding data/flow and data/synthetic)")
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


def resolve_config(args: argparse.Namespace):
    """The run's TrainConfig: ``--config`` (or, when resuming without it, the checkpoint's) plus overrides."""
    if args.config is not None:
        config = load_config(args.config)
    else:
        existing = latest_checkpoint(args.output) if args.resume else None
        if existing is None:
            raise InputError("--config is required (a training preset or a .json/.toml file)"
                             + ("; OUTPUT holds no checkpoint to resume" if args.resume else ""))
        config = read_config(existing)
    if args.num_workers is not None and args.num_workers < 0:
        raise InputError(f"--num-workers must be >= 0, got {args.num_workers}")
    overrides = dict(max_steps=args.max_steps, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                     num_workers=args.num_workers, checkpoint_every=args.checkpoint_every,
                     mixed_precision=args.mixed_precision)
    return config.replace(**{k: v for k, v in overrides.items() if v is not None})


def run_train(args: argparse.Namespace) -> int:
    result = train(resolve_config(args), args.data, args.output, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch, one summary
        print(json.dumps(result.to_dict()))
        print(result.line())
    return 0
