"""The rectified-flow (flow matching) objective, in the convention of :mod:`vnvs.models` (diffusers' flow matching).

``x_sigma = (1 - sigma) x0 + sigma noise`` for ``sigma`` in [0, 1]; the network predicts the velocity
``v = noise - x0`` from ``(x_sigma, 1000 sigma, control)``; the loss is the (optionally weighted)
mean squared error. ``sigma`` is drawn as ``u ~ U(0, 1)`` or ``u = sigmoid(N(m, s))`` (logit-normal),
then shifted as in SD3: ``sigma = shift u / (1 + (shift - 1) u)``. A fraction of the samples have
their control signal replaced by the null control (zeros), so one network also gives the
unconditional velocity for classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

TIMESTEP_SCALE = 1000.0
"""Model timestep input = ``sigma * TIMESTEP_SCALE`` (diffusers' FlowMatchEulerDiscreteScheduler)."""


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 timestep shift ``s u / (1 + (s - 1) u)`` (identity for ``shift == 1``; monotone; fixes 0 and 1)."""
    if shift == 1.0:
        return sigmas
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def sample_sigmas(batch: int, *, sampling: str = "logit-normal", logit_mean: float = 0.0, logit_std: float = 1.0,
                  shift: float = 1.0, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Noise levels ``(batch,)`` float32 in [0, 1] (see the module docstring)."""
    if sampling == "uniform":
        u = torch.rand(batch, generator=generator, device=device)
    elif sampling == "logit-normal":
        u = torch.sigmoid(torch.randn(batch, generator=generator, device=device) * logit_std + logit_mean)
    else:
        raise ValueError(f"unknown timestep sampling {sampling!r}")
    return shift_sigmas(u, shift)


def loss_weights(sigmas: torch.Tensor, weighting: str = "none") -> torch.Tensor:
    """Per-sample loss weights ``(B,)``: ``none`` (ones), ``cosmap`` (SD3) or ``x0``: ``max(sigma, 0.05)^2``,
    which turns the velocity error of an x-predicting model (``v = (x_sigma - x_hat) / sigma``) back into
    the clean-frame error, so every noise level counts alike."""
    if weighting == "none":
        return torch.ones_like(sigmas)
    if weighting == "x0":
        return sigmas.clamp_min(0.05) ** 2
    if weighting == "cosmap":
        return 2.0 / (math.pi * (1.0 - 2.0 * sigmas + 2.0 * sigmas**2))
    raise ValueError(f"unknown loss weighting {weighting!r}")


def drop_control(control: torch.Tensor, p: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each sample's control by the null control (zeros) with probability ``p``.

    Args:
        control: ``(B, T, 9, H, W)``.

    Returns:
        ``(control, kept)``: the control with dropped rows zeroed, and ``kept`` ``(B,)`` bool.
    """
    B = control.shape[0]
    kept = torch.rand(B, generator=generator, device=control.device) >= p
    if bool(kept.all()):
        return control, kept
    return control * kept.view(B, *([1] * (control.dim() - 1))).to(control.dtype), kept


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """``(1 - sigma) x0 + sigma noise`` with ``sigmas`` ``(B,)`` broadcast over the other dims."""
    s = sigmas.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1.0 - s) * x0 + s * noise


@dataclass
class FlowMatchingOutput:
    """One evaluation of the objective."""

    loss: torch.Tensor
    """Scalar: weighted mean over samples of the per-sample MSE."""
    per_sample: torch.Tensor
    """``(B,)`` unweighted MSE of each sample."""
    sigmas: torch.Tensor
    """``(B,)`` noise levels used."""
    kept: torch.Tensor
    """``(B,)`` bool, False where the control was dropped."""


def flow_matching_loss(forward: Callable[..., torch.Tensor], x0: torch.Tensor, control: torch.Tensor | None, *,
                       generator: torch.Generator | None = None, sampling: str = "logit-normal",
                       logit_mean: float = 0.0, logit_std: float = 1.0, shift: float = 1.0,
                       control_dropout: float = 0.0, weighting: str = "none",
                       text_embeds: torch.Tensor | None = None) -> FlowMatchingOutput:
    """Rectified-flow loss of one batch.

    Args:
        forward: the network, ``forward(latents, timestep, control=..., text_embeds=...) -> velocity``.
        x0: clean latents ``(B, T', C, h, w)``.
        control: ``(B, T, 9, H, W)`` or None (the null control for the whole batch).
        generator: draws, in this order, the sigmas, the control dropout and the noise.

    Returns:
        :class:`FlowMatchingOutput`; the loss is ``mean_b w_b * mean((v_pred - (noise - x0))^2)``.
    """
    B = x0.shape[0]
    sigmas = sample_sigmas(B, sampling=sampling, logit_mean=logit_mean, logit_std=logit_std, shift=shift,
                           generator=generator, device=x0.device)
    kept = torch.ones(B, dtype=torch.bool, device=x0.device)
    if control is not None and control_dropout > 0:
        control, kept = drop_control(control, control_dropout, generator)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = add_noise(x0, noise, sigmas)
    v_pred = forward(x_t, sigmas * TIMESTEP_SCALE, control=control, text_embeds=text_embeds)
    target = (noise - x0).float()
    per_sample = (v_pred.float() - target).pow(2).flatten(1).mean(1)
    loss = (loss_weights(sigmas, weighting) * per_sample).mean()
    return FlowMatchingOutput(loss=loss, per_sample=per_sample.detach(), sigmas=sigmas, kept=kept)
