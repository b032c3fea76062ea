"""A :class:`~vnvs.models.NovelViewModel` from what a training config names: a preset, a
:class:`~vnvs.models.ModelConfig`, or a folder written by ``save_pretrained``."""

from __future__ import annotations

import os
from pathlib import Path

from vnvs.errors import InputError
from vnvs.models.config import ModelConfig
from vnvs.models.model import CONFIG_NAME, NovelViewModel
from vnvs.models.presets import PRESETS, get_preset


def check_model_spec(spec: str | os.PathLike | ModelConfig) -> None:
    """Raise :class:`InputError` unless ``spec`` is a ModelConfig, a model preset name, or a folder
    holding a model's ``config.json`` (checked before building, so a run fails before it writes)."""
    if isinstance(spec, ModelConfig):
        return
    path = Path(spec)
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise InputError(f"model folder {path} has no {CONFIG_NAME} (expected a NovelViewModel.save_pretrained folder)")
    elif str(spec) not in PRESETS:
        raise InputError(f"unknown model {str(spec)!r}: neither a model preset ({', '.join(PRESETS)}) "
                         "nor a folder written by save_pretrained")


def build_model(spec: str | os.PathLike | ModelConfig) -> NovelViewModel:
    """The model ``spec`` names: a :class:`ModelConfig` or a model preset name (random init from the
    current torch seed; pretrained backbones load their weights), or a folder written by
    ``save_pretrained`` (its weights are loaded: finetuning). Raises :class:`InputError` as
    :func:`check_model_spec`."""
    check_model_spec(spec)
    if isinstance(spec, ModelConfig):
        return NovelViewModel.from_config(spec)
    if Path(spec).is_dir():
        return NovelViewModel.from_pretrained(spec)
    return NovelViewModel.from_config(get_preset(str(spec)))
