"""The saved grid model folder: ``config.json`` (format, version, the grid config, ...) and ``model.safetensors``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.nn as nn
from safetensors.torch import load_file, save_file

from vnvs.errors import InputError
from vnvs.models.grid.config import CONFIG_NAME, GRID_FORMAT_VERSION, WEIGHTS_NAME
from vnvs.utils.atomic import atomic_dir


def write_grid_folder(model: nn.Module, path: str | os.PathLike, sections: dict) -> None:
    """Write ``config.json`` (format, version and ``sections``) and the model's weights into ``path``, atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "vnvs-grid-model", "format_version": GRID_FORMAT_VERSION, **sections}
    with atomic_dir(path) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})


def load_grid_weights(model: nn.Module, folder: Path, device) -> nn.Module:
    """Load ``folder``'s weights into ``model`` (exactly its parameters: one-line :class:`InputError` otherwise)."""
    try:
        state = load_file(str(folder / WEIGHTS_NAME), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"cannot read {folder / WEIGHTS_NAME}: {exc}") from None
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise InputError(f"{folder / WEIGHTS_NAME} does not match its config "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.load_state_dict(state, strict=True)
    return model.to(device)
