"""Forward splatting of frames to new cameras (z-buffer or seeded random collision pick).

Three interchangeable backends compute the same result:

* ``numba``: a fused, compiled per-point loop on the CPU (the fast path here);
* ``torch``: vectorised projection and one ``scatter_reduce`` over packed (key, index) integers
  (the fast path on CUDA tensors, and the CPU fallback without numba);
* ``reference``: plain tensor code that sorts points by (pixel, key, index), kept as the
  definition the others are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vnvs.geometry.projection import pixel_grid, relative_transform
from vnvs.utils.threads import numba_launch

Backend = str  # "auto" | "numba" | "torch" | "reference"
_NEAR = 1e-4


@dataclass
class SplatResult:
    """Source content carried to the target grid."""

    warped: torch.Tensor
    """``(T, C, H_t, W_t)`` warped frame ``I_r``; zero where ``mask`` is False."""
    mask: torch.Tensor
    """``(T, H_t, W_t)`` bool, True where some source point landed (``M``)."""
    corr: torch.Tensor
    """``(T, 2, H_t, W_t)`` source pixel coordinates (x, y) of the winning point (``C``); zero where masked out."""
    depth: torch.Tensor
    """``(T, H_t, W_t)`` depth of the winning point in the target camera; zero where masked out."""
    index: torch.Tensor | None = None
    """``(T, H_t, W_t)`` int64 linear source index ``y * W_s + x`` of the winner, -1 where none."""


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a core dependency
        return False
    return True


def _pick_backend(backend: Backend, device: torch.device) -> Backend:
    if backend not in ("auto", "numba", "torch", "reference"):
        raise ValueError(f"unknown splat backend {backend!r}; expected auto, numba, torch or reference")
    if backend != "auto":
        return backend
    if device.type == "cpu" and _numba_available():
        return "numba"
    return "torch"


def random_keys(shape: tuple[int, ...], generator: torch.Generator | None = None, seed: int | None = None,
                device=None) -> torch.Tensor:
    """Uniform float32 selection keys in [0, 1) for the random collision pick (smallest key wins)."""
    if generator is None:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(0 if seed is None else int(seed))
    keys = torch.rand(shape, generator=generator, dtype=torch.float32, device=generator.device)
    return keys.to(device) if device is not None else keys


def project_pixels_f64(depth: torch.Tensor, Kinv: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                       Kt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target pixel coordinates and depth of every source pixel, element by element in float64, in the
    order of operations the compiled kernels use (so every backend agrees bit for bit).

    Args:
        depth: ``(T, H, W)`` source depth; Kinv, R, Kt: ``(T, 3, 3)`` float64; t: ``(T, 3)`` float64.

    Returns:
        ``(px, py, qz)`` each ``(T, H*W)`` float64: sub-pixel target coordinates and target depth.
    """
    T, H, W = depth.shape
    grid = pixel_grid(H, W, device=depth.device, dtype=torch.float64).reshape(2, -1)
    u, v = grid[0][None], grid[1][None]
    z = depth.reshape(T, -1).to(torch.float64)

    def row(M, i):
        return [M[:, i, j, None] for j in range(3)]

    a0, a1, a2 = row(Kinv, 0), row(Kinv, 1), row(Kinv, 2)
    X = (a0[0] * u + a0[1] * v + a0[2]) * z
    Y = (a1[0] * u + a1[1] * v + a1[2]) * z
    Z = (a2[0] * u + a2[1] * v + a2[2]) * z
    r0, r1, r2 = row(R, 0), row(R, 1), row(R, 2)
    qx = r0[0] * X + r0[1] * Y + r0[2] * Z + t[:, 0, None]
    qy = r1[0] * X + r1[1] * Y + r1[2] * Z + t[:, 1, None]
    qz = r2[0] * X + r2[1] * Y + r2[2] * Z + t[:, 2, None]
    k0, k1, k2 = row(Kt, 0), row(Kt, 1), row(Kt, 2)
    inv = 1.0 / (k2[0] * qx + k2[1] * qy + k2[2] * qz)
    px = (k0[0] * qx + k0[1] * qy + k0[2] * qz) * inv
    py = (k1[0] * qx + k1[1] * qy + k1[2] * qz) * inv
    return px, py, qz


