"""Training checkpoints: written atomically, pruned to the N latest, restored exactly.

Layout of ``OUTPUT/checkpoints/step-XXXXXXXX/`` (``XXXXXXXX`` = optimizer steps done)::

    model.safetensors        model weights (Accelerate: the prepared model's state; FSDP/DeepSpeed: their formats)
    optimizer.bin            AdamW state                                  (Accelerate)
    random_states_<k>.pkl    RNG states of process k: python, numpy, torch, CUDA  (Accelerate, one per process)
    scaler.pt                fp16 gradient scaler, when used              (Accelerate)
    ema.safetensors          EMA of the trainable weights (float32)
    trainer_state.json       step, epoch, next batch of the epoch, samples seen, world size, LR scheduler state
    train_config.json        the TrainConfig of the run

Atomicity: every process writes into ``checkpoints/.step-XXXXXXXX.tmp``; when all are done, the
main process writes ``trainer_state.json``, flushes everything to disk and renames the folder to
its final name. A folder without a leading dot is therefore complete; a run killed mid-save
leaves only a hidden ``.tmp`` folder, which is ignored and removed by the next save or resume.
Older checkpoints are deleted only after the new one is in place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from vnvs.data.shards import check_shard
from vnvs.errors import InputError
from vnvs.models import build_model
from vnvs.training.config import TrainConfig
from vnvs.training.ema import export_ema, load_averages
from vnvs.training.lora import add_lora, merge_lora
from vnvs.utils.atomic import replace_dir
from vnvs.utils.jsonfile import read_json

CHECKPOINTS = "checkpoints"
STATE_NAME = "trainer_state.json"
CONFIG_NAME = "train_config.json"
EMA_NAME = "ema.safetensors"
FORMAT = 1
log = logging.getLogger(__name__)
_NAME = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{int(step):08d}"


def list_checkpoints(output: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first."""
    root = Path(output) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / STATE_NAME).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder (None: there is none)."""
    found = list_checkpoints(output)
    return found[-1] if found else None


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint ``path`` cannot be resumed (a truncated or unreadable file), or None when it can.

    Reads the JSON files and the safetensors headers, and checks the optimizer archive's directory."""
    path = Path(path)
    try:
        read_state(path)
        read_json(path / CONFIG_NAME, "checkpoint config")
    except InputError as e:
        return str(e)
    for file in sorted(path.glob("*.safetensors")):
        try:
            check_shard(file)
        except InputError:
            return f"{file.name} is truncated or not a safetensors file"
    for file in sorted(path.glob("*.bin")):
        if not zipfile.is_zipfile(file):
            return f"{file.name} is truncated"
    return None


def resume_checkpoint(output: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run that can be resumed; damaged newer ones are skipped with a warning.

    Raises:
        InputError: the run has checkpoints, but every one of them is damaged.
    """
    found = list_checkpoints(output)
    problems = []
    for path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                log.warning("checkpoint %s is damaged (%s); resuming from %s", problems[0][0].name, problems[0][1],
                            path.name)
            return path
        problems.append((path, problem))
    if problems:
        raise InputError(f"every checkpoint in {Path(output) / CHECKPOINTS} is damaged (newest, "
                         f"{problems[0][0].name}: {problems[0][1]}); start a new run in another folder")
    return None


def remove_partial(output: str | os.PathLike) -> list[Path]:
    """Delete the hidden temporary folders of interrupted checkpoint saves and model exports; return them."""
    root = Path(output) / CHECKPOINTS
    gone = [p for p in root.glob(".step-*") if p.is_dir()] if root.is_dir() else []
    gone += [p for p in Path(output).glob(".model.*") if p.is_dir()]  # an interrupted model export
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def prune(output: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints; return the deleted ones."""
    old = list_checkpoints(output)[:-max(int(keep), 1)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_extras(folder: Path, ema_state: dict | None, state: dict[str, Any], config_dict: dict[str, Any]) -> None:
    """Main process: the EMA, the run config, then the trainer state (written last)."""
    if ema_state is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, str(folder / EMA_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps(config_dict, indent=2) + "\n")
    (folder / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")


def save_checkpoint(accelerator, output: str | os.PathLike, step: int, *, state: dict[str, Any],
                    config_dict: dict[str, Any], ema_state: dict | None, keep: int) -> Path:
    """Write checkpoint ``step`` (every process calls this; see the module docstring for the protocol)."""
    root = Path(output) / CHECKPOINTS
    name = checkpoint_name(step)
    final, tmp = root / name, root / f".{name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_extras(tmp, ema_state, dict(state, format=FORMAT, step=int(step)), config_dict)
            _fsync_tree(tmp)
            replace_dir(tmp, final)  # a re-run of the same step replaces its checkpoint
            _fsync_dir(root)
            prune(output, keep)
    except BaseException:  # a full disk or an interrupt: no partial checkpoint is left behind
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint."""
    path = Path(path) / STATE_NAME
    state = read_json(path, "checkpoint state")
    if not isinstance(state, dict):
        raise InputError(f"checkpoint state {path} is not a JSON object")
    if state.get("format") != FORMAT:
        raise InputError(f"checkpoint {path.parent} has format {state.get('format')!r}; this vnvs reads {FORMAT}")
    return state


def read_config(path: str | os.PathLike) -> TrainConfig:
    """The :class:`~vnvs.training.TrainConfig` stored in a checkpoint."""
    doc = read_json(Path(path) / CONFIG_NAME, "checkpoint config")
    if not isinstance(doc, dict):
        raise InputError(f"checkpoint config {Path(path) / CONFIG_NAME} is not a JSON object")
    return TrainConfig.from_dict(doc)


def load_ema(path: str | os.PathLike) -> dict | None:
    """The EMA tensors of a checkpoint (None when it was trained without EMA)."""
    file = Path(path) / EMA_NAME
    return load_file(str(file)) if file.is_file() else None


def export_model(checkpoint: str | os.PathLike, output: str | os.PathLike, use_ema: bool = True) -> Path:
    """Write the model of a checkpoint (its EMA weights unless ``use_ema`` is False) with
    ``NovelViewModel.save_pretrained`` to ``output`` (what generators load)."""
    checkpoint = Path(checkpoint)
    config = read_config(checkpoint)
    model = build_model(config.model)
    if config.lora_rank:
        add_lora(model, config.lora_rank, config.lora_alpha)
    weights = load_file(str(checkpoint / "model.safetensors"))
    weights = {k.removeprefix("module."): v for k, v in weights.items()}
    model.load_state_dict(weights)
    ema = load_ema(checkpoint) if use_ema else None
    if config.lora_rank:  # the adapters folded in: an ordinary model folder
        if ema is not None:
            load_averages(model, ema)
        merge_lora(model)
        ema = None
    export_ema(model, ema, output)
    return Path(output)
