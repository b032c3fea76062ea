"""Time x view grid models: 4Real-Video, SV4D 2.0 and Full-4D behind one interface, on the built-in DiT
(:class:`GridModel`) or a diffusers backbone (:class:`DiffusersGridModel`).

``GridModel.from_config(GridModelConfig(method=..., backbone=...))``; presets in :func:`grid_preset`; see
``docs/grids.md``.
"""

from __future__ import annotations

from vnvs.models.grid.config import GRID_BACKBONES, GRID_MODEL_METHODS, SHIPPED, GridModelConfig, is_grid_config
from vnvs.models.grid.diffusers_model import DiffusersGridModel
from vnvs.models.grid.model import GridModel, is_grid_model_folder, shipped_backbone_folder
from vnvs.models.grid.presets import GRID_PRESETS, grid_preset

__all__ = ["DiffusersGridModel", "GRID_BACKBONES", "GRID_MODEL_METHODS", "GRID_PRESETS", "GridModel", "GridModelConfig", "SHIPPED", "grid_preset",
           "is_grid_config", "is_grid_model_folder", "shipped_backbone_folder"]
