"""The generator interface: control signal in, novel-view frames out."""

from __future__ import annotations

from typing import Protocol

import torch


class Generator(Protocol):
    """Turns a control signal into novel-view frames.

    Implementations take ``control`` ``(T, 9, H, W)`` (``I_s | C | I_r | M``, see
    ``vnvs.geometry.build_control_signal``) and return ``(T, 3, H, W)`` frames in [0, 1]. The same
    ``seed`` gives the same frames.
    """

    name: str

    def __call__(self, control: torch.Tensor, *, seed: int = 0) -> torch.Tensor: ...
