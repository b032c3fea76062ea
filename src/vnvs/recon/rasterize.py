"""A differentiable rasterizer of 3D Gaussians (3D Gaussian Splatting, Kerbl et al. 2023).

Two stages, as in gsplat:

1. :func:`project_gaussians` (torch, autograd): each Gaussian's covariance ``R S S^T R^T`` is carried
   to the image by the EWA local affine approximation ``J W Sigma W^T J^T`` (``J`` the Jacobian of the
   pinhole projection at the mean, with the 3DGS clamp of ``x/z`` to 1.3 x the field of view and the
   0.3 px^2 low-pass), inverted to a conic, and given a 3-sigma pixel radius. Gaussians behind the near
   plane or off screen get radius 0.
2. Compositing over 16 x 16 tiles: every Gaussian is listed in the tiles its radius touches, lists are
   sorted front to back by camera depth, and each pixel blends ``alpha = min(0.99, o * exp(-d^T conic d / 2))``
   in order, skipping ``alpha < 1/255`` and stopping once transmittance would fall below ``1e-4``.

Compositing backends, all computing the same function:

* ``reference``: plain tensor code per tile (dense ``Gaussians x pixels`` alpha, ``cumprod``
  transmittance), differentiated by autograd: the definition the others are tested against;
* ``numba``: compiled forward and hand-written backward (:mod:`vnvs.recon._raster_numba`) in a
  :class:`torch.autograd.Function`, parallel over tiles: the CPU fast path;
* ``gsplat``: gsplat's CUDA kernels for CUDA tensors (the ``gpu`` extra).

Pixel centres are at integer coordinates (``vnvs.geometry.pixel_grid``); cameras are OpenCV ``w2c`` and ``K``.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> means = torch.randn(50, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    >>> out = rasterize(means, torch.full((50, 3), -2.5), torch.tensor([[1.0, 0, 0, 0]]).repeat(50, 1),
    ...                 torch.zeros(50), torch.rand(50, 3, generator=g), torch.eye(4),
    ...                 torch.tensor([[40.0, 0, 16], [0, 40, 16], [0, 0, 1]]), 32, 32, backend="reference")
    >>> out.image.shape, out.alpha.shape, bool((out.alpha > 0.5).any())
    (torch.Size([3, 32, 32]), torch.Size([32, 32]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vnvs.errors import InputError
from vnvs.utils.threads import numba_launch

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
NEAR = 0.01
LOW_PASS = 0.3
SH_C0 = 0.28209479177387814
"""Degree-0 spherical-harmonic constant: ``rgb = SH_C0 * f_dc + 0.5`` (the 3DGS PLY convention)."""

BACKENDS = ("auto", "reference", "numba", "gsplat")


@dataclass
class RasterOutput:
    """What one camera sees."""

    image: torch.Tensor
    """``(3, H, W)`` composited colour over the background."""
    alpha: torch.Tensor
    """``(H, W)`` accumulated opacity ``1 - T``."""
    depth: torch.Tensor
    """``(H, W)`` expected depth along the camera z axis, ``sum(w z) / alpha`` (0 where alpha is 0)."""
    means2d: torch.Tensor | None = None
    """``(N, 2)`` projected means (``(1, N, 2)`` from gsplat); ``retain_grad`` is called on it, so
    :meth:`means2d_grad` gives the densification statistics after ``backward``."""
    radii: torch.Tensor | None = None
    """``(N,)`` int64 pixel radii, 0 for Gaussians not drawn."""

    def means2d_grad(self) -> torch.Tensor | None:
        """``(N, 2)`` gradient of the loss with respect to the projected means (None before ``backward``)."""
        if self.means2d is None or self.means2d.grad is None:
            return None
        return self.means2d.grad.reshape(-1, 2)


@dataclass
class Projected:
    """Gaussians in one image: the input of compositing."""

    means2d: torch.Tensor
    """``(N, 2)`` pixel coordinates of the means."""
    conics: torch.Tensor
    """``(N, 3)`` inverse 2D covariance ``[a, b, c]`` (``[[a, b], [b, c]]``)."""
    depths: torch.Tensor
    """``(N,)`` camera z of the means."""
    radii: torch.Tensor
    """``(N,)`` int64 3-sigma radius in pixels, 0 when culled."""


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` quaternions ``(w, x, y, z)`` (any norm) -> ``(N, 3, 3)`` rotation matrices.

    Example:
        >>> quat_to_rotmat(torch.tensor([[2.0, 0, 0, 0]]))[0].diag().tolist()
        [1.0, 1.0, 1.0]
    """
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(log_scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` world covariances ``R diag(exp(2 s)) R^T``."""
    R = quat_to_rotmat(quats)
    M = R * torch.exp(log_scales)[..., None, :]
    return _small_matmul(M, M.transpose(-1, -2))


def _small_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` for stacks of tiny matrices as one broadcast product and sum (batched GEMM calls on
    3 x 3 matrices, and their backward, cost far more on the CPU)."""
    return (A[..., :, :, None] * B[..., None, :, :]).sum(-2)


def project_gaussians(means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor, w2c: torch.Tensor,
                      K: torch.Tensor, width: int, height: int, backend: str = "torch") -> Projected:
    """Project 3D Gaussians to 2D with the EWA Jacobian (differentiable in means, log-scales and
    quaternions; not in the cameras or the radii).

    Args:
        means: ``(N, 3)`` world positions; log_scales: ``(N, 3)``; quats: ``(N, 4)`` ``(w, x, y, z)``.
        w2c: ``(4, 4)``; K: ``(3, 3)`` in pixels of a ``height x width`` image.
        backend: ``torch`` (tensor code and autograd: the definition) or ``numba`` (one compiled pass
            per Gaussian and a hand-written backward, :mod:`vnvs.recon._project_numba`; CPU tensors).
    """
    if backend == "numba":
        w2c64, K64 = w2c.detach().double().cpu(), K.detach().double().cpu()
        means2d, conics, depths, radii = _NumbaProject.apply(means, log_scales, quats, w2c64, K64, int(width),
                                                             int(height))
        return Projected(means2d, conics, depths, radii)
    if backend != "torch":
        raise ValueError(f"unknown projection backend {backend!r}; expected torch or numba")
    dtype = means.dtype
    w2c = w2c.to(dtype)
    K = K.to(dtype)
    R, t = w2c[:3, :3], w2c[:3, 3]
    pc = means @ R.T + t
    z = pc[:, 2]
    ok = z > NEAR
    zs = torch.where(ok, z, torch.ones_like(z))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # the 3DGS guard: the Jacobian is taken at most 30% of the image beyond its edges
    tx = torch.minimum(torch.maximum(pc[:, 0] / zs, (-0.15 * width - cx) / fx), (1.15 * width - cx) / fx) * zs
    ty = torch.minimum(torch.maximum(pc[:, 1] / zs, (-0.15 * height - cy) / fy), (1.15 * height - cy) / fy) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2], dim=-1).reshape(-1, 2, 3)
    M = _small_matmul(J, R.expand(J.shape[0], 3, 3))
    cov2d = _small_matmul(_small_matmul(M, covariance_3d(log_scales, quats)), M.transpose(-1, -2))
    a = cov2d[:, 0, 0] + LOW_PASS
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + LOW_PASS
    det = a * c - b * b
    ok = ok & (det > 0)
    inv_det = 1.0 / torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c * inv_det, -b * inv_det, a * inv_det], dim=-1)
    means2d = torch.stack([fx * pc[:, 0] / zs + cx, fy * pc[:, 1] / zs + cy], dim=-1)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        radii = torch.ceil(3.0 * torch.sqrt(lam)).to(torch.int64)
        mx, my = means2d[:, 0], means2d[:, 1]
        on = (mx + radii > 0) & (mx - radii < width) & (my + radii > 0) & (my - radii < height)
        radii = torch.where(ok & on & torch.isfinite(mx) & torch.isfinite(my), radii, torch.zeros_like(radii))
    return Projected(means2d, conics, z, radii)


class _NumbaProject(torch.autograd.Function):
    """:func:`project_gaussians` through the compiled kernels (float64 inside)."""

    @staticmethod
    def forward(ctx, means, log_scales, quats, w2c, K, width, height):
        from vnvs.recon._project_numba import project_forward

        arrays = [np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float64)) for x in (means, log_scales, quats)]
        R, t = np.ascontiguousarray(w2c[:3, :3].numpy()), np.ascontiguousarray(w2c[:3, 3].numpy())
        cam = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        n = means.shape[0]
        means2d, conics, depths = np.empty((n, 2)), np.empty((n, 3)), np.empty(n)
        radii = np.empty(n, dtype=np.int64)
        with numba_launch():
            project_forward(*arrays, R, t, *cam, width, height, means2d, conics, depths, radii)
        ctx.state = (arrays, R, t, cam, width, height)
        ctx.mark_non_differentiable(radii_t := torch.from_numpy(radii).to(means.device))
        dtype, device = means.dtype, means.device
        return (*(torch.from_numpy(x).to(device=device, dtype=dtype) for x in (means2d, conics, depths)), radii_t)

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_depths, _g_radii):
        from vnvs.recon._project_numba import project_backward

        arrays, R, t, cam, width, height = ctx.state
        n = arrays[0].shape[0]
        grads = [np.zeros((n, 2)) if g_means2d is None else g_means2d.detach().cpu().double().numpy(),
                 np.zeros((n, 3)) if g_conics is None else g_conics.detach().cpu().double().numpy(),
                 np.zeros(n) if g_depths is None else g_depths.detach().cpu().double().numpy()]
        out = [np.empty((n, 3)), np.empty((n, 3)), np.empty((n, 4))]
        with numba_launch():
            project_backward(*arrays, R, t, *cam, width, height, *(np.ascontiguousarray(g) for g in grads), *out)
        like = ctx.needs_input_grad
        device = g_means2d.device if g_means2d is not None else torch.device("cpu")
        dtype = g_means2d.dtype if g_means2d is not None else torch.float32
        res = [torch.from_numpy(o).to(device=device, dtype=dtype) if need else None for o, need in zip(out, like[:3])]
        return (*res, None, None, None, None)


@dataclass
class TileLists:
    """Which Gaussians touch which tile, front to back."""

    gid: torch.Tensor
    """``(M,)`` int64 Gaussian index of each (tile, Gaussian) intersection, sorted by tile then depth."""
    start: torch.Tensor
    """``(n_tiles,)`` int64 first entry of each tile (row-major tiles)."""
    end: torch.Tensor
    """``(n_tiles,)`` int64 one past the last entry of each tile."""
    tiles_x: int
    tiles_y: int


@torch.no_grad()
def bin_tiles(means2d: torch.Tensor, depths: torch.Tensor, radii: torch.Tensor, width: int, height: int,
              tile: int = TILE) -> TileLists:
    """List every drawn Gaussian in the tiles its 3-sigma square touches, sorted front to back (vectorised).

    Example:
        >>> lists = bin_tiles(torch.tensor([[15.0, 8.0], [20.0, 8.0]]), torch.tensor([2.0, 1.0]),
        ...                   torch.tensor([3, 3]), 32, 16)
        >>> lists.gid.tolist(), lists.start.tolist(), lists.end.tolist()
        ([0, 1, 0], [0, 1], [1, 3])
    """
    tiles_x = (width + tile - 1) // tile
    tiles_y = (height + tile - 1) // tile
    n_tiles = tiles_x * tiles_y
    r = radii.to(torch.float64)
    mx, my = means2d[:, 0].double(), means2d[:, 1].double()
    x0 = torch.floor((mx - r) / tile).clamp(0, tiles_x).long()
    x1 = torch.floor((mx + r + tile - 1) / tile).clamp(0, tiles_x).long()
    y0 = torch.floor((my - r) / tile).clamp(0, tiles_y).long()
    y1 = torch.floor((my + r + tile - 1) / tile).clamp(0, tiles_y).long()
    wx = (x1 - x0).clamp_min(0)
    cnt = wx * (y1 - y0).clamp_min(0)
    cnt = torch.where(radii > 0, cnt, torch.zeros_like(cnt))
    total = int(cnt.sum())
    device = means2d.device
    if total == 0:
        z = torch.zeros(n_tiles, dtype=torch.int64, device=device)
        return TileLists(torch.zeros(0, dtype=torch.int64, device=device), z, z.clone(), tiles_x, tiles_y)
    # Gaussians front to back, their intersections in that order, then a stable sort by tile (a radix
    # sort of 16/32-bit keys in numpy) keeps every tile's list front to back
    by_depth = torch.argsort(depths.detach(), stable=True).cpu()
    cnt_sorted = cnt.cpu()[by_depth]
    gid = torch.repeat_interleave(by_depth, cnt_sorted)
    first = torch.cumsum(cnt_sorted, 0) - cnt_sorted
    local = torch.arange(total) - torch.repeat_interleave(first, cnt_sorted)
    x0c, y0c, wc = x0.cpu()[gid], y0.cpu()[gid], wx.cpu()[gid]
    tile_id = (y0c + local // wc) * tiles_x + x0c + local % wc
    key = tile_id.numpy().astype(np.uint16 if n_tiles <= 65535 else np.int64)
    order = torch.from_numpy(np.argsort(key, kind="stable"))
    gid, tile_id = gid[order], tile_id[order]
    t = torch.arange(n_tiles)
    start = torch.searchsorted(tile_id, t)
    end = torch.searchsorted(tile_id, t, right=True)
    gid, start, end = gid.to(device), start.to(device), end.to(device)
    return TileLists(gid, start, end, tiles_x, tiles_y)


def _composite_reference(proj: Projected, opacities: torch.Tensor, colors: torch.Tensor, lists: TileLists,
                         width: int, height: int, bg: torch.Tensor, tile: int = TILE):
    """Per tile, dense over (Gaussians of the tile) x (pixels of the tile); autograd differentiates it.

    Returns ``(color (H, W, 3), accumulated depth (H, W), final transmittance (H, W))``.
    """
    dtype = proj.means2d.dtype
    device = proj.means2d.device
    color = torch.zeros(height, width, 3, dtype=dtype, device=device)
    depth = torch.zeros(height, width, dtype=dtype, device=device)
    trans = torch.ones(height, width, dtype=dtype, device=device)
    color_rows, depth_rows, trans_rows = [], [], []
    starts, ends = lists.start.tolist(), lists.end.tolist()
    for ty in range(lists.tiles_y):
        y0, y1 = ty * tile, min((ty + 1) * tile, height)
        cs, ds, ts = [], [], []
        for tx in range(lists.tiles_x):
            x0, x1 = tx * tile, min((tx + 1) * tile, width)
            ti = ty * lists.tiles_x + tx
            h, w = y1 - y0, x1 - x0
            if ends[ti] == starts[ti]:
                cs.append(bg.to(dtype).expand(h, w, 3))
                ds.append(torch.zeros(h, w, dtype=dtype, device=device))
                ts.append(torch.ones(h, w, dtype=dtype, device=device))
                continue
            idx = lists.gid[starts[ti]:ends[ti]]
            gy, gx = torch.meshgrid(torch.arange(y0, y1, dtype=dtype, device=device),
                                    torch.arange(x0, x1, dtype=dtype, device=device), indexing="ij")
            dx = proj.means2d[idx, 0, None] - gx.reshape(1, -1)  # (n, P)
            dy = proj.means2d[idx, 1, None] - gy.reshape(1, -1)
            con = proj.conics[idx]
            power = -0.5 * (con[:, 0, None] * dx * dx + con[:, 2, None] * dy * dy) - con[:, 1, None] * dx * dy
            raw = opacities[idx, None] * torch.exp(power)
            alpha = torch.where(raw > ALPHA_MAX, torch.full_like(raw, ALPHA_MAX), raw)
            keep = (power <= 0) & (alpha >= ALPHA_MIN)
            alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
            one_minus = 1 - alpha
            t_incl = torch.cumprod(one_minus, dim=0)
            t_excl = torch.cat([torch.ones_like(t_incl[:1]), t_incl[:-1]])
            live = (t_incl >= T_MIN).detach()  # a pixel stops before the Gaussian that would drop T below 1e-4
            wgt = alpha * t_excl * live
            t_final = torch.prod(torch.where(live, one_minus, torch.ones_like(one_minus)), dim=0)
            c = wgt.T @ colors[idx] + t_final[:, None] * bg.to(dtype)
            cs.append(c.reshape(h, w, 3))
            ds.append((wgt * proj.depths[idx, None]).sum(0).reshape(h, w))
            ts.append(t_final.reshape(h, w))
        color_rows.append(torch.cat(cs, dim=1))
        depth_rows.append(torch.cat(ds, dim=1))
        trans_rows.append(torch.cat(ts, dim=1))
    if color_rows:
        color, depth, trans = torch.cat(color_rows), torch.cat(depth_rows), torch.cat(trans_rows)
    return color, depth, trans


class _NumbaComposite(torch.autograd.Function):
    """Compiled compositing with the hand-written backward of :mod:`vnvs.recon._raster_numba`."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, depths, lists, width, height, bg):
        from vnvs.recon._raster_numba import forward_kernel

        arrays = [np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float64))
                  for x in (means2d, conics, opacities, colors, depths, bg)]
        gid, start, end = (np.ascontiguousarray(x.cpu().numpy()) for x in (lists.gid, lists.start, lists.end))
        out_color = np.zeros((height, width, 3))
        out_depth = np.zeros((height, width))
        out_T = np.ones((height, width))
        out_count = np.zeros((height, width), dtype=np.int64)
        with numba_launch():
            forward_kernel(*arrays[:5], gid, start, end, width, height, lists.tiles_x, TILE, arrays[5],
                           out_color, out_depth, out_T, out_count)
        ctx.save_for_backward(means2d, conics, opacities, colors, depths)
        ctx.state = (arrays, gid, start, end, out_T, out_count, lists, width, height)
        dtype, device = means2d.dtype, means2d.device
        return tuple(torch.from_numpy(x).to(device=device, dtype=dtype) for x in (out_color, out_depth, out_T))

    @staticmethod
    def backward(ctx, grad_color, grad_depth, grad_T):
        from vnvs.recon._raster_numba import backward_kernel

        arrays, gid, start, end, out_T, out_count, lists, width, height = ctx.state
        means2d = ctx.saved_tensors[0]
        g = [np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float64))
             for x in (grad_color, grad_depth, -grad_T)]  # d/d(1 - T) = -d/dT
        out = np.zeros((gid.shape[0], 10))
        with numba_launch():
            backward_kernel(*arrays[:5], gid, start, end, width, height, lists.tiles_x, TILE, arrays[5],
                            out_T, out_count, g[0], g[1], g[2], out)
        N = means2d.shape[0]
        per = torch.zeros(N, 10, dtype=torch.float64)
        per.index_add_(0, torch.from_numpy(gid), torch.from_numpy(out))
        per = per.to(device=means2d.device, dtype=means2d.dtype)
        return per[:, 0:2], per[:, 2:5], per[:, 5], per[:, 6:9], per[:, 9], None, None, None, None


