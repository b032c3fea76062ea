"""Building blocks of the grid models: 4Real-Video's synchronization layer, Plücker-ray camera
features and Full-4D's reprojection prior (pure tensor functions with shapes in each docstring)."""

from __future__ import annotations

import torch
import torch.nn as nn

from vnvs.geometry.se3 import invert_se3

MAX_BIAS_DIST2 = 16.0
"""The reprojection prior saturates beyond 4 patches of (epipolar) distance."""


def training_free_weight(layer: int, layers: int) -> float:
    """4Real-Video's training-free soft-synchronization weight ``w_l = 0.1 + 0.4 l / L``.

    Example:
        >>> [round(training_free_weight(l, 4), 2) for l in range(4)]
        [0.1, 0.2, 0.3, 0.4]
    """
    return 0.1 + 0.4 * layer / max(layers, 1)


class SyncLayer(nn.Module):
    """The synchronization layer after DiT block ``layer`` of ``layers`` (4Real-Video, Sec. 3.2.4).

    ``forward(y_view, y_time, temb) -> (x_view, x_time)`` on token tensors of one shape ``(B, ..., D)``
    and the timestep embedding ``temb`` ``(B, temb_dim)`` (``temb_dim`` defaults to ``D``):

    * hard, training-free: both outputs ``(y_v + y_t) / 2`` (eq. 12);
    * hard, learned: ``(y_v + y_t) / 2 + W [y_v, y_t]`` (the merge weights of eq. 8 start at ``I / 2``);
    * soft, training-free: ``x_v = (1 - w_l) y_v + w_l y_t`` and symmetrically (eq. 13);
    * soft, learned: ``(dy_v, dy_t) = ModLinear(y_v, y_t; sigma)``, ``x = y + dy`` (eqs. 9-10).

    The learned updates are a sigma-modulated (adaLN) linear layer whose output is zero-initialised,
    so a learned layer starts as the hard average or as the identity.
    """

    def __init__(self, dim: int, kind: str, weights: str, layer: int, layers: int, temb_dim: int | None = None):
        super().__init__()
        self.kind, self.learned = kind, weights == "learned"
        self.w = 0.5 if kind == "hard" else training_free_weight(layer, layers)
        if self.learned:
            self.norm = nn.LayerNorm(2 * dim, elementwise_affine=False, eps=1e-6)
            self.mod = nn.Linear(temb_dim or dim, 4 * dim)
            self.out = nn.Linear(2 * dim, dim if kind == "hard" else 2 * dim)
            nn.init.zeros_(self.mod.weight)
            nn.init.zeros_(self.mod.bias)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def _update(self, yv: torch.Tensor, yt: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mod(temb).chunk(2, dim=-1)
        view = (temb.shape[0],) + (1,) * (yv.ndim - 2) + (-1,)
        h = self.norm(torch.cat([yv, yt], -1)) * (1 + scale.view(view)) + shift.view(view)
        return self.out(h)

    def forward(self, yv: torch.Tensor, yt: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "hard":
            x = 0.5 * (yv + yt)
            if self.learned:
                x = x + self._update(yv, yt, temb)
            return x, x
        if self.learned:
            dv, dt = self._update(yv, yt, temb).chunk(2, dim=-1)
            return yv + dv, yt + dt
        w = self.w
        return (1 - w) * yv + w * yt, (1 - w) * yt + w * yv


def patch_centres(height: int, width: int, patch: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """``(N, 3)`` homogeneous pixel coordinates ``(x, y, 1)`` of the ``N = (H/p)(W/p)`` patch centres, row-major."""
    h, w = height // patch, width // patch
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device),
                            indexing="ij")
    c = (patch - 1) / 2
    return torch.stack([xs.flatten() * patch + c, ys.flatten() * patch + c, torch.ones(h * w, dtype=dtype, device=device)], -1)


def plucker_patches(w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """Plücker rays ``(d, o x d)`` of every patch centre of every cell, in the frame of cell ``(0, 0)``'s camera.

    Camera centres are divided by the largest centre distance of the grid (the features do not depend
    on the scene's scale). Args: ``w2c (B, V, T, 4, 4)``, ``K (B, V, T, 3, 3)``. Returns
    ``(B, V, T, N, 6)`` float32.
    """
    w2c, K = w2c.double(), K.double()
    rel = w2c[:, :1, :1] @ invert_se3(w2c)  # cell camera -> reference camera frame
    R, o = rel[..., :3, :3], rel[..., :3, 3]  # (B, V, T, 3, 3), (B, V, T, 3)
    x = patch_centres(height, width, patch, device=w2c.device)  # (N, 3)
    d = torch.einsum("bvtij,bvtjk,nk->bvtni", R, torch.linalg.inv(K), x)
    d = d / d.norm(dim=-1, keepdim=True)
    scale = o.flatten(1, 2).norm(dim=-1).amax(dim=1).clamp_min(1e-6)  # (B,)
    o = (o / scale[:, None, None, None])[..., None, :].expand_as(d)
    return torch.cat([d, torch.cross(o, d, dim=-1)], -1).float()


def reprojection_distance(w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, patch: int,
                          depth: torch.Tensor | None = None, depth_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Geometric correspondence between the patches of all grid cells, in patches.

    For query patch ``i`` of cell ``a`` and key patch ``j`` of cell ``b``: where cell ``a`` has valid
    depth at the patch centre (mean over the patch), the distance from ``j``'s centre to the
    projection of that 3D point into ``b``; elsewhere the distance from ``j``'s centre to the epipolar
    line of ``i`` in ``b``, or, when the two cameras share their centre (same cell, static camera,
    pure rotation), to ``i``'s image under the infinite homography ``K_b R K_a^-1``.

    Args:
        w2c: ``(B, V, T, 4, 4)``; K: ``(B, V, T, 3, 3)`` in pixels of ``height x width``.
        depth: optional ``(B, V, T, H, W)``; depth_valid: ``(B, V, T, H, W)`` bool.

    Returns:
        ``(B, C N, C N)`` float32 distances in patch units, ``C = V T`` cells ordered ``(v, t)``, tokens
        ``(cell, patch)``.
    """
    B, V, T = w2c.shape[:3]
    C = V * T
    x = patch_centres(height, width, patch, device=w2c.device)  # (N, 3)
    N = x.shape[0]
    w2c, K = w2c.double().reshape(B, C, 4, 4), K.double().reshape(B, C, 3, 3)
    rel = w2c[:, None] @ invert_se3(w2c)[:, :, None]  # (B, Ca, Cb, 4, 4): a -> b
    R, t = rel[..., :3, :3], rel[..., :3, 3]
    Kinv = torch.linalg.inv(K)
    Ka_inv, Kb = Kinv[:, :, None], K[:, None]
    tx = torch.zeros(B, C, C, 3, 3, dtype=torch.float64, device=w2c.device)
    tx[..., 0, 1], tx[..., 0, 2], tx[..., 1, 0] = -t[..., 2], t[..., 1], t[..., 2]
    tx[..., 1, 2], tx[..., 2, 0], tx[..., 2, 1] = -t[..., 0], -t[..., 1], t[..., 0]
    Fm = Kinv[:, None].transpose(-1, -2) @ tx @ R @ Ka_inv  # (B, Ca, Cb, 3, 3)
    lines = torch.einsum("zacij,nj->zacni", Fm, x)  # (B, Ca, Cb, Na, 3)
    epi = (lines @ x.T).abs() / lines[..., :2].norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (B, Ca, Cb, Na, Nb)
    H = Kb @ R @ Ka_inv
    q = torch.einsum("zacij,nj->zacni", H, x)
    q = q[..., :2] / q[..., 2:].clamp_min(1e-9)
    hom = torch.cdist(q.reshape(B * C * C, N, 2), x[None, :, :2].expand(B * C * C, N, 2)).reshape(B, C, C, N, N)
    scale = invert_se3(w2c)[..., :3, 3].std(dim=1).norm(dim=-1).clamp_min(1e-6)  # (B,)
    same_centre = t.norm(dim=-1) < 1e-4 * scale[:, None, None]
    dist = torch.where(same_centre[..., None, None], hom, epi)
    if depth is not None:
        d = depth.double().reshape(B, C, 1, height, width)
        m = (depth_valid if depth_valid is not None else depth > 0).double().reshape(B, C, 1, height, width)
        pool = torch.nn.functional.avg_pool2d
        dsum = pool((d * m).flatten(0, 1), patch).reshape(B, C, -1)
        cnt = pool(m.flatten(0, 1), patch).reshape(B, C, -1)
        zd = dsum / cnt.clamp_min(1e-9)
        ok = cnt > 0.5  # (B, Ca, Na)
        X = torch.einsum("zaij,nj->zani", Kinv, x) * zd[..., None]  # (B, Ca, Na, 3) camera a
        Xb = torch.einsum("zacij,zanj->zacni", R, X) + t[:, :, :, None]  # (B, Ca, Cb, Na, 3)
        pb = torch.einsum("zacij,zacnj->zacni", Kb.expand(B, C, C, 3, 3), Xb)
        front = pb[..., 2] > 1e-6
        pix = pb[..., :2] / pb[..., 2:].clamp_min(1e-9)
        pd = torch.cdist(pix.reshape(B * C * C, N, 2), x[None, :, :2].expand(B * C * C, N, 2)).reshape(B, C, C, N, N)
        use = (ok[:, :, None] & front)[..., None]
        dist = torch.where(use, pd, dist)
    return (dist / patch).permute(0, 1, 3, 2, 4).reshape(B, C * N, C * N).float()
