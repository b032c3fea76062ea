"""DyCheck (iPhone) scenes in their public layout, and an exporter of procedural scenes into it.

Layout of one scene (`KAIR-BAIR/dycheck`, ``docs/DATASETS.md`` and ``dycheck/datasets/iphone.py``)::

    SCENE/
      dataset.json        {"ids", "train_ids", "val_ids", "count", "num_exemplars"}
      metadata.json       {ITEM_ID: {"camera_id", "warp_id" (= time index), "appearance_id"}}
      scene.json          {"center", "scale", "near", "far"}: the world normalisation
      extra.json          {"factor", "fps", ...} (optional here; "factor" picks the image scale)
      camera/ITEM_ID.json DyCheck camera (see vnvs.cameras.dycheck)
      rgb/Fx/ITEM_ID.png  frames at 1/F of full resolution (RGBA; alpha ignored)
      depth/Fx/ITEM_ID.npy  training frames only: projective depth (H, W, 1), 0 = invalid;
                          depth/1x is used (area-downscaled as DyCheck does) when depth/Fx is absent
      covisible/Fx/val/ITEM_ID.png  validation frames: 255 where the pixel is co-visible with training

Protocol (DyCheck's novel-view evaluation, monocular setting): the training video is camera 0;
each validation camera (1, 2, ...) is one item. For each of its frames (time ``t``), the training
frame of time ``t`` with its depth is carried to the validation camera (``render_control``) and
the method completes it; PSNR / SSIM / LPIPS over the whole frame and DyCheck's masked mPSNR /
mSSIM / mLPIPS over the co-visibility mask.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vnvs.cameras.dycheck import dycheck_camera_to_vnvs, vnvs_camera_to_dycheck
from vnvs.errors import InputError
from vnvs.evaluation.datasets.base import (
    EvalItem,
    ItemRef,
    area_downsample_depth,
    json_field,
    need_file,
    read_json_file,
    read_npy,
    read_rgb,
    select_frames,
)
from vnvs.geometry.projection import project_points, transform_points
from vnvs.io.images import write_png
from vnvs.synthetic import (
    generate_scene,
    look_at_depth,
    orbit_camera,
    render,
    render_source_video,
    render_views,
)
from vnvs.utils.atomic import atomic_dir
from vnvs.utils.progress import progress_bar

SOURCE_MOTIONS = ("gentle", "orbit", "dolly", "pan")


def is_dycheck_scene(path: Path) -> bool:
    """A folder holding ``dataset.json`` (a DyCheck scene)."""
    return (Path(path) / "dataset.json").is_file()


def scene_folders(data: str | os.PathLike) -> list[Path]:
    """``data`` itself when it is a scene, else its sub-folders that are scenes (sorted by name)."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist" if not root.exists() else f"data {root} is not a folder")
    if is_dycheck_scene(root):
        return [root]
    scenes = sorted(p for p in root.iterdir() if p.is_dir() and is_dycheck_scene(p))
    if not scenes:
        raise InputError(f"{root} holds no DyCheck scene: missing file {root / 'dataset.json'} "
                         "(or sub-folders holding one)")
    return scenes


def _ids(doc: dict, key: str, path: Path) -> list[str]:
    ids = json_field(doc, key, path, list)
    if not all(isinstance(i, str) for i in ids):
        raise InputError(f"{path}: {key!r} must be a list of item names")
    return ids


def index_dycheck(data: str | os.PathLike, *, factor: int | None = None, stride: int = 1,
                  max_frames: int | None = None) -> list[ItemRef]:
    """Index every validation camera of every scene under ``data`` (module docstring); checks the layout."""
    refs: list[ItemRef] = []
    for scene in scene_folders(data):
        refs.extend(_index_scene(scene, factor, stride, max_frames))
    return refs