def _check_inputs(means, log_scales, quats, opacity_logits, colors, w2c, K, width, height):
    N = means.shape[0]
    shapes = {"means": (means, (N, 3)), "log_scales": (log_scales, (N, 3)), "quats": (quats, (N, 4)),
              "opacity_logits": (opacity_logits, (N,)), "colors": (colors, (N, 3)), "w2c": (w2c, (4, 4)), "K": (K, (3, 3))}
    for name, (x, shape) in shapes.items():
        if tuple(x.shape) != shape:
            raise ValueError(f"rasterize: {name} must have shape {shape}, got {tuple(x.shape)}")
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"rasterize: image size must be positive, got {width}x{height}")


def _pick(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "gsplat" if device.type == "cuda" else "numba"


def rasterize(means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor, opacity_logits: torch.Tensor,
              colors: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, width: int, height: int,
              background: torch.Tensor | None = None, backend: str = "auto") -> RasterOutput:
    """Render 3D Gaussians from one camera, differentiably.

    Args:
        means: ``(N, 3)`` world positions.
        log_scales: ``(N, 3)`` log standard deviations along the Gaussian's axes.
        quats: ``(N, 4)`` rotations ``(w, x, y, z)``, any norm.
        opacity_logits: ``(N,)``; the opacity is ``sigmoid``.
        colors: ``(N, 3)`` RGB (degree-0 SH already evaluated).
        w2c: ``(4, 4)`` world-to-camera (OpenCV); K: ``(3, 3)`` pixels of the ``height x width`` image.
        background: ``(3,)`` colour behind the Gaussians (default black).
        backend: ``auto`` (gsplat on CUDA, numba on the CPU), ``reference``, ``numba`` or ``gsplat``.
    """
    _check_inputs(means, log_scales, quats, opacity_logits, colors, w2c, K, width, height)
    width, height = int(width), int(height)
    bg = torch.zeros(3, dtype=means.dtype, device=means.device) if background is None else background.to(means)
    backend = _pick(backend, means.device)
    if backend == "gsplat":
        return _rasterize_gsplat(means, log_scales, quats, opacity_logits, colors, w2c, K, width, height, bg)
    fused = backend == "numba" and means.device.type == "cpu"
    proj = project_gaussians(means, log_scales, quats, w2c, K, width, height, backend="numba" if fused else "torch")
    if proj.means2d.requires_grad:
        proj.means2d.retain_grad()
    lists = bin_tiles(proj.means2d, proj.depths, proj.radii, width, height)
    opac = torch.sigmoid(opacity_logits)
    if backend == "reference":
        color, acc_depth, trans = _composite_reference(proj, opac, colors, lists, width, height, bg)
    else:
        color, acc_depth, trans = _NumbaComposite.apply(proj.means2d, proj.conics, opac, colors, proj.depths,
                                                        lists, width, height, bg)
    alpha = 1 - trans
    depth = torch.where(alpha > 1e-6, acc_depth / alpha.clamp_min(1e-6), torch.zeros_like(acc_depth))
    return RasterOutput(color.permute(2, 0, 1), alpha, depth, proj.means2d, proj.radii)


def _rasterize_gsplat(means, log_scales, quats, opacity_logits, colors, w2c, K, width, height, bg) -> RasterOutput:
    try:
        import gsplat
    except ImportError:
        raise InputError("the gsplat rasterizer needs gsplat: pip install 'vnvs[gpu]' (or choose backend 'numba')") from None
    K = K.to(means).clone()
    K[:2, 2] += 0.5  # gsplat samples pixel i at i + 0.5; vnvs puts pixel centres at integer coordinates
    colors_out, alphas, meta = gsplat.rasterization(
        means, quats / quats.norm(dim=-1, keepdim=True), torch.exp(log_scales), torch.sigmoid(opacity_logits), colors,
        w2c[None].to(means), K[None], width, height, near_plane=NEAR, render_mode="RGB+ED",
        backgrounds=bg[None], packed=False)
    out = colors_out[0]
    means2d = meta["means2d"]  # the tensor the kernels' gradient reaches (a view of it would get none)
    if means2d.requires_grad:
        means2d.retain_grad()
    radii = meta["radii"][0]
    radii = radii.max(dim=-1).values if radii.ndim == 2 else radii
    return RasterOutput(out[..., :3].permute(2, 0, 1), alphas[0, ..., 0], out[..., 3], means2d, radii.long())
