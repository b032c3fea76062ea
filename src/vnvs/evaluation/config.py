"""Settings of ``vnvs eval``: one dataclass, from which the command-line options are built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vnvs.defaults import DEFAULT_DEPTH_MODEL, MAX_SIDE, RENDERERS
from vnvs.errors import InputError
from vnvs.utils import validate
from vnvs.utils.memory import FRAME_BYTES_PER_PIXEL, check_fits

EVAL_FILES = ("report.json", "report.md", "items.csv", "plots", "sheets")
"""What ``vnvs eval`` writes into its output folder (``plots/`` and ``sheets/`` hold PNGs)."""

BENCHMARKS = ("synthetic", "real", "grid", "dycheck", "kubric4d", "videos")
DATASET_BENCHMARKS = ("dycheck", "kubric4d", "videos")
"""Benchmarks read from a folder in a public layout (``data``)."""
LPIPS_CHOICES = ("alex", "vgg", "none")
DEFAULT_SCENES = 8
"""Scenes of the synthetic benchmark when ``scenes`` is not given."""


@dataclass
class EvalConfig:
    """Settings of ``vnvs eval``."""

    benchmark: Literal["synthetic", "real", "grid", "dycheck", "kubric4d", "videos"] = field(
        default="synthetic", metadata={"short": "-b"})
    """synthetic: held-out procedural scenes with exact ground truth; real: prepared flow pairs of held-out videos;
    grid: held-out procedural time x view grids (methods: independent, 4real, sv4d, full4d, ... see docs/grids.md);
    dycheck: DyCheck iPhone scenes (masked metrics on the co-visible pixels); kubric4d: Kubric-4D scenes (GCD's
    layout); videos: a folder of videos with trajectory files and optional ground truth (see docs/evaluation.md)."""
    methods: str = field(default="warp,warp+inpaint,default", metadata={"short": "-m"})
    """Comma-separated generators (warp, warp+inpaint, warp+inpaint+refine, default, cognvs, or a saved model folder); LABEL=NAME names one
    in the report."""
    output: Path = field(default=Path("vnvs_eval"), metadata={"short": "-o"})
    """Folder for report.json, report.md, items.csv, plots/ and sheets/."""
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
    """real: folder written by vnvs prepare --kind flow-pairs; dycheck, kubric4d, videos: the dataset folder (one
    scene, or a folder of scenes / videos)."""
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
    grid_composite: bool = True
    """grid: grid models keep the source video warped to each cell's camera wherever it landed and paint
    only the holes (``vnvs grid --composite``); --no-grid-composite scores the models' own cells."""
    grid_seamless: bool = True
    """grid: with grid_composite, blend the painted holes' colours into the warp (``vnvs grid --seamless``)."""
    factor: int | None = None
    """dycheck: image scale folder rgb/Nx to evaluate at (default: the scene's extra.json factor, 2 for iPhone)."""
    source_view: int = 0
    """kubric4d: the view used as the monocular source video."""
    target_views: str | None = None
    """kubric4d: comma-separated views to predict (default: every other view)."""
    stride: int = 1
    """dycheck, kubric4d, videos: keep every N-th target frame (videos: every N-th frame of the files)."""
    max_frames: int | None = None
    """dycheck, kubric4d, videos: score at most this many frames per item (after the stride; default all)."""
    depth: str = DEFAULT_DEPTH_MODEL
    """videos: depth model (hub id or folder) for videos without a NAME.depth.npz / .npy file."""
    renderer: Literal["zbuffer", "mesh"] = "zbuffer"
    """dycheck, kubric4d, videos: how the source frame is carried to the target camera (z-buffer splat, as the
    synthetic benchmark, or the depth mesh)."""
    lpips: Literal["alex", "vgg", "none"] = "alex"
    """LPIPS backbone (none: no LPIPS)."""
    lpips_weights: Path | None = None
    """Folder with the LPIPS weights (default: VNVS_LPIPS_WEIGHTS, then the caches; see docs/metrics.md)."""
    fid_weights: Path | None = None
    """FID Inception weights (default: VNVS_FID_WEIGHTS); FID is reported unavailable without them."""
    fvd_weights: Path | None = None
    """FVD I3D TorchScript weights (default: VNVS_FVD_WEIGHTS); FVD is reported unavailable without them."""
    clip_model: str | None = None
    """CLIP model folder or cached hub id for the CLIP scores (default: VNVS_CLIP_MODEL)."""
    sheets: int = 4
    """Contact sheets (sheets/ITEM.png: the truth and each method, a few frames across) for the first N items."""
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
        for name in ("scenes", "steps", "max_frames", "factor"):
            validate.positive_int(getattr(self, name), name, optional=True)
        validate.positive_int(self.stride, "stride")
        validate.need(isinstance(self.sheets, int) and not isinstance(self.sheets, bool) and self.sheets >= 0,
                      f"sheets must be a whole number >= 0, got {self.sheets!r}")
        validate.need(isinstance(self.source_view, int) and self.source_view >= 0,
                      f"source_view must be a view number >= 0, got {self.source_view!r}")
        validate.choice(self.renderer, RENDERERS, "renderer")
        validate.choice(self.lpips, LPIPS_CHOICES, "lpips")
        self.target_view_list()
        validate.need(validate.is_number(self.max_orbit) and 0 < self.max_orbit <= 90,
                      f"max_orbit must be in (0, 90] degrees, got {self.max_orbit!r}")
        validate.need(self.guidance is None or validate.is_number(self.guidance),
                      f"guidance must be a number, got {self.guidance!r}")

    def target_view_list(self) -> list[int] | None:
        """``target_views`` as a list of view numbers (None: every view but the source)."""
        if self.target_views is None or not str(self.target_views).strip():
            return None
        try:
            views = [int(v) for v in str(self.target_views).split(",") if v.strip()]
        except ValueError:
            raise InputError(f"target_views must be comma-separated view numbers, got {self.target_views!r}") from None
        validate.need(bool(views) and min(views) >= 0 and self.source_view not in views,
                      f"target_views must be view numbers >= 0 other than the source view, got {self.target_views!r}")
        return views
