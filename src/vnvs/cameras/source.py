"""Cameras of a user's video: intrinsics from a file, a field of view or a default guess; poses static
or from a camera file.

Order of precedence for the intrinsics: ``--intrinsics FILE``, then ``--fov DEG``, then the camera
file's own intrinsics, then the default guess: a pinhole with square pixels, the principal point at
the image centre and a 60 degree field of view across the longer side (a typical phone or action
camera lies between 55 and 75 degrees). Poses are static (identity ``w2c`` for every frame) unless a
camera file gives them. Everything is expressed in pixels of the *source* frames first and then
carried to the decoded frames with :meth:`vnvs.io.FrameTransform.adapt_intrinsics`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vnvs.cameras.camera import Cameras, default_intrinsics, scale_intrinsics
from vnvs.cameras.resolve import read_camera_file
from vnvs.errors import InputError
from vnvs.io.transform import FrameTransform
from vnvs.utils.jsonfile import parse_json, read_text

DEFAULT_FOV = 60.0
"""Field of view (degrees, across the longer side) assumed when nothing else is known."""


def read_intrinsics(path: str | os.PathLike, source_size: tuple[int, int]) -> torch.Tensor:
    """Read pinhole intrinsics and return them in pixels of frames of ``source_size``.

    Accepted files:

    * JSON with ``"K"`` (3x3), or ``"fx"``, ``"fy"`` (or ``"fl_x"``, ``"fl_y"``; ``"f"`` for both)
      and ``"cx"``, ``"cy"``; optional ``"width"``/``"height"`` (or ``"w"``/``"h"``) of the image
      they belong to, in which case they are rescaled to ``source_size``.
    * Text with 9 numbers (a 3x3 matrix, row by row) or 4 numbers ``fx fy cx cy``.

    Args:
        path: the file.
        source_size: ``(H, W)`` of the video's frames as displayed.

    Returns:
        ``(3, 3)`` float32.

    Example:
        >>> import tempfile, pathlib
        >>> folder = tempfile.TemporaryDirectory(); p = pathlib.Path(folder.name) / "k.json"
        >>> _ = p.write_text('{"fx": 100, "fy": 100, "cx": 50, "cy": 25, "width": 100, "height": 50}')
        >>> read_intrinsics(p, (100, 200))[0].tolist()
        [200.0, 0.0, 100.5]
        >>> folder.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"intrinsics file {path} does not exist")
    text = read_text(path, "intrinsics file")
    size = None
    try:
        doc = parse_json(text, f"intrinsics file {path}") if text.lstrip().startswith(("{", "[")) else None
    except InputError:
        raise
    try:
        if isinstance(doc, dict):
            if "K" in doc:
                K = torch.tensor(doc["K"], dtype=torch.float64)
            else:
                fx = doc.get("fx", doc.get("fl_x", doc.get("f")))
                fy = doc.get("fy", doc.get("fl_y", doc.get("f", fx)))
                cx, cy = doc.get("cx"), doc.get("cy")
                if None in (fx, fy, cx, cy):
                    raise InputError(f"intrinsics file {path} needs 'K' or fx, fy, cx, cy")
                K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
            w, h = doc.get("width", doc.get("w")), doc.get("height", doc.get("h"))
            if w is not None and h is not None:
                size = (int(h), int(w))
        else:
            nums = [float(x) for x in text.replace(",", " ").split()]
            if len(nums) == 9:
                K = torch.tensor(nums, dtype=torch.float64).view(3, 3)
            elif len(nums) == 4:
                fx, fy, cx, cy = nums
                K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float64)
            else:
                raise InputError(f"intrinsics file {path} holds {len(nums)} numbers; expected 9 (K) or 4 (fx fy cx cy)")
    except (TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"intrinsics file {path} is malformed: {' '.join(str(e).split())}") from None
    if K.shape != (3, 3) or not torch.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"intrinsics file {path} does not hold a valid pinhole matrix (positive focal lengths)")
    if size is not None and size != tuple(source_size):
        if min(size) < 1:
            raise InputError(f"intrinsics file {path} gives an image size of {size[0]}x{size[1]}")
        K = scale_intrinsics(K, source_size[1] / size[1], source_size[0] / size[0])
    return K.float()


def source_cameras(
    num_frames: int,
    frame_indices: list[int] | torch.Tensor,
    total_frames: int,
    source_size: tuple[int, int],
    transform: FrameTransform,
    *,
    fov: float | None = None,
    intrinsics: str | os.PathLike | None = None,
    cameras: str | os.PathLike | None = None,
) -> Cameras:
    """The cameras of the decoded frames of a video.

    Args:
        num_frames: decoded (selected) frames ``N``.
        frame_indices: ``(N,)`` index in the file of each decoded frame.
        total_frames: frames in the file.
        source_size: ``(H, W)`` of the file's frames as displayed.
        transform: resize and crop from the file's frames to the decoded ones.
        fov: field of view in degrees across the longer side.
        intrinsics: intrinsics file (see :func:`read_intrinsics`).
        cameras: a camera file any trajectory reader accepts (vnvs JSON, transforms.json, COLMAP
            text, MegaSaM npz) with one camera per frame of the file or per decoded frame.

    Returns:
        ``N`` cameras at the decoded size.
    """
    idx = torch.as_tensor(list(frame_indices) if not isinstance(frame_indices, torch.Tensor) else frame_indices,
                          dtype=torch.long)
    if idx.numel() != num_frames:
        raise InputError(f"{idx.numel()} frame indices for {num_frames} frames")
    w2c = torch.eye(4).repeat(num_frames, 1, 1)
    K_file = None
    if cameras is not None:
        path = Path(cameras)
        if not path.exists():
            raise InputError(f"camera file {path} does not exist")
        traj = read_camera_file(path, source_size)
        n = len(traj)
        if n == total_frames and int(idx.max()) < n:
            sel = idx
        elif n == num_frames:
            sel = torch.arange(num_frames)
        else:
            raise InputError(f"camera file {path} holds {n} cameras but the video has {total_frames} frames "
                             f"({num_frames} used)")
        w2c = traj.w2c[sel].float()
        K_file = scale_intrinsics(traj.K[sel].double(), source_size[1] / traj.width,
                                  source_size[0] / traj.height).float()
    if intrinsics is not None:
        K = read_intrinsics(intrinsics, source_size).expand(num_frames, 3, 3)
    elif fov is not None:
        if not 1.0 <= float(fov) <= 179.0:
            raise InputError(f"fov must be between 1 and 179 degrees, got {fov}")
        K = default_intrinsics(*source_size, fov_deg=float(fov)).expand(num_frames, 3, 3)
    elif K_file is not None:
        K = K_file
    else:
        K = default_intrinsics(*source_size, fov_deg=DEFAULT_FOV).expand(num_frames, 3, 3)
    K = transform.adapt_intrinsics(K.clone())
    H, W = transform.size
    return Cameras(w2c.contiguous(), K.contiguous(), H, W)
