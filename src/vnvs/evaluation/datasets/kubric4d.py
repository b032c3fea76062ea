"""Kubric-4D scenes in the layout GCD released and CogNVS evaluates on.

Layout of one scene (`basilevh/gcd`: ``data-gen/export_kub_mv.py`` writes it, ``data-gen/convert_pcl_kubric.py``
and ``data-gen/data_utils.py`` read it; Kubric's ``kubric/file_io.py`` names the frame files)::

    scnXXXXX/
      scnXXXXX_p0_vV.json          per view V: Kubric metadata, {"scene": {"num_frames", "resolution": [W, H],
                                   ...}, "camera": {"K", "positions", "quaternions", ...}, ...}
      frames_p0_vV/rgba_TTTTT.png  frame T of view V (RGBA)
      frames_p0_vV/depth_TTTTT.tiff  float32 distance from the camera centre along the ray (Kubric's depth)
      frames_p0_vV/...             segmentation, normals, flow (unused)

Cameras (as GCD reads them): ``K`` is Kubric's normalised intrinsics ``[[fx, 0, -px], [0, -fy, -py],
[0, 0, -1]]``; its absolute value times the resolution (row 0 by ``W``, row 1 by ``H``) is the pixel
``K`` (principal point at pixel corners; vnvs subtracts 0.5). ``quaternions`` ``(w, x, y, z)`` and
``positions`` are the camera-to-world pose per frame in Blender axes (y up, z back); flipping
columns 1 and 2 gives OpenCV axes. Depth is converted from distance along the ray to z-depth with
each pixel's exact ray (GCD approximates this with evenly spaced angles).

Protocol: every view of a scene is a synchronized video of the same dynamic scene. The source view
(``source_view``, default 0) with its depth is the monocular input; each other view (or those
``target_views`` names) is one item: its frame ``t`` is predicted from source frame ``t`` carried to
its camera, and scored against the rendered frame at native resolution (576 x 384 in GCD's release,
as CogNVS evaluates). No mask: Kubric-4D is scored over the whole frame. CogNVS uses the 20 scenes
``scn02900..scn02919`` (GCD's ``eval/list/kubric_test20.txt``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from vnvs.errors import InputError
from vnvs.evaluation.datasets.base import (
    EvalItem,
    ItemRef,
    json_field,
    need_file,
    read_json_file,
    read_rgb,
    select_frames,
)
from vnvs.geometry.se3 import invert_se3, quaternion_to_matrix

BLENDER_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
"""Right-multiplying a Blender camera-to-world by this flips its y and z axes (as GCD does)."""


def view_jsons(folder: Path) -> dict[int, Path]:
    """``{view: metadata file}`` of a Kubric-4D scene folder (``NAME_p0_vV.json``)."""
    pat = re.compile(rf"^{re.escape(folder.name)}_p0_v(\d+)\.json$")
    out = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = pat.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def scene_folders(data: str | os.PathLike) -> list[Path]:
    """``data`` when it is a Kubric-4D scene, else its scene sub-folders (sorted)."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist" if not root.exists() else f"data {root} is not a folder")
    if view_jsons(root):
        return [root]
    scenes = sorted(p for p in root.iterdir() if p.is_dir() and view_jsons(p))
    if not scenes:
        raise InputError(f"{root} holds no Kubric-4D scene: missing file {root / (root.name + '_p0_v0.json')} "
                         "(or sub-folders NAME holding NAME_p0_vV.json)")
    return scenes


def kubric_cameras(meta: dict, path: Path) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], int]:
    """``(K (T, 3, 3), w2c (T, 4, 4), (H, W), T)`` of a Kubric view's metadata (module docstring)."""
    scene = json_field(meta, "scene", path, dict)
    cam = json_field(meta, "camera", path, dict)
    T = json_field(scene, "num_frames", path, int)
    res = json_field(scene, "resolution", path, list)
    if len(res) != 2 or not all(isinstance(r, int) and r > 0 for r in res) or T < 1:
        raise InputError(f"{path}: scene 'resolution' must be [W, H] and 'num_frames' positive")
    W, H = res
    try:
        K = torch.tensor(json_field(cam, "K", path, list), dtype=torch.float64).abs()
        pos = torch.tensor(json_field(cam, "positions", path, list), dtype=torch.float64)
        quat = torch.tensor(json_field(cam, "quaternions", path, list), dtype=torch.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: camera 'K', 'positions' and 'quaternions' must be numbers") from None
    if K.shape != (3, 3) or pos.shape != (T, 3) or quat.shape != (T, 4) or not all(
            bool(torch.isfinite(x).all()) for x in (K, pos, quat)):
        raise InputError(f"{path}: camera 'K' must be 3x3, 'positions' {T}x3 and 'quaternions' {T}x4 finite numbers")
    if bool((quat.norm(dim=-1) < 1e-6).any()) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"{path}: camera has a zero quaternion or a non-positive focal length")
    Kp = K.clone()
    Kp[0] *= W
    Kp[1] *= H
    Kp[0, 2] -= 0.5
    Kp[1, 2] -= 0.5
    Kp[2] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(T, 1, 1)
    c2w[:, :3, :3] = quaternion_to_matrix(quat)
    c2w[:, :3, 3] = pos
    w2c = invert_se3(c2w @ BLENDER_TO_OPENCV)
    return Kp.float().expand(T, 3, 3).clone(), w2c.float(), (H, W), T