def _project_depth_reference(depth: torch.Tensor, Kinv: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                             Kt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target pixel (rounded, float64) and depth of every source pixel, element by element in float64.

    Returns ``(ut, vt, qz)`` each ``(T, H*W)``.
    """
    px, py, qz = project_pixels_f64(depth, Kinv, R, t, Kt)
    return torch.floor(px + 0.5), torch.floor(py + 0.5), qz


def project_depth_to_pixels(depth: torch.Tensor, K_src: torch.Tensor, w2c_src: torch.Tensor, K_tgt: torch.Tensor,
                            w2c_tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest target pixel and target depth of every source pixel, exactly as the splat computes them.

    Args:
        depth: ``(T, H, W)`` source depth.
        K_src, w2c_src, K_tgt, w2c_tgt: ``(T, 3, 3)`` / ``(T, 4, 4)`` cameras.

    Returns:
        ``x``, ``y`` ``(T, H, W)`` float64 rounded target pixel coordinates and ``z`` ``(T, H, W)``
        float64 target depth (points behind the camera have ``z <= 0``).
    """
    T, H, W = depth.shape
    ut, vt, qz = _project_depth_reference(depth, *_camera_terms(K_src, w2c_src, K_tgt, w2c_tgt))
    return ut.reshape(T, H, W), vt.reshape(T, H, W), qz.reshape(T, H, W)


def _camera_terms(K_src, w2c_src, K_tgt, w2c_tgt):
    rel = relative_transform(w2c_src.to(torch.float64), w2c_tgt.to(torch.float64))
    Kinv = torch.linalg.inv(K_src.to(torch.float64))
    return Kinv, rel[:, :3, :3].contiguous(), rel[:, :3, 3].contiguous(), K_tgt.to(torch.float64).contiguous()


def _select_reference(pix: torch.Tensor, key: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Winner per target pixel by sorting (pixel, key, index); ``pix`` is -1 for dropped points."""
    T, N = pix.shape
    out = torch.full((T, num_pixels), -1, dtype=torch.int64, device=pix.device)
    index = torch.arange(N, device=pix.device)
    for f in range(T):
        keep = pix[f] >= 0
        p, k, i = pix[f][keep], key[f][keep], index[keep]
        order = np.lexsort((i.cpu().numpy(), k.cpu().numpy(), p.cpu().numpy()))
        order = torch.from_numpy(order).to(pix.device)
        p, i = p[order], i[order]
        first = torch.ones_like(p, dtype=torch.bool)
        first[1:] = p[1:] != p[:-1]
        out[f, p[first]] = i[first]
    return out


def _select_torch(pix: torch.Tensor, key: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Winner per target pixel with one ``scatter_reduce(amin)`` over ``key_bits << 32 | index``.

    Keys must be non-negative float32, whose bit patterns sort like the values.
    """
    T, N = pix.shape
    bits = key.contiguous().view(torch.int32).to(torch.int64)
    packed = (bits << 32) | torch.arange(N, device=pix.device, dtype=torch.int64)
    sentinel = torch.iinfo(torch.int64).max
    out = torch.full((T, num_pixels + 1), sentinel, dtype=torch.int64, device=pix.device)
    target = torch.where(pix >= 0, pix, torch.full_like(pix, num_pixels))
    out.scatter_reduce_(1, target, packed, reduce="amin")
    out = out[:, :num_pixels]
    return torch.where(out == sentinel, torch.full_like(out, -1), out & 0xFFFFFFFF)


def _gather(image: torch.Tensor, index: torch.Tensor, src_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    T, C = image.shape[:2]
    safe = index.clamp(min=0)
    flat = image.reshape(T, C, -1)
    warped = torch.gather(flat, 2, safe[:, None].expand(T, C, -1))
    corr = torch.stack([(safe % src_w), torch.div(safe, src_w, rounding_mode="floor")], 1).to(torch.float32)
    valid = (index >= 0)[:, None]
    return warped * valid, corr * valid


def _numba_outputs(image: torch.Tensor, out_h: int, out_w: int):
    T, C = image.shape[:2]
    P = out_h * out_w
    return (torch.empty(T, C, P, dtype=image.dtype), torch.empty(T, 2, P), torch.empty(T, P),
            torch.empty(T, P, dtype=torch.int64), torch.empty(T, P, dtype=torch.bool))


def _as_result(outs, out_h: int, out_w: int) -> SplatResult:
    warped, corr, depth, index, mask = outs
    T, C = warped.shape[:2]
    return SplatResult(warped.reshape(T, C, out_h, out_w), mask.reshape(T, out_h, out_w),
                       corr.reshape(T, 2, out_h, out_w), depth.reshape(T, out_h, out_w),
                       index.reshape(T, out_h, out_w))


def _finish(image, index, zt, out_h, out_w, src_w) -> SplatResult:
    T, C = image.shape[:2]
    warped, corr = _gather(image, index, src_w)
    return SplatResult(
        warped=warped.reshape(T, C, out_h, out_w),
        mask=(index >= 0).reshape(T, out_h, out_w),
        corr=corr.reshape(T, 2, out_h, out_w),
        depth=zt.reshape(T, out_h, out_w),
        index=index.reshape(T, out_h, out_w),
    )


def _check_frames(image: torch.Tensor, depth: torch.Tensor) -> None:
    if image.dim() != 4:
        raise ValueError(f"image must be (T, C, H, W), got shape {tuple(image.shape)}")
    if depth.shape != (image.shape[0], *image.shape[2:]):
        raise ValueError(f"depth must be (T, H, W) = {(image.shape[0], *image.shape[2:])}, got {tuple(depth.shape)}")


def forward_splat(
    image: torch.Tensor,
    depth: torch.Tensor,
    K_src: torch.Tensor,
    w2c_src: torch.Tensor,
    K_tgt: torch.Tensor,
    w2c_tgt: torch.Tensor,
    *,
    target_size: tuple[int, int] | None = None,
    valid: torch.Tensor | None = None,
    mode: str = "zbuffer",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    backend: Backend = "auto",
) -> SplatResult:
    """Carry source frames to target cameras by forward splatting each pixel to its nearest target pixel.

    Every source pixel is unprojected with its depth, moved to the target camera and rounded to the
    nearest target pixel. When several land on one pixel, ``mode="zbuffer"`` keeps the one with
    the smallest target depth (ties: smallest source index ``y * W + x``), as at inference;
    ``mode="random"`` keeps a uniformly random one, drawn from ``generator``/``seed``, as in
    training (Scaling4D).

    Args:
        image: ``(T, C, H, W)`` source frames (any channels, e.g. RGB).
        depth: ``(T, H, W)`` source z-depth; non-finite or non-positive depth is skipped.
        K_src: ``(T, 3, 3)`` source intrinsics.
        w2c_src: ``(T, 4, 4)`` source extrinsics.
        K_tgt: ``(T, 3, 3)`` target intrinsics, in pixels of the target grid.
        w2c_tgt: ``(T, 4, 4)`` target extrinsics.
        target_size: ``(H_t, W_t)``; defaults to the source size.
        valid: ``(T, H, W)`` bool, source pixels to use.
        mode: ``"zbuffer"`` or ``"random"``.
        backend: ``"auto"`` (numba on CPU, torch on CUDA), ``"numba"``, ``"torch"`` or ``"reference"``.

    Returns:
        A :class:`SplatResult` with ``warped (T, C, H_t, W_t)``, ``mask``, ``corr``, ``depth`` and ``index``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> T, H, W = 1, 4, 5
        >>> K = torch.tensor([[[4.0, 0, 2], [0, 4, 1.5], [0, 0, 1]]])
        >>> out = forward_splat(torch.rand(T, 3, H, W), torch.ones(T, H, W), K, torch.eye(4)[None], K, torch.eye(4)[None])
        >>> bool(out.mask.all()), torch.equal(out.corr[0, 0, 2], torch.arange(5.0))
        (True, True)
    """
    _check_frames(image, depth)
    if mode not in ("zbuffer", "random"):
        raise ValueError(f"unknown splat mode {mode!r}; expected 'zbuffer' or 'random'")
    T, C, H, W = image.shape
    out_h, out_w = target_size if target_size is not None else (H, W)
    backend = _pick_backend(backend, image.device)
    Kinv, R, t, Kt = _camera_terms(K_src, w2c_src, K_tgt, w2c_tgt)
    key = random_keys((T, H * W), generator, seed, device=image.device) if mode == "random" else None

    if backend == "numba":
        if image.device.type != "cpu":
            raise ValueError("the numba splat backend runs on CPU tensors; use backend='torch' on CUDA")
        from vnvs.geometry._splat_numba import splat_depth_kernel

        img = image.detach().reshape(T, C, -1).contiguous()
        outs = _numba_outputs(img, out_h, out_w)
        valid_np = valid.contiguous().numpy() if valid is not None else np.zeros((0, 0, 0), dtype=np.bool_)
        key_np = key.contiguous().numpy() if key is not None else np.zeros((0, 0), dtype=np.float32)
        depth_np = depth.detach().to(torch.float32).contiguous().numpy()
        with numba_launch():
            splat_depth_kernel(img.numpy(), depth_np, valid_np, key_np, Kinv.numpy(), R.numpy(), t.numpy(), Kt.numpy(),
                               out_h, out_w, _NEAR, *(o.numpy() for o in outs))
        return _as_result(outs, out_h, out_w)

    d = depth.detach().to(torch.float32)
    ut, vt, qz = _project_depth_reference(d, Kinv, R, t, Kt)
    ok = torch.isfinite(d.reshape(T, -1)) & (d.reshape(T, -1) > 0) & (qz > _NEAR)
    ok &= (ut >= 0) & (vt >= 0) & (ut < out_w) & (vt < out_h)
    if valid is not None:
        ok &= valid.reshape(T, -1)
    pix = torch.where(ok, (vt * out_w + ut).nan_to_num(0).to(torch.int64), torch.full_like(ut, -1, dtype=torch.int64))
    sel_key = key if key is not None else qz.to(torch.float32)
    sel_key = torch.where(ok, sel_key, torch.zeros_like(sel_key))
    select = _select_reference if backend == "reference" else _select_torch
    index = select(pix, sel_key, out_h * out_w)
    zt = torch.where(index >= 0, torch.gather(qz.to(torch.float32), 1, index.clamp(min=0)), torch.zeros(()))
    return _finish(image.detach(), index, zt, out_h, out_w, W)


def forward_splat_flow(
    image: torch.Tensor,
    flow: torch.Tensor,
    *,
    depth: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    mode: str = "random",
    target_size: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    backend: Backend = "auto",
) -> SplatResult:
    """Carry source frames along a forward optical flow to the target grid.

    Source pixel ``p`` lands at ``round(p + flow[p])``. Collisions are settled by a seeded random
    pick (``mode="random"``, training as in Scaling4D) or by the smallest ``depth``
    (``mode="zbuffer"``, which needs ``depth``).

    Args:
        image: ``(T, C, H, W)`` source frames.
        flow: ``(T, 2, H, W)`` forward flow source -> target, in pixels.
        depth: ``(T, H, W)`` source depth, required for ``"zbuffer"``.
        valid: ``(T, H, W)`` bool, source pixels to use (e.g. a flow consistency mask).
        target_size: ``(H_t, W_t)``, defaults to the source size.

    Returns:
        A :class:`SplatResult`; its ``depth`` is the source depth of the winner (zero without ``depth``).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> img = torch.rand(1, 3, 4, 4); flow = torch.zeros(1, 2, 4, 4); flow[:, 0] = 1.0
        >>> out = forward_splat_flow(img, flow, seed=0)
        >>> torch.equal(out.warped[0, :, :, 1:], img[0, :, :, :3]), bool(out.mask[0, :, 0].any())
        (True, False)
    """
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != image.shape[0] or flow.shape[2:] != image.shape[2:]:
        raise ValueError(f"flow must be (T, 2, H, W) matching image {tuple(image.shape)}, got {tuple(flow.shape)}")
    if mode not in ("zbuffer", "random"):
        raise ValueError(f"unknown splat mode {mode!r}; expected 'zbuffer' or 'random'")
    if mode == "zbuffer" and depth is None:
        raise ValueError("mode='zbuffer' needs the source depth")
    T, C, H, W = image.shape
    out_h, out_w = target_size if target_size is not None else (H, W)
    backend = _pick_backend(backend, image.device)
    coords = (pixel_grid(H, W, device=flow.device) + flow.to(torch.float32)).reshape(T, 2, -1)
    z = depth.to(torch.float32).reshape(T, -1) if depth is not None else None
    key = random_keys((T, H * W), generator, seed, device=image.device) if mode == "random" else z

    if backend == "numba":
        from vnvs.geometry._splat_numba import splat_coords_kernel

        # the kernel's bounds test rejects non-finite coordinates (every comparison with NaN is False)
        ok = valid.reshape(T, -1).to(torch.bool) if valid is not None else torch.ones(T, H * W, dtype=torch.bool)
        if z is not None:
            ok = ok & torch.isfinite(z) & (z > 0)
        img = image.detach().reshape(T, C, -1).contiguous()
        outs = _numba_outputs(img, out_h, out_w)
        z_np = z.contiguous().numpy() if z is not None else np.zeros((0, 0), dtype=np.float32)
        coords_np, ok_np, key_np = coords.contiguous().numpy(), ok.contiguous().numpy(), key.contiguous().numpy()
        with numba_launch():
            splat_coords_kernel(img.numpy(), W, coords_np, z_np, ok_np, key_np, out_h, out_w, *(o.numpy() for o in outs))
        return _as_result(outs, out_h, out_w)

    ok = torch.isfinite(coords).all(1)
    if z is not None:
        ok &= torch.isfinite(z) & (z > 0)
    if valid is not None:
        ok &= valid.reshape(T, -1)
    ut = torch.floor(coords[:, 0].to(torch.float64) + 0.5)
    vt = torch.floor(coords[:, 1].to(torch.float64) + 0.5)
    ok &= (ut >= 0) & (vt >= 0) & (ut < out_w) & (vt < out_h)
    pix = torch.where(ok, (vt * out_w + ut).nan_to_num(0).to(torch.int64), torch.full_like(ut, -1, dtype=torch.int64))
    sel_key = torch.where(ok, key, torch.zeros_like(key))
    select = _select_reference if backend == "reference" else _select_torch
    index = select(pix, sel_key, out_h * out_w)
    if z is not None:
        zt = torch.where(index >= 0, torch.gather(z, 1, index.clamp(min=0)), torch.zeros(()))
    else:
        zt = torch.zeros(T, out_h * out_w)
    return _finish(image.detach(), index, zt, out_h, out_w, W)
