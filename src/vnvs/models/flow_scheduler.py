"""The flow-matching Euler schedule of :mod:`vnvs.models`, without diffusers.

:class:`FlowMatchEulerScheduler` is diffusers' ``FlowMatchEulerDiscreteScheduler`` with its default
settings (static ``shift``, no dynamic shifting, no Karras / exponential / beta sigmas, no stochastic
sampling), written out operation by operation in the same dtypes, so its timesteps, sigmas and Euler
steps are bit for bit diffusers' (tested). It answers the part of diffusers' interface the samplers
use: ``config.shift``, ``from_config``, ``set_timesteps``, ``timesteps``, ``sigmas`` and ``step``.

Importing diffusers' scheduler costs a fresh process about 2.5 s on two cores (diffusers loads
``torch._dynamo``, the scheduler module ``scipy.stats``); this module costs nothing beyond numpy and torch.

Example:
    >>> s = FlowMatchEulerScheduler(shift=3.0)
    >>> s.set_timesteps(4)
    >>> [round(float(t), 1) for t in s.timesteps]
    [1000.0, 857.7, 602.2, 8.9]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch


@dataclass(frozen=True)
class FlowMatchEulerConfig:
    """Settings of :class:`FlowMatchEulerScheduler` (the names of diffusers' config)."""

    num_train_timesteps: int = 1000
    shift: float = 1.0


@dataclass
class FlowMatchEulerOutput:
    """What :meth:`FlowMatchEulerScheduler.step` returns with ``return_dict=True``."""

    prev_sample: torch.Tensor


class FlowMatchEulerScheduler:
    """Euler steps on the shifted flow-matching schedule ``sigma = s u / (1 + (s - 1) u)``.

    Args:
        num_train_timesteps: timesteps of training (the model's timestep input is ``sigma * num_train_timesteps``).
        shift: the static timestep shift ``s``.
    """

    order = 1

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0):
        self.config = FlowMatchEulerConfig(int(num_train_timesteps), float(shift))
        n = self.config.num_train_timesteps
        timesteps = torch.from_numpy(np.linspace(1, n, n, dtype=np.float32)[::-1].copy()).to(dtype=torch.float32)
        sigmas = timesteps / n
        sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps = sigmas * n
        self.sigmas = sigmas.to("cpu")
        self.sigma_min = self.sigmas[-1].item()
        self.sigma_max = self.sigmas[0].item()
        self.num_inference_steps: int | None = None
        self._step_index: int | None = None

    @classmethod
    def from_config(cls, config: FlowMatchEulerConfig, **overrides) -> "FlowMatchEulerScheduler":
        """A scheduler with ``config``'s settings, ``overrides`` (e.g. ``shift=``) taking precedence."""
        c = replace(config, **overrides)
        return cls(num_train_timesteps=c.num_train_timesteps, shift=c.shift)

    @property
    def shift(self) -> float:
        return self.config.shift

    @property
    def step_index(self) -> int | None:
        """Index of the next step in :attr:`timesteps` (None until the first :meth:`step`)."""
        return self._step_index

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``num_inference_steps`` timesteps evenly spaced in the unshifted schedule, then shifted;
        :attr:`sigmas` gets a final 0."""
        n = self.config.num_train_timesteps
        self.num_inference_steps = int(num_inference_steps)
        timesteps = np.linspace(self.sigma_max * n, self.sigma_min * n, self.num_inference_steps)
        sigmas = timesteps / n
        sigmas = self.shift * sigmas / (1 + (self.shift - 1) * sigmas)
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)
        self.timesteps = sigmas * n
        self.sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])
        self._step_index = None

    def index_for_timestep(self, timestep: float | torch.Tensor) -> int:
        """Index of ``timestep`` in :attr:`timesteps` (the second match when it occurs twice, as diffusers)."""
        indices = (self.timesteps == timestep).nonzero()
        return indices[1 if len(indices) > 1 else 0].item()

    def step(self, model_output: torch.Tensor, timestep: float | torch.Tensor, sample: torch.Tensor,
             return_dict: bool = True):
        """One Euler step ``x + (sigma_next - sigma) v``: a :class:`FlowMatchEulerOutput`, or the tuple
        ``(prev_sample,)`` with ``return_dict=False``."""
        if isinstance(timestep, int) or (isinstance(timestep, torch.Tensor) and not timestep.is_floating_point()):
            raise ValueError("pass one of scheduler.timesteps as the timestep, not an integer index")
        if self._step_index is None:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)
        sample = sample.to(torch.float32)
        dt = self.sigmas[self._step_index + 1] - self.sigmas[self._step_index]
        prev_sample = sample + dt * model_output
        self._step_index += 1
        prev_sample = prev_sample.to(model_output.dtype)
        return FlowMatchEulerOutput(prev_sample) if return_dict else (prev_sample,)

    def __len__(self) -> int:
        return self.config.num_train_timesteps


__all__ = ["FlowMatchEulerConfig", "FlowMatchEulerOutput", "FlowMatchEulerScheduler"]
