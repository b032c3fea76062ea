"""Solid, band-limited procedural textures and view-independent shading.

A texture is a function of the 3D point in the object's local frame (the room uses world
coordinates), so it moves rigidly with its object and correspondences are exact. Each instance has
one row of :data:`~vnvs.synthetic.scene.TEXTURE_PARAMS` parameters:

==========  =====================================================================
columns     meaning
==========  =====================================================================
0:9         palette: three RGB colours ``c1, c2, c3``
9:18        three plane-wave vectors ``w_k`` (rad / unit)
18:21       their phases
21:24       their amplitudes (sum to 1)
24:27       checker inverse half-periods per axis ``1 / a_i``
27:30       checker offsets ``o_i``
30          checker softness ``s_c`` (tanh gain; small = smooth)
31          checker weight
32:35       stripe wave vector
35          stripe phase
36          stripe softness ``s_s``
37          stripe weight
==========  =====================================================================

``albedo = lerp(lerp(c1, c2, m), c3, 0.35 (0.5 + 0.5 wave))`` with
``m = 0.5 + 0.5 (w_c checker + w_s stripes) / (w_c + w_s)``, where
``checker = tanh(s_c prod_i sin(pi (x_i + o_i) / a_i)) / tanh(s_c)``,
``stripes = tanh(s_s sin(w . x + phi)) / tanh(s_s)`` and ``wave = sum_k A_k sin(w_k . x + phi_k)``.
All terms are smooth (the tanh gains are small), so bilinear resampling is accurate.

Shading is view-independent "wrapped" Lambert: ``ambient + (1 - ambient) ((1 + n . l) / 2)^2``, a
smooth function of the normal (no kink at the terminator).
"""

from __future__ import annotations

import math

import torch


def albedo(points: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Evaluate the texture.

    Args:
        points: ``(..., 3)`` local points.
        params: ``(..., 38)`` per-point texture parameters (broadcastable to ``points``).

    Returns:
        ``(..., 3)`` albedo in [0, 1].
    """
    x = points
    c1, c2, c3 = params[..., 0:3], params[..., 3:6], params[..., 6:9]
    wv = params[..., 9:18].unflatten(-1, (3, 3))
    wave = (torch.sin((wv * x[..., None, :]).sum(-1) + params[..., 18:21]) * params[..., 21:24]).sum(-1)
    arg = math.pi * (x + params[..., 27:30]) * params[..., 24:27]
    s = torch.sin(arg)
    sc = params[..., 30]
    checker = torch.tanh(sc * s[..., 0] * s[..., 1] * s[..., 2]) / torch.tanh(sc)
    ss = params[..., 36]
    stripes = torch.tanh(ss * torch.sin((params[..., 32:35] * x).sum(-1) + params[..., 35])) / torch.tanh(ss)
    wc, ws = params[..., 31], params[..., 37]
    m = (0.5 + 0.5 * (wc * checker + ws * stripes) / (wc + ws))[..., None]
    base = c1 + (c2 - c1) * m
    k = (0.35 * (0.5 + 0.5 * wave))[..., None]
    return (base + (c3 - base) * k).clamp(0.0, 1.0)


def shade(normal_dot_light: torch.Tensor, ambient: float) -> torch.Tensor:
    """Wrapped Lambertian shading factor from ``n . l`` (any shape)."""
    return ambient + (1.0 - ambient) * (0.5 + 0.5 * normal_dot_light).square()
