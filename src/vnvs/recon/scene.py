"""Deformable 3D Gaussians: a canonical set of Gaussians moved over time by a small MLP.

The scene at time ``t`` seen from training view ``v`` is the canonical Gaussians displaced by

* a temporal deformation ``(delta position, delta rotation, delta log-scale) = MLP(PE(x), PE(t))``
  (deformable 3DGS, Yang et al. 2024), positional encodings of ``n`` octaves, the output layer
  zero-initialised so training starts from the canonical scene;
* a view compensation ``delta position_v = head(features, e_v)`` with a learned embedding ``e_v`` per
  training view (4Real-Video, supplementary section 6): it absorbs the inconsistencies between the
  generated views of a grid, and is left out (``view=None``) when rendering any new camera.

Colours are degree-0 spherical harmonics (``rgb = SH_C0 * f_dc + 0.5``), opacities logits, scales
logs, so the parameters are those of a standard 3DGS PLY.

Example:
    >>> means = torch.rand(10, 3)
    >>> scene = DeformableGaussians(means, torch.rand(10, 3), torch.full((10,), 0.05), views=2)
    >>> g = scene.at(0.5)  # the deformation starts at zero
    >>> g.means.shape, torch.equal(g.means, means)
    (torch.Size([10, 3]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vnvs.geometry.projection import depth_to_world
from vnvs.recon.rasterize import SH_C0, RasterOutput, rasterize


@dataclass
class GaussianState:
    """The Gaussians of one time (and view): what the rasterizer and the PLY writer take."""

    means: torch.Tensor
    """``(N, 3)``."""
    log_scales: torch.Tensor
    """``(N, 3)``."""
    quats: torch.Tensor
    """``(N, 4)`` ``(w, x, y, z)``, unnormalised."""
    opacity_logits: torch.Tensor
    """``(N,)``."""
    f_dc: torch.Tensor
    """``(N, 3)`` degree-0 SH coefficients."""

    @property
    def colors(self) -> torch.Tensor:
        """``(N, 3)`` RGB, ``max(SH_C0 * f_dc + 0.5, 0)``."""
        return torch.clamp_min(SH_C0 * self.f_dc + 0.5, 0.0)

    def render(self, w2c: torch.Tensor, K: torch.Tensor, width: int, height: int,
               background: torch.Tensor | None = None, backend: str = "auto") -> RasterOutput:
        return rasterize(self.means, self.log_scales, self.quats, self.opacity_logits, self.colors, w2c, K,
                         width, height, background=background, backend=backend)


def positional_encoding(x: torch.Tensor, octaves: int) -> torch.Tensor:
    """``(..., D)`` -> ``(..., D * (1 + 2 * octaves))``: ``x, sin(2^k pi x), cos(2^k pi x)``.

    Example:
        >>> positional_encoding(torch.zeros(2, 3), 4).shape
        torch.Size([2, 27])
    """
    if octaves == 0:
        return x
    freqs = (2.0 ** torch.arange(octaves, dtype=x.dtype, device=x.device)) * math.pi
    xf = (x[..., None] * freqs).flatten(-2)
    return torch.cat([x, torch.sin(xf), torch.cos(xf)], dim=-1)


class DeformationField(nn.Module):
    """``(x, t[, view]) -> (delta x, delta quaternion, delta log-scale)``."""

    def __init__(self, views: int, width: int = 64, layers: int = 3, pos_octaves: int = 6, time_octaves: int = 4,
                 view_dim: int = 8, center: torch.Tensor | None = None, extent: float = 1.0):
        super().__init__()
        self.pos_octaves, self.time_octaves = int(pos_octaves), int(time_octaves)
        self.register_buffer("center", torch.zeros(3) if center is None else center.detach().float().clone())
        self.register_buffer("extent", torch.tensor(float(extent)))
        d_in = 3 * (1 + 2 * self.pos_octaves) + (1 + 2 * self.time_octaves)
        mods: list[nn.Module] = []
        for i in range(int(layers)):
            mods += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU()]
        self.trunk = nn.Sequential(*mods)
        self.head = nn.Linear(width, 10)  # 3 position, 4 quaternion, 3 log-scale
        self.view_embedding = nn.Embedding(max(int(views), 1), view_dim)
        self.view_head = nn.Sequential(nn.Linear(width + view_dim, width // 2), nn.ReLU(), nn.Linear(width // 2, 3))
        for last in (self.head, self.view_head[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        nn.init.normal_(self.view_embedding.weight, std=0.1)

    def forward(self, x: torch.Tensor, t: float, view: int | None = None):
        """``(dx, dquat, dlog_scale, view_dx)``; ``view_dx`` (already in ``dx``) is None without a view."""
        xn = (x - self.center) / self.extent  # the scene in about [-1, 1]
        tt = torch.full_like(x[:, :1], float(t) * 2 - 1)
        h = self.trunk(torch.cat([positional_encoding(xn, self.pos_octaves), positional_encoding(tt, self.time_octaves)], -1))
        out = self.head(h)
        dx = out[:, :3] * self.extent
        view_dx = None
        if view is not None:
            e = self.view_embedding.weight[int(view)].expand(x.shape[0], -1)
            view_dx = self.view_head(torch.cat([h, e], -1)) * self.extent
            dx = dx + view_dx
        return dx, out[:, 3:7], out[:, 7:10], view_dx


class DeformableGaussians(nn.Module):
    """Canonical Gaussians and their deformation field."""

    def __init__(self, means: torch.Tensor, colors: torch.Tensor, scales: torch.Tensor, views: int = 1,
                 opacity: float = 0.5, width: int = 64, layers: int = 3, pos_octaves: int = 6, time_octaves: int = 4,
                 view_dim: int = 8):
        """means ``(N, 3)``, colors ``(N, 3)`` RGB in [0, 1], scales ``(N,)`` isotropic standard deviations."""
        super().__init__()
        n = means.shape[0]
        self.means = nn.Parameter(means.detach().float().clone())
        self.log_scales = nn.Parameter(torch.log(scales.detach().float().clamp_min(1e-6))[:, None].repeat(1, 3))
        self.quats = nn.Parameter(torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1))
        self.opacity_logits = nn.Parameter(torch.full((n,), math.log(opacity / (1 - opacity))))
        self.f_dc = nn.Parameter((colors.detach().float().clamp(0, 1) - 0.5) / SH_C0)
        lo, hi = means.min(0).values, means.max(0).values
        self.deform = DeformationField(views, width, layers, pos_octaves, time_octaves, view_dim,
                                       center=(lo + hi) / 2, extent=max(float((hi - lo).max() / 2), 1e-3) if n else 1.0)
        self.hparams = dict(views=int(views), width=int(width), layers=int(layers), pos_octaves=int(pos_octaves),
                            time_octaves=int(time_octaves), view_dim=int(view_dim))

    GAUSSIAN_PARAMS = ("means", "log_scales", "quats", "opacity_logits", "f_dc")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def canonical(self) -> GaussianState:
        return GaussianState(self.means, self.log_scales, self.quats, self.opacity_logits, self.f_dc)

    def at(self, t: float, view: int | None = None) -> GaussianState:
        """The Gaussians at normalised time ``t`` (in [0, 1]); ``view`` adds that training view's compensation."""
        return self.deformed(t, view)[0]

    def deformed(self, t: float, view: int | None = None) -> tuple[GaussianState, torch.Tensor | None]:
        """:meth:`at` and the view compensation's displacement ``(N, 3)`` (None without a view)."""
        dx, dq, ds, view_dx = self.deform(self.means, t, view)
        return GaussianState(self.means + dx, self.log_scales + ds, self.quats + dq, self.opacity_logits,
                             self.f_dc), view_dx

    def gaussian_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).detach().clone() for k in self.GAUSSIAN_PARAMS}

    def deformation_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.deform.state_dict().items()}

    @classmethod
    def from_state(cls, gaussians: dict[str, torch.Tensor], deformation: dict[str, torch.Tensor],
                   hparams: dict) -> "DeformableGaussians":
        n = gaussians["means"].shape[0]
        scene = cls(torch.zeros(n, 3), torch.zeros(n, 3), torch.ones(n), **hparams)
        scene.set_gaussians(gaussians)
        scene.deform.load_state_dict(deformation)
        return scene

    def set_gaussians(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace the Gaussian parameters (any count), e.g. after densification or when loading."""
        for k in self.GAUSSIAN_PARAMS:
            setattr(self, k, nn.Parameter(tensors[k].detach().float().clone()))


def init_points_from_grid(frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, K: torch.Tensor,
                          w2c: torch.Tensor, stride: int, max_points: int,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Canonical points from the unprojected depth of some grid cells, subsampled.

    Args:
        frames: ``(n, 3, H, W)``; depth, valid: ``(n, H, W)``; K ``(n, 3, 3)``; w2c ``(n, 4, 4)``.
        stride: keep every ``stride``-th pixel in each direction (a random offset per cell).
        max_points: at most this many points (a seeded random subset).

    Returns:
        ``(means (N, 3), colors (N, 3), scales (N,))``: one point per kept pixel, its colour, and the
        pixel footprint ``stride * z / f`` as the Gaussian's standard deviation.
    """
    n, _, H, W = frames.shape
    world = depth_to_world(depth, K, w2c)  # (n, H, W, 3)
    keep = torch.zeros(n, H, W, dtype=torch.bool)
    for i in range(n):  # per cell: a random pixel offset of the subsampling lattice
        oy, ox = (int(v) for v in torch.randint(0, stride, (2,), generator=generator))
        keep[i, oy::stride, ox::stride] = True
    keep &= valid
    means = world[keep]
    colors = frames.permute(0, 2, 3, 1)[keep]
    f = K[:, 0, 0][:, None, None].expand(n, H, W)[keep]
    scales = depth[keep] / f * stride * 0.5
    if means.shape[0] > max_points:
        pick = torch.randperm(means.shape[0], generator=generator)[:max_points]
        means, colors, scales = means[pick], colors[pick], scales[pick]
    return means, colors, scales
