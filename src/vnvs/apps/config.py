"""Settings of the application commands (``vnvs demo``, ``vnvs render``): one dataclass each, from which
the command-line options are built (:mod:`vnvs.utils.config_cli`) and which validates itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vnvs.defaults import (
    DEFAULT_DEPTH_MODEL,
    DEFAULT_GENERATOR,
    DEFAULT_RENDER_GENERATOR,
    DEFAULT_RENDERER,
    MAX_SIDE,
    RENDERERS,
)
from vnvs.utils import validate
from vnvs.utils.memory import FRAME_BYTES_PER_PIXEL, check_fits

RENDER_FILES = ("novel.mp4", "conditioning.mp4", "side_by_side.mp4", "trajectory.json", "cameras.json", "depth.npz")
"""What ``vnvs render`` writes into its output folder."""
DEMO_FILES = ("novel.mp4", "conditioning.mp4", "comparison.png", "metrics.json", "trajectory.json")
"""What ``vnvs demo`` writes into its output folder."""

Mode = Literal["gradual", "direct"]
"""How a preset trajectory is traversed: ``gradual`` reaches the full offset at the last frame, ``direct``
starts with it."""

"""Largest frame side a command accepts (a 8K frame; beyond it the buffers alone need tens of GB)."""


@dataclass
class DemoConfig:
    """Settings of ``vnvs demo``."""

    output: Path = field(default=Path("vnvs_demo"), metadata={"short": "-o"})
    """Folder for novel.mp4, conditioning.mp4, comparison.png, metrics.json and trajectory.json."""
    seed: int = 0
    """Seed of the procedural scene, its source camera path and the generator."""
    frames: int = 49
    """Number of frames of the source video."""
    size: int = 256
    """Shorter side of the frames in pixels (procedural scenes are square: N x N)."""
    trajectory: str = field(default="orbit:30", metadata={"short": "-t"})
    """Target camera path: a preset NAME:PARAMS (orbit, arc, dolly, pan, tilt, zoom, translate, spiral, bullet;
    combine with '+') or a trajectory file (see docs/trajectories.md)."""
    mode: Mode = "gradual"
    """gradual: reach the full offset at the last frame; direct: full offset from the first frame."""
    generator: str = field(default=DEFAULT_GENERATOR, metadata={"short": "-g", "default_text": "the model shipped with vnvs"})
    """What fills the disoccluded regions: warp, warp+inpaint, warp+inpaint+refine (the inpainting redrawn by the
    model shipped with vnvs), default (the model shipped with vnvs), cognvs (the CogNVS-style inpainting model
    shipped with vnvs) or a saved model folder."""
    steps: int | None = None
    """Learned generators: sampling steps (default: the model folder's sampling.json, else 20)."""
    guidance: float | None = None
    """Learned generators: classifier-free guidance scale on the control signal (default: sampling.json, else 1)."""
    renderer: Literal["zbuffer", "mesh"] | None = field(
        default=None, metadata={"default_text": f"{DEFAULT_RENDERER} (the best measured with the shipped model)"})
    """How source frames are carried to the target cameras for the conditioning (as in vnvs render)."""
    fps: float = 12.0
    """Frame rate of the written videos."""

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        validate.seed(self.seed)
        validate.positive_int(self.frames, "frames")
        validate.positive_int(self.size, "size")
        validate.need(self.size <= MAX_SIDE, f"size must be at most {MAX_SIDE} pixels, got {self.size}")
        check_fits(FRAME_BYTES_PER_PIXEL * self.frames * self.size * self.size, f"a demo of {self.frames} frames at {self.size} px")
        validate.choice(self.mode, ("gradual", "direct"), "mode")
        _check_sampling(self)
        validate.choice(self.renderer, RENDERERS + (None,), "renderer")
        validate.need(validate.is_number(self.fps) and self.fps > 0, f"fps must be a number > 0, got {self.fps!r}")


@dataclass
class RenderConfig:
    """Settings of ``vnvs render``."""

    video: Path = field(metadata={"positional": True})
    """Input video (any length, size and aspect ratio; anything FFmpeg decodes)."""
    depth: str = field(default=DEFAULT_DEPTH_MODEL, metadata={"short": "-d"})
    """Depth file (.npy/.npz, one map per frame, any size with the video's aspect ratio) or a transformers
    depth model (hub id or local folder)."""
    trajectory: str = field(default="orbit:30", metadata={"short": "-t"})
    """Target camera path: a preset NAME:PARAMS (orbit, arc, dolly, pan, tilt, zoom, translate, spiral, bullet;
    combine with '+') or a trajectory file (vnvs JSON, transforms.json, COLMAP text folder, MegaSaM .npz,
    TrajectoryCrafter .txt)."""
    output: Path = field(default=Path("vnvs_render"), metadata={"short": "-o"})
    """Output folder."""
    mode: Mode = "gradual"
    """gradual: reach the full offset at the last frame; direct: full offset from the first frame."""
    fov: float | None = None
    """Source field of view in degrees across the longer side (default: the camera file's intrinsics, else 60)."""
    intrinsics: Path | None = None
    """Source intrinsics file (JSON or text, see docs/render.md)."""
    cameras: Path | None = None
    """Source camera poses (transforms.json, COLMAP text, MegaSaM npz, vnvs JSON); default: a static camera."""
    depth_kind: Literal["metric", "relative"] | None = None
    """What a depth file holds (default metric)."""
    align_depth: Literal["auto", "on", "off"] = "auto"
    """Align depth to one scale along optical flow (auto: relative depth only)."""
    stride: int = 1
    """Use every N-th frame."""
    max_frames: int | None = None
    """Use at most N frames."""
    size: int | None = None
    """Shorter side of the frames in pixels, the aspect ratio kept (default: the video's size)."""
    generator: str = field(default=DEFAULT_RENDER_GENERATOR, metadata={
        "short": "-g", "default_text": "warp+inpaint+refine (the best measured on real footage)"})
    """What fills the disoccluded regions: warp, warp+inpaint, warp+inpaint+refine (the inpainting redrawn by the
    model shipped with vnvs; warp+inpaint+refine:MODEL redraws with another), default (the model shipped with
    vnvs), cognvs (the CogNVS-style inpainting model shipped with vnvs) or a saved model folder."""
    steps: int | None = None
    """Learned generators: sampling steps (default: the model folder's sampling.json, else 20)."""
    guidance: float | None = None
    """Learned generators: classifier-free guidance scale on the control signal (default: sampling.json, else 1)."""
    seed: int = 0
    """Generator seed."""
    renderer: Literal["zbuffer", "mesh"] | None = field(
        default=None, metadata={"default_text": f"{DEFAULT_RENDERER} (the best measured with the shipped model)"})
    """How source frames are carried to the target cameras for the conditioning: mesh (the depth mesh: no
    cracks, sub-pixel correspondence) or zbuffer (one point per pixel, what the shipped model was trained
    on); choosing one a learned generator was not trained with is warned about; see docs/render.md."""
    chunk_frames: int = 16
    """Frames per chunk through depth, rendering and generation (halved on GPU out-of-memory)."""
    save_depth: bool = False
    """Also write depth.npz (the depth used, one map per source frame)."""
    device: str | None = None
    """Device for the depth model (default: CUDA when available)."""
    depth_size: int = 518
    """Longer side of the depth model's input in pixels."""
    ttf: int = 0
    """Test-time finetuning: first finetune the learned generator for N steps on this video (as
    `vnvs finetune`, in a temporary folder), then render with the adapted model (0: off)."""

    def __post_init__(self) -> None:
        self.video = Path(self.video)
        self.output = Path(self.output)
        validate.seed(self.seed)
        validate.need(validate.is_int(self.ttf) and self.ttf >= 0, f"ttf must be an integer >= 0, got {self.ttf!r}")
        for name in ("stride", "chunk_frames", "depth_size"):
            validate.positive_int(getattr(self, name), name)
        for name in ("max_frames", "size"):
            validate.positive_int(getattr(self, name), name, optional=True)
        validate.need(self.size is None or self.size <= MAX_SIDE, f"size must be at most {MAX_SIDE} pixels, got {self.size}")
        validate.choice(self.mode, ("gradual", "direct"), "mode")
        _check_sampling(self)
        validate.choice(self.depth_kind, ("metric", "relative", None), "depth_kind")
        validate.choice(self.align_depth, ("auto", "on", "off"), "align_depth")
        validate.choice(self.renderer, RENDERERS + (None,), "renderer")
        validate.need(self.fov is None or (validate.is_number(self.fov) and 1.0 <= self.fov <= 179.0),
                      f"fov must be between 1 and 179 degrees, got {self.fov}")


@dataclass
class FinetuneConfig:
    """Settings of ``vnvs finetune`` (test-time finetuning of a learned generator on one video)."""

    video: Path = field(metadata={"positional": True})
    """The video to adapt the model to (the one it will then render)."""
    output: Path = field(metadata={"short": "-o"})
    """Model folder to write (config.json, model.safetensors, sampling.json); `vnvs render --generator OUTPUT` uses it."""
    generator: str = field(default=DEFAULT_GENERATOR, metadata={"short": "-g", "default_text": "the model shipped with vnvs"})
    """Model to start from: default (the model shipped with vnvs), cognvs (the inpainting model shipped with
    vnvs; its pairs need depth) or a saved model folder."""
    depth: str | None = field(default=None, metadata={"short": "-d", "default_text": f"{DEFAULT_DEPTH_MODEL} when needed"})
    """Depth file (.npy/.npz, one map per frame) or a transformers depth model; only inpainting models
    need depth (their pairs are co-visibility pairs), the others train on optical-flow pairs."""
    steps: int = 100
    """Optimizer steps (CogNVS: 200-400 for CogVideoX-5B; an existing work folder is resumed and extended)."""
    lr: float | None = None
    """AdamW learning rate (default: 1e-4 for a full finetune of a built-in DiT, 2e-5 with LoRA, as CogNVS)."""
    batch_size: int = 4
    """Pairs per step."""
    pairs: int = 32
    """Self-supervised training pairs cut from the video."""
    lora_rank: int | None = None
    """LoRA rank (0: full finetune; default: 0 for the built-in DiT, 16 for diffusers backbones; needs peft)."""
    max_frames: int | None = None
    """Use at most the first N frames of the video."""
    stride: int = 1
    """Use every N-th frame."""
    seed: int = 0
    """Seed of the pairs, the noise and the data order."""
    checkpoint_every: int = 50
    """Write a resumable checkpoint every N steps (in the work folder)."""
    work: Path | None = None
    """Work folder for the pairs and checkpoints (default: OUTPUT.work beside OUTPUT); a rerun with the
    same inputs resumes from its newest checkpoint."""
    device: str | None = None
    """Device for the depth model (default: CUDA when available)."""

    def __post_init__(self) -> None:
        self.video = Path(self.video)
        self.output = Path(self.output)
        self.work = Path(self.work) if self.work is not None else None
        validate.seed(self.seed)
        for name in ("steps", "batch_size", "pairs", "stride", "checkpoint_every"):
            validate.positive_int(getattr(self, name), name)
        validate.positive_int(self.max_frames, "max_frames", optional=True)
        validate.need(self.lr is None or (validate.is_number(self.lr) and self.lr > 0), f"lr must be > 0, got {self.lr!r}")
        validate.need(self.lora_rank is None or (validate.is_int(self.lora_rank) and self.lora_rank >= 0),
                      f"lora_rank must be an integer >= 0, got {self.lora_rank!r}")


def _check_sampling(config: DemoConfig | RenderConfig) -> None:
    validate.positive_int(config.steps, "steps", optional=True)
    validate.need(config.guidance is None or validate.is_number(config.guidance),
                  f"guidance must be a number, got {config.guidance!r}")


def generator_options(config: DemoConfig | RenderConfig) -> dict:
    """The sampling settings a command passes to :func:`vnvs.generators.get_generator` (those given only)."""
    return {k: v for k, v in (("steps", config.steps), ("guidance", config.guidance)) if v is not None}
