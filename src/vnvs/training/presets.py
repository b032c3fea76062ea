"""Training presets (each a function returning a :class:`~vnvs.training.TrainConfig`, as the model
presets of :mod:`vnvs.models` return a ``ModelConfig``) and the loader of config files.

* ``tiny``: seconds on a CPU; the tests' recipe (synthetic pairs only, 2 layers).
* ``dit-small``: the recipe of the checkpoint that ships with vnvs: the built-in DiT on real flow
  pairs plus synthetic pairs with exact correspondence (:data:`DIT_SMALL_DATA`).
* ablations of Scaling4D's Table 3 on the same model and schedule:
  ``dit-small-doubleproj`` (the inpainting paradigm: co-visibility pairs, real and synthetic),
  ``dit-small-no-real`` (synthetic only), ``dit-small-no-synthetic`` (real only).
* ``dit-small-inpaint``: CogNVS on the same model size and schedule: the built-in DiT with inpainting
  conditioning, trained on co-visibility pairs (real videos with depth and procedural scenes);
  ``tiny-inpaint``: its seconds-long test counterpart.
* ``cogvideox-2b``, ``wan-1.3b``: finetune a pretrained diffusers backbone with the control
  modules (backbone frozen, bf16, gradient checkpointing); need a large GPU.

* ``grid-4real``, ``grid-4real-sync`` (only the synchronization layers and conditioning embeddings
  train; the DiT stays as shipped), ``grid-4real-hard``, ``grid-4real-sequential``, ``grid-sv4d``,
  ``grid-full4d``: the grid models of :mod:`vnvs.models.grid` on ``synthetic-grid`` and ``affine4d``
  shards (:data:`GRID_DATA`), from the shipped DiT; ``grid-tiny`` for tests.
* ``grid-4real-cogvideox-2b``, ``grid-4real-wan-1.3b``: 4Real-Video on a pretrained diffusers backbone
  (only the synchronization layers and the widened patch embedding train, bf16, gradient
  checkpointing; a large GPU); ``grid-tiny-cogvideox``, ``grid-tiny-wan`` for tests.

Edit :data:`DIT_SMALL_DATA` / :func:`dit_small` to change the shipped recipe; the ablations follow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from vnvs.errors import InputError
from vnvs.training.config import TrainConfig

DIT_SMALL_DATA = {"flow-pairs": 0.5, "synthetic-pairs": 0.5}
"""Mixture of the shipped checkpoint: real monocular flow pairs and synthetic pairs (exact correspondence)."""


def tiny() -> TrainConfig:
    return TrainConfig(model="dit-tiny", data={"synthetic-pairs": 1.0}, batch_size=2, lr=1e-3, ema_decay=0.9,
                       max_steps=4, checkpoint_every=2, keep_checkpoints=2, log_every=1, num_workers=0,
                       warmup_steps=1)


def dit_small() -> TrainConfig:
    """The shipped recipe: 1,800 steps of 8 clips of 9 frames at 64x64, sized to train on a 2-core CPU
    in minutes. A model trained from scratch takes a larger learning rate than the paper's 4e-5,
    which is for finetuning a pretrained 5B backbone (the ``cogvideox-2b`` / ``wan-1.3b`` presets keep it)."""
    return TrainConfig(model="dit-small", data=dict(DIT_SMALL_DATA), batch_size=8, lr=5e-4, warmup_steps=50,
                       ema_decay=0.995, max_grad_norm=1.0, control_dropout=0.05, timestep_sampling="logit-normal",
                       timestep_shift=3.0, loss_weighting="x0", max_steps=1800, checkpoint_every=100, log_every=20,
                       num_workers=0)


def dit_small_doubleproj() -> TrainConfig:
    """The same mixture, with each kind replaced by its co-visibility (double projection) counterpart."""
    swap = {"flow-pairs": "covis", "synthetic-pairs": "synthetic-covis"}
    return dit_small().replace(data={swap.get(k, k): w for k, w in DIT_SMALL_DATA.items()})


def dit_small_no_real() -> TrainConfig:
    return dit_small().replace(data={"synthetic-pairs": 1.0})


def dit_small_no_synthetic() -> TrainConfig:
    return dit_small().replace(data={"flow-pairs": 1.0})


COVIS_DATA = {"covis": 0.5, "synthetic-covis": 0.5}
"""Mixture of the inpainting (CogNVS) recipe: co-visibility pairs from real videos and from procedural scenes."""


def tiny_inpaint() -> TrainConfig:
    return tiny().replace(model="dit-tiny-inpaint", data={"synthetic-covis": 1.0})


def dit_small_inpaint() -> TrainConfig:
    """CogNVS in miniature: ``dit-small``'s schedule and budget (1,800 steps of 8 clips of 9 frames at 64x64)
    with the inpainting model on co-visibility pairs. CogNVS trains every weight (no frozen backbone)."""
    return dit_small().replace(model="dit-small-inpaint", data=dict(COVIS_DATA))


def cogvideox_2b_inpaint() -> TrainConfig:
    """CogNVS's own recipe: the whole CogVideoX transformer finetuned on co-visibility pairs (lr 2e-5)."""
    return _finetune("cogvideox-2b-inpaint").replace(data=dict(COVIS_DATA), freeze_backbone=False, lr=2e-5)


