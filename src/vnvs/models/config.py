"""``ModelConfig``: everything needed to rebuild a :class:`~vnvs.models.NovelViewModel`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vnvs.errors import InputError

BACKBONES = ("dit", "cogvideox", "wan")
CONTROLS = ("vnvs", "inpaint")


@dataclass
class ModelConfig:
    """Architecture of a novel-view model: backbone, control injection, null conditioning."""

    backbone: str = "dit"
    """Backbone kind: ``"dit"`` (built-in pixel-space video DiT), ``"cogvideox"`` or ``"wan"`` (diffusers)."""
    pretrained: str | None = None
    """cogvideox / wan: diffusers model id or local folder with ``transformer/`` and ``vae/`` subfolders."""
    backbone_config: dict = field(default_factory=dict)
    """dit: keyword arguments of :class:`~vnvs.models.dit.DiTConfig`; cogvideox / wan: the diffusers
    transformer config for a randomly initialised backbone (tiny test models). Empty with ``pretrained``."""
    vae_config: dict | None = None
    """cogvideox / wan: the diffusers VAE config for random init (tests); None with ``pretrained``; unused by dit."""
    control: str = "vnvs"
    """How the control signal enters the backbone: ``"vnvs"`` (Scaling4D: Correspondence Projector + VNVS
    blocks) or ``"inpaint"`` (CogNVS: the warped frames ``I_r``, encoded like the video, and the mask
    are concatenated channel-wise to the noisy input through zero-initialised new input channels of the
    patch embedding; no projector, no VNVS blocks; the ``vnvs_*`` and ``projector_channels`` fields are unused)."""
    vnvs_every: int = 1
    """Insert a VNVS block after every k-th backbone block (after blocks k-1, 2k-1, ...)."""
    vnvs_ffn: bool = False
    """Ablation: give VNVS blocks a feed-forward layer (Scaling4D drops it)."""
    vnvs_text_coupled: bool = False
    """Ablation: text tokens join the VNVS attention and are updated by it (Scaling4D keeps them apart)."""
    vnvs_heads: int | None = None
    """Attention heads of the VNVS blocks; None = the backbone's."""
    projector_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    """Correspondence Projector widths: the stem conv, then one entry per stride-2 conv (the last repeats)."""
    null_text_tokens: int = 8
    """Length of the null text sequence used when ``text_embeds`` is None (dit: learned tokens; wan: zeros;
    cogvideox uses its ``max_text_seq_length``, which its position table fixes)."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InputError(f"unknown backbone {self.backbone!r}; expected one of {', '.join(BACKBONES)}")
        if self.control not in CONTROLS:
            raise InputError(f"unknown control {self.control!r}; expected one of {', '.join(CONTROLS)}")
        if self.vnvs_every < 1:
            raise InputError(f"vnvs_every must be >= 1, got {self.vnvs_every}")
        if not self.projector_channels or min(self.projector_channels) < 1:
            raise InputError(f"projector_channels must be a non-empty list of positive widths, got {self.projector_channels}")
        if self.null_text_tokens < 1:
            raise InputError(f"null_text_tokens must be >= 1, got {self.null_text_tokens}")
        if self.pretrained is not None and (self.backbone_config or self.vae_config is not None):
            raise InputError("give either pretrained or backbone_config/vae_config, not both")
        self.projector_channels = [int(c) for c in self.projector_channels]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown model config fields: {', '.join(map(repr, unknown))}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
