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
import os
import re
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from vnvs.errors import InputError
from vnvs.models import build_model
from vnvs.training.config import TrainConfig
from vnvs.training.ema import export_ema, load_averages
from vnvs.training.lora import add_lora, merge_lora
from vnvs.utils.atomic import replace_dir

CHECKPOINTS = "checkpoints"
STATE_NAME = "trainer_state.json"
CONFIG_NAME = "train_config.json"
EMA_NAME = "ema.safetensors"
FORMAT = 1
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


def remove_partial(output: str | os.PathLike) -> list[Path]:
    """Delete the hidden temporary folders of interrupted saves; return them."""
    root = Path(output) / CHECKPOINTS
    gone = [p for p in root.glob(".step-*") if p.is_dir()] if root.is_dir() else []
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
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_extras(tmp, ema_state, dict(state, format=FORMAT, step=int(step)), config_dict)
        _fsync_tree(tmp)
        replace_dir(tmp, final)  # a re-run of the same step replaces its checkpoint
        _fsync_dir(root)
        prune(output, keep)
    accelerator.wait_for_everyone()
    return final


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint."""
    path = Path(path) / STATE_NAME
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"checkpoint state {path} is unreadable: {' '.join(str(exc).split())}") from None
    if state.get("format") != FORMAT:
        raise InputError(f"checkpoint {path.parent} has format {state.get('format')!r}; this vnvs reads {FORMAT}")
    return state


def read_config(path: str | os.PathLike) -> TrainConfig:
    """The :class:`~vnvs.training.TrainConfig` stored in a checkpoint."""
    return TrainConfig.from_dict(json.loads((Path(path) / CONFIG_NAME).read_text()))


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
