"""The 9-channel control signal ``I_s | C (normalised) | I_r | M`` (Scaling4D) and everything done to it.

Channel layout (``(..., 9, H, W)``; name the slices, never the numbers):

=========  =========  ==================================================================
name       channels   meaning
=========  =========  ==================================================================
``SOURCE`` ``0:3``    the source frame ``I_s`` of the same time index, on the target grid
``CORR``   ``3:5``    ``C``: the source pixel landing on each target pixel, normalised to
                      [-1, 1] with the source size (``align_corners=True``); 0 outside ``M``
``WARPED`` ``5:8``    the warped frame ``I_r``: the source splatted to the target; 0 outside ``M``
``MASK``   ``8:9``    ``M``: 1 where some source pixel landed
=========  =========  ==================================================================

One rule for changing its size, in training and at inference alike (:func:`resize_control`):
``I_s`` bilinear with antialiasing; ``C`` and ``I_r`` bilinear over the masked pixels only (values
outside ``M`` never leak in); ``M`` nearest neighbour. Crops move ``C`` into the cropped source
frame (:func:`crop_control`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vnvs.defaults import RENDERERS
from vnvs.geometry.mesh_render import mesh_render
from vnvs.geometry.splat import forward_splat
from vnvs.geometry.warp import denormalize_coords, normalize_coords

CONTROL_CHANNELS = 9
SOURCE = slice(0, 3)
"""Channels of the source frame ``I_s``."""
CORR = slice(3, 5)
"""Channels of the normalised correspondence ``C``."""
WARPED = slice(5, 8)
"""Channels of the warped frame ``I_r``."""
MASK = slice(8, 9)
"""Channel of the mask ``M``."""
"""Renderers of the control signal (:func:`render_control`): the z-buffer point splat and the depth mesh."""


def build_control_signal(source: torch.Tensor, corr: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Stack the control signal in the order fixed by the design: ``I_s (3) | C (2) | I_r (3) | M (1)``.

    Args:
        source: ``(T, 3, H_s, W_s)`` source frames in [0, 1]; resized to the target grid if needed.
        corr: ``(T, 2, H_t, W_t)`` source pixel coordinates on the target grid.
        warped: ``(T, 3, H_t, W_t)`` warped frames.
        mask: ``(T, H_t, W_t)`` bool.

    Returns:
        ``(T, 9, H_t, W_t)`` float32; ``C`` normalised to [-1, 1] with the source size, and ``C``,
        ``I_r`` zero where ``mask`` is False.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> sig = build_control_signal(torch.rand(2, 3, 8, 8), torch.zeros(2, 2, 8, 8), torch.rand(2, 3, 8, 8),
        ...                            torch.zeros(2, 8, 8, dtype=torch.bool))
        >>> tuple(sig.shape), float(sig[:, 3:].abs().sum())
        ((2, 9, 8, 8), 0.0)
    """
    T, _, Hs, Ws = source.shape
    Ht, Wt = corr.shape[-2:]
    if warped.shape[-2:] != (Ht, Wt) or mask.shape[-2:] != (Ht, Wt):
        raise ValueError("corr, warped and mask must share the target grid size")
    m = mask[:, None].to(torch.float32)
    src = source.float()
    if (Hs, Ws) != (Ht, Wt):
        src = F.interpolate(src, size=(Ht, Wt), mode="bilinear", align_corners=False, antialias=True)
    c = normalize_coords(corr.float(), Hs, Ws) * m
    return torch.cat([src, c, warped.float() * m, m], dim=1)


def split_control_signal(signal: torch.Tensor, source_size: tuple[int, int] | None = None):
    """Unpack a control signal ``(..., 9, H, W)`` into ``(I_s, C, I_r, M)``.

    ``C`` comes back in pixel coordinates of ``source_size`` (default: the signal's own size);
    ``M`` as bool ``(..., H, W)``.

    Example:
        >>> src, corr, warped, mask = split_control_signal(torch.zeros(2, 9, 4, 6))
        >>> tuple(src.shape), tuple(corr.shape), tuple(warped.shape), tuple(mask.shape)
        ((2, 3, 4, 6), (2, 2, 4, 6), (2, 3, 4, 6), (2, 4, 6))
    """
    _check_channels(signal)
    H, W = source_size if source_size is not None else signal.shape[-2:]
    mask = control_mask(signal)
    corr = denormalize_coords(signal[..., CORR, :, :], H, W) * mask[..., None, :, :]
    return signal[..., SOURCE, :, :], corr, signal[..., WARPED, :, :], mask


