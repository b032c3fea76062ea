"""Still images: PNG read/write, contact sheets and side-by-side videos for looking at results.

Images are ``(3, H, W)`` float32 in [0, 1] (uint8 is accepted on input); videos ``(T, 3, H, W)``.
PNGs are written through :func:`vnvs.utils.atomic.atomic_path`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vnvs.errors import InputError
from vnvs.utils.atomic import atomic_path


def _as_float_image(image, what: str = "image") -> torch.Tensor:
    """``(3, H, W)`` (or ``(H, W)`` / ``(1, H, W)`` grey) float [0, 1] or uint8 -> ``(3, H, W)`` float32."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor or numpy array, got {type(image).__name__}")
    image = image.detach().cpu()
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"{what} must be (3, H, W), got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    elif image.is_floating_point():
        image = image.float().nan_to_num(0.0).clamp(0.0, 1.0)
    else:
        raise ValueError(f"{what} must be float in [0, 1] or uint8, got {image.dtype}")
    return image.expand(3, -1, -1)


def write_png(path: str | os.PathLike, image) -> Path:
    """Write a ``(3, H, W)`` float [0, 1] or uint8 image (torch or numpy) as an 8-bit RGB PNG; atomic."""
    img = _as_float_image(image)
    arr = (img.permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[..., ::-1]))
    if not ok:
        raise InputError(f"cannot encode PNG {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)


def read_png(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file (PNG, JPEG, ...) as ``(3, H, W)`` float32 in [0, 1] (RGB; alpha dropped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror or e}") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"cannot decode image {path}: not an image file")
    return torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float() / 255.0


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(T, 3, H, W)`` frames to ``size = (H', W')``: area averaging when shrinking, bilinear
    when enlarging. Returns ``(T, 3, H', W')``."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    shrink = size[0] * size[1] < frames.shape[-2] * frames.shape[-1]
    if shrink:
        return F.interpolate(frames, size=size, mode="area")
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def _as_video(frames, what: str) -> torch.Tensor:
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"{what} must be (T, 3, H, W), got shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    return frames.detach().cpu().float()


def _label_strip(labels: Sequence[str], cell_h: int) -> tuple[float, int, int]:
    """Font scale, thickness and strip width that fit ``labels`` beside cells of height ``cell_h``."""
    scale = float(np.clip(cell_h / 96.0, 0.35, 1.5))
    thick = 1 if scale < 1.0 else 2
    widths = [cv2.getTextSize(str(s), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for s in labels]
    return scale, thick, max(widths, default=0) + 8


def contact_sheet(
    rows: Sequence[torch.Tensor],
    *,
    columns: int = 8,
    labels: Sequence[str] | None = None,
    pad: int = 4,
    background: float = 1.0,
) -> torch.Tensor:
    """Lay out frames of several videos as a grid image: one row per video, ``columns`` frames each.

    Frames are sampled evenly over each video (first and last included); a video with fewer frames
    than ``columns`` shows all of them. Every row is resized to the height of the first (keeping its
    aspect). With ``pad = p`` and a label strip of width ``L`` (0 without labels), the frame of row
    ``r``, column ``c`` has its top-left corner at ``y = p + r (h + p)``, ``x = L + p + c (w_r + p)``.

    Args:
        rows: videos ``(T_r, 3, H_r, W_r)`` float [0, 1] or uint8.
        columns: frames per row.
        labels: optional text per row, drawn in black on a strip at the left.
        pad: pixels of ``background`` between and around frames.
        background: grey level of the padding and label strip.
    Returns:
        ``(3, H', W')`` float32 image in [0, 1].
    """
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"got {len(labels)} labels for {len(rows)} rows")
    if columns < 1:
        raise ValueError(f"columns must be positive, got {columns}")
    videos = [_as_video(v, f"row {i}") for i, v in enumerate(rows)]
    h = int(videos[0].shape[-2])
    cells = []
    for v in videos:
        T = v.shape[0]
        idx = torch.linspace(0, T - 1, min(columns, T)).round().long()
        w = max(1, int(round(v.shape[-1] * h / v.shape[-2])))
        cells.append(resize_frames(v[idx], (h, w)))
    scale, thick, L = _label_strip(labels, h) if labels else (0.0, 0, 0)
    width = L + pad + max(c.shape[0] * (c.shape[-1] + pad) for c in cells)
    height = pad + len(cells) * (h + pad)
    sheet = torch.full((3, height, width), float(background))
    for r, c in enumerate(cells):
        y = pad + r * (h + pad)
        w = c.shape[-1]
        for j in range(c.shape[0]):
            x = L + pad + j * (w + pad)
            sheet[:, y : y + h, x : x + w] = c[j]
    if labels:
        strip = np.ascontiguousarray((sheet[:, :, :L].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
        for r, text in enumerate(labels):
            (_, th), _ = cv2.getTextSize(str(text), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            y = pad + r * (h + pad) + (h + th) // 2
            cv2.putText(strip, str(text), (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
        sheet[:, :, :L] = torch.from_numpy(strip).permute(2, 0, 1).float() / 255.0
    return sheet


def write_contact_sheet(path: str | os.PathLike, rows: Sequence[torch.Tensor], **kwargs) -> Path:
    """Write :func:`contact_sheet` ``(rows, **kwargs)`` as a PNG; atomic."""
    return write_png(path, contact_sheet(rows, **kwargs))


def side_by_side(
    videos: Sequence[torch.Tensor],
    *,
    pad: int = 4,
    height: int | None = None,
    background: float = 1.0,
) -> torch.Tensor:
    """Place videos next to each other, left to right, at a common height.

    Each video is resized to ``height`` (default: the tallest) keeping its aspect; videos are
    separated by ``pad`` columns of ``background``. A shorter video holds its last frame.

    Args:
        videos: ``(T_i, 3, H_i, W_i)`` float [0, 1] or uint8.
    Returns:
        ``(T, 3, H, W')`` float32 with ``T = max T_i``, ``H = height``,
        ``W' = sum W_i' + pad (n - 1)``.
    """
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    vids = [_as_video(v, f"video {i}") for i, v in enumerate(videos)]
    H = int(height or max(v.shape[-2] for v in vids))
    T = max(v.shape[0] for v in vids)
    widths = [max(1, int(round(v.shape[-1] * H / v.shape[-2]))) for v in vids]
    out = torch.full((T, 3, H, sum(widths) + pad * (len(vids) - 1)), float(background))
    x = 0
    for v, w in zip(vids, widths):
        r = resize_frames(v, (H, w))
        out[: r.shape[0], :, :, x : x + w] = r
        out[r.shape[0] :, :, :, x : x + w] = r[-1]
        x += w + pad
    return out
