"""Settings of ``vnvs eval``: one dataclass, from which the command-line options are built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vnvs.defaults import MAX_SIDE
from vnvs.utils import validate
from vnvs.utils.memory import FRAME_BYTES_PER_PIXEL, check_fits

EVAL_FILES = ("report.json", "report.md")
"""What ``vnvs eval`` writes into its output folder."""

BENCHMARKS = ("synthetic", "real", "grid")
DEFAULT_SCENES = 8
"""Scenes of the synthetic benchmark when ``scenes`` is not given."""


@dataclass
class EvalConfig:
    """Settings of ``vnvs eval``."""

    benchmark: Literal["synthetic", "real", "grid"] = field(default="synthetic", metadata={"short": "-b"})
    """synthetic: held-out procedural scenes with exact ground truth; real: prepared flow pairs of held-out videos;
    grid: held-out procedural time x view grids (methods: independent, 4real, sv4d, full4d, ... see docs/grids.md)."""
    methods: str = field(default="warp,warp+inpaint,default", metadata={"short": "-m"})
    """Comma-separated generators (warp, warp+inpaint, default, or a saved model folder); LABEL=NAME names one
    in the report."""
    output: Path = field(default=Path("vnvs_eval"), metadata={"short": "-o"})
    """Folder for report.json and report.md."""
    scenes: int | None = field(default=None, metadata={"short": "-n"})
    """synthetic: number of scenes (default 8); real: at most this many clips (default all)."""
    seed: int = 0
    """synthetic: which held-out scenes; both: the generators' seed."""
    frames: int = 25
    """synthetic: frames per source video."""
    size: int = 128
    """synthetic: shorter side of the frames in pixels (procedural scenes are square: N x N)."""
    trajectory: str = field(default="random", metadata={"short": "-t"})
    """synthetic: random (a random orbit + arc + dolly per scene, as in training) or a preset (orbit:30, ...) or
    trajectory file used for every scene."""
    mode: Literal["gradual", "direct"] = "gradual"
    """synthetic: mode of a fixed trajectory; random ones draw their own."""
    max_orbit: float = 30.0
    """synthetic: largest orbit angle of random trajectories, degrees."""
    cache: Path | None = None
    """synthetic: folder keeping rendered scenes between runs (rendering is the slow part)."""
    data: Path | None = None
    """real: folder written by vnvs prepare --kind flow-pairs."""
    kind: str = "flow-pairs"
    """real: sample kind to score."""
    steps: int | None = None
    """Learned methods: sampling steps (default: the model folder's sampling.json, else 20)."""
    guidance: float | None = None
    """Learned methods: classifier-free guidance scale on the control signal (default 1)."""
    device: str | None = None
    """Learned methods: cpu, cuda, cuda:1, ... (default: CUDA when available)."""
    views: int = 4
    """grid: views per grid (row 0 is the source video)."""
    grid_generator: str = "default"
    """grid: the novel-view generator of the independent baseline and of column 0 (the freeze-time sweep)."""
    extra: dict = field(default_factory=dict, metadata={"cli": False})
    """Other settings of learned generators (resolution, window, ...)."""

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        validate.choice(self.benchmark, BENCHMARKS, "benchmark")
        validate.choice(self.mode, ("gradual", "direct"), "mode")
        validate.seed(self.seed)
        for name in ("frames", "size", "views"):
            validate.positive_int(getattr(self, name), name)
        validate.need(self.size <= MAX_SIDE, f"size must be at most {MAX_SIDE} pixels, got {self.size}")
        check_fits(FRAME_BYTES_PER_PIXEL * self.frames * self.size * self.size,
                   f"a benchmark scene of {self.frames} frames at {self.size} px")
        validate.need(self.views >= 2 and (self.benchmark != "grid" or self.frames >= 2),
                      "views (and frames of a grid) must be at least 2")
        for name in ("scenes", "steps"):
            validate.positive_int(getattr(self, name), name, optional=True)
        validate.need(validate.is_number(self.max_orbit) and 0 < self.max_orbit <= 90,
                      f"max_orbit must be in (0, 90] degrees, got {self.max_orbit!r}")
        validate.need(self.guidance is None or validate.is_number(self.guidance),
                      f"guidance must be a number, got {self.guidance!r}")