def control_mask(signal: torch.Tensor) -> torch.Tensor:
    """``M`` of a control signal ``(..., 9, H, W)`` as bool ``(..., H, W)``."""
    _check_channels(signal)
    return signal[..., MASK.start, :, :] > 0.5


def _check_channels(signal: torch.Tensor) -> None:
    if signal.dim() < 3 or signal.shape[-3] != CONTROL_CHANNELS:
        raise ValueError(f"control signal must be (..., {CONTROL_CHANNELS}, H, W), got {tuple(signal.shape)}")


def render_control(frames: torch.Tensor, depth: torch.Tensor, K_src: torch.Tensor, w2c_src: torch.Tensor,
                   K_tgt: torch.Tensor, w2c_tgt: torch.Tensor, target_size: tuple[int, int], *,
                   times: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                   chunk: int = 16, renderer: str = "zbuffer") -> torch.Tensor:
    """The control signal of target cameras: each target frame's source frame carried to its camera by
    ``renderer`` and stacked with :func:`build_control_signal`, ``chunk`` frames at a time.

    Args:
        frames: ``(T, 3, H, W)`` source frames in [0, 1].
        depth: ``(T, H, W)`` source depth.
        K_src, w2c_src: ``(T, 3, 3)``, ``(T, 4, 4)`` source cameras.
        K_tgt, w2c_tgt: ``(N, 3, 3)``, ``(N, 4, 4)`` target cameras, ``K_tgt`` in pixels of ``target_size``.
        target_size: ``(H_t, W_t)``.
        times: ``(N,)`` source frame of each target frame (default: target ``i`` uses source ``i``, ``N == T``).
        valid: ``(T, H, W)`` bool, source pixels with valid depth.
        chunk: target frames per splat call (bounds the memory of long trajectories).
        renderer: ``"zbuffer"`` (:func:`~vnvs.geometry.splat.forward_splat`, one point per source pixel,
            as in Scaling4D's training pairs) or ``"mesh"`` (:func:`~vnvs.geometry.mesh_render.mesh_render`,
            the depth mesh: no cracks, sub-pixel ``C``); see :data:`RENDERERS`.

    Returns:
        ``(N, 9, H_t, W_t)`` float32.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> K = torch.tensor([[4.0, 0, 2], [0, 4, 1.5], [0, 0, 1]]).expand(3, 3, 3)
        >>> eye = torch.eye(4).expand(3, 4, 4)
        >>> c = render_control(torch.rand(3, 3, 4, 5), torch.ones(3, 4, 5), K, eye, K[:2], eye[:2], (4, 5),
        ...                    times=torch.tensor([2, 0]))
        >>> tuple(c.shape), bool(control_mask(c).all())
        ((2, 9, 4, 5), True)
    """
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; expected one of {', '.join(RENDERERS)}")
    render = forward_splat if renderer == "zbuffer" else mesh_render
    N = K_tgt.shape[0]
    times = torch.arange(N) if times is None else times.long()
    if times.numel() != N:
        raise ValueError(f"{times.numel()} time indices for {N} target cameras")
    parts = []
    for s in range(0, N, max(1, int(chunk))):
        ti = times[s:s + chunk]
        sl = slice(s, s + ti.numel())
        splat = render(frames[ti], depth[ti], K_src[ti], w2c_src[ti], K_tgt[sl], w2c_tgt[sl],
                       target_size=tuple(target_size), valid=valid[ti] if valid is not None else None)
        parts.append(build_control_signal(frames[ti], splat.corr, splat.warped, splat.mask))
    return torch.cat(parts) if parts else torch.zeros(0, CONTROL_CHANNELS, *target_size)


