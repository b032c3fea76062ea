"""Training: the flow-matching objective, an Accelerate trainer, atomic checkpoints (see ``docs/training.md``).

::

    from vnvs.training import TrainConfig, get_preset, train
    result = train(get_preset("tiny"), "data/", "runs/tiny")
"""

from __future__ import annotations

from vnvs.training.checkpoint import export_model
from vnvs.training.config import TrainConfig
from vnvs.training.presets import PRESETS, get_preset, load_config
from vnvs.training.trainer import Trainer, train

__all__ = ["PRESETS", "TrainConfig", "Trainer", "get_preset", "load_config", "train", "export_model"]
