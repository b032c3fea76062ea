"""Flow-matching sampler of a :class:`vnvs.models.grid.GridModel`: given cells -> the whole grid.

The denoising loop, written out (flow-matching convention of :mod:`vnvs.models`)::

    known, mask, cameras = model.encode_grid(cells, mask, cameras)   pixel models: 2 x - 1; latent models:
                                                                     each row through the VAE
    x_1 ~ N(0, I) over the whole grid        seeded on the CPU: the same seed gives the same grid
    n_k ~ N(0, I) for the given cells        (drawn after x_1)
    for sigma_i in schedule (1 -> 0):        diffusers' shifted schedule
        x[given] = (1 - sigma_i) known + sigma_i n_k      the given cells at the current noise level
        v = model(x, 1000 sigma_i, known, mask, cameras)
        x = x + (sigma_{i+1} - sigma_i) v    Euler step
    x[given] = known
    frames = model.decode_grid(x)            (x + 1) / 2, or each row through the VAE decoder
    frames[given cells] = cells

Example:
    >>> from vnvs.models.grid import GridModel, grid_preset
    >>> _ = torch.manual_seed(0)
    >>> pipe = GridPipeline(GridModel.from_config(grid_preset("4real-tiny")))
    >>> known = torch.rand(1, 2, 3, 3, 8, 8); mask = torch.zeros(1, 2, 3, dtype=torch.bool); mask[:, 0] = True
    >>> out = pipe(known, mask, num_inference_steps=2, seed=0)
    >>> tuple(out.shape), bool(torch.equal(out[:, 0], known[:, 0]))
    ((1, 2, 3, 3, 8, 8), True)
"""

from __future__ import annotations

from typing import Callable

import torch

from vnvs.sampling.pipeline import make_scheduler


class GridPipeline:
    """Samples the missing cells of grids with a grid model (Euler steps on diffusers' flow-matching schedule)."""

    def __init__(self, model, scheduler=None):
        self.model = model
        self.scheduler = scheduler if scheduler is not None else make_scheduler(model.config.sampling_shift)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(self, known: torch.Tensor, mask: torch.Tensor, *, w2c: torch.Tensor | None = None,
                 K: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                 depth_valid: torch.Tensor | None = None, num_inference_steps: int | None = None, seed: int = 0,
                 step_callback: Callable[[int], None] | None = None) -> torch.Tensor:
        """Sample grids.

        Args:
            known: ``(B, V, T, 3, H, W)`` in [0, 1]: the given cells (other cells ignored); sides a
                multiple of ``model.patch``.
            mask: ``(B, V, T)`` bool, the given cells.
            w2c, K: optional per-cell cameras ``(B, V, T, 4, 4)``, ``(B, V, T, 3, 3)``.
            depth, depth_valid: optional ``(B, V, T, H, W)`` depth of given cells (full4d's prior).
            num_inference_steps: Euler steps (default: the model config's ``sampling_steps``).
            seed: seed of the noise, drawn on the CPU.
            step_callback: called with the step index after every step.

        Returns:
            ``(B, V, T, 3, H, W)`` float32 in [0, 1]; the given cells are ``known`` exactly.
        """
        if known.ndim != 6 or mask.shape != known.shape[:3]:
            raise ValueError(f"known must be (B, V, T, 3, H, W) and mask (B, V, T), got {tuple(known.shape)}, "
                             f"{tuple(mask.shape)}")
        steps = int(num_inference_steps or self.model.config.sampling_steps)
        device = self.device
        cells = known.float().to(device)
        mask = mask.to(device)
        opt = {k: (v.to(device) if v is not None else None)
               for k, v in (("w2c", w2c), ("K", K), ("depth", depth), ("depth_valid", depth_valid))}
        lat = self.model.encode_grid(cells, mask, **opt)
        x0, lmask = lat["x0"].float(), lat["mask"]
        g = torch.Generator().manual_seed(int(seed))
        x = torch.randn(x0.shape, generator=g).to(device)
        noise_known = torch.randn(x0.shape, generator=g).to(device)
        m = lmask[..., None, None, None]
        x0 = torch.where(m, x0, torch.zeros((), device=device))
        cams = {k: lat[k] for k in ("w2c", "K", "depth", "depth_valid")}
        self.scheduler.set_timesteps(steps, device=device)
        sigmas = self.scheduler.sigmas.to(device=device, dtype=torch.float32)
        B = known.shape[0]
        for i in range(steps):
            s, s_next = sigmas[i], sigmas[i + 1]
            x = torch.where(m, (1 - s) * x0 + s * noise_known, x)
            v = self.model(x, (s * 1000).expand(B), x0, lmask, **cams).float()
            x = x + (s_next - s) * v
            if step_callback is not None:
                step_callback(i)
        x = torch.where(m, x0, x)
        frames = self.model.decode_grid(x, known.shape[2])
        return torch.where(mask[..., None, None, None], cells, frames).clamp(0, 1).cpu()
