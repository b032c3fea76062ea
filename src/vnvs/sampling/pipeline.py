"""Flow-matching sampler of a :class:`vnvs.models.NovelViewModel`: control signal -> novel-view frames.

The denoising loop, written out (the flow-matching convention of ``vnvs.models`` and diffusers
``FlowMatchEulerDiscreteScheduler``)::

    x_1 ~ N(0, I)                       seeded on the CPU: the same seed gives the same frames
    for sigma_i in schedule (1 -> 0):   sigma_i shifted by ``shift`` towards high noise
        v = model(x, 1000 sigma_i, control)
        v = v_uncond + g (v - v_uncond)     only when g != 1 (v_uncond: control=None)
        x = x + (sigma_{i+1} - sigma_i) v   Euler step
    frames = model.decode(x)

Example:
    >>> from vnvs.sampling import NovelViewPipeline   # doctest: +SKIP
    >>> pipe = NovelViewPipeline.from_pretrained("runs/exp1/model")   # doctest: +SKIP
    >>> frames = pipe(control[None], num_inference_steps=20, guidance_scale=2.0, seed=0)  # (1, T, 3, H, W)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import torch

from vnvs.geometry.control import CONTROL_CHANNELS
from vnvs.models import NovelViewModel
from vnvs.utils.progress import progress

DEFAULT_STEPS = 20
"""Euler steps when neither the call nor the model's config says otherwise."""
DEFAULT_SHIFT = 3.0
"""Timestep shift when the model's config does not give one (3: SD3 / Wan-style, more steps at high noise)."""