def _finetune(model: str) -> TrainConfig:
    """Finetune the pretrained diffusers backbone of the model preset ``model`` with the control modules."""
    return TrainConfig(model=model, data=dict(DIT_SMALL_DATA), batch_size=1, grad_accum=4, lr=4e-5,
                       warmup_steps=200, ema_decay=0.999, freeze_backbone=True, gradient_checkpointing=True,
                       mixed_precision="bf16", timestep_shift=3.0, max_steps=10000, checkpoint_every=500,
                       log_every=10, num_workers=4)


def cogvideox_2b() -> TrainConfig:
    return _finetune("cogvideox-2b")


def wan_1_3b() -> TrainConfig:
    return _finetune("wan-1.3b")


GRID_DATA = {"synthetic-grid": 0.5, "affine4d": 0.5}
"""Mixture of the grid recipes: exact procedural grids with cameras and 4Real-Video's pseudo-4D affine grids."""


def _grid(model: str, **changes: Any) -> TrainConfig:
    """A grid model (:mod:`vnvs.models.grid`) on grid shards: a few hundred CPU steps of small grids."""
    config = TrainConfig(model=model, data=dict(GRID_DATA), batch_size=2, lr=3e-4, warmup_steps=10, ema_decay=0.99,
                         timestep_shift=3.0, loss_weighting="x0", max_steps=300, checkpoint_every=100, log_every=10,
                         num_workers=0)
    return config.replace(**changes) if changes else config


def grid_tiny() -> TrainConfig:
    """Tests: the 2-layer 4real grid model on synthetic grids, seconds on a CPU."""
    return TrainConfig(model="4real-tiny", data={"synthetic-grid": 1.0}, batch_size=1, lr=1e-3, ema_decay=0.9,
                       max_steps=2, checkpoint_every=2, keep_checkpoints=1, log_every=1, num_workers=0)


def _grid_diffusers(model: str) -> TrainConfig:
    """4Real-Video's finetuning on a pretrained diffusers backbone: the synchronization layers (and the
    conditioning channels of the patch embedding) train, the transformer stays as pretrained."""
    return _grid(model, batch_size=1, grad_accum=4, lr=1e-4, warmup_steps=100, ema_decay=0.999, freeze_backbone=True,
                 gradient_checkpointing=True, mixed_precision="bf16", max_steps=4000, checkpoint_every=500,
                 num_workers=4)


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "tiny": tiny,
    "dit-small": dit_small,
    "dit-small-doubleproj": dit_small_doubleproj,
    "dit-small-no-real": dit_small_no_real,
    "dit-small-no-synthetic": dit_small_no_synthetic,
    "cogvideox-2b": cogvideox_2b,
    "wan-1.3b": wan_1_3b,
    "grid-tiny": grid_tiny,
    "grid-4real": lambda: _grid("4real"),
    "grid-4real-sync": lambda: _grid("4real", freeze_backbone=True),
    "grid-4real-hard": lambda: _grid("4real-hard"),
    "grid-4real-sequential": lambda: _grid("4real-sequential"),
    "grid-sv4d": lambda: _grid("sv4d"),
    "grid-full4d": lambda: _grid("full4d"),
    "grid-4real-cogvideox-2b": lambda: _grid_diffusers("4real-cogvideox-2b"),
    "grid-4real-wan-1.3b": lambda: _grid_diffusers("4real-wan-1.3b"),
    "grid-tiny-cogvideox": lambda: grid_tiny().replace(model="4real-cogvideox-tiny"),
    "grid-tiny-wan": lambda: grid_tiny().replace(model="4real-wan-tiny"),
    "tiny-inpaint": tiny_inpaint,
    "dit-small-inpaint": dit_small_inpaint,
    "cogvideox-2b-inpaint": cogvideox_2b_inpaint,
}
"""Training presets by name (``vnvs train --config NAME``)."""


def get_preset(name: str, /, **overrides: Any) -> TrainConfig:
    """The training preset ``name`` (a fresh copy), with some fields replaced (validated).

    Example:
        >>> get_preset("tiny", max_steps=10).max_steps
        10
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise InputError(f"unknown training preset {name!r}; presets: {', '.join(PRESETS)}")
    config = PRESETS[name]()
    return config.replace(**overrides) if overrides else config


def load_config(spec: str | os.PathLike) -> TrainConfig:
    """A preset name, or a ``.json`` / ``.toml`` file of :class:`TrainConfig` fields; a file's
    ``preset = "NAME"`` (optional) starts from that preset and its other keys override it."""
    text = str(spec)
    path = Path(text)
    if text in PRESETS and not path.is_file():
        return get_preset(text)
    if path.suffix.lower() not in (".json", ".toml"):
        raise InputError(f"{text!r} is neither a training preset ({', '.join(PRESETS)}) nor a .json/.toml file")
    if not path.is_file():
        raise InputError(f"training config {path} not found")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
        else:
            import tomllib  # Python >= 3.11; JSON files work without it

            data = tomllib.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"training config {path} is malformed: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or "preset" not in data:
        return TrainConfig.from_dict(data)
    fields = dict(data)
    return get_preset(fields.pop("preset"), **fields)
