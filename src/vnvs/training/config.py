"""``TrainConfig``: every setting of a training run (presets and config files: :mod:`vnvs.training.presets`).

A file holds the fields below at its top level; ``preset = "NAME"`` (optional) starts from a preset
and the other keys override it. ``model`` is a preset name of :mod:`vnvs.models`, a
:class:`~vnvs.models.ModelConfig` table, or a folder written by ``NovelViewModel.save_pretrained``
(finetuning). ``data`` maps sample kinds to mixing weights. Example (TOML)::

    preset = "dit-small"
    batch_size = 8
    lr = 1e-4

    [data]
    flow-pairs = 0.7
    synthetic-pairs = 0.3
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from vnvs.data.schema import GRID_KINDS, PAIR_KINDS
from vnvs.errors import InputError
from vnvs.models.config import ModelConfig
from vnvs.models.grid.config import GridModelConfig, is_grid_config
from vnvs.models.grid.model import is_grid_model_folder
from vnvs.models.grid.presets import GRID_PRESETS
from vnvs.utils.atomic import atomic_path
from vnvs.utils.validate import seed as validate_seed

MIXED_PRECISION = ("no", "bf16", "fp16")
TIMESTEP_SAMPLING = ("logit-normal", "uniform")
LOSS_WEIGHTING = ("none", "cosmap", "x0")
LR_SCHEDULES = ("constant", "cosine", "linear")
ADAPT_MODES = ("crop", "resize", "none")

RUN_FIELDS = ("max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "tensorboard",
              "record_samples", "memory_limit_gb")
"""Fields that only steer the run (length, logging, I/O); a resumed run may change them, but no others."""


@dataclass
class TrainConfig:
    """A training run: model, data mixture, optimisation, objective, schedule of checkpoints and logs."""

    model: str | ModelConfig = "dit-small"
    """What to train: a model preset name of :mod:`vnvs.models` (e.g. ``"dit-tiny"``), a
    :class:`~vnvs.models.ModelConfig` (random init; given as a dict/table, it is converted), or a
    folder holding a model saved with ``save_pretrained`` (``config.json`` + weights; finetuning
    starts from its weights). Saved as a string or a table."""
    data: dict = field(default_factory=lambda: {"flow-pairs": 0.5, "synthetic-pairs": 0.5})
    """Pair kinds to train on and their mixing weights (each batch position draws a kind with these
    probabilities; see :class:`vnvs.data.dataset.ShardDataset`). Kinds: ``flow-pairs``, ``covis``,
    ``synthetic-pairs``, ``synthetic-covis``; all must be in the ``--data`` folder."""
    epoch_size: int | None = None
    """Samples per data epoch (None: the number of samples of the kinds in ``data``)."""
    batch_size: int = 4
    """Samples per process per micro-batch (the world batch is ``batch_size * grad_accum * processes``)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    lr: float = 4e-5
    """Peak learning rate of AdamW (Scaling4D: 4e-5 at world batch 256)."""
    betas: tuple = (0.9, 0.999)
    """AdamW betas."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    lr_schedule: str = "constant"
    """After warmup: ``constant``, ``cosine`` (to 0 at ``max_steps``) or ``linear`` (to 0 at ``max_steps``)."""
    warmup_steps: int = 0
    """Optimizer steps of linear learning-rate warmup from 0."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average of the trainable weights (the exported model); the
    decay used at step ``n`` is ``min(ema_decay, (1 + n) / (10 + n))``. 0 disables the EMA."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 disables clipping)."""
    control_dropout: float = 0.1
    """Probability of replacing a sample's control signal by the null (all-zero) control, which
    trains the unconditional branch used by classifier-free guidance."""
    timestep_sampling: str = "logit-normal"
    """How ``u`` in [0, 1] is drawn before the shift: ``logit-normal`` (sigmoid of a normal, SD3) or ``uniform``."""
    logit_mean: float = 0.0
    """Mean of the normal of ``logit-normal`` sampling."""
    logit_std: float = 1.0
    """Standard deviation of the normal of ``logit-normal`` sampling."""
    timestep_shift: float = 1.0
    """SD3 shift ``s``: ``sigma = s u / (1 + (s - 1) u)``; ``s > 1`` favours noisier steps (larger frames)."""
    loss_weighting: str = "none"
    """Per-sample loss weight: ``none``, ``cosmap`` (SD3) or ``x0`` (clean-frame error for x-predicting models)."""
    freeze_backbone: bool = False
    """Train only the control parameters (Correspondence Projector, VNVS blocks); the backbone stays fixed."""
    lora_rank: int = 0
    """LoRA: put rank-N adapters on the backbone's attention projections and train only them and the
    control parameters (0: no adapters; needs ``peft``, ``pip install 'vnvs[lora]'``). The exported
    model has the adapters merged into its weights."""
    lora_alpha: float | None = None
    """LoRA scale numerator (the update is ``alpha / rank * B A``); None: ``lora_rank``."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""
    mixed_precision: str = "no"
    """``no``, ``bf16`` or ``fp16`` autocast (Accelerate); ``fp16`` needs a GPU."""
    max_steps: int = 1000
    """Optimizer steps of the whole run (a resumed run continues up to this)."""
    checkpoint_every: int = 500
    """Write a checkpoint every N optimizer steps (and always at the last step)."""
    keep_checkpoints: int = 3
    """Keep the N most recent checkpoints (at least 1)."""
    log_every: int = 10
    """Write the mean loss of the last N steps to ``log.jsonl`` (and TensorBoard) every N steps."""
    seed: int = 0
    """Seed of the model initialisation, the data order, the noise, timesteps and control dropout."""
    num_workers: int = 2
    """DataLoader worker processes per training process (0: load in the training process)."""
    adapt_frames: str = "crop"
    """Fit samples to the model: ``crop`` (centre-crop H, W down to multiples of the model's
    ``spatial_multiple``, keep the first frames so that ``(T - 1) % temporal_multiple == 0`` and
    ``T <= window``), ``resize`` (resize H, W instead of cropping) or ``none`` (error on a mismatch)."""
    max_frames: int | None = None
    """Use at most this many frames per sample (the first ones); None: as stored (or the model's window)."""
    find_unused_parameters: bool = False
    """DDP: allow parameters without gradient in a step (slower; needed only by unusual models)."""
    tensorboard: bool = True
    """Also write TensorBoard events to ``OUTPUT/tensorboard`` when ``tensorboard`` is installed."""
    record_samples: bool = False
    """Append the sample positions (into the data index) each process used at each step to
    ``OUTPUT/samples/rank-KKKK.jsonl`` (an audit of the data order)."""
    memory_limit_gb: float | None = None
    """Refuse to start when the estimated peak memory of a training step exceeds this many GB
    (None: the memory free on the device when the run starts; 0: do not check)."""

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = GridModelConfig.from_dict(self.model) if is_grid_config(self.model) else ModelConfig.from_dict(self.model)
        self.betas = tuple(float(b) for b in self.betas) if isinstance(self.betas, (list, tuple)) else self.betas
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` (one line) on an impossible setting."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InputError(f"training config: {message}")

        need(isinstance(self.model, (ModelConfig, GridModelConfig)) or (isinstance(self.model, str) and bool(self.model)),
             f"model must be a preset name, a folder or a model config table, got {self.model!r}")
        kinds = GRID_KINDS if self.is_grid else PAIR_KINDS
        need(isinstance(self.data, dict) and bool(self.data), f"data must map sample kinds to weights, got {self.data!r}")
        for kind, weight in self.data.items():
            need(kind in kinds, f"data kind {kind!r} cannot be trained on by this model; use "
                                f"{'grid' if self.is_grid else 'pair'} kinds {', '.join(kinds)}")
            need(isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)
                 and weight >= 0, f"weight of {kind!r} must be a number >= 0, got {weight!r}")
        need(any(w > 0 for w in self.data.values()), "at least one data weight must be positive")
        for name in ("batch_size", "grad_accum", "max_steps", "checkpoint_every", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            need(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        validate_seed(self.seed)
        for name in ("warmup_steps", "num_workers", "lora_rank"):
            value = getattr(self, name)
            need(_is_int(value) and (value >= 0 or name == "seed"), f"{name} must be an integer >= 0, got {value!r}")
        for name in ("epoch_size", "max_frames"):
            value = getattr(self, name)
            need(value is None or (_is_int(value) and value >= 1), f"{name} must be null or an integer >= 1, got {value!r}")
        need(self.memory_limit_gb is None or (_is_num(self.memory_limit_gb) and self.memory_limit_gb >= 0),
             f"memory_limit_gb must be >= 0, got {self.memory_limit_gb!r}")
        need(self.lora_alpha is None or (_is_num(self.lora_alpha) and self.lora_alpha > 0),
             f"lora_alpha must be null or a number > 0, got {self.lora_alpha!r}")
        need(_is_num(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        need(isinstance(self.betas, tuple) and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             f"betas must be two numbers in [0, 1), got {self.betas!r}")
        need(_is_num(self.weight_decay) and self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(_is_num(self.adam_eps) and self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps!r}")
        need(_is_num(self.ema_decay) and 0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        need(_is_num(self.max_grad_norm) and self.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {self.max_grad_norm!r}")
        need(_is_num(self.control_dropout) and 0 <= self.control_dropout <= 1,
             f"control_dropout must be in [0, 1], got {self.control_dropout!r}")
        need(_is_num(self.timestep_shift) and self.timestep_shift > 0, f"timestep_shift must be > 0, got {self.timestep_shift!r}")
        need(_is_num(self.logit_std) and self.logit_std > 0, f"logit_std must be > 0, got {self.logit_std!r}")
        need(_is_num(self.logit_mean), f"logit_mean must be a number, got {self.logit_mean!r}")
        for name, choices in (("timestep_sampling", TIMESTEP_SAMPLING), ("loss_weighting", LOSS_WEIGHTING),
                              ("lr_schedule", LR_SCHEDULES), ("mixed_precision", MIXED_PRECISION),
                              ("adapt_frames", ADAPT_MODES)):
            value = getattr(self, name)
            need(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")
        for name in ("freeze_backbone", "gradient_checkpointing", "find_unused_parameters", "tensorboard",
                     "record_samples"):
            need(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def is_grid(self) -> bool:
        """Whether ``model`` is a time x view grid model (:mod:`vnvs.models.grid`): a GridModelConfig, a grid
        preset name or a saved grid model folder; such runs train on grid kinds with the GridTrainer."""
        if isinstance(self.model, GridModelConfig):
            return True
        return isinstance(self.model, str) and (self.model in GRID_PRESETS or is_grid_model_folder(self.model))

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``model`` as a string or a :meth:`ModelConfig.to_dict` table)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict of fields (as :meth:`to_dict` writes; a file's ``preset`` key is resolved by
        :func:`vnvs.training.presets.load_config`)."""
        if not isinstance(data, dict):
            raise InputError(f"training config must be a table of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"training config: unknown fields {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"training config: {exc}") from None

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def differences(self, other: "TrainConfig", ignore: tuple[str, ...] = RUN_FIELDS) -> list[str]:
        """Names of the fields (outside ``ignore``) whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in ignore and a[k] != b[k]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