def _config_value(model, names: tuple[str, ...], default):
    config = getattr(model, "config", None)
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def make_scheduler(shift: float = DEFAULT_SHIFT):
    """diffusers' ``FlowMatchEulerDiscreteScheduler`` (1000 training timesteps, static ``shift``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(shift))


def latent_shape(model, batch: int, frames: int, height: int, width: int) -> tuple[int, ...]:
    """``(B, T', C, h, w)`` of the latents of ``frames`` frames of ``height x width``.

    Uses ``model.latent_shape(frames, height, width)`` when the model has it, else inverts
    ``model.frame_shape`` (the frames a latent grid stands for), else encodes one black frame sequence.
    """
    fn = getattr(model, "latent_shape", None)
    if callable(fn):
        shape = tuple(int(s) for s in fn(frames, height, width))
        return (batch,) + shape[-4:]
    fn = getattr(model, "frame_shape", None)
    if callable(fn):
        channels = int(model.latent_channels)
        _, fh, fw = fn((1, 1, channels, 1, 1))  # frames of a one-latent grid: the spatial factors
        tm = int(getattr(model, "temporal_multiple", 1))
        return (batch, (frames - 1) // tm + 1, channels, height // fh, width // fw)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    with torch.no_grad():
        z = model.encode(torch.zeros(1, frames, 3, height, width, device=device, dtype=dtype))
    return (batch,) + tuple(z.shape[1:])


class NovelViewPipeline:
    """Samples novel-view frames from a control signal with a flow-matching model (Euler steps).

    Args:
        model: a :class:`vnvs.models.NovelViewModel` (anything with ``forward(latents, timestep,
            control, text_embeds)``, ``decode``, ``spatial_multiple`` and ``temporal_multiple``).
        scheduler: a diffusers ``FlowMatchEulerDiscreteScheduler`` (default: :func:`make_scheduler`
            with the model config's ``shift``, if any, else :data:`DEFAULT_SHIFT`).
    """

    def __init__(self, model, scheduler=None):
        self.model = model
        self.scheduler = scheduler if scheduler is not None else make_scheduler(
            _config_value(model, ("sampling_shift", "shift"), DEFAULT_SHIFT))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None) -> "NovelViewPipeline":
        """Load a model folder written by ``NovelViewModel.save_pretrained`` (``vnvs train`` writes ``OUTPUT/model``)."""
        model = NovelViewModel.from_pretrained(path)
        model.to(device=device or "cpu", dtype=dtype)
        model.eval()
        return cls(model)

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        param = next(self.model.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def check_control(self, control: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``control`` is ``(B, T, 9, H, W)`` with sizes the model accepts."""
        if control.dim() != 5 or control.shape[2] != CONTROL_CHANNELS:
            raise ValueError(f"control signal must be (B, T, {CONTROL_CHANNELS}, H, W), got {tuple(control.shape)}")
        _, T, _, H, W = control.shape
        sm = int(getattr(self.model, "spatial_multiple", 1))
        tm = int(getattr(self.model, "temporal_multiple", 1))
        if H % sm or W % sm:
            raise ValueError(f"frame size {H}x{W} is not a multiple of {sm}, as this model needs "
                             "(vnvs.generators.LearnedGenerator resizes automatically)")
        if (T - 1) % tm:
            raise ValueError(f"{T} frames: this model needs (T - 1) % {tm} == 0 "
                             "(vnvs.generators.LearnedGenerator pads automatically)")

    def prepare_latents(self, shape: tuple[int, ...], seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial noise ``x_1`` of ``shape``, float32, drawn on the CPU (same seed, same noise on any device)."""
        g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
        noise = torch.randn(shape, generator=g, dtype=torch.float32, device=g.device)
        return noise.to(self.device)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, control, text_embeds) -> torch.Tensor:
        timestep = t.to(device=x.device, dtype=torch.float32).reshape(1).expand(x.shape[0])
        v = self.model(x.to(self.dtype), timestep, control=control, text_embeds=text_embeds)
        return v.float()

    @torch.no_grad()
    def __call__(self, control: torch.Tensor, *, num_inference_steps: int | None = None, guidance_scale: float = 1.0,
                 shift: float | None = None, seed: int = 0, generator: torch.Generator | None = None,
                 text_embeds: torch.Tensor | None = None, latents: torch.Tensor | None = None,
                 init_frames: torch.Tensor | None = None, strength: float = 1.0,
                 show_progress: bool = False, output_type: str = "frames") -> torch.Tensor:
        """Sample frames for a batch of control signals.

        Args:
            control: ``(B, T, 9, H, W)`` (``I_s | C | I_r | M``); ``H, W`` multiples of
                ``model.spatial_multiple``, ``(T - 1) % model.temporal_multiple == 0``.
            num_inference_steps: Euler steps (default: the model config's ``sampling_steps``, else
                :data:`DEFAULT_STEPS`).
            guidance_scale: classifier-free guidance on the control signal,
                ``v = v_uncond + g (v_cond - v_uncond)`` with ``v_uncond`` the model without control;
                1 (default) is plain conditional sampling, one model pass per step.
            shift: timestep shift for this call (default: the scheduler's).
            seed: seed of the initial noise, drawn on the CPU (ignored when ``generator`` is given).
            generator: a ``torch.Generator`` for the initial noise, instead of ``seed``.
            text_embeds: ``(B, L, D)`` text embeddings passed to the model (None: its null tokens).
            latents: initial noise ``(B, T', C, h, w)`` instead of drawing it.
            init_frames: ``(B, T, 3, H, W)`` frames in [0, 1] to start from (SDEdit): they are encoded,
                noised to ``sigma = strength`` and denoised from there, so the result keeps their
                layout and the model redraws the detail.
            strength: how much noise ``init_frames`` get, in (0, 1]; the last ``round(steps * strength)``
                of the ``steps`` Euler steps run (1: pure noise, ``init_frames`` ignored).
            show_progress: show a bar over the steps.
            output_type: ``"frames"`` (decoded, ``(B, T, 3, H, W)`` in [0, 1]) or ``"latents"``.

        Returns:
            ``(B, T, 3, H, W)`` float32 frames in [0, 1] (or the final latents).
        """
        self.check_control(control)
        if output_type not in ("frames", "latents"):
            raise ValueError(f"output_type must be 'frames' or 'latents', got {output_type!r}")
        steps = int(num_inference_steps if num_inference_steps is not None
                    else _config_value(self.model, ("sampling_steps",), DEFAULT_STEPS))
        if steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {steps}")
        B, T, _, H, W = control.shape
        scheduler = self.scheduler
        if shift is not None and float(shift) != float(scheduler.config.shift):
            scheduler = type(scheduler).from_config(scheduler.config, shift=float(shift))
        device = self.device
        cond = control.to(device=device, dtype=self.dtype)
        if text_embeds is not None:
            text_embeds = text_embeds.to(device=device, dtype=self.dtype)
        x = latents.to(device=device, dtype=torch.float32) if latents is not None else \
            self.prepare_latents(latent_shape(self.model, B, T, H, W), seed, generator)
        if not 0 < float(strength) <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")

        scheduler.set_timesteps(steps, device=device)
        timesteps = scheduler.timesteps
        if init_frames is not None and float(strength) < 1:
            if tuple(init_frames.shape) != (B, T, 3, H, W):
                raise ValueError(f"init_frames must be {(B, T, 3, H, W)}, got {tuple(init_frames.shape)}")
            start = steps - max(1, round(steps * float(strength)))
            timesteps = timesteps[start:]  # the scheduler finds its step index from the first timestep it gets
            sigma = scheduler.sigmas[start].to(device=device, dtype=torch.float32)
            init = self.model.encode(init_frames.to(device=device, dtype=self.dtype)).float()
            x = (1 - sigma) * init + sigma * x  # the flow-matching interpolation at sigma
        if show_progress:
            timesteps = progress(timesteps, desc="sampling", total=len(timesteps), unit="step")
        for t in timesteps:
            v = self._velocity(x, t, cond, text_embeds)
            if guidance_scale != 1.0:
                v_uncond = self._velocity(x, t, None, text_embeds)
                v = v_uncond + float(guidance_scale) * (v - v_uncond)
            x = scheduler.step(v, t, x, return_dict=False)[0]
        if output_type == "latents":
            return x
        frames = self.model.decode(x.to(self.dtype)).float().clamp(0, 1)
        return frames[:, :T]