def _index_scene(scene: Path, factor: int | None, stride: int, max_frames: int | None) -> list[ItemRef]:
    ds_path, meta_path, sc_path = scene / "dataset.json", scene / "metadata.json", scene / "scene.json"
    ds = read_json_file(ds_path)
    train_ids, val_ids = _ids(ds, "train_ids", ds_path), _ids(ds, "val_ids", ds_path)
    meta = read_json_file(meta_path)
    sc = read_json_file(sc_path)
    center = json_field(sc, "center", sc_path, list)
    scale = json_field(sc, "scale", sc_path, (int, float))
    if len(center) != 3 or not all(isinstance(c, (int, float)) for c in center) or not scale > 0:
        raise InputError(f"{sc_path}: 'center' must be 3 numbers and 'scale' positive")
    if factor is None:
        extra_path = scene / "extra.json"
        factor = int(json_field(read_json_file(extra_path), "factor", extra_path, int)) if extra_path.is_file() else 1
        if factor < 1:
            raise InputError(f"{extra_path}: 'factor' must be a positive integer")

    def entry(item: str) -> tuple[int, int]:
        m = meta.get(item)
        if not isinstance(m, dict):
            raise InputError(f"{meta_path}: no entry for {item!r}")
        cam, t = json_field(m, "camera_id", meta_path, int), json_field(m, "warp_id", meta_path, int)
        return int(cam), int(t)

    train_at: dict[int, str] = {}
    for item in train_ids:
        train_at.setdefault(entry(item)[1], item)
    cams: dict[int, list[tuple[int, str]]] = {}
    for item in val_ids:
        cam, t = entry(item)
        cams.setdefault(cam, []).append((t, item))
    if not cams:
        raise InputError(f"{ds_path}: 'val_ids' is empty; the scene has no held-out camera to evaluate")
    rgb_dir = scene / "rgb" / f"{factor}x"
    if not rgb_dir.is_dir():
        raise InputError(f"missing folder {rgb_dir} (image scale {factor}x)")
    depth_dir = scene / "depth" / f"{factor}x"
    depth_factor = factor
    if not depth_dir.is_dir():
        depth_dir, depth_factor = scene / "depth" / "1x", 1
        if not depth_dir.is_dir():
            raise InputError(f"missing folder {scene / 'depth' / f'{factor}x'} (or depth/1x)")
    covis_dir = scene / "covisible" / f"{factor}x" / "val"
    has_covis = covis_dir.is_dir()
    refs = []
    for cam in sorted(cams):
        frames = sorted(cams[cam])
        frames = [frames[i] for i in select_frames(len(frames), stride, max_frames)]
        for t, item in frames:
            if t not in train_at:
                raise InputError(f"{meta_path}: validation frame {item!r} is at time {t}, which no training frame has")
        sources = sorted({train_at[t] for t, _ in frames}, key=lambda i: entry(i)[1])
        for item in sources:
            need_file(scene / "camera" / f"{item}.json")
            need_file(rgb_dir / f"{item}.png")
            need_file(depth_dir / f"{item}.npy")
        for _, item in frames:
            need_file(scene / "camera" / f"{item}.json")
            need_file(rgb_dir / f"{item}.png")
            if has_covis:
                need_file(covis_dir / f"{item}.png")
        name = f"{scene.name}/cam{cam}"
        info = {"name": name, "scene": scene.name, "camera": cam, "frames": len(frames), "factor": factor,
                "split": "val", "covisible": has_covis}
        spec = {"scene": scene, "frames": frames, "sources": sources, "train_at": train_at, "factor": factor,
                "depth_dir": depth_dir, "depth_factor": depth_factor, "covis_dir": covis_dir if has_covis else None,
                "center": [float(c) for c in center], "scale": float(scale), "name": name, "info": info}
        refs.append(ItemRef(name, info, lambda spec=spec: _load(**spec)))
    return refs


def _camera(scene: Path, item: str, factor: int, center, scale) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    path = scene / "camera" / f"{item}.json"
    return dycheck_camera_to_vnvs(read_json_file(path), factor=factor, center=center, scale=scale, where=str(path))


