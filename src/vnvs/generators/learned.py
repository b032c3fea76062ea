"""A trained novel-view model as a generator: control ``(T, 9, H, W)`` -> frames ``(T, 3, H, W)``.

:class:`LearnedGenerator` wraps :class:`vnvs.sampling.NovelViewPipeline` and hides the
model's size rules from callers:

* the frames are resized to multiples of ``model.spatial_multiple`` (or to ``resolution`` on the
  short side): source and warped images bilinearly with antialiasing (area-like when shrinking),
  the correspondence ``C`` bilinearly, both weighted by the mask so that values outside ``M`` never
  leak in, and ``M`` itself with nearest neighbour; the frames come back bilinearly at the input size;
* the frame count is padded to ``(T - 1) % model.temporal_multiple == 0`` by repeating the last
  frame; the extra frames are dropped afterwards;
* clips longer than the model's window (``model.window`` or ``window=``) run in overlapping
  sliding windows with linear cross-fades (:mod:`vnvs.generators.windows`); on
  ``torch.cuda.OutOfMemoryError`` the window is halved, the user is told once, and the clip is redone.

A model folder (``config.json`` + ``model.safetensors``, written by ``NovelViewModel.save_pretrained``;
``vnvs train`` writes ``OUTPUT/model``) may hold a ``sampling.json`` with its sampling settings
(:class:`vnvs.sampling.SamplingConfig`); arguments given to :class:`LearnedGenerator` take precedence.

With ``composite`` the generated frames are used only where no source pixel landed (``M = 0``) and
the warped source frame ``I_r`` is kept, at full resolution, everywhere else; one-pixel cracks of the
splat inside a surface are closed from their neighbours first (:func:`vnvs.geometry.control.composite_warped`). The model then
works as an inpainter of disocclusions at its own (possibly lower) resolution, and co-visible detail
is not limited by it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vnvs.errors import InputError
from vnvs.generators.windows import OomRetry
from vnvs.geometry.control import (
    CONTROL_CHANNELS,
    MASK,
    WARPED,
    composite_warped,
    resize_control,
)
from vnvs.models import NovelViewModel
from vnvs.models.flow_scheduler import FlowMatchEulerScheduler
from vnvs.sampling import DEFAULT_SHIFT, NovelViewPipeline, SamplingConfig
from vnvs.utils.device import resolve_device

MODEL_FILES = ("config.json", "model.safetensors")
"""Files that make a folder a saved model (``NovelViewModel.save_pretrained``)."""
def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a saved model (``config.json`` and ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() and all((p / f).is_file() for f in MODEL_FILES)


def model_shift(model) -> float:
    """The timestep shift a model's config asks for (``sampling_shift``, else ``shift``), else
    :data:`~vnvs.sampling.DEFAULT_SHIFT`: the default of :class:`~vnvs.sampling.NovelViewPipeline`."""
    config = getattr(model, "config", None)
    for name in ("sampling_shift", "shift"):
        value = getattr(config, name, None)
        if value is not None:
            return float(value)
    return DEFAULT_SHIFT


def working_size(height: int, width: int, multiple: int, resolution: int | None = None) -> tuple[int, int]:
    """Frame size the model runs at: ``(H, W)`` scaled so the short side is ``resolution`` (if given),
    then rounded to the nearest multiple of ``multiple`` (at least one multiple).

    Example:
        >>> working_size(30, 45, 8), working_size(480, 720, 16, resolution=64), working_size(3, 3, 8)
        ((32, 48), (64, 96), (8, 8))
    """
    h, w = float(height), float(width)
    if resolution is not None:
        scale = float(resolution) / min(h, w)
        h, w = h * scale, w * scale
    m = max(1, int(multiple))
    return max(m, int(round(h / m)) * m), max(m, int(round(w / m)) * m)


def pad_frames(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Repeat the last frame of ``x (T, ...)`` until ``(T - 1) % multiple == 0``.

    Example:
        >>> pad_frames(torch.arange(6.0), 4).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    """
    m = max(1, int(multiple))
    T = x.shape[0]
    padded = 1 + math.ceil((T - 1) / m) * m
    if padded == T:
        return x
    return torch.cat([x, x[-1:].expand(padded - T, *x.shape[1:])], 0)


