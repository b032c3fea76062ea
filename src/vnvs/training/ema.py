"""Exponential moving average of the trainable weights (float32 copies on the training device),
and the export of a model folder with the averages in place of the trained weights."""

from __future__ import annotations

import os

import torch


class EMA:
    """``shadow <- decay_n * shadow + (1 - decay_n) * param`` after every optimizer step.

    ``decay_n = min(decay, (1 + n) / (10 + n))`` for the ``n``-th update, so the average follows the
    fast early changes. Under DDP every process holds the same parameters after each step, so every
    process keeps an identical EMA.

    Args:
        named_parameters: ``(name, parameter)`` pairs to average (the trainable ones).
        decay: the asymptotic decay in [0, 1).
    """

    def __init__(self, named_parameters, decay: float):
        self.decay = float(decay)
        self.names: list[str] = []
        self.shadow: list[torch.Tensor] = []
        for name, p in named_parameters:
            self.names.append(name)
            self.shadow.append(p.detach().float().clone())
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, parameters) -> None:
        """Fold in the current values of the parameters (same order as at construction)."""
        params = [p.detach().float() for p in parameters]
        if len(params) != len(self.shadow):
            raise ValueError(f"EMA holds {len(self.shadow)} tensors, got {len(params)}")
        torch._foreach_lerp_(self.shadow, params, 1.0 - self.current_decay())
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Averaged tensors by parameter name (float32, contiguous)."""
        return {n: t.contiguous() for n, t in zip(self.names, self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} tensors, e.g. {missing[0]}")
        for i, n in enumerate(self.names):
            self.shadow[i].copy_(state[n])
        self.updates = int(updates)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Write the averages into ``module``'s parameters of the same names."""
        load_averages(module, self.state_dict())


@torch.no_grad()
def load_averages(module: torch.nn.Module, averages: dict[str, torch.Tensor]) -> None:
    """Copy each tensor of ``averages`` into ``module``'s parameter of that name (cast to its dtype)."""
    params = dict(module.named_parameters())
    for n, t in averages.items():
        params[n].copy_(t.to(params[n].dtype))


def export_ema(model, averages: dict[str, torch.Tensor] | None, path: str | os.PathLike) -> None:
    """``model.save_pretrained(path)`` with the EMA tensors ``averages`` (by parameter name, as
    :meth:`EMA.state_dict` or a checkpoint's ``ema.safetensors``) in place of the trained weights;
    None saves the model as it is. The model's parameters are left as they were."""
    if averages is None:
        model.save_pretrained(path)
        return
    params = dict(model.named_parameters())
    backup = {n: params[n].detach().to("cpu", copy=True) for n in averages}
    try:
        load_averages(model, averages)
        model.save_pretrained(path)
    finally:
        load_averages(model, backup)
