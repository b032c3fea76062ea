"""Settings of ``vnvs reconstruct`` and ``vnvs render-scene`` (light: the command line reads them before torch loads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vnvs.recon.config import ReconSettings
from vnvs.utils import validate


@dataclass
class ReconstructConfig:
    """Settings of ``vnvs reconstruct``."""

    input: Path = field(metadata={"positional": True})
    """Grid folder (grid.json, one video per view, depth.npz; see docs/conventions.md), or a vnvs render output
    folder written with --save-depth (read as a two-row grid: the source video and the novel view)."""
    output: Path = field(default=Path("vnvs_scene"), metadata={"short": "-o"})
    """Scene folder to write (replaced atomically when complete)."""
    ply_times: str = "middle"
    """Grid columns written as PLY files: comma-separated column numbers, 'middle', 'first', 'last' or 'all'."""
    holdout_views: str = ""
    """Comma-separated grid views left out of the fit (scored in scene.json as held-out PSNR)."""
    seed: int = 0
    """Seed of initialisation, cell order and densification."""
    resume: bool = False
    """Continue from the latest checkpoint of an interrupted run with the same OUTPUT."""
    recon: ReconSettings = field(default_factory=ReconSettings)
    """Optimisation settings."""
    stage2: str | None = None
    """Second stage (off by default): a learned generator (default, or a saved model folder) that noises and
    denoises the renders of the fitted scene into new targets, fitted for --stage2-steps more steps."""
    stage2_steps: int = 300
    """Steps fitted on the refined targets."""
    stage2_strength: float = 0.4
    """Noise level the renders are taken to before the generator denoises them, in (0, 1]."""
    stage2_sampling_steps: int | None = None
    """Sampling steps of the stage-2 generator (default: its sampling.json)."""

    def __post_init__(self) -> None:
        self.input = Path(self.input)
        self.output = Path(self.output)
        validate.seed(self.seed)
        validate.positive_int(self.stage2_steps, "stage2_steps")
        validate.positive_int(self.stage2_sampling_steps, "stage2_sampling_steps", optional=True)
        validate.need(validate.is_number(self.stage2_strength) and 0 < self.stage2_strength <= 1,
                      f"stage2_strength must be in (0, 1], got {self.stage2_strength!r}")


@dataclass
class RenderSceneConfig:
    """Settings of ``vnvs render-scene``."""

    scene: Path = field(metadata={"positional": True})
    """Scene folder written by `vnvs reconstruct`."""
    trajectory: str = field(default="orbit:30", metadata={"short": "-t"})
    """Camera path: a preset NAME:PARAMS (orbit, arc, dolly, pan, tilt, zoom, translate, spiral, bullet; combine
    with '+'; relative to the cameras of grid view --view) or a trajectory file (vnvs JSON, transforms.json,
    COLMAP text folder, MegaSaM .npz, TrajectoryCrafter .txt)."""
    output: Path = field(default=Path("vnvs_scene_render"), metadata={"short": "-o"})
    """Output folder (render.mp4, trajectory.json)."""
    view: int = 0
    """Grid view whose cameras presets are relative to."""
    mode: Literal["gradual", "direct"] = "gradual"
    """gradual: reach the full offset at the last frame; direct: full offset from the first frame."""
    frames: int | None = None
    """Output frames (default: the grid's column count; files keep their own count)."""
    time: float | None = None
    """Freeze the scene at this normalised time in [0, 1] (default: each frame's time index, as the trajectory says)."""
    fps: float | None = None
    """Frame rate of render.mp4 (default: the grid's)."""
    background: Literal["black", "white"] = "black"
    """Colour behind the Gaussians."""
    backend: Literal["auto", "numba", "reference", "gsplat"] = "auto"
    """Rasterizer: auto (gsplat on CUDA, numba on the CPU), numba, reference or gsplat."""
    device: str | None = None
    """cpu, cuda, cuda:1, ... (default: CUDA when available, else the CPU)."""

    def __post_init__(self) -> None:
        self.scene = Path(self.scene)
        self.output = Path(self.output)
        validate.need(validate.is_int(self.view) and self.view >= 0, f"view must be an integer >= 0, got {self.view!r}")
        validate.positive_int(self.frames, "frames", optional=True)
        if self.time is not None:
            validate.need(validate.is_number(self.time) and 0 <= self.time <= 1, f"time must be in [0, 1], got {self.time!r}")
        if self.fps is not None:
            validate.need(validate.is_number(self.fps) and self.fps > 0, f"fps must be positive, got {self.fps!r}")


@dataclass
class ViewConfig:
    """Settings of ``vnvs view``."""

    path: Path = field(metadata={"positional": True})
    """Scene folder (`vnvs reconstruct`), 3DGS PLY file, grid folder (`vnvs grid`) or `vnvs render` output folder."""
    port: int = 8080
    """Port of the viewer's web server (the next free one when it is taken)."""
    host: str = "127.0.0.1"
    """Address the web server listens on (0.0.0.0 shares it with the network; see docs/viewer.md)."""
    view: int | None = None
    """Grid folders: show this view's point clouds only (default every view; the panel switches)."""
    trajectory_out: Path = Path("trajectory.json")
    """File the trajectory editor's Save button writes (a vnvs trajectory JSON, replaced atomically)."""
    max_points: int = 200_000
    """Most points of a point cloud per time step (grid and render outputs; pixels are taken at a stride)."""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.trajectory_out = Path(self.trajectory_out)
        validate.need(validate.is_int(self.port) and 1 <= self.port <= 65535, f"port must be in 1..65535, got {self.port!r}")
        validate.need(self.view is None or (validate.is_int(self.view) and self.view >= 0),
                      f"view must be an integer >= 0, got {self.view!r}")
        validate.positive_int(self.max_points, "max_points")


SCENE_FILES = ("scene.json", "canonical.safetensors", "deformation.safetensors", "ply")
"""What ``vnvs reconstruct`` writes into its scene folder."""
RENDER_SCENE_FILES = ("render.mp4", "trajectory.json")
"""What ``vnvs render-scene`` writes into its output folder."""