class LearnedGenerator:
    """A trained :class:`vnvs.models.NovelViewModel` behind the :class:`vnvs.generators.Generator` interface.

    Args:
        model: a saved model folder (``config.json`` + ``model.safetensors``) or a ``NovelViewModel``.
        steps: Euler steps (default: ``sampling.json``, else :data:`vnvs.sampling.DEFAULT_STEPS`).
        guidance: classifier-free guidance scale on the control signal (1: none, one pass per step).
        shift: timestep shift (default: ``sampling.json``, else the pipeline's).
        device: where the model runs (default: CUDA when available, else CPU).
        dtype: model weights' dtype (default float32).
        resolution: short side of the frames the model sees (default: the input's, rounded to
            ``spatial_multiple``).
        window: frames per model call (default: ``sampling.json``, else ``model.window``, else whole clips).
        overlap: frames shared by neighbouring windows.
        composite: keep the warped source frame where ``M = 1`` and use the model only in the holes.
        seamless: with ``composite``, blend the holes' colours into the warped frame around them.
        name: the generator's name in reports (default: the folder's name, or ``"learned"``).
        show_progress: show a bar over the sampling steps.

    Example:
        >>> gen = LearnedGenerator("runs/exp1/model", steps=10)   # doctest: +SKIP
        >>> frames = gen(control, seed=0)                          # (T, 3, H, W) in [0, 1]  # doctest: +SKIP
    """

    def __init__(self, model, *, steps: int | None = None, guidance: float | None = None, shift: float | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 resolution: int | None = None, window: int | None = None, overlap: int | None = None,
                 composite: bool | None = None, seamless: bool | None = None, name: str | None = None,
                 show_progress: bool = False):
        sampling = SamplingConfig()
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not is_model_folder(path):
                raise InputError(f"{path} is not a saved model folder (it needs {' and '.join(MODEL_FILES)})")
            sampling = SamplingConfig.load(path)
            loaded = NovelViewModel.from_pretrained(path)
            name = name or path.resolve().name
        else:
            loaded = model
        sampling = sampling.replace(steps=steps, guidance=guidance, shift=shift, resolution=resolution, window=window,
                                    overlap=overlap, composite=composite, seamless=seamless)
        device = resolve_device(device)
        loaded = loaded.to(device=device, dtype=dtype) if dtype is not None else loaded.to(device=device)
        loaded.eval()
        self.model = loaded
        self.pipeline = NovelViewPipeline(loaded, scheduler=FlowMatchEulerScheduler(shift=model_shift(loaded)))
        self.sampling = sampling
        self.name = name or "learned"
        self.steps, self.guidance, self.shift = sampling.steps, float(sampling.guidance), sampling.shift
        self.resolution, self.composite = sampling.resolution, sampling.composite
        self.show_progress = show_progress
        window = sampling.window if sampling.window is not None else getattr(loaded, "window", None)
        overlap = sampling.overlap
        self._retry = OomRetry(window=None if window is None else int(window), overlap=overlap,
                               temporal_multiple=self.temporal_multiple, label=self.name)

    @property
    def spatial_multiple(self) -> int:
        """Frame height and width the model runs at are multiples of this."""
        return int(getattr(self.model, "spatial_multiple", 1))

    @property
    def temporal_multiple(self) -> int:
        """Frame counts the model runs on satisfy ``(T - 1) % temporal_multiple == 0``."""
        return int(getattr(self.model, "temporal_multiple", 1))

    @property
    def window(self) -> int | None:
        """Frames per model call (None: whole clips); shrinks after an out-of-memory error."""
        return self._retry.window

    @property
    def overlap(self) -> int:
        """Frames shared by neighbouring windows."""
        return self._retry.overlap

    def _generate_clip(self, control: torch.Tensor, seed: int, strength: float = 1.0) -> torch.Tensor:
        """One window: resize and pad for the model, sample, crop and resize back. With ``strength < 1``
        the control carries three more channels, the frames to start from (see :meth:`refine`)."""
        init = None
        if control.shape[1] > CONTROL_CHANNELS:
            control, init = control[:, :CONTROL_CHANNELS], control[:, CONTROL_CHANNELS:]
        T, _, H, W = control.shape
        size = working_size(H, W, self.spatial_multiple, self.resolution)
        x = pad_frames(resize_control(control.float(), size), self.temporal_multiple)
        if init is not None:
            init = pad_frames(F.interpolate(init.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
                              if size != (H, W) else init.float(), self.temporal_multiple)[None]
        frames = self.pipeline(x[None], num_inference_steps=self.steps, guidance_scale=self.guidance, shift=self.shift,
                               seed=seed, show_progress=self.show_progress, init_frames=init,
                               strength=strength)[0, :T].float().cpu()
        if size != (H, W):
            frames = F.interpolate(frames, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
        if self.composite:
            frames = composite_warped(frames, control[:, WARPED].float().cpu(), control[:, MASK].float().cpu() > 0.5,
                                      seamless=self.sampling.seamless)
        return frames.clamp(0, 1)

    def __call__(self, control: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        """``(T, 9, H, W)`` control signal -> ``(T, 3, H, W)`` frames in [0, 1], float32 on the CPU."""
        if control.dim() != 4 or control.shape[1] != CONTROL_CHANNELS:
            raise InputError(f"control signal must be (T, {CONTROL_CHANNELS}, H, W), got {tuple(control.shape)}")
        if control.shape[0] == 0:
            raise InputError("control signal has no frames")
        return self._retry(self._generate_clip, control, seed)

    def refine(self, control: torch.Tensor, frames: torch.Tensor, *, strength: float = 0.5, seed: int = 0) -> torch.Tensor:
        """Noise ``frames`` to ``sigma = strength`` and denoise them under ``control`` (SDEdit): the
        generator's prior redraws detail while the layout of ``frames`` stays. Used to refine renders of
        a reconstruction into targets (Full-4D's and SV4D 2.0's second stage).

        Args:
            control: ``(T, 9, H, W)`` control signal of the frames' cameras.
            frames: ``(T, 3, H, W)`` in [0, 1], e.g. renders of a 4D scene.
            strength: in (0, 1]; 1 ignores ``frames`` (plain generation).

        Returns:
            ``(T, 3, H, W)`` float32 frames in [0, 1] on the CPU.
        """
        if control.dim() != 4 or control.shape[1] != CONTROL_CHANNELS:
            raise InputError(f"control signal must be (T, {CONTROL_CHANNELS}, H, W), got {tuple(control.shape)}")
        if tuple(frames.shape) != (control.shape[0], 3, *control.shape[-2:]):
            raise InputError(f"frames must be {(control.shape[0], 3, *control.shape[-2:])}, got {tuple(frames.shape)}")
        if not 0 < float(strength) <= 1:
            raise InputError(f"strength must be in (0, 1], got {strength}")
        both = torch.cat([control.float(), frames.float().to(control.device)], dim=1)  # windows split both alike
        return self._retry(lambda x, s: self._generate_clip(x, s, float(strength)), both, seed)
