"""Novel-view video models: a backbone plus Scaling4D's Correspondence Projector and VNVS blocks.

``from vnvs.models import ModelConfig, NovelViewModel`` (see ``docs/models.md``). Backbones: the
built-in pixel-space video DiT (``"dit"``), diffusers CogVideoX (``"cogvideox"``) and Wan (``"wan"``).
``build_model`` builds one from a preset name, a ``ModelConfig`` or a ``save_pretrained`` folder.
"""

from __future__ import annotations

from vnvs.models.build import build_model, check_model_spec
from vnvs.models.config import BACKBONES, ModelConfig
from vnvs.models.model import NovelViewModel
from vnvs.models.presets import PRESETS, get_preset

__all__ = ["BACKBONES", "ModelConfig", "NovelViewModel", "PRESETS", "build_model", "check_model_spec", "get_preset"]