def _read_depth(path: Path, depth_factor: int, factor: int, scale: float, size: tuple[int, int]):
    arr = read_npy(path)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise InputError(f"{path}: expected an (H, W, 1) array of depths, got {arr.dtype} {list(arr.shape)}")
    d = torch.from_numpy(np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)).clamp(min=0)
    d, valid = area_downsample_depth(d, factor // depth_factor if depth_factor != factor else 1)
    if tuple(d.shape) != tuple(size):
        raise InputError(f"{path} holds {arr.shape[1]}x{arr.shape[0]} depths; the {factor}x frames are "
                         f"{size[1]}x{size[0]}")
    return d * scale, valid


def _read_mask(path: Path, size: tuple[int, int]) -> torch.Tensor:
    img = read_rgb(path, size)[0]  # 255 (co-visible) or 0; a 0/1 mask reads as 0 or 1/255
    return img > (0.5 if img.max() > 1.5 / 255 else 0.5 / 255)


def _load(*, scene, frames, sources, train_at, factor, depth_dir, depth_factor, covis_dir, center, scale, name,
          info) -> EvalItem:
    rgb_dir = scene / "rgb" / f"{factor}x"
    Ks, w2cs, imgs, depths, valids = [], [], [], [], []
    for item in sources:
        K, w2c, size = _camera(scene, item, factor, center, scale)
        Ks.append(K), w2cs.append(w2c)
        imgs.append(read_rgb(rgb_dir / f"{item}.png", size))
        d, v = _read_depth(depth_dir / f"{item}.npy", depth_factor, factor, scale, size)
        depths.append(d), valids.append(v)
    Kt, wt, targets, masks = [], [], [], []
    tsize = None
    for _, item in frames:
        K, w2c, size = _camera(scene, item, factor, center, scale)
        if tsize is not None and size != tsize:
            raise InputError(f"{scene / 'camera' / (item + '.json')}: image size differs from the camera's other frames")
        tsize = size
        Kt.append(K), wt.append(w2c)
        targets.append(read_rgb(rgb_dir / f"{item}.png", size))
        if covis_dir is not None:
            masks.append(_read_mask(covis_dir / f"{item}.png", size))
    pos = {item: i for i, item in enumerate(sources)}
    times = torch.tensor([pos[train_at[t]] for t, _ in frames], dtype=torch.long)
    return EvalItem(name, torch.stack(imgs), torch.stack(depths), torch.stack(valids), torch.stack(Ks),
                    torch.stack(w2cs), torch.stack(Kt), torch.stack(wt), times, tsize, torch.stack(targets),
                    torch.stack(masks) if masks else None, dict(info))


# ------------------------------------------------------------------------------------------ exporter


def dycheck_covisible(scene, source, tgt_w2c, tgt_K, tgt_times, size: tuple[int, int],
                      min_views: int | None = None, rtol: float = 2e-2, rendered=None) -> torch.Tensor:
    """DyCheck's co-visibility of target pixels for a procedural scene: a pixel is co-visible when its
    surface point is seen by at least ``max(5, N // 10)`` (capped at ``N``) of the ``N`` training frames
    ``source`` (a :class:`~vnvs.synthetic.SourceVideo`). "Seen": the point, moved to the training frame's
    time with its object, projects inside the frame in front of the camera, and the training render
    at the nearest pixel shows the same object at that depth (within ``rtol``), the depth test of
    :func:`vnvs.synthetic.correspondence` with ``visibility="nearest"``. ``rendered``: the targets'
    render with ``local_points`` when already at hand. Returns ``(M, H, W)`` bool."""
    N, M = source.w2c.shape[0], tgt_w2c.shape[0]
    need = min(N, max(5, N // 10)) if min_views is None else int(min_views)
    H, W = size
    Hs, Ws = source.depth.shape[-2:]
    tgt = rendered if rendered is not None else render(scene, tgt_w2c, tgt_K, H, W, tgt_times, rgb=False,
                                                       local_points=True)
    count = torch.zeros(M, H, W, dtype=torch.int32)
    for j in range(N):
        world = scene.transform_points(tgt.local_points, tgt.instance, source.times[j].expand(M))
        cam = transform_points(source.w2c[j].expand(M, 4, 4), world.permute(0, 2, 3, 1))
        uv, z = project_points(cam, source.K[j].expand(M, 3, 3))
        u, v = uv[..., 0], uv[..., 1]
        inside = (z > 1e-6) & (u >= -0.5) & (u < Ws - 0.5) & (v >= -0.5) & (v < Hs - 0.5)
        flat = (v.round().clamp(0, Hs - 1) * Ws + u.round().clamp(0, Ws - 1)).long()
        d = source.depth[j].reshape(-1)[flat]
        inst = source.instance[j].reshape(-1)[flat]
        count += (inside & (inst == tgt.instance) & ((d - z).abs() <= rtol * z.abs())).int()
    return count >= need


def _area(x: torch.Tensor, f: int) -> torch.Tensor:
    return x if f == 1 else F.avg_pool2d(x, f)


def export_dycheck_scene(number: int, folder: str | os.PathLike, *, frames: int = 16, size: int = 128,
                         val_cameras: int = 2, orbit_deg: float = 25.0, factors: tuple[int, ...] = (1,),
                         motion: str | None = None, fps: float = 10.0) -> Path:
    """Render procedural scene ``number`` (:func:`vnvs.synthetic.generate_scene`) into a DyCheck scene folder.

    Camera 0 is the monocular training video (``frames`` frames, ``size x size``, a source camera
    motion drawn from the scene number like the synthetic benchmark's, or ``motion``); cameras
    ``1..val_cameras`` are static validation cameras: the middle training camera orbited about the
    look-at point by ``orbit_deg`` x ``+1, -1, +2, ...``, each rendered at every time. Depth (training
    frames, ``depth/1x``) is exact z-depth; co-visibility masks follow DyCheck's definition
    (:func:`dycheck_covisible`, a depth test against the training renders). ``scene.json`` normalises the world to the look-at point and a unit
    look-at distance, as DyCheck's processing does with its scene centre and scale. Images at
    ``factors`` (1 = ``size``; 2 = area-downscaled by 2; masks: co-visible where at least half of
    the covered pixels are). The folder is written whole or not at all.

    Returns:
        ``folder``.
    """
    if val_cameras < 1 or frames < 1 or size < 8 or any(int(f) < 1 or size % int(f) for f in factors):
        raise InputError("export needs val_cameras >= 1, frames >= 1, size >= 8 and factors dividing size")
    rng = np.random.default_rng(int(number))
    scene = generate_scene(int(number))
    drawn = str(rng.choice(SOURCE_MOTIONS))  # drawn always, so the video's seed does not depend on `motion`
    motion = motion or drawn
    video = render_source_video(scene, int(frames), size=(size, size), seed=int(rng.integers(0, 2**31 - 1)),
                                motion=motion)
    T = video.frames.shape[0]
    mid = T // 2
    look = look_at_depth(scene, video)
    c2w_mid = torch.linalg.inv(video.w2c[mid].double())
    lookat = (c2w_mid[:3, 3] + look * c2w_mid[:3, 2]).float()
    angles = [orbit_deg * (k // 2 + 1) * (1 if k % 2 == 0 else -1) for k in range(val_cameras)]
    val_w2c = torch.stack([orbit_camera(video.w2c[mid], a, lookat) for a in angles])  # (V, 4, 4)
    V = len(angles)
    tw2c = val_w2c.repeat_interleave(T, 0)
    tK = video.K[mid].expand(V * T, 3, 3).clone()
    ttimes = video.times.repeat(V)
    val = render_views(scene, tw2c, tK, size, size, ttimes, local_points=True)
    covis = dycheck_covisible(scene, video, tw2c, tK, ttimes, (size, size), rendered=val)
    center, scale = lookat.double(), 1.0 / look
    train_ids = [f"0_{t:05d}" for t in range(T)]
    val_ids = [f"{v + 1}_{t:05d}" for v in range(V) for t in range(T)]
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        def dump(rel: str, doc) -> None:
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(doc, indent=1) + "\n")

        dump("dataset.json", {"count": len(train_ids) + len(val_ids), "num_exemplars": len(train_ids),
                              "ids": train_ids + val_ids, "train_ids": train_ids, "val_ids": val_ids})
        dump("metadata.json", {i: {"warp_id": int(i[2:]), "appearance_id": int(i[2:]), "camera_id": int(i[0])}
                               for i in train_ids + val_ids})
        dump("scene.json", {"center": center.tolist(), "scale": scale, "near": float(video.depth.min()) * scale,
                            "far": float(video.depth.max()) * scale})
        dump("extra.json", {"factor": int(factors[-1]), "fps": fps, "lookat": [0.0, 0.0, 0.0],
                            "up": [0.0, -1.0, 0.0], "source": f"vnvs procedural scene {int(number)}",
                            "motion": motion})
        for split, ids in (("train", train_ids), ("val", val_ids)):
            dump(f"splits/{split}.json", {"frame_names": ids, "camera_ids": [int(i[0]) for i in ids],
                                         "time_ids": [int(i[2:]) for i in ids]})
        for i, item in enumerate(train_ids):
            dump(f"camera/{item}.json", vnvs_camera_to_dycheck(video.K[i], video.w2c[i], (size, size)))
        for i, item in enumerate(val_ids):
            dump(f"camera/{item}.json", vnvs_camera_to_dycheck(tK[i], tw2c[i], (size, size)))
        (tmp / "depth" / "1x").mkdir(parents=True)
        for i, item in enumerate(train_ids):
            np.save(tmp / "depth" / "1x" / f"{item}.npy", video.depth[i].numpy().astype(np.float32)[..., None])
        for f in factors:
            f = int(f)
            train_rgb, val_rgb = _area(video.frames, f), _area(val.rgb, f)
            mask = _area(covis[:, None].float(), f)[:, 0] >= 0.5
            for i, item in enumerate(train_ids):
                write_png(tmp / "rgb" / f"{f}x" / f"{item}.png", train_rgb[i])
            for i, item in enumerate(val_ids):
                write_png(tmp / "rgb" / f"{f}x" / f"{item}.png", val_rgb[i])
                write_png(tmp / "covisible" / f"{f}x" / "val" / f"{item}.png", mask[i].float()[None].expand(3, -1, -1))
    return folder


def export_dycheck_scenes(numbers: list[int], root: str | os.PathLike, **kwargs) -> list[Path]:
    """:func:`export_dycheck_scene` for each scene number, into ``root/scene-<number>`` (with a progress bar)."""
    root = Path(root)
    out = []
    with progress_bar("export dycheck", total=len(numbers), unit="scene") as bar:
        for n in numbers:
            out.append(export_dycheck_scene(n, root / f"scene-{n}", **kwargs))
            bar.update()
    return out


__all__ = ["dycheck_covisible", "export_dycheck_scene", "export_dycheck_scenes", "index_dycheck", "is_dycheck_scene"]