def _masked_resize(x: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``x (N, C, H, W)`` counting only pixels where ``weight (N, 1, H, W)`` is 1."""
    num = F.interpolate(x * weight, size=size, mode="bilinear", align_corners=False, antialias=True)
    den = F.interpolate(weight, size=size, mode="bilinear", align_corners=False, antialias=True)
    return num / den.clamp(min=1e-6)


def resize_control(control: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a control signal ``(..., 9, H, W)`` to ``size``, channel by channel as its meaning asks.

    ``I_s``: bilinear with antialiasing. ``M``: nearest neighbour. ``C`` (normalised coordinates,
    resolution independent) and ``I_r``: bilinear over the masked pixels only, then zero outside the
    new mask, so the signal keeps the form of :func:`build_control_signal`.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> c = build_control_signal(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 8), torch.rand(1, 3, 8, 8),
        ...                          torch.ones(1, 8, 8, dtype=torch.bool))
        >>> tuple(resize_control(c[None], (4, 6)).shape)
        (1, 1, 9, 4, 6)
    """
    _check_channels(control)
    size = (int(size[0]), int(size[1]))
    if tuple(control.shape[-2:]) == size:
        return control
    lead = control.shape[:-3]
    flat = control.reshape(-1, CONTROL_CHANNELS, *control.shape[-2:])
    m = (flat[:, MASK] > 0.5).to(flat.dtype)
    new_mask = F.interpolate(m, size=size, mode="nearest-exact")
    src = F.interpolate(flat[:, SOURCE], size=size, mode="bilinear", align_corners=False, antialias=True)
    masked = _masked_resize(torch.cat([flat[:, CORR], flat[:, WARPED]], 1), m, size) * new_mask
    return torch.cat([src, masked, new_mask], 1).reshape(*lead, CONTROL_CHANNELS, *size)


def crop_control(control: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Crop a control signal ``(..., 9, H, W)`` (source and target grids alike) to a window.

    The source frame ``I_s`` is cropped with the same window, so ``C`` is moved into the cropped
    frame; target pixels whose correspondence leaves it are masked out.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> c = build_control_signal(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.rand(1, 3, 4, 4),
        ...                          torch.ones(1, 4, 4, dtype=torch.bool))
        >>> crop = crop_control(c, 1, 1, 2, 2)   # C = (0, 0) leaves the window: masked out
        >>> tuple(crop.shape), bool(control_mask(crop).any())
        ((1, 9, 2, 2), False)
    """
    _check_channels(control)
    H, W = control.shape[-2:]
    win = control[..., top:top + height, left:left + width]
    mask = win[..., MASK, :, :] > 0.5
    xy = denormalize_coords(win[..., CORR, :, :], H, W)
    xy = xy - torch.tensor([left, top], dtype=xy.dtype, device=xy.device).view(2, 1, 1)
    inside = ((xy[..., 0:1, :, :] >= 0) & (xy[..., 0:1, :, :] <= width - 1)
              & (xy[..., 1:2, :, :] >= 0) & (xy[..., 1:2, :, :] <= height - 1))
    m = (mask & inside).to(control.dtype)
    return torch.cat([win[..., SOURCE, :, :], normalize_coords(xy, height, width) * m,
                      win[..., WARPED, :, :] * m, m], dim=-3)


def fill_cracks(warped: torch.Tensor, mask: torch.Tensor, min_neighbours: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Close the one-pixel cracks a forward splat leaves where the target view stretches a surface.

    A pixel no source point reached (``mask`` False) with at least ``min_neighbours`` of its 8
    neighbours reached is a crack inside a surface, not part of a disocclusion: it takes the mean of
    those neighbours. Larger holes are left as they are.

    Args:
        warped: ``(T, 3, H, W)`` warped frames ``I_r``.
        mask: ``(T, 1, H, W)`` bool ``M``.

    Returns:
        the warped frames and the mask with the cracks filled.

    Example:
        >>> m = torch.ones(1, 1, 5, 5, dtype=torch.bool); m[0, 0, 2, 2] = False
        >>> w, m2 = fill_cracks(torch.full((1, 3, 5, 5), 0.5) * m, m)
        >>> bool(m2.all()), float(w[0, 0, 2, 2])
        (True, 0.5)
    """
    m = mask.float()
    kernel = torch.ones(1, 1, 3, 3, dtype=warped.dtype)
    kernel[0, 0, 1, 1] = 0
    count = F.conv2d(m, kernel, padding=1)
    total = F.conv2d((warped * m).reshape(-1, 1, *warped.shape[-2:]), kernel, padding=1).reshape(warped.shape)
    crack = ~mask & (count >= min_neighbours)
    filled = torch.where(crack, total / count.clamp_min(1), warped)
    return filled, mask | crack


def warp_cells(frames: torch.Tensor, depth: torch.Tensor, K_src: torch.Tensor, w2c_src: torch.Tensor,
               K: torch.Tensor, w2c: torch.Tensor, *, valid: torch.Tensor | None = None,
               renderer: str = "zbuffer") -> tuple[torch.Tensor, torch.Tensor]:
    """A video warped to every cell of a time x view grid: cell ``(v, t)`` is frame ``t`` carried to
    camera ``(v, t)`` by ``renderer`` (:func:`render_control`, one view at a time); row 0 is the video.

    Args:
        frames: ``(T, 3, H, W)`` source frames in [0, 1].
        depth: ``(T, H, W)`` source depth.
        K_src, w2c_src: ``(T, 3, 3)``, ``(T, 4, 4)`` source cameras.
        K, w2c: ``(V, T, 3, 3)``, ``(V, T, 4, 4)`` cell cameras (pixels of ``H x W``).
        valid: ``(T, H, W)`` bool, source pixels with valid depth.
        renderer: see :func:`render_control`.

    Returns:
        ``(V, T, 3, H, W)`` warped frames and ``(V, T, H, W)`` bool masks of where they landed.

    Example:
        >>> K = torch.tensor([[4.0, 0, 2], [0, 4, 1.5], [0, 0, 1]]).expand(2, 3, 3)
        >>> eye = torch.eye(4).expand(2, 4, 4)
        >>> w, m = warp_cells(torch.rand(2, 3, 4, 5), torch.ones(2, 4, 5), K, eye, K.expand(3, 2, 3, 3),
        ...                   eye.expand(3, 2, 4, 4))
        >>> tuple(w.shape), bool(m.all())
        ((3, 2, 3, 4, 5), True)
    """
    V, T = K.shape[:2]
    H, W = frames.shape[-2:]
    warped = torch.empty(V, T, 3, H, W)
    mask = torch.empty(V, T, H, W, dtype=torch.bool)
    warped[0], mask[0] = frames, True
    for v in range(1, V):
        control = render_control(frames, depth, K_src, w2c_src, K[v], w2c[v], (H, W), valid=valid, renderer=renderer)
        warped[v], mask[v] = control[:, WARPED], control[:, MASK][:, 0] > 0.5
    return warped, mask


CRACK_PASSES = 2
"""Passes of :func:`fill_cracks` before :func:`composite_warped` (they close cracks up to two pixels wide)."""


def push_pull_fill(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Fill the pixels of ``values`` where ``weights`` is below 1 smoothly from those around them
    (push-pull: a pyramid of weighted 2x averages, then bilinear upsampling blended in by weight).

    Args:
        values: ``(N, C, H, W)``.
        weights: ``(N, 1, H, W)`` in [0, 1]; 1: known, 0: to fill.

    Returns:
        ``(N, C, H, W)``: ``values`` where ``weights`` is 1, a smooth fill elsewhere (0 where nothing is known).

    Example:
        >>> w = torch.zeros(1, 1, 4, 4); w[..., 0] = 1
        >>> out = push_pull_fill(torch.full((1, 1, 4, 4), 2.0) * w, w)
        >>> torch.allclose(out, torch.full((1, 1, 4, 4), 2.0))
        True
    """
    H, W = values.shape[-2:]
    if min(H, W) <= 1 or bool((weights >= 1).all()):
        return values
    vw = F.avg_pool2d(values * weights, 2, ceil_mode=True)
    ww = F.avg_pool2d(weights, 2, ceil_mode=True)
    coarse = push_pull_fill(vw / ww.clamp_min(1e-12), (ww * 4).clamp(max=1))
    up = F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    return weights * values + (1 - weights) * up


def composite_warped(frames: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, *,
                     seamless: bool = False) -> torch.Tensor:
    """Keep the warped source pixels where the warp reached (cracks closed first, :data:`CRACK_PASSES`
    passes of :func:`fill_cracks`) and ``frames`` elsewhere: a generator then only paints the holes.

    With ``seamless`` the painted holes are shifted by the difference between the warp and ``frames``
    on the pixels around them, filled smoothly into the hole (:func:`push_pull_fill`): the holes meet
    the warped pixels without a seam and keep the generator's detail, as offset (Poisson-like)
    blending does.

    Args:
        frames: ``(T, 3, H, W)`` generated frames.
        warped: ``(T, 3, H, W)`` warped frames ``I_r``.
        mask: ``(T, 1, H, W)`` bool ``M``.
        seamless: blend the holes' colours into the warp's (above).

    Returns:
        ``(T, 3, H, W)``.

    Example:
        >>> m = torch.zeros(1, 1, 4, 4, dtype=torch.bool); m[..., :2] = True
        >>> out = composite_warped(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), m)
        >>> out[0, 0].tolist()[0]
        [1.0, 1.0, 0.0, 0.0]
    """
    for _ in range(CRACK_PASSES):
        warped, mask = fill_cracks(warped, mask, min_neighbours=4)
    warped = warped.to(frames.dtype)
    if seamless:
        m = mask.to(frames.dtype)
        frames = (frames + push_pull_fill((warped - frames) * m, m)).clamp(0, 1)
    return torch.where(mask, warped, frames)
