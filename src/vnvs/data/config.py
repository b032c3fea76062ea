"""Settings of ``vnvs prepare`` (one dataclass for every kind; fields a kind does not use are ignored)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class PrepareConfig:
    """How samples are cut from inputs."""

    size: int = 256
    """Height and width of stored frames (videos are resized on the short side and centre-cropped)."""
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

    def to_dict(self) -> dict:
        return asdict(self)
