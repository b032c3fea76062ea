"""Named grid model configurations.

* ``4real``, ``sv4d``, ``full4d``: each design on the DiT of the shipped novel-view model (training-free
  use: ``vnvs grid --method 4real``; training: ``vnvs train --config grid-4real``). ``4real`` uses
  learned soft synchronization (zero-initialised: the identity until trained).
* 4Real-Video ablations: ``4real-sequential``, ``4real-hard``, ``4real-soft-free`` (training-free
  weighted averaging ``w_l = 0.1 + 0.4 l / L``), ``4real-hard-free`` (training-free average).
* ``*-tiny``: a 2-layer random DiT for tests.
* On diffusers backbones (:class:`~vnvs.models.grid.DiffusersGridModel`): ``4real-cogvideox-2b``,
  ``4real-wan-1.3b``, ``sv4d-cogvideox-2b``, ``full4d-cogvideox-2b`` (pretrained weights, a GPU to
  train: ``vnvs train --config grid-4real-cogvideox-2b``); ``4real-cogvideox-tiny``, ``4real-wan-tiny``,
  ``sv4d-cogvideox-tiny``, ``full4d-cogvideox-tiny``, ``full4d-wan-tiny``: tiny random backbones and
  VAEs for tests.
"""

from __future__ import annotations

from typing import Any, Callable

from vnvs.errors import InputError
from vnvs.models.grid.config import SHIPPED, GridModelConfig
from vnvs.models.presets import get_preset

TINY_DIT = {"dim": 32, "depth": 2, "heads": 2, "patch": 4, "mlp_ratio": 2.0, "text_dim": 16, "freq_dim": 32}



def _diffusers(method: str, preset: str, **changes: Any) -> GridModelConfig:
    """A grid model on the diffusers backbone of novel-view model preset ``preset``; windows of 4 views x 9
    frames (3 latent times with a 4x temporal VAE), cells of 8 latent pixels (tiny) or 60 (480 px) a side."""
    m = get_preset(preset)
    config = GridModelConfig(method=method, backbone=m.backbone, pretrained=m.pretrained,
                             backbone_config=dict(m.backbone_config),
                             vae_config=None if m.vae_config is None else dict(m.vae_config),
                             null_text_tokens=m.null_text_tokens, window_views=4, window_times=9)
    return config.replace(**changes) if changes else config


GRID_PRESETS: dict[str, Callable[[], GridModelConfig]] = {
    "4real": lambda: GridModelConfig(method="4real", pretrained=SHIPPED),
    "4real-sequential": lambda: GridModelConfig(method="4real", arch="sequential", pretrained=SHIPPED),
    "4real-hard": lambda: GridModelConfig(method="4real", sync="hard", pretrained=SHIPPED),
    "4real-soft-free": lambda: GridModelConfig(method="4real", sync_weights="training-free", pretrained=SHIPPED),
    "4real-hard-free": lambda: GridModelConfig(method="4real", sync="hard", sync_weights="training-free",
                                               pretrained=SHIPPED),
    "sv4d": lambda: GridModelConfig(method="sv4d", pretrained=SHIPPED),
    "full4d": lambda: GridModelConfig(method="full4d", pretrained=SHIPPED),
    "4real-tiny": lambda: GridModelConfig(method="4real", backbone_config=dict(TINY_DIT), null_text_tokens=4),
    "sv4d-tiny": lambda: GridModelConfig(method="sv4d", backbone_config=dict(TINY_DIT), null_text_tokens=4),
    "full4d-tiny": lambda: GridModelConfig(method="full4d", backbone_config=dict(TINY_DIT), null_text_tokens=4),
    "4real-cogvideox-2b": lambda: _diffusers("4real", "cogvideox-2b", sampling_steps=50),
    "4real-wan-1.3b": lambda: _diffusers("4real", "wan-1.3b", sampling_steps=50),
    "sv4d-cogvideox-2b": lambda: _diffusers("sv4d", "cogvideox-2b", sampling_steps=50),
    "full4d-cogvideox-2b": lambda: _diffusers("full4d", "cogvideox-2b", sampling_steps=50),
    "4real-cogvideox-tiny": lambda: _diffusers("4real", "cogvideox-tiny"),
    "4real-wan-tiny": lambda: _diffusers("4real", "wan-tiny"),
    "sv4d-cogvideox-tiny": lambda: _diffusers("sv4d", "cogvideox-tiny"),
    "full4d-cogvideox-tiny": lambda: _diffusers("full4d", "cogvideox-tiny"),
    "full4d-wan-tiny": lambda: _diffusers("full4d", "wan-tiny"),
}


def grid_preset(name: str, **overrides: Any) -> GridModelConfig:
    """The named :class:`GridModelConfig`, some fields replaced.

    Example:
        >>> grid_preset("4real-tiny", sync="hard").sync
        'hard'
    """
    if name not in GRID_PRESETS:
        raise InputError(f"unknown grid model preset {name!r}; choose from {', '.join(GRID_PRESETS)}")
    config = GRID_PRESETS[name]()
    return config.replace(**overrides) if overrides else config
