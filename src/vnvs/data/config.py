"""Settings of ``vnvs prepare``: how samples are cut (:class:`PrepareConfig`, one dataclass for every kind;
fields a kind does not use are ignored) and one run over a set of inputs (:class:`PrepareRun`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from vnvs.data.kinds import PREPARE_KINDS
from vnvs.defaults import FLOW_BACKEND_NAMES, MAX_SIDE
from vnvs.utils import validate
from vnvs.utils.memory import FRAME_BYTES_PER_PIXEL, check_fits


@dataclass
class PrepareConfig:
    """How samples are cut from inputs."""

    size: int = 256
    """Shorter side of the stored frames in pixels; videos are then centre-cropped to N x N."""
    clip_frames: int = 16
    """Frames per clip (T)."""
    frame_stride: int = 1
    """Step between the frames of a clip, in source frames."""
    pairs_per_video: int = 4
    """Candidate samples drawn per input (before dropping)."""
    min_offset: int = 1
    """Flow pairs: smallest temporal offset between source and target clips, in source frames."""
    max_offset: int = 16
    """Flow pairs: largest temporal offset (offsets are drawn uniformly in [min, max])."""
    flow: str = "dis"
    """Flow pairs: optical flow backend (see ``vnvs.estimators.flow.FLOW_BACKENDS``)."""
    min_coverage: float = 0.3
    """Pairs whose warped-mask coverage is below this fraction are dropped (reason ``low_coverage``)."""
    min_consistency: float = 0.5
    """Flow pairs whose forward-backward consistent fraction is below this are dropped (``inconsistent_flow``)."""
    covis_trajectories: int = 2
    """Co-visibility pairs: random novel trajectories per clip."""
    max_orbit_deg: float = 30.0
    """Largest rotation of random novel trajectories (covis, synthetic pairs)."""
    views: int = 4
    """Grids: number of views (V)."""
    affine_strength: float = 1.0
    """Pseudo-4D grids: scale of the random affine motion (1 = up to ~10% translation, ~8 degrees rotation)."""
    fov: float = 60.0
    """Field of view assumed for real videos without camera files (covis)."""
    covis_masks: Literal["3d", "2d"] = "3d"
    """Co-visibility samples (covis, synthetic-covis): 3d keeps the source pixels a random novel camera
    also sees (CogNVS); 2d keeps random smooth 2-D blobs of the same coverage (the paper's ablation)."""

    def __post_init__(self) -> None:
        for name in ("size", "clip_frames", "frame_stride", "pairs_per_video", "min_offset", "max_offset",
                     "covis_trajectories", "views"):
            validate.positive_int(getattr(self, name), name)
        validate.need(self.size <= MAX_SIDE, f"size must be at most {MAX_SIDE} pixels, got {self.size}")
        check_fits(FRAME_BYTES_PER_PIXEL * self.clip_frames * max(self.views, 2) * self.size * self.size,
                   f"a sample of {self.clip_frames} frames at {self.size} px")
        validate.choice(self.flow, FLOW_BACKEND_NAMES, "flow")
        validate.need(self.min_offset <= self.max_offset,
                      f"min_offset {self.min_offset} is larger than max_offset {self.max_offset}")
        for name in ("min_coverage", "min_consistency"):
            value = getattr(self, name)
            validate.need(validate.is_number(value) and 0 <= value <= 1, f"{name} must be in [0, 1], got {value!r}")
        validate.need(validate.is_number(self.max_orbit_deg) and 0 < self.max_orbit_deg <= 90,
                      f"max_orbit_deg must be in (0, 90], got {self.max_orbit_deg!r}")
        validate.need(validate.is_number(self.affine_strength) and self.affine_strength >= 0,
                      f"affine_strength must be >= 0, got {self.affine_strength!r}")
        validate.choice(self.covis_masks, ("3d", "2d"), "covis_masks")
        validate.need(validate.is_number(self.fov) and 1 <= self.fov <= 179,
                      f"fov must be between 1 and 179 degrees, got {self.fov!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PrepareRun:
    """One ``vnvs prepare`` run: which inputs, where the shards go, how the work is spread, how samples are cut."""

    input: str = field(metadata={"short": "-i"})
    """Video file, folder (searched recursively) or glob; for kind synthetic, a number of scenes."""
    output: Path = field(metadata={"short": "-o"})
    """Output folder (shards/ and index.json)."""
    kind: Literal[PREPARE_KINDS] = field(metadata={"short": "-k"})
    """What to build."""
    engine: Literal["local", "ray"] = "local"
    """local: this machine (a process pool); ray: Ray Data, on a cluster when RAY_ADDRESS is set."""
    workers: int | None = None
    """Parallel processes (local) or CPUs of a local Ray instance (default: the CPU count)."""
    limit: int | None = None
    """Use only the first N inputs (sorted)."""
    seed: int = 0
    """Run seed."""
    depth_dir: Path | None = None
    """covis: folder of depth files named <stem>.npz or <stem>.npy."""
    cameras_dir: Path | None = None
    """covis: folder of camera files named <stem>.npz, .json or .txt."""
    build: PrepareConfig = field(default_factory=PrepareConfig)
    """How samples are cut."""

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        validate.choice(self.kind, PREPARE_KINDS, "kind")
        validate.choice(self.engine, ("local", "ray"), "engine")
        validate.positive_int(self.workers, "workers", optional=True)
        validate.positive_int(self.limit, "limit", optional=True)
        validate.seed(self.seed)
