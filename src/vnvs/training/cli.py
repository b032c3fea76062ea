"""``vnvs train``: from parsed options to a training run (the options themselves are defined in :mod:`vnvs.cli`)."""

from __future__ import annotations

import argparse
import json
import os

from vnvs.errors import InputError
from vnvs.training.checkpoint import read_config, resume_checkpoint
from vnvs.training.presets import load_config
from vnvs.training.grid import train_grid
from vnvs.training.trainer import train


def resolve_config(args: argparse.Namespace):
    """The run's TrainConfig: ``--config`` (or, when resuming without it, the checkpoint's) plus overrides."""
    if args.config is not None:
        config = load_config(args.config)
    else:
        existing = resume_checkpoint(args.output) if args.resume else None
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
    config = resolve_config(args)
    run = train_grid if config.is_grid else train
    result = run(config, args.data, args.output, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under accelerate launch, one summary
        print(json.dumps(result.to_dict()))
        print(result.line())
    return 0
