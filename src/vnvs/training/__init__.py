"""Training: the flow-matching objective, an Accelerate trainer, atomic checkpoints (see ``docs/training.md``).

``TrainConfig`` and the presets import nothing heavy; ``train`` (the loop) is imported on first use::

    from vnvs.training import TrainConfig, get_preset, train
    result = train(get_preset("tiny"), "data/", "runs/tiny")
"""

from __future__ import annotations

from vnvs.training.config import TrainConfig, get_preset, load_config
from vnvs.training.presets import PRESETS

__all__ = ["PRESETS", "TrainConfig", "get_preset", "load_config", "train", "export_model"]


def __getattr__(name: str):
    if name == "train":
        from vnvs.training.trainer import train

        return train
    if name == "export_model":
        from vnvs.training.checkpoint import export_model

        return export_model
    raise AttributeError(f"module 'vnvs.training' has no attribute {name!r}")
