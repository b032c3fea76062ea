"""Settings of 4D Gaussian reconstruction (a light module: the command line builds its options from it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from vnvs.utils import validate


@dataclass
class ReconSettings:
    """How a grid is fitted with deformable Gaussians (see docs/recon.md)."""

    steps: int = 1500
    """Optimisation steps (one grid cell per step)."""
    init_stride: int = 2
    """Canonical Gaussians: one per stride x stride pixels of the unprojected depth."""
    init_times: int = 1
    """Grid columns whose depth seeds the canonical Gaussians (evenly spaced; the middle one first)."""
    max_gaussians: int = 40000
    """Most Gaussians at initialisation and after densification."""
    ssim_weight: float = 0.2
    """Weight of (1 - SSIM) against L1 in the photometric loss."""
    visibility_floor: float = 0.2
    """Smallest visibility weight of a pixel seen at a grazing angle (1 disables visibility weighting)."""
    view_compensation: bool = True
    """Learn a per-view deformation (4Real-Video) that absorbs inconsistencies between generated views."""
    view_reg: float = 1.0
    """Weight of the L2 penalty on the view compensation (keeps it to what the views disagree on)."""
    mlp_width: int = 64
    """Width of the deformation MLP."""
    mlp_layers: int = 3
    """Hidden layers of the deformation MLP."""
    pos_octaves: int = 6
    """Positional-encoding octaves of position."""
    time_octaves: int = 4
    """Positional-encoding octaves of time."""
    deform_warmup: int = 100
    """Steps fitting the canonical Gaussians alone before the deformation MLP trains."""
    densify_every: int = 100
    """Clone / split / prune every N steps."""
    densify_until: float = 0.6
    """Fraction of the steps after which the Gaussian count stays fixed."""
    densify_grad: float = 0.0004
    """Mean view-space gradient norm above which a Gaussian is cloned (small) or split (large)."""
    prune_opacity: float = 0.01
    """Gaussians with a smaller opacity are removed."""
    lr_means: float = 0.00016
    """Learning rate of positions, times the scene extent."""
    lr_mlp: float = 0.001
    """Learning rate of the deformation MLP."""
    background: Literal["black", "white"] = "black"
    """Colour behind the Gaussians."""
    backend: Literal["auto", "numba", "reference", "gsplat"] = "auto"
    """Rasterizer: auto (gsplat on CUDA, numba on the CPU), numba, reference (slow) or gsplat."""
    checkpoint_every: int = 500
    """Write a resumable checkpoint every N steps."""
    device: str | None = None
    """cpu, cuda, cuda:1, ... (default: CUDA when available, else the CPU)."""

    def __post_init__(self) -> None:
        for name in ("steps", "init_stride", "init_times", "max_gaussians", "mlp_width", "mlp_layers",
                     "densify_every", "checkpoint_every"):
            validate.positive_int(getattr(self, name), name)
        for name in ("pos_octaves", "time_octaves", "deform_warmup"):
            validate.need(validate.is_int(getattr(self, name)) and getattr(self, name) >= 0,
                          f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("ssim_weight", "visibility_floor", "densify_until"):
            v = getattr(self, name)
            validate.need(validate.is_number(v) and 0 <= v <= 1, f"{name} must be in [0, 1], got {v!r}")
        for name in ("view_reg", "densify_grad", "prune_opacity", "lr_means", "lr_mlp"):
            v = getattr(self, name)
            validate.need(validate.is_number(v) and v >= 0, f"{name} must be >= 0, got {v!r}")
        validate.choice(self.background, ("black", "white"), "background")
        validate.choice(self.backend, ("auto", "numba", "reference", "gsplat"), "backend")
        validate.need(self.device is None or isinstance(self.device, str), f"device must be a string, got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)
