"""Settings of ``vnvs grid``: the video, depth and camera options of ``vnvs render`` (inherited from
:class:`~vnvs.apps.config.RenderConfig`) plus the grid's size and the method that fills it.
Light: importing it imports no torch (the command line builds its options from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vnvs.apps.config import RenderConfig
from vnvs.defaults import TRAINED_GRID_METHOD
from vnvs.utils import validate

GRID_METHODS = ("independent", TRAINED_GRID_METHOD, "4real", "sv4d", "full4d", "4real-sequential", "4real-hard",
                "4real-soft-free", "4real-hard-free")
"""Built-in ``--method`` names; a folder saved by ``GridModel.save_pretrained`` is accepted too.
``independent``: every view rendered on its own by the novel-view generator (the baseline);
``4real-trained``: the trained 4Real-Video grid model that ships with vnvs (within 0.15 dB and 0.1 view
error of ``independent`` on held-out procedural grids; BENCHMARKS.md); the others: the grid model presets of
:mod:`vnvs.models.grid` on the shipped DiT, untrained (4Real-Video's training-free variants are
``4real-soft-free``, ``4real-hard-free`` and ``4real-sequential``)."""


@dataclass
class GridConfig(RenderConfig):
    """Settings of ``vnvs grid``."""

    output: Path = field(default=Path("vnvs_grid"), metadata={"short": "-o"})
    """Output grid folder (grid.json, view_000.mp4 ..., depth.npz, contact_sheet.png; see docs/grids.md)."""
    trajectory: str = field(default="orbit:30", metadata={"short": "-t"})
    """Camera offset of the last view: a preset NAME:PARAMS (orbit, arc, dolly, pan, tilt, zoom, translate,
    spiral; combine with '+') or a trajectory file; view v gets the fraction v/(views-1) of it at every frame."""
    mode: str = field(default="direct", metadata={"cli": False})
    """Grids always apply the trajectory's full offset at every frame (row v: a fraction of it)."""
    save_depth: bool = field(default=False, metadata={"cli": False})
    """The depth of row 0 is always written (depth.npz)."""
    views: int = 4
    """Views V of the grid (rows), including the input video as row 0."""
    method: str = field(default="independent", metadata={"short": "-m"})
    """What fills the grid: independent (each view rendered on its own by --generator), 4real, sv4d, full4d
    (grid models on the shipped DiT, training-free) or a grid model folder (vnvs train --config grid-*)."""
    window_views: int | None = None
    """Grid models: views per model call including row 0 (default: the model's trained size, else all)."""
    window_times: int | None = None
    """Grid models: times per model call including column 0 (default: the model's trained size, else all)."""
    grid_resolution: int | None = None
    """Grid models: short side of the cells the model samples, resized back to the video's size (default:
    the resolution the model was trained at, else the video's)."""
    composite: bool = True
    """Grid models: keep the input video warped to every cell's camera wherever it landed, so the model
    paints only the holes (as --generator models composite); --no-composite shows the model's own cells."""
    seamless: bool = True
    """Grid models with --composite: shift the colours the model paints into the holes by the difference
    between the warp and the model on the pixels around them, filled smoothly into the hole, so the
    holes meet the warped video without a seam (offset blending)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.positive_int(self.views, "views")
        validate.need(self.views >= 2, f"views must be at least 2 (row 0 is the input video), got {self.views}")
        validate.need(isinstance(self.method, str) and bool(self.method), f"method must be a name, got {self.method!r}")
        validate.need(self.method in GRID_METHODS or Path(self.method).is_dir(),
                      f"unknown grid method {self.method!r}; choose {', '.join(GRID_METHODS)} or a grid model folder")
        validate.need(self.views <= 64, f"views must be at most 64, got {self.views}")
        validate.positive_int(self.grid_resolution, "grid_resolution", optional=True)
        validate.need(self.grid_resolution is None or self.grid_resolution <= 8192,
                      f"grid_resolution must be at most 8192, got {self.grid_resolution}")
        for name in ("window_views", "window_times"):
            validate.positive_int(getattr(self, name), name, optional=True)
            value = getattr(self, name)
            validate.need(value is None or value >= 2, f"{name} must be at least 2 (it includes the given row or column)")
