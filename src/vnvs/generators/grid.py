"""Grid generators: a grid model filling a time x view grid from its given first row and column.

:class:`GridGenerator` runs a :class:`~vnvs.models.grid.GridModel` through the
:class:`~vnvs.sampling.grid.GridPipeline` at the model's frame-size multiple, and grids larger than the
model's trained size in sliding windows along both axes. Every window keeps the *anchors*, row 0 and
column 0 (the given cells), and takes a run of the other views and times: views ``{0} + [a, a + wv - 1)``,
times ``{0} + [b, b + wt - 1)``, windows every ``w - 1 - overlap`` cells (:func:`window_starts`), so
every window sees the input video and the freeze-time sweep of its own views and times. A cell covered
by several windows is their weighted mean with the cross-fade weights of :func:`blend_weights` along
each axis (their product), as the frame windows of ``vnvs render`` are blended.

Cells are sampled at the resolution the model was trained on (``GridModelConfig.resolution``, the short
side) and resized back. Given the warps of the input video to every cell's camera, the generator keeps
the warped pixels wherever the warp reached (:func:`~vnvs.geometry.control.composite_warped`, as
:class:`~vnvs.generators.learned.LearnedGenerator` composites) and the grid model paints the holes,
their colours blended into the warp around them (``seamless``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from vnvs.cameras.camera import scale_intrinsics
from vnvs.defaults import SHIPPED_GRID_CHECKPOINT, TRAINED_GRID_METHOD
from vnvs.errors import InputError
from vnvs.generators.learned import working_size
from vnvs.generators.windows import blend_weights, window_starts
from vnvs.geometry.control import composite_warped
from vnvs.models.flow_scheduler import FlowMatchEulerScheduler
from vnvs.models.grid import (
    GRID_MODEL_METHODS,
    GRID_PRESETS,
    GridModel,
    grid_preset,
    is_grid_model_folder,
)
from vnvs.sampling.grid import GridPipeline
from vnvs.utils.device import resolve_device

WINDOW_OVERLAP = 1
"""Views / times shared by neighbouring windows (besides the anchors)."""


def anchored_windows(n: int, window: int | None, overlap: int = WINDOW_OVERLAP) -> list[list[int]]:
    """Index lists of the windows over ``n`` cells of an axis whose cell 0 is the anchor.

    Example:
        >>> anchored_windows(8, 4, 1)
        [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7]]
        >>> anchored_windows(3, 4)
        [[0, 1, 2]]
    """
    if window is None or window >= n:
        return [list(range(n))]
    run = window - 1
    ov = max(0, min(int(overlap), run - 1))
    return [[0] + list(range(1 + s, 1 + s + run)) for s in window_starts(n - 1, run, ov)]


def _weights(n: int, windows: list[list[int]], overlap: int) -> list[torch.Tensor]:
    """Per-window blend weights ``(len(w),)`` of an anchored axis (the anchor weighs 1 in every window)."""
    if len(windows) == 1:
        return [torch.ones(len(windows[0]), dtype=torch.float64)]
    out = []
    for w in windows:
        run = len(w) - 1
        ov = max(0, min(int(overlap), run - 1))
        out.append(torch.cat([torch.ones(1, dtype=torch.float64), blend_weights(n - 1, w[1] - 1, run, ov)]))
    return out


class GridGenerator:
    """A grid model behind one call: ``gen(frames, known, w2c, K, depth=..., seed=...) -> frames``.

    Args:
        model: a :class:`GridModel` or a saved grid model folder.
        steps: Euler steps (default: the model config's).
        device: where the model runs (default: CUDA when available).
        window: ``(views, times)`` per model call including the anchors (None entries: the model's
            trained size, else the whole axis).
        resolution: short side of the cells the model samples (default: the model's trained
            resolution, else the cells' own size).
        seamless: when compositing, blend the painted holes' colours into the warped pixels around
            them (:func:`~vnvs.geometry.control.composite_warped`).
        name: the generator's name in reports.
    """

    def __init__(self, model, *, steps: int | None = None, device: str | torch.device | None = None,
                 window: tuple[int | None, int | None] = (None, None), resolution: int | None = None,
                 seamless: bool = True, name: str | None = None):
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            model = GridModel.from_pretrained(path)
            name = name or path.resolve().name
        self.model = model.to(resolve_device(device)).eval()
        self.pipeline = GridPipeline(self.model, scheduler=FlowMatchEulerScheduler(shift=self.model.config.sampling_shift))
        self.steps = steps
        self.name = name or model.config.method
        mv, mt = model.window
        self.window = (window[0] or mv, window[1] or mt)
        self.resolution = resolution if resolution is not None else model.config.resolution
        self.seamless = bool(seamless)

    def __call__(self, frames: torch.Tensor, known: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, *,
                 depth: torch.Tensor | None = None, depth_valid: torch.Tensor | None = None,
                 warped: torch.Tensor | None = None, warped_mask: torch.Tensor | None = None, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """Fill a grid.

        Args:
            frames: ``(V, T, 3, H, W)`` in [0, 1]; the cells where ``known`` is True are given.
            known: ``(V, T)`` bool; row 0 and column 0 must be given.
            w2c, K: ``(V, T, 4, 4)``, ``(V, T, 3, 3)`` per-cell cameras (pixels of ``H x W``).
            depth, depth_valid: optional ``(V, T, H, W)`` depth of the given cells.
            warped, warped_mask: optional ``(V, T, 3, H, W)`` in [0, 1] and ``(V, T, H, W)`` bool: the input
                video warped to every cell's camera and where it landed; kept there in the cells the
                model fills (composite).
            seed: noise seed (window ``k`` gets ``seed + k``).
            progress: called with the number of cells finished after each window.

        Returns:
            ``(V, T, 3, H, W)`` in [0, 1], the given cells unchanged.
        """
        V, T, _, H, W = frames.shape
        if known.shape != (V, T) or not (bool(known[0].all()) and bool(known[:, 0].all())):
            raise InputError("a grid generator needs the first row and the first column of the grid given")
        frames = torch.where(known[..., None, None, None], frames, torch.zeros_like(frames))  # only given cells count
        if (warped is None) != (warped_mask is None):
            raise InputError("give warped and warped_mask together")
        if warped is not None and (warped.shape != frames.shape or warped_mask.shape != (V, T, H, W)):
            raise InputError(f"warped must be {tuple(frames.shape)} and warped_mask {(V, T, H, W)}, got "
                             f"{tuple(warped.shape)} and {tuple(warped_mask.shape)}")
        h, w = working_size(H, W, self.model.patch, self.resolution)
        resized = (h, w) != (H, W)
        small = _resize(frames, (h, w)) if resized else frames
        Ks = scale_intrinsics(K.reshape(-1, 3, 3), w / W, h / H).reshape(V, T, 3, 3) if resized else K
        d, dv = depth, depth_valid
        if resized and depth is not None:
            d = _resize(depth[:, :, None], (h, w), "nearest")[:, :, 0]
            dv = None if depth_valid is None else _resize(depth_valid[:, :, None].float(), (h, w), "nearest")[:, :, 0] > 0.5
        vw, tw = anchored_windows(V, self.window[0]), anchored_windows(T, self.window[1])
        wv, wt = _weights(V, vw, WINDOW_OVERLAP), _weights(T, tw, WINDOW_OVERLAP)
        acc = torch.zeros(V, T, 3, h, w, dtype=torch.float64)
        total = torch.zeros(V, T, dtype=torch.float64)
        k = 0
        done = torch.zeros(V, T, dtype=torch.bool)
        for iv, views in enumerate(vw):
            for it, times in enumerate(tw):
                vi, ti = torch.tensor(views), torch.tensor(times)
                sel = (vi[:, None], ti[None, :])
                out = self.pipeline(small[sel][None], known[sel][None], w2c=w2c[sel][None], K=Ks[sel][None],
                                    depth=None if d is None else d[sel][None],
                                    depth_valid=None if dv is None else dv[sel][None],
                                    num_inference_steps=self.steps, seed=seed + k)[0]
                weight = wv[iv][:, None] * wt[it][None, :]
                acc[sel] += out.double() * weight[..., None, None, None]
                total[sel] += weight
                k += 1
                if progress is not None:
                    new = int((~done[sel] & ~known[sel]).sum())
                    done[sel] = True
                    progress(new)
        result = (acc / total[..., None, None, None]).float()
        if resized:
            result = _resize(result, (H, W))
        result = result.clamp(0, 1)
        if warped is not None:
            result = composite_warped(result.flatten(0, 1), warped.flatten(0, 1).float(),
                                      warped_mask.flatten(0, 1)[:, None], seamless=self.seamless).reshape(result.shape)
        return torch.where(known[..., None, None, None], frames, result)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """``(V, T, C, H, W)`` -> ``(V, T, C, h, w)``."""
    kw = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    out = F.interpolate(x.flatten(0, 1).float(), size=size, mode=mode, **kw)
    return out.reshape(*x.shape[:3], *size)


def get_grid_generator(method: str, *, steps: int | None = None, device: str | None = None,
                       window: tuple[int | None, int | None] = (None, None),
                       resolution: int | None = None, seamless: bool = True) -> GridGenerator:
    """The grid generator ``method`` names: a grid model preset (``4real``, ``sv4d``, ``full4d`` and the
    4Real-Video ablations of :data:`vnvs.models.grid.GRID_PRESETS`, on the shipped DiT, untrained layers
    at their initialisation) or a saved grid model folder."""
    if method == TRAINED_GRID_METHOD:
        shipped = Path(__file__).resolve().parent.parent / "checkpoints" / SHIPPED_GRID_CHECKPOINT
        if not is_grid_model_folder(shipped):
            raise InputError(f"the shipped grid model ({SHIPPED_GRID_CHECKPOINT}) is missing from this installation")
        return GridGenerator(shipped, steps=steps, device=device, window=window, resolution=resolution,
                             seamless=seamless, name=TRAINED_GRID_METHOD)
    path = Path(method).expanduser()
    if path.is_dir() and not (method in GRID_PRESETS and not is_grid_model_folder(path)):
        if not is_grid_model_folder(path):
            raise InputError(f"{path} is not a grid model folder (config.json with a grid_model section + model.safetensors)")
        return GridGenerator(path, steps=steps, device=device, window=window, resolution=resolution,
                             seamless=seamless)
    try:
        config = grid_preset(method)
    except InputError:
        raise InputError(f"unknown grid method {method!r}; choose {', '.join(GRID_MODEL_METHODS)} or a grid model "
                         "folder") from None
    torch.manual_seed(0)  # the untrained layers (zero-initialised outputs) are the same on every run
    return GridGenerator(GridModel.from_config(config), steps=steps, device=device, window=window,
                         resolution=resolution, seamless=seamless, name=method)
