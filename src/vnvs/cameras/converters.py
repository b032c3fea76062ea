"""Readers and writers for other camera formats; each produces or consumes a :class:`Trajectory`.

* nerfstudio / NeRF ``transforms.json``: camera-to-world in OpenGL axes (x right, y up, z back),
  pixel centres at ``+0.5`` (``cx = W / 2`` is the image centre).
* COLMAP text (``cameras.txt`` + ``images.txt``): world-to-camera quaternion + translation, OpenCV
  axes, pixel centres at ``+0.5``.
* MegaSaM-style ``.npz``: ``cam_c2w`` in OpenCV axes, intrinsics in our pixel convention.
* TrajectoryCrafter-style theta/phi/r text: keyframed offsets relative to the source cameras.

Inside vnvs pixel centres are integers, so ``cx_vnvs = cx_file - 0.5`` on reading and
``+ 0.5`` on writing for the first two formats.
"""

from __future__ import annotations

import json
import zipfile
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vnvs.cameras.camera import Cameras
from vnvs.cameras.presets import orbit_offset
from vnvs.geometry.se3 import invert_se3, matrix_to_quaternion, quaternion_to_matrix
from vnvs.cameras.trajectory import Trajectory, validate_cameras
from vnvs.errors import InputError, TrajectoryError
from vnvs.utils.atomic import atomic_path
from vnvs.utils.jsonfile import read_json, read_text

log = logging.getLogger(__name__)

OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
"""Right-multiplying a camera-to-world by this flips its y and z axes (OpenGL <-> OpenCV)."""


def _K(fx: float, fy: float, cx: float, cy: float) -> torch.Tensor:
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _finish(w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, meta: dict, where: str) -> Trajectory:
    if w2c.shape[0] == 0:
        raise TrajectoryError(f"{where}: no cameras")
    try:
        validate_cameras(w2c, K, "camera")
    except TrajectoryError as exc:
        raise TrajectoryError(f"{where}: {exc}") from None
    return Trajectory(w2c.float(), K.float(), int(height), int(width), None, meta)


# ---- nerfstudio / NeRF transforms.json ------------------------------------------------------