def ray_to_z(distance: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Distance along each pixel's ray ``(..., H, W)`` -> z-depth, with ``K`` ``(3, 3)`` (integer pixel centres).

    Example:
        >>> K = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
        >>> ray_to_z(torch.full((1, 2), 2.0), K).tolist()  # pixel (1, 0) is 45 degrees off axis
        [[2.0, 1.4142135381698608]]
    """
    H, W = distance.shape[-2:]
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    K = K.double()
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return (distance.double() / torch.sqrt(x * x + y * y + 1)).float()


def read_tiff_depth(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A float TIFF depth map ``(H, W)`` (Kubric writes ``(H, W, 1)``); errors name the file."""
    need_file(path)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our one-line error says it instead
    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None:
        raise InputError(f"cannot decode depth image {path}: not a TIFF")
    if arr.ndim == 3:
        arr = arr[..., 0]
    if tuple(arr.shape) != tuple(size) or arr.dtype.kind != "f":
        raise InputError(f"{path}: expected {size[1]}x{size[0]} float depths, got {arr.dtype} {arr.shape[1]}x{arr.shape[0]}")
    return arr


def index_kubric4d(data: str | os.PathLike, *, source_view: int = 0, target_views: list[int] | None = None,
                   stride: int = 1, max_frames: int | None = None) -> list[ItemRef]:
    """Index (scene, target view) items under ``data`` (module docstring); checks the layout."""
    refs = []
    for scene in scene_folders(data):
        views = view_jsons(scene)
        if source_view not in views:
            raise InputError(f"missing file {scene / f'{scene.name}_p0_v{source_view}.json'} (the source view)")
        targets = [v for v in views if v != source_view] if target_views is None else list(target_views)
        for v in targets:
            if v not in views:
                raise InputError(f"missing file {scene / f'{scene.name}_p0_v{v}.json'} (target view {v})")
        metas = {v: read_json_file(views[v]) for v in [source_view, *targets]}
        cams = {v: kubric_cameras(metas[v], views[v]) for v in metas}
        T = min(c[3] for c in cams.values())
        sel = select_frames(T, stride, max_frames)
        for t in sel:
            need_file(scene / f"frames_p0_v{source_view}" / f"rgba_{t:05d}.png")
            need_file(scene / f"frames_p0_v{source_view}" / f"depth_{t:05d}.tiff")
        for v in targets:
            for t in sel:
                need_file(scene / f"frames_p0_v{v}" / f"rgba_{t:05d}.png")
            name = f"{scene.name}/v{v}"
            info = {"name": name, "scene": scene.name, "source_view": source_view, "view": v, "frames": len(sel),
                    "height": cams[v][2][0], "width": cams[v][2][1]}
            spec = {"scene": scene, "src": source_view, "view": v, "sel": sel, "src_cam": cams[source_view],
                    "cam": cams[v], "name": name, "info": info}
            refs.append(ItemRef(name, info, lambda spec=spec: _load(**spec)))
    return refs


def _load(*, scene, src, view, sel, src_cam, cam, name, info) -> EvalItem:
    idx = torch.tensor(sel, dtype=torch.long)
    Ks, w2cs, ssize, _ = src_cam
    Kt, wt, tsize, _ = cam
    frames = torch.stack([read_rgb(scene / f"frames_p0_v{src}" / f"rgba_{t:05d}.png", ssize) for t in sel])
    dist = torch.from_numpy(np.stack([read_tiff_depth(scene / f"frames_p0_v{src}" / f"depth_{t:05d}.tiff", ssize)
                                      for t in sel]).astype(np.float32))
    valid = torch.isfinite(dist) & (dist > 0)
    depth = torch.where(valid, ray_to_z(torch.nan_to_num(dist, nan=0.0, posinf=0.0, neginf=0.0), Ks[0]),
                        torch.zeros_like(dist))
    target = torch.stack([read_rgb(scene / f"frames_p0_v{view}" / f"rgba_{t:05d}.png", tsize) for t in sel])
    return EvalItem(name, frames, depth, valid, Ks[idx], w2cs[idx], Kt[idx], wt[idx], torch.arange(len(sel)), tsize,
                    target, None, dict(info))
