"""What every dataset loader of ``vnvs eval`` produces: items to score, loaded one at a time.

A loader validates its folder's layout when it indexes it (every file an item needs exists and its
JSON parses, so a missing or malformed file fails in one line before any method runs) and returns
:class:`ItemRef` s; :meth:`ItemRef.load` reads the pixels of one item into an :class:`EvalItem`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vnvs.errors import InputError
from vnvs.io.images import read_png
from vnvs.utils.jsonfile import parse_json, read_text


@dataclass
class EvalItem:
    """One scored item: a source video with depth and cameras, target cameras, and (optionally) the truth."""

    name: str
    """Its name in the reports (``scene/cam1``, ``scn02900/v3``, ``clip``)."""
    frames: torch.Tensor
    """``(S, 3, H, W)`` source frames in [0, 1] (only those some target frame uses)."""
    depth: torch.Tensor
    """``(S, H, W)`` z-depth of the source frames (0 where invalid)."""
    valid: torch.Tensor
    """``(S, H, W)`` bool, pixels with valid depth."""
    K_src: torch.Tensor
    """``(S, 3, 3)`` source intrinsics (pixels of the source frames)."""
    w2c_src: torch.Tensor
    """``(S, 4, 4)`` source cameras."""
    K_tgt: torch.Tensor
    """``(N, 3, 3)`` target intrinsics (pixels of ``size``)."""
    w2c_tgt: torch.Tensor
    """``(N, 4, 4)`` target cameras."""
    times: torch.Tensor
    """``(N,)`` index into ``frames`` of the source frame each target frame is made from (same time)."""
    size: tuple[int, int]
    """``(H_t, W_t)`` of the target frames."""
    target: torch.Tensor | None = None
    """``(N, 3, H_t, W_t)`` ground-truth target frames, or None (no ground truth)."""
    mask: torch.Tensor | None = None
    """``(N, H_t, W_t)`` bool evaluation mask (DyCheck's co-visibility), or None."""
    info: dict = field(default_factory=dict)
    """JSON description for the report (scene, view, frames, ...)."""


@dataclass
class ItemRef:
    """An indexed item: its name, what the report says about it, and how to load it."""

    name: str
    info: dict
    load: Callable[[], EvalItem]


def select_frames(count: int, stride: int = 1, max_frames: int | None = None) -> list[int]:
    """Positions ``0, stride, 2 stride, ...`` below ``count``, at most ``max_frames`` of them.

    Example:
        >>> select_frames(10, stride=3), select_frames(10, max_frames=2)
        ([0, 3, 6, 9], [0, 1])
    """
    picked = list(range(0, int(count), int(stride)))
    return picked if max_frames is None else picked[: int(max_frames)]


def need_file(path: Path) -> Path:
    """``path`` if it is a file, else a one-line :class:`InputError` naming it."""
    if not path.is_file():
        raise InputError(f"missing file {path}" if not path.exists() else f"{path} is not a file")
    return path


def read_json_file(path: Path, kind: type | tuple = dict) -> object:
    """A JSON file's value, checked to be of ``kind``; errors name the file."""
    value = parse_json(read_text(need_file(path), "file"), str(path))
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{path}: expected a JSON {'object' if names == 'dict' else names}")
    return value


def json_field(doc: dict, key: str, path: Path, kind: type | tuple) -> object:
    """``doc[key]`` of type ``kind``, or a one-line error naming the file and the key."""
    if key not in doc:
        raise InputError(f"{path}: missing {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{path}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float in [0, 1] (alpha dropped), its size checked when given."""
    img = read_png(need_file(path))
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        raise InputError(f"{path} is {img.shape[-1]}x{img.shape[-2]} pixels; expected {size[1]}x{size[0]}")
    return img


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array (no pickles); errors name the file."""
    try:
        return np.load(need_file(path), allow_pickle=False)
    except InputError:
        raise
    except Exception as exc:  # a damaged or foreign file
        raise InputError(f"cannot read {path}: {' '.join(str(exc).split())[:120]}") from None


def area_downsample_depth(depth: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DyCheck's depth downscaling: area average, invalid wherever any covered pixel is invalid.

    ``depth`` ``(..., H, W)`` with 0 where invalid; returns ``(depth, valid)`` at ``(H // f, W // f)``.

    Example:
        >>> d, v = area_downsample_depth(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 2)
        >>> d.tolist(), v.tolist()
        ([[2.0]], [[True]])
    """
    if factor == 1:
        return depth, depth > 0
    shape = depth.shape
    x = depth.reshape(-1, 1, *shape[-2:]).double()
    H, W = shape[-2] // factor, shape[-1] // factor
    x = x[..., : H * factor, : W * factor]
    mean = torch.nn.functional.avg_pool2d(x, factor)
    ok = torch.nn.functional.avg_pool2d((x > 0).double(), factor) > 1 - 1e-9
    mean = torch.where(ok, mean, torch.zeros_like(mean)).float()
    return mean.reshape(*shape[:-2], H, W), ok.reshape(*shape[:-2], H, W)
