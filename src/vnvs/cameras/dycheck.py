"""DyCheck's (and Nerfies') camera JSON <-> vnvs cameras (OpenCV ``w2c``, ``K`` in integer-centre pixels).

A DyCheck camera file (``camera/<ITEM_ID>.json``, `KAIR-BAIR/dycheck`, ``dycheck/geometry/camera.py``)::

    {"orientation": [[...3x3...]],      # world-to-camera rotation, OpenCV axes (x right, y down, z forward)
     "position": [x, y, z],              # camera centre in world coordinates
     "focal_length": f, "pixel_aspect_ratio": a,   # fx = f, fy = f * a
     "principal_point": [cx, cy],        # pixels whose centres sit at +0.5 (pixel corner at 0)
     "skew": s, "radial_distortion": [k1, k2, k3], "tangential_distortion": [p1, p2],
     "image_size": [W, H]}               # of the full-resolution (1x) images

DyCheck's loader then rescales the image domain by ``1 / factor`` (focal length and principal point
times ``1 / factor``, image size rounded), and normalises the world with ``scene.json``:
``position' = (position - center) * scale`` (depth maps are multiplied by ``scale`` too). The
conversion here does the same and moves the principal point to integer pixel centres:
``w2c = [R | -R c']``, ``K = [[f, s, cx - 0.5], [0, f a, cy - 0.5], [0, 0, 1]]``. Distortion is
not modelled by vnvs: non-zero coefficients are refused unless ``allow_distortion`` (DyCheck's
iPhone captures have none).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vnvs.errors import InputError

DYCHECK_CAMERA_KEYS = ("orientation", "position", "focal_length", "principal_point", "image_size")
"""Keys every DyCheck camera file must hold (the others default as in DyCheck)."""


def _numbers(value: Any, shape: tuple[int, ...], name: str, where: str) -> torch.Tensor:
    try:
        t = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} must be numbers of shape {shape}") from None
    if tuple(t.shape) != shape or not bool(torch.isfinite(t).all()):
        raise InputError(f"{where}: {name} must be finite numbers of shape {shape}, got {list(t.shape)}")
    return t


def dycheck_camera_to_vnvs(doc: Any, *, factor: float = 1.0, center=(0.0, 0.0, 0.0), scale: float = 1.0,
                           where: str = "camera", allow_distortion: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """One DyCheck camera as vnvs ``(K (3, 3), w2c (4, 4), (H, W))`` at image scale ``1 / factor``.

    Args:
        doc: the parsed camera JSON (see the module docstring).
        factor: DyCheck's image downscale factor (the ``rgb/<factor>x`` folder).
        center, scale: ``scene.json``'s normalisation of the world.
        where: the file, for messages.
        allow_distortion: accept non-zero distortion coefficients (ignored) instead of refusing them.

    Example:
        >>> doc = {"orientation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "position": [0, 0, -2.0],
        ...        "focal_length": 100.0, "principal_point": [32.0, 24.0], "image_size": [64, 48]}
        >>> K, w2c, size = dycheck_camera_to_vnvs(doc, factor=2)
        >>> K[0].tolist(), w2c[2, 3].item(), size
        ([50.0, 0.0, 15.5], 2.0, (24, 32))
    """
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a DyCheck camera must be a JSON object")
    missing = [k for k in DYCHECK_CAMERA_KEYS if k not in doc]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}")
    R = _numbers(doc["orientation"], (3, 3), "orientation", where)
    if not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-3) or float(torch.det(R)) <= 0:
        raise InputError(f"{where}: orientation is not a rotation matrix")
    pos = _numbers(doc["position"], (3,), "position", where)
    f = float(_numbers(doc["focal_length"], (), "focal_length", where))
    pp = _numbers(doc["principal_point"], (2,), "principal_point", where)
    size = _numbers(doc["image_size"], (2,), "image_size", where)
    skew = float(_numbers(doc.get("skew", 0.0), (), "skew", where))
    aspect = float(_numbers(doc.get("pixel_aspect_ratio", 1.0), (), "pixel_aspect_ratio", where))
    radial = _numbers(doc.get("radial_distortion", [0.0, 0.0, 0.0]), (3,), "radial_distortion", where)
    tangential = _numbers(doc.get("tangential_distortion", doc.get("tangential", [0.0, 0.0])), (2,),
                          "tangential_distortion", where)
    if not allow_distortion and (radial.abs().max() > 0 or tangential.abs().max() > 0):
        raise InputError(f"{where}: has lens distortion, which vnvs does not model; undistort the images first")
    if f <= 0 or aspect <= 0 or float(size.min()) < 1:
        raise InputError(f"{where}: focal_length, pixel_aspect_ratio and image_size must be positive")
    if not (math.isfinite(scale) and scale > 0 and factor > 0):
        raise InputError(f"{where}: scale and factor must be positive")
    s = 1.0 / float(factor)
    W, H = (round(float(v) * s) for v in size)
    K = torch.tensor([[f * s, skew * s, float(pp[0]) * s - 0.5],
                      [0.0, f * aspect * s, float(pp[1]) * s - 0.5],
                      [0.0, 0.0, 1.0]], dtype=torch.float64)
    c = (pos - torch.as_tensor(center, dtype=torch.float64)) * float(scale)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ c
    return K.float(), w2c.float(), (max(1, H), max(1, W))


def vnvs_camera_to_dycheck(K: torch.Tensor, w2c: torch.Tensor, size: tuple[int, int], *, center=(0.0, 0.0, 0.0),
                           scale: float = 1.0) -> dict:
    """The DyCheck camera JSON of a vnvs camera at full resolution (``factor = 1``); inverse of
    :func:`dycheck_camera_to_vnvs`. ``K`` must have ``K[1, 0] = 0`` (DyCheck has one focal length and
    an aspect ratio); ``size = (H, W)``.

    Example:
        >>> K = torch.tensor([[50.0, 0, 15.5], [0, 50, 11.5], [0, 0, 1]]); w2c = torch.eye(4)
        >>> d = vnvs_camera_to_dycheck(K, w2c, (24, 32))
        >>> d["principal_point"], d["image_size"]
        ([16.0, 12.0], [32, 24])
    """
    K = K.double()
    w2c = w2c.double()
    R = w2c[:3, :3]
    c = -R.T @ w2c[:3, 3]
    pos = c / float(scale) + torch.as_tensor(center, dtype=torch.float64)
    f = float(K[0, 0])
    return {"orientation": R.tolist(), "position": pos.tolist(), "focal_length": f,
            "principal_point": [float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5], "skew": float(K[0, 1]),
            "pixel_aspect_ratio": float(K[1, 1]) / f, "radial_distortion": [0.0, 0.0, 0.0],
            "tangential_distortion": [0.0, 0.0], "image_size": [int(size[1]), int(size[0])]}
