"""``GridModelConfig``: everything needed to rebuild a :class:`~vnvs.models.grid.GridModel`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vnvs.errors import InputError

GRID_MODEL_METHODS = ("4real", "sv4d", "full4d")
"""``4real``: 4Real-Video two-stream DiT with synchronization layers; ``sv4d``: SV4D 2.0 3D attention
alpha-blended with frame attention; ``full4d``: Full-4D fused time-view attention with a reprojection prior."""
GRID_FORMAT_VERSION = 1
"""Version of the saved grid model folder (``config.json`` + ``model.safetensors``)."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
GRID_BACKBONES = ("dit", "cogvideox", "wan")
"""``dit``: the built-in pixel-space DiT; ``cogvideox`` / ``wan``: diffusers latent video transformers."""
SHIPPED = "shipped"
"""``pretrained`` value naming the backbone of the novel-view model shipped with vnvs."""


@dataclass
class GridModelConfig:
    """Architecture of a time x view grid model (see ``docs/grids.md``)."""

    method: str = "4real"
    """``4real``, ``sv4d`` or ``full4d`` (:data:`GRID_MODEL_METHODS`)."""
    backbone: str = "dit"
    """``dit`` (the built-in pixel-space DiT, :class:`~vnvs.models.grid.GridModel`), ``cogvideox`` or ``wan``
    (diffusers latent backbones whose blocks are wrapped, :class:`~vnvs.models.grid.DiffusersGridModel`)."""
    backbone_config: dict = field(default_factory=dict)
    """dit: keyword arguments of :class:`~vnvs.models.dit.DiTConfig`; cogvideox / wan: the diffusers
    transformer config (random init); empty with ``pretrained``."""
    vae_config: dict | None = None
    """cogvideox / wan: the diffusers VAE config for random init (tests); None with ``pretrained``."""
    pretrained: str | None = None
    """Backbone weights. dit: ``"shipped"`` (the DiT of the novel-view model shipped with vnvs) or a folder
    saved by ``NovelViewModel.save_pretrained`` with a ``dit`` backbone; cogvideox / wan: a diffusers
    model folder with ``transformer/`` and ``vae/`` subfolders; None: random init."""
    arch: str = "parallel"
    """4real: ``parallel`` (two token streams + synchronization, the paper) or ``sequential``
    (view then time update in series, the paper's baseline)."""
    sync: str = "soft"
    """4real parallel: ``hard`` (one merged stream) or ``soft`` (two streams, asymmetric updates)."""
    sync_weights: str = "learned"
    """4real parallel: ``learned`` (a sigma-modulated linear layer, zero-initialised: starts as the hard
    average or as the identity) or ``training-free`` (hard: the average; soft: ``w_l = 0.1 + 0.4 l / L``)."""
    camera: bool | None = None
    """Plücker-ray camera conditioning relative to the reference camera (None: sv4d and full4d yes, 4real no)."""
    alpha_init: float = 0.5
    """sv4d: initial blend of 3D attention (across views) into the per-frame attention (learned per block)."""
    frame_alpha_init: float = 0.99
    """sv4d: initial weight of the frame attention's update (learned per block; 1 = the pretrained temporal
    attention, 0 = none, as for static multi-view data)."""
    reference_mask_prob: float = 0.5
    """sv4d training: probability of hiding the reference views (column 0 below row 0) of a sample."""
    bias_scale: float = 1.0
    """full4d: initial strength of the reprojection prior, ``bias = -scale * min(d^2, 16)`` for a
    reprojection (epipolar) distance ``d`` in patches (learned per block)."""
    window_views: int | None = 4
    """Views per model call the model is trained for (None: any)."""
    window_times: int | None = 8
    """Times per model call the model is trained for (None: any)."""
    resolution: int | None = None
    """Short side (pixels) of the grid cells the model was trained on; sampling resizes cells to it and
    the result back (None: cells are sampled at their own size, rounded to the patch). Training sets it."""
    null_text_tokens: int = 8
    """Length of the learned null text sequence of the DiT."""
    sampling_steps: int = 12
    """Default Euler steps of the grid sampler."""
    sampling_shift: float = 3.0
    """Default timestep shift of the grid sampler."""

    def __post_init__(self) -> None:
        choices = (("method", GRID_MODEL_METHODS), ("arch", ("parallel", "sequential")), ("sync", ("hard", "soft")),
                   ("sync_weights", ("learned", "training-free")))
        for name, options in choices:
            if getattr(self, name) not in options:
                raise InputError(f"grid model {name} must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        if self.backbone not in GRID_BACKBONES:
            raise InputError(f"grid model backbone must be one of {', '.join(GRID_BACKBONES)}, got {self.backbone!r}")
        if self.pretrained is not None and (self.backbone_config or self.vae_config is not None):
            raise InputError("give either pretrained or backbone_config / vae_config, not both")
        if self.backbone == "dit" and self.vae_config is not None:
            raise InputError("the dit backbone works in pixel space: vae_config must be null")
        if self.backbone != "dit":
            if self.pretrained == SHIPPED:
                raise InputError(f"pretrained {SHIPPED!r} names the built-in DiT; a {self.backbone} grid model "
                                 "needs a diffusers model folder")
            if self.pretrained is None and (not self.backbone_config or self.vae_config is None):
                raise InputError(f"a {self.backbone} grid model needs pretrained, or backbone_config and vae_config")
        if not all(0.0 <= float(getattr(self, k)) <= 1.0 for k in ("alpha_init", "frame_alpha_init", "reference_mask_prob")):
            raise InputError("alpha_init, frame_alpha_init and reference_mask_prob must be in [0, 1]")
        for name in ("window_views", "window_times"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 2):
                raise InputError(f"{name} must be null or an integer >= 2, got {value!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int) or isinstance(self.resolution, bool)
                                            or not 1 <= self.resolution <= 8192):
            raise InputError(f"resolution must be null or an integer in [1, 8192], got {self.resolution!r}")
        if self.sampling_steps < 1 or self.sampling_shift <= 0 or self.null_text_tokens < 1:
            raise InputError("sampling_steps, null_text_tokens must be >= 1 and sampling_shift > 0")

    @property
    def uses_camera(self) -> bool:
        return self.method != "4real" if self.camera is None else bool(self.camera)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GridModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown grid model config fields: {', '.join(map(repr, unknown))}")
        return cls(**data)

    def replace(self, **changes: Any) -> "GridModelConfig":
        return dataclasses.replace(self, **changes)


def is_grid_config(data: Any) -> bool:
    """Whether ``data`` is a :class:`GridModelConfig` or a dict naming a grid ``method``."""
    return isinstance(data, GridModelConfig) or (isinstance(data, dict) and data.get("method") in GRID_MODEL_METHODS)