def read_transforms_json(path: str | os.PathLike, default_size: tuple[int, int] | None = None) -> Trajectory:
    """Read a nerfstudio or NeRF-synthetic ``transforms.json`` (frames in file order).

    Intrinsics come from ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` (per frame, else top level) or
    from ``camera_angle_x`` (NeRF synthetic: ``f = W / 2 / tan(angle / 2)``, centred principal
    point). ``cx``/``cy`` default to ``W / 2``, ``H / 2``. Distortion coefficients are ignored
    (with a warning). ``default_size = (H, W)`` is used when the file gives no ``w``/``h``.

    Args:
        path: the JSON file.
        default_size: fallback ``(height, width)``.

    Returns:
        The trajectory in OpenCV ``w2c`` and integer pixel centres.
    """
    path = Path(path)
    try:
        doc = read_json(path, "camera file")
    except InputError as exc:
        raise TrajectoryError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list) or not doc["frames"]:
        raise TrajectoryError(f"{path}: transforms.json needs a non-empty 'frames' list")
    c2ws, Ks, sizes = [], [], set()
    distorted = False
    for i, frame in enumerate(doc["frames"]):
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise TrajectoryError(f"{path}: frame {i} has no 'transform_matrix'")
        get = lambda k: frame.get(k, doc.get(k))  # noqa: E731 - per-frame value overrides top level
        try:
            m = torch.tensor(frame["transform_matrix"], dtype=torch.float64)
        except (TypeError, ValueError):
            raise TrajectoryError(f"{path}: frame {i} transform_matrix is not a matrix of numbers") from None
        if m.shape == (3, 4):
            m = torch.cat([m, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
        if m.shape != (4, 4):
            raise TrajectoryError(f"{path}: frame {i} transform_matrix must be 4x4, got {tuple(m.shape)}")
        w, h = get("w"), get("h")
        if w is None or h is None:
            if default_size is None:
                raise TrajectoryError(f"{path}: frame {i} has no image size (w, h)")
            h, w = default_size
        try:
            w, h = int(w), int(h)
            if get("fl_x") is not None:
                fx = float(get("fl_x"))
                fy = float(get("fl_y")) if get("fl_y") is not None else fx
            elif get("camera_angle_x") is not None:
                fx = 0.5 * w / math.tan(0.5 * float(get("camera_angle_x")))
                fy = 0.5 * h / math.tan(0.5 * float(get("camera_angle_y"))) if get("camera_angle_y") is not None else fx
            else:
                raise TrajectoryError(f"{path}: frame {i} has no focal length (fl_x or camera_angle_x)")
            cx = float(get("cx")) if get("cx") is not None else w / 2.0
            cy = float(get("cy")) if get("cy") is not None else h / 2.0
        except (TypeError, ValueError):
            raise TrajectoryError(f"{path}: frame {i} has a non-numeric intrinsic or image size") from None
        distorted |= any(float(get(k) or 0.0) != 0.0 for k in ("k1", "k2", "k3", "k4", "p1", "p2"))
        c2ws.append(m @ OPENGL_TO_OPENCV)
        Ks.append(_K(fx, fy, cx - 0.5, cy - 0.5))
        sizes.add((h, w))
    if len(sizes) > 1:
        raise TrajectoryError(f"{path}: frames have different image sizes {sorted(sizes)}; a trajectory has one size")
    if distorted:
        log.warning("%s: lens distortion coefficients are ignored (pinhole model used)", path)
    (h, w), = sizes
    c2w = torch.stack(c2ws)
    if not torch.isfinite(c2w).all():
        raise TrajectoryError(f"{path}: transform_matrix has non-finite values")
    return _finish(invert_se3(c2w), torch.stack(Ks), h, w, {"converted_from": "nerfstudio"}, str(path))


def write_transforms_json(traj: Trajectory, path: str | os.PathLike) -> Path:
    """Write a nerfstudio ``transforms.json`` (OpenGL c2w, ``+0.5`` pixel centres).

    Intrinsics go to the top level when all frames share them, else to every frame.
    """
    path = Path(path)
    c2w = invert_se3(traj.w2c.double().cpu()) @ OPENGL_TO_OPENCV
    K = traj.K.double().cpu()

    def intr(k: torch.Tensor) -> dict[str, float]:
        return {"fl_x": k[0, 0].item(), "fl_y": k[1, 1].item(), "cx": k[0, 2].item() + 0.5, "cy": k[1, 2].item() + 0.5}

    shared = bool((K - K[:1]).abs().max() == 0)
    doc: dict[str, Any] = {"camera_model": "OPENCV", "w": traj.width, "h": traj.height}
    if shared:
        doc.update(intr(K[0]))
    doc["frames"] = [
        {"file_path": f"images/frame_{i:05d}.png", "transform_matrix": c2w[i].tolist(), **({} if shared else intr(K[i]))}
        for i in range(len(traj))
    ]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return path


# ---- COLMAP text ------------------------------------------------------------------------------

_COLMAP_MODELS = {
    # name: (number of params, function params -> (fx, fy, cx, cy, distortion))
    "SIMPLE_PINHOLE": (3, lambda p: (p[0], p[0], p[1], p[2], [])),
    "PINHOLE": (4, lambda p: (p[0], p[1], p[2], p[3], [])),
    "SIMPLE_RADIAL": (4, lambda p: (p[0], p[0], p[1], p[2], p[3:])),
    "RADIAL": (5, lambda p: (p[0], p[0], p[1], p[2], p[3:])),
    "OPENCV": (8, lambda p: (p[0], p[1], p[2], p[3], p[4:])),
}


def _colmap_lines(path: Path) -> list[str]:
    try:
        text = read_text(path, "COLMAP file")
    except InputError as exc:
        raise TrajectoryError(str(exc)) from None
    return [line.rstrip("\n") for line in text.splitlines() if not line.lstrip().startswith("#")]


def read_colmap_text(path: str | os.PathLike) -> Trajectory:
    """Read a COLMAP text model (folder with ``cameras.txt`` + ``images.txt``, or ``images.txt``).

    Images are sorted by name. Supported camera models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL,
    RADIAL, OPENCV; distortion is ignored with a warning. All images must share one image size.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    cams: dict[int, tuple[int, int, torch.Tensor]] = {}
    distorted = False
    for line in _colmap_lines(folder / "cameras.txt"):
        tok = line.split()
        if not tok:
            continue
        try:
            cam_id, model, width, height = int(tok[0]), tok[1].upper(), int(tok[2]), int(tok[3])
            params = [float(x) for x in tok[4:]]
        except (ValueError, IndexError):
            raise TrajectoryError(f"{folder / 'cameras.txt'}: malformed camera line {line.strip()!r}") from None
        if model not in _COLMAP_MODELS:
            raise TrajectoryError(f"{folder / 'cameras.txt'}: unsupported camera model {model} (supported: {', '.join(_COLMAP_MODELS)})")
        count, unpack = _COLMAP_MODELS[model]
        if len(params) != count:
            raise TrajectoryError(f"{folder / 'cameras.txt'}: camera {cam_id} model {model} needs {count} parameters, got {len(params)}")
        fx, fy, cx, cy, dist = unpack(params)
        distorted |= any(x != 0 for x in dist)
        cams[cam_id] = (height, width, _K(fx, fy, cx - 0.5, cy - 0.5))
    images = []
    lines = _colmap_lines(folder / "images.txt")
    i = 0
    while i < len(lines):
        tok = lines[i].split()
        i += 1
        if not tok:
            continue
        try:
            qw, qx, qy, qz, tx, ty, tz = (float(x) for x in tok[1:8])
            cam_id, name = int(tok[8]), " ".join(tok[9:])
        except (ValueError, IndexError):
            raise TrajectoryError(f"{folder / 'images.txt'}: malformed image line {lines[i - 1].strip()!r}") from None
        if not name:
            raise TrajectoryError(f"{folder / 'images.txt'}: image line without a name {lines[i - 1].strip()!r}")
        if cam_id not in cams:
            raise TrajectoryError(f"{folder / 'images.txt'}: image {name} refers to unknown camera {cam_id}")
        # The 2D-points line follows every image line (possibly empty); its token count is a multiple of 3.
        if i < len(lines) and len(lines[i].split()) % 3 == 0:
            i += 1
        images.append((name, torch.tensor([qw, qx, qy, qz], dtype=torch.float64), torch.tensor([tx, ty, tz], dtype=torch.float64), cam_id))
    if not images:
        raise TrajectoryError(f"{folder / 'images.txt'}: no images")
    images.sort(key=lambda x: x[0])
    sizes = {cams[c][:2] for _, _, _, c in images}
    if len(sizes) > 1:
        raise TrajectoryError(f"{folder}: images have different sizes {sorted(sizes)}; a trajectory has one size")
    if distorted:
        log.warning("%s: COLMAP distortion parameters are ignored (pinhole model used)", folder)
    q = torch.stack([x[1] for x in images])
    if not torch.isfinite(q).all() or (q.norm(dim=-1) < 1e-8).any():
        raise TrajectoryError(f"{folder / 'images.txt'}: invalid quaternion")
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(images), 1, 1)
    w2c[:, :3, :3] = quaternion_to_matrix(q)
    w2c[:, :3, 3] = torch.stack([x[2] for x in images])
    K = torch.stack([cams[x[3]][2] for x in images])
    (h, w), = sizes
    meta = {"converted_from": "colmap", "image_names": [x[0] for x in images]}
    return _finish(w2c, K, h, w, meta, str(folder))


def write_colmap_text(traj: Trajectory, folder: str | os.PathLike) -> Path:
    """Write ``cameras.txt`` (one PINHOLE camera per frame), ``images.txt`` and an empty ``points3D.txt``.

    Images are named ``frame_00000.png``... so that sorting by name keeps the frame order.
    """
    folder = Path(folder)
    w2c = traj.w2c.double().cpu()
    K = traj.K.double().cpu()
    q = matrix_to_quaternion(w2c[:, :3, :3])
    cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    img_lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for i in range(len(traj)):
        k = K[i]
        cam_lines.append(f"{i + 1} PINHOLE {traj.width} {traj.height} {k[0, 0]:.17g} {k[1, 1]:.17g} {k[0, 2] + 0.5:.17g} {k[1, 2] + 0.5:.17g}")
        vals = " ".join(f"{v:.17g}" for v in [*q[i].tolist(), *w2c[i, :3, 3].tolist()])
        img_lines += [f"{i + 1} {vals} {i + 1} frame_{i:05d}.png", ""]
    for name, lines in (("cameras.txt", cam_lines), ("images.txt", img_lines), ("points3D.txt", ["# 3D point list (empty)"])):
        with atomic_path(folder / name) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return folder


# ---- MegaSaM-style npz ------------------------------------------------------------------------


def read_megasam_npz(path: str | os.PathLike, default_size: tuple[int, int] | None = None) -> Trajectory:
    """Read ``cam_c2w`` (N, 4, 4) OpenCV c2w and ``intrinsic``/``intrinsics``/``K`` ((3, 3) or (N, 3, 3)).

    The image size comes from ``height``/``width``, else from ``depths`` (N, H, W) or ``images``
    ((N, H, W, C) or (N, C, H, W)), else ``default_size``. Intrinsics are taken as they are
    (integer pixel centres).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise TrajectoryError(f"cannot read {path} as .npz: {exc}".replace("\n", " ")) from None
    if "cam_c2w" not in arrays:
        raise TrajectoryError(f"{path}: missing array 'cam_c2w' (found: {', '.join(sorted(arrays)) or 'none'})")
    c2w = torch.from_numpy(np.asarray(arrays["cam_c2w"], dtype=np.float64))
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise TrajectoryError(f"{path}: cam_c2w must be (N, 4, 4), got {tuple(c2w.shape)}")
    n = c2w.shape[0]
    key = next((k for k in ("intrinsic", "intrinsics", "K") if k in arrays), None)
    if key is None:
        raise TrajectoryError(f"{path}: missing intrinsics ('intrinsic', 'intrinsics' or 'K')")
    K = torch.from_numpy(np.asarray(arrays[key], dtype=np.float64))
    if K.shape == (3, 3):
        K = K.expand(n, 3, 3).clone()
    if K.shape != (n, 3, 3):
        raise TrajectoryError(f"{path}: {key} must be (3, 3) or ({n}, 3, 3), got {tuple(K.shape)}")
    if "height" in arrays and "width" in arrays:
        try:
            h, w = int(arrays["height"]), int(arrays["width"])
        except (TypeError, ValueError):
            raise TrajectoryError(f"{path}: height and width must be integer scalars") from None
    elif "depths" in arrays and arrays["depths"].ndim >= 2:
        h, w = arrays["depths"].shape[-2:]
    elif "images" in arrays and arrays["images"].ndim == 4:
        shape = arrays["images"].shape
        h, w = shape[1:3] if shape[-1] in (1, 3, 4) else shape[2:4]
    elif default_size is not None:
        h, w = default_size
    else:
        raise TrajectoryError(f"{path}: no image size (height/width, depths or images)")
    if not torch.isfinite(c2w).all():
        raise TrajectoryError(f"{path}: cam_c2w has non-finite values")
    return _finish(invert_se3(c2w), K, h, w, {"converted_from": "megasam"}, str(path))


def write_megasam_npz(traj: Trajectory, path: str | os.PathLike) -> Path:
    """Write ``cam_c2w`` (N, 4, 4), ``intrinsics`` (N, 3, 3), ``height`` and ``width``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            cam_c2w=invert_se3(traj.w2c.double().cpu()).numpy(),
            intrinsics=traj.K.double().cpu().numpy(),
            height=np.int64(traj.height),
            width=np.int64(traj.width),
        )
    return path


# ---- TrajectoryCrafter-style theta / phi / r text ------------------------------------------------


def parse_trajcrafter_text(text: str, where: str = "trajectory text") -> tuple[list[float], list[float], list[float]]:
    """Parse three lines of keyframe values: theta (deg), phi (deg), r (relative distance change).

    Example:
        >>> parse_trajcrafter_text("0 10\\n0 -20\\n0 0.1")
        ([0.0, 10.0], [0.0, -20.0], [0.0, 0.1])
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 3:
        raise TrajectoryError(f"{where}: expected 3 lines (theta, phi, r), got {len(lines)}")
    out = []
    for name, line in zip(("theta", "phi", "r"), lines):
        try:
            values = [float(x) for x in line.replace(",", " ").split()]
        except ValueError:
            raise TrajectoryError(f"{where}: the {name} line has a value that is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise TrajectoryError(f"{where}: the {name} line has a non-finite value")
        out.append(values)
    if any(r <= -1 for r in out[2]):
        raise TrajectoryError(f"{where}: r values must be > -1 (the distance becomes d * (1 + r))")
    return out[0], out[1], out[2]


def _keyframes(values: list[float], n: int) -> torch.Tensor:
    """Linearly interpolate keyframes spread evenly over ``n`` frames; one value means ``0 -> value``."""
    v = torch.tensor([0.0, values[0]] if len(values) == 1 else values, dtype=torch.float64)
    if n == 1:
        return v[-1:].clone()
    x = torch.linspace(0, len(v) - 1, n, dtype=torch.float64)
    lo = x.floor().long().clamp(max=len(v) - 2)
    u = x - lo
    return v[lo] * (1 - u) + v[lo + 1] * u


def trajcrafter_trajectory(theta: list[float], phi: list[float], r: list[float], source: Cameras, look_at_depth: float) -> Trajectory:
    """Build a trajectory from theta/phi/r keyframes relative to the source cameras.

    Per frame, the camera rotates about the look-at point ``(0, 0, d)`` of its source camera by
    ``phi`` (positive: to the camera's *left*, TrajectoryCrafter's sense) and then ``theta``
    (positive: up), always facing the point, at distance ``d * (1 + r)`` from it.
    """
    if not math.isfinite(float(look_at_depth)) or float(look_at_depth) <= 0:
        raise TrajectoryError(f"look-at depth must be a finite number > 0, got {look_at_depth!r}")
    n, d = len(source), float(look_at_depth)
    th, ph, rr = (_keyframes(v, n) for v in (theta, phi, r))
    point = torch.tensor([0.0, 0.0, d], dtype=torch.float64).repeat(n, 1)
    back = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    back[:, 2, 3] = -rr * d
    M = orbit_offset(-ph, th, point) @ back
    c2w = source.c2w.double() @ M.to(source.device)
    meta = {"converted_from": "trajcrafter", "look_at_depth": d}
    return Trajectory(invert_se3(c2w).float(), source.K.float().clone(), source.height, source.width, None, meta)


def read_trajcrafter_txt(path: str | os.PathLike, source: Cameras, look_at_depth: float) -> Trajectory:
    """Read a TrajectoryCrafter-style text file (see :func:`trajcrafter_trajectory`)."""
    path = Path(path)
    try:
        text = read_text(path, "trajectory file")
    except InputError as exc:
        raise TrajectoryError(str(exc)) from None
    theta, phi, r = parse_trajcrafter_text(text, str(path))
    return trajcrafter_trajectory(theta, phi, r, source, look_at_depth)


def trajectory_to_trajcrafter(traj: Trajectory, source: Cameras, look_at_depth: float, tol: float = 1e-4) -> tuple[list[float], list[float], list[float]]:
    """Per-frame theta/phi/r of a trajectory relative to its source cameras (inverse of the reader).

    Frame ``i`` is compared with the source camera of time ``traj.times[i]``. Raises
    :class:`TrajectoryError` when a frame is not an orbit about the look-at point (e.g. a pan).
    """
    d = float(look_at_depth)
    src = source.w2c.double()[traj.times.cpu()]
    M = src @ invert_se3(traj.w2c.double())  # new pose in the source camera frame
    offset = M[:, :3, 3] - torch.tensor([0.0, 0.0, d], dtype=torch.float64)
    dist = offset.norm(dim=-1)
    fwd = -offset / dist.clamp(min=1e-12)[:, None]
    theta = torch.rad2deg(torch.asin(fwd[:, 1].clamp(-1, 1)))
    phi = torch.rad2deg(torch.atan2(fwd[:, 0], fwd[:, 2]))  # left is positive
    r = dist / d - 1
    n = len(traj)
    check = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    check[:, 2, 3] = -r * d
    check = orbit_offset(-phi, theta, torch.tensor([0.0, 0.0, d], dtype=torch.float64).repeat(n, 1)) @ check
    if (check - M).abs().max() > tol * max(1.0, d):
        raise TrajectoryError("trajectory is not expressible as theta/phi/r orbits about the look-at point")
    return theta.tolist(), phi.tolist(), r.tolist()


def write_trajcrafter_txt(traj: Trajectory, source: Cameras, look_at_depth: float, path: str | os.PathLike) -> Path:
    """Write the per-frame theta/phi/r of ``traj`` (one keyframe per frame) as three lines."""
    path = Path(path)
    lines = [" ".join(f"{v:.10g}" for v in vals) for vals in trajectory_to_trajcrafter(traj, source, look_at_depth)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


__all__ = [
    "read_transforms_json",
    "write_transforms_json",
    "read_colmap_text",
    "write_colmap_text",
    "read_megasam_npz",
    "write_megasam_npz",
    "parse_trajcrafter_text",
    "trajcrafter_trajectory",
    "read_trajcrafter_txt",
    "trajectory_to_trajcrafter",
    "write_trajcrafter_txt",
]
