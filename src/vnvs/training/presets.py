"""Training presets: each is a function returning the fields of a :class:`~vnvs.training.TrainConfig`.

* ``tiny``: seconds on a CPU; the tests' recipe (synthetic pairs only, 2 layers).
* ``dit-small``: the recipe of the checkpoint that ships with vnvs: the built-in DiT on real flow
  pairs plus synthetic pairs with exact correspondence (:data:`DIT_SMALL_DATA`).
* ablations of Scaling4D's Table 3 on the same model and schedule:
  ``dit-small-doubleproj`` (the inpainting paradigm: co-visibility pairs, real and synthetic),
  ``dit-small-no-real`` (synthetic only), ``dit-small-no-synthetic`` (real only).
* ``cogvideox-2b``, ``wan-1.3b``: finetune a pretrained diffusers backbone with the control
  modules (backbone frozen, bf16, gradient checkpointing); need a large GPU.

Edit :data:`DIT_SMALL_DATA` / :data:`DIT_SMALL` to change the shipped recipe; the ablations follow.
"""

from __future__ import annotations

from typing import Any, Callable

DIT_SMALL_DATA = {"flow-pairs": 0.5, "synthetic-pairs": 0.5}
"""Mixture of the shipped checkpoint: real monocular flow pairs and synthetic pairs (exact correspondence)."""

DIT_SMALL: dict[str, Any] = {
    "model": "dit-small",
    "data": DIT_SMALL_DATA,
    "batch_size": 8,
    "lr": 5e-4,
    "warmup_steps": 50,
    "ema_decay": 0.995,
    "max_grad_norm": 1.0,
    "control_dropout": 0.05,
    "timestep_sampling": "logit-normal",
    "timestep_shift": 3.0,
    "loss_weighting": "x0",
    "max_steps": 1800,
    "checkpoint_every": 100,
    "log_every": 20,
    "num_workers": 0,
}
"""The shipped recipe: 1,800 steps of 8 clips of 9 frames at 64x64, sized to train on a 2-core CPU in
minutes. A model trained from scratch takes a larger learning rate than the paper's 4e-5, which is
for finetuning a pretrained 5B backbone (the ``cogvideox-2b`` / ``wan-1.3b`` presets keep it)."""


def tiny() -> dict[str, Any]:
    return {"model": "dit-tiny", "data": {"synthetic-pairs": 1.0}, "batch_size": 2, "lr": 1e-3, "ema_decay": 0.9,
            "max_steps": 4, "checkpoint_every": 2, "keep_checkpoints": 2, "log_every": 1, "num_workers": 0,
            "warmup_steps": 1}


def dit_small() -> dict[str, Any]:
    return dict(DIT_SMALL, data=dict(DIT_SMALL_DATA))


def dit_small_doubleproj() -> dict[str, Any]:
    """The same mixture, with each kind replaced by its co-visibility (double projection) counterpart."""
    swap = {"flow-pairs": "covis", "synthetic-pairs": "synthetic-covis"}
    return dict(DIT_SMALL, data={swap.get(k, k): w for k, w in DIT_SMALL_DATA.items()})


def dit_small_no_real() -> dict[str, Any]:
    return dict(DIT_SMALL, data={"synthetic-pairs": 1.0})


def dit_small_no_synthetic() -> dict[str, Any]:
    return dict(DIT_SMALL, data={"flow-pairs": 1.0})


_FINETUNE: dict[str, Any] = {
    "data": DIT_SMALL_DATA,
    "batch_size": 1,
    "grad_accum": 4,
    "lr": 4e-5,
    "warmup_steps": 200,
    "ema_decay": 0.999,
    "freeze_backbone": True,
    "gradient_checkpointing": True,
    "mixed_precision": "bf16",
    "timestep_shift": 3.0,
    "max_steps": 10000,
    "checkpoint_every": 500,
    "log_every": 10,
    "num_workers": 4,
}


def cogvideox_2b() -> dict[str, Any]:
    return dict(_FINETUNE, data=dict(DIT_SMALL_DATA),
                model="cogvideox-2b")


def wan_1_3b() -> dict[str, Any]:
    return dict(_FINETUNE, data=dict(DIT_SMALL_DATA),
                model="wan-1.3b")


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    "tiny": tiny,
    "dit-small": dit_small,
    "dit-small-doubleproj": dit_small_doubleproj,
    "dit-small-no-real": dit_small_no_real,
    "dit-small-no-synthetic": dit_small_no_synthetic,
    "cogvideox-2b": cogvideox_2b,
    "wan-1.3b": wan_1_3b,
}
"""Training presets by name (``vnvs train --config NAME``)."""
