"""What ``vnvs view`` shows, without a browser: loading, the data at each time step, camera paths, and the
trajectory editor's keyframes -> trajectory (``vnvs.apps.view`` is the thin viser glue on top).

Four inputs (:func:`load_viewable`):

- a **scene folder** (``vnvs reconstruct``): 4D Gaussians, evaluated at each grid column's time;
- a **3DGS PLY** file: static Gaussians;
- a **grid folder** (``vnvs grid``, ``write_grid``): per-column point clouds unprojected from the grid's
  depth, coloured by its frames (every view or one);
- a **``vnvs render`` output folder**: the source frames (the left panel of ``side_by_side.mp4``) lifted
  with ``depth.npz`` and ``cameras.json``; without the depth, only the camera paths.

Cameras follow the vnvs conventions (OpenCV axes, ``w2c``, ``K`` in pixels, pixel centres at integers);
viser's camera is OpenCV-oriented too: ``wxyz`` is the camera-to-world rotation and ``position`` the
camera centre, ``fov`` the vertical field of view in radians (:func:`viser_to_opencv`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import InputError, TrajectoryError, VnvsError
from vnvs.geometry.projection import transform_points, unproject_depth
from vnvs.geometry.se3 import invert_se3, matrix_to_quaternion, quaternion_to_matrix
from vnvs.io.depth import load_depth
from vnvs.io.grid import GRID_JSON, read_grid
from vnvs.io.video import probe_video, read_frames_at
from vnvs.recon.formats import SCENE_JSON, read_ply, read_scene
from vnvs.recon.rasterize import SH_C0, covariance_3d

SOURCE_COLOR = (255, 136, 0)
"""Camera path of the source video (grid view 0; a render's input cameras): orange."""
TARGET_COLOR = (24, 112, 255)
"""Target camera paths (the other grid views; a render's trajectory): blue."""
KEYFRAME_COLOR = (220, 30, 160)
"""Keyframes of the trajectory editor and the path through them: magenta."""

Kind = Literal["scene", "ply", "grid", "render"]
CACHED_STEPS = 512
"""Time steps whose splats / points are kept once computed (playback loops over them without recomputing)."""


@dataclass
class Splats:
    """Gaussians as viser's ``add_gaussian_splats`` takes them."""

    centers: np.ndarray
    """``(N, 3)`` float32 means."""
    covariances: np.ndarray
    """``(N, 3, 3)`` float32 world covariances."""
    rgbs: np.ndarray
    """``(N, 3)`` float32 colours in [0, 1]."""
    opacities: np.ndarray
    """``(N, 1)`` float32 opacities in [0, 1]."""


@dataclass
class Points:
    """A coloured point cloud as viser's ``add_point_cloud`` takes it."""

    points: np.ndarray
    """``(N, 3)`` float32 world positions."""
    colors: np.ndarray
    """``(N, 3)`` uint8 colours."""
    point_size: float
    """World size of a point: about one pixel's footprint at the median depth."""


@dataclass
class CameraPath:
    """One camera path to draw: frustums at a stride and a polyline through the camera centres."""

    name: str
    """Scene-tree name (``source``, ``view_1``, ``target``)."""
    role: Literal["source", "target"]
    """Source (the input video's cameras) or target (a new camera path): sets the colour."""
    w2c: torch.Tensor
    """``(N, 4, 4)`` world-to-camera matrices."""
    K: torch.Tensor
    """``(N, 3, 3)`` intrinsics in pixels of a ``height x width`` image."""
    height: int
    """Image height of ``K``."""
    width: int
    """Image width of ``K``."""

    @property
    def centers(self) -> np.ndarray:
        """``(N, 3)`` float32 camera centres."""
        return invert_se3(self.w2c.double())[:, :3, 3].float().numpy()

    @property
    def color(self) -> tuple[int, int, int]:
        return SOURCE_COLOR if self.role == "source" else TARGET_COLOR

    def frustum_indices(self, count: int = 8) -> list[int]:
        """At most ``count + 1`` frame indices evenly spread over the path, first and last included."""
        n = self.w2c.shape[0]
        stride = max(1, math.ceil((n - 1) / max(count, 1)))
        return sorted({*range(0, n, stride), n - 1})


@dataclass
class Viewable:
    """Something ``vnvs view`` opened: its time steps, the data at each, its camera paths."""

    kind: Kind
    """``scene``, ``ply``, ``grid`` or ``render``."""
    path: Path
    """What was opened."""
    num_times: int
    """Time steps the slider walks (grid columns, source frames; 1 for a PLY)."""
    fps: float
    """Frames per second of playback (the source's rate)."""
    times: list[float]
    """Normalised time in [0, 1] of each step."""
    frame: Callable[[int], Splats | Points | None]
    """Data at a time step (``None``: nothing to show, e.g. a render output without depth)."""
    paths: list[CameraPath] = field(default_factory=list)
    """Camera paths to draw."""
    size: tuple[int, int] | None = None
    """``(H, W)`` of the source images: the size of saved trajectories (``None``: use the browser's)."""
    look_at_depth: float | None = None
    """Typical distance from the cameras to the scene (scales frustums; the initial view looks this far)."""
    notes: list[str] = field(default_factory=list)
    """What the viewer should tell the user (e.g. why only camera paths are shown)."""
    views: int = 1
    """Grid views whose point clouds ``frame`` can show (``set_views`` picks them)."""
    set_views: Callable[[list[int] | None], None] | None = None
    """For grids: restrict the point clouds to these views (``None``: all)."""


# --------------------------------------------------------------------------------------------------
# Loading


def detect_kind(path: Path) -> Kind:
    """What ``path`` is; one-line :class:`InputError` when it is none of the four (checked before viser loads)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist (vnvs view opens a scene folder, a 3DGS .ply, a grid folder "
                         "or a vnvs render output folder)")
    if path.is_file():
        if path.suffix.lower() == ".ply":
            return "ply"
        raise InputError(f"{path} is a file but not a .ply (vnvs view opens a scene folder, a 3DGS .ply, "
                         "a grid folder or a vnvs render output folder)")
    if (path / SCENE_JSON).is_file():
        return "scene"
    if (path / GRID_JSON).is_file():
        return "grid"
    if (path / "trajectory.json").is_file() and (path / "side_by_side.mp4").is_file():
        return "render"
    raise InputError(f"{path} is not a scene folder (no {SCENE_JSON}), a grid folder (no {GRID_JSON}) or a vnvs "
                     "render output folder (no trajectory.json and side_by_side.mp4)")


def load_viewable(path: str | Path, *, view: int | None = None, max_points: int = 200_000) -> Viewable:
    """Open ``path`` (scene folder, PLY, grid folder or render output folder); one-line :class:`InputError` on faults.

    Args:
        path: what to open.
        view: grid only: show this view's point clouds (default every view).
        max_points: most points per time step of a point cloud (pixels are taken at a stride).
    """
    path = Path(path)
    kind = detect_kind(path)
    if view is not None and kind != "grid":
        raise InputError(f"view {view} applies to grid folders only; {path} is a {kind}")
    if kind == "ply":
        return _load_ply(path)
    if kind == "scene":
        return _load_scene(path)
    if kind == "grid":
        return _load_grid(path, view, max_points)
    return _load_render(path, max_points)


def _splats(means, log_scales, quats, opacity_logits, f_dc) -> Splats:
    with torch.no_grad():
        return Splats(centers=means.float().numpy().astype(np.float32),
                      covariances=covariance_3d(log_scales, quats).float().numpy().astype(np.float32),
                      rgbs=(SH_C0 * f_dc + 0.5).clamp(0, 1).float().numpy().astype(np.float32),
                      opacities=torch.sigmoid(opacity_logits)[:, None].float().numpy().astype(np.float32))


def _load_ply(path: Path) -> Viewable:
    g = read_ply(path)
    if g["means"].shape[0] == 0:
        raise InputError(f"{path}: the PLY holds no Gaussians")
    splats = _splats(g["means"], g["log_scales"], g["quats"], g["opacity_logits"], g["f_dc"])
    return Viewable("ply", path, 1, 24.0, [0.0], lambda i: splats,
                    notes=["a PLY holds no cameras: no camera paths to draw"])


def _load_scene(path: Path) -> Viewable:
    scene, doc = read_scene(path)
    try:
        H, W = int(doc["height"]), int(doc["width"])
        times = [float(t) for t in doc["time"]]
        w2c = torch.tensor(doc["cameras"]["w2c"], dtype=torch.float32)
        K = torch.tensor(doc["cameras"]["K"], dtype=torch.float32)
        fps = float(doc.get("fps", 24.0))
        look = float(doc.get("look_at_depth", 1.0))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}/{SCENE_JSON}: malformed cameras or times ({e})") from None
    if not times or w2c.ndim != 4 or w2c.shape[1:] != (len(times), 4, 4) or K.shape != (*w2c.shape[:2], 3, 3):
        raise InputError(f"{path}/{SCENE_JSON}: cameras must be views x {len(times)} times of w2c 4x4 and K 3x3")
    @functools.lru_cache(maxsize=CACHED_STEPS)
    def at(i: int) -> Splats:
        with torch.no_grad():
            g = scene.at(times[i])
            return _splats(g.means, g.log_scales, g.quats, g.opacity_logits, g.f_dc)

    return Viewable("scene", path, len(times), fps, times, at, _grid_paths(w2c, K, H, W), (H, W), look,
                    views=int(w2c.shape[0]))


def _grid_paths(w2c: torch.Tensor, K: torch.Tensor, H: int, W: int) -> list[CameraPath]:
    """Row 0 of a grid is the source video's path; every other row a target path."""
    return [CameraPath("source" if v == 0 else f"view_{v}", "source" if v == 0 else "target", w2c[v], K[v], H, W)
            for v in range(w2c.shape[0])]


def lift_points(frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor,
                max_points: int) -> Points | None:
    """Coloured world points of ``n`` images with depth, one per pixel at a stride keeping at most ``max_points``.

    Args:
        frames: ``(n, 3, H, W)`` float in [0, 1] or uint8.
        depth: ``(n, H, W)`` z-depth; valid: ``(n, H, W)`` bool.
        w2c: ``(n, 4, 4)``; K: ``(n, 3, 3)``.
        max_points: the most points returned.

    Returns:
        The points (``None`` when no pixel has valid depth).
    """
    n, H, W = depth.shape
    stride = max(1, math.ceil(math.sqrt(n * H * W / max(max_points, 1))))
    d = depth[:, ::stride, ::stride].float()
    K_s = K.double().clone()
    K_s[:, :2] /= stride  # pixel j of the strided image is pixel j * stride of the full one
    cam = unproject_depth(d, K_s.float())
    world = transform_points(invert_se3(w2c.double()).float(), cam)
    ok = valid[:, ::stride, ::stride] & (d > 0) & torch.isfinite(d)
    if not bool(ok.any()):
        return None
    rgb = frames[:, :, ::stride, ::stride]
    rgb = (rgb.float() * 255).round().clamp(0, 255).to(torch.uint8) if rgb.dtype != torch.uint8 else rgb
    colors = rgb.permute(0, 2, 3, 1)[ok]
    pts = world[ok]
    size = float(d[ok].median()) / float(K[:, 0, 0].double().median()) * stride * 1.5
    return Points(pts.numpy().astype(np.float32), colors.numpy().astype(np.uint8), size)


def _load_grid(path: Path, view: int | None, max_points: int) -> Viewable:
    grid = read_grid(path)
    V, T = grid.views, grid.times
    if view is not None and not 0 <= view < V:
        raise InputError(f"view {view} is outside the grid's views 0..{V - 1}")
    H, W = grid.frames.shape[-2:]
    paths = _grid_paths(grid.w2c, grid.K, H, W)
    notes = []
    shown: list[list[int]] = [[view] if view is not None else list(range(V))]
    look = None
    if grid.depth is None:
        notes.append(f"{path} has no depth.npz: showing the camera paths only")
    else:
        valid = grid.valid if grid.valid is not None else grid.depth > 0
        good = grid.depth[valid]
        look = float(good.median()) if good.numel() else None

    @functools.lru_cache(maxsize=CACHED_STEPS)
    def lift(i: int, views: tuple[int, ...]) -> Points | None:
        idx = list(views)
        valid = grid.valid[idx, i] if grid.valid is not None else grid.depth[idx, i] > 0
        return lift_points(grid.frames[idx, i], grid.depth[idx, i], valid, grid.w2c[idx, i], grid.K[idx, i], max_points)

    def at(i: int) -> Points | None:
        return None if grid.depth is None else lift(int(i), tuple(shown[0]))

    def set_views(views: list[int] | None) -> None:
        shown[0] = list(range(V)) if views is None else [v for v in views if 0 <= v < V]

    return Viewable("grid", path, T, float(grid.fps), [float(t) for t in grid.time], at, paths, (H, W), look, notes,
                    views=V, set_views=set_views)


def _load_render(path: Path, max_points: int) -> Viewable:
    try:
        traj = Trajectory.load(path / "trajectory.json")
    except TrajectoryError as e:
        raise InputError(str(e)) from None
    sbs = path / "side_by_side.mp4"
    fps = probe_video(sbs).fps or 24.0
    notes: list[str] = []
    paths: list[CameraPath] = []
    source = None
    if (path / "cameras.json").is_file():
        try:
            source = Trajectory.load(path / "cameras.json")
        except TrajectoryError as e:
            raise InputError(str(e)) from None
        paths.append(CameraPath("source", "source", source.w2c, source.K, source.height, source.width))
    else:
        notes.append(f"{path} has no cameras.json (an output of an older vnvs render): the source cameras are unknown")
    paths.append(CameraPath("target", "target", traj.w2c, traj.K, traj.height, traj.width))
    n_times = len(source) if source is not None else int(traj.times.max()) + 1
    frame_of: dict[int, torch.Tensor] = {}
    look = None
    if source is None:
        pass
    elif not (path / "depth.npz").is_file():
        notes.append(f"{path} has no depth.npz (render with --save-depth to see the frames in 3D): "
                     "showing the camera paths only")
    else:
        maps = load_depth(path / "depth.npz", allow_invalid=True)
        if maps.depth.shape[1:] != (source.height, source.width) or maps.depth.shape[0] != len(source):
            raise InputError(f"{path}/depth.npz holds {tuple(maps.depth.shape)} maps; cameras.json has "
                             f"{len(source)} frames of {source.height}x{source.width}")
        valid = maps.valid if maps.valid is not None else maps.depth > 0
        good = maps.depth[valid]
        look = float(good.median()) if good.numel() else None
        frame_of = source_frames(sbs, traj, (source.height, source.width))
    shown = sorted(frame_of)

    @functools.lru_cache(maxsize=CACHED_STEPS)
    def lift(t: int) -> Points | None:
        return lift_points(frame_of[t][None], maps.depth[t : t + 1], valid[t : t + 1], source.w2c[t : t + 1],
                           source.K[t : t + 1], max_points)

    def at(i: int) -> Points | None:
        if not shown:
            return None
        return lift(min(shown, key=lambda t: (abs(t - i), t)))  # a source frame no target frame showed: the nearest

    times = [i / max(n_times - 1, 1) for i in range(n_times)]
    size = (source.height, source.width) if source is not None else (traj.height, traj.width)
    return Viewable("render", path, n_times, float(fps), times, at, paths, size, look, notes)


def source_frames(side_by_side: Path, traj: Trajectory, size: tuple[int, int]) -> dict[int, torch.Tensor]:
    """The source frames a render output holds: ``{source time: (3, H, W) uint8}``, cut from the left panel of
    ``side_by_side.mp4`` (frame ``i`` shows source frame ``traj.times[i]``) and resized back to ``size``."""
    H, W = size
    times = traj.times.tolist()
    first: dict[int, int] = {}
    for i, t in enumerate(times):
        first.setdefault(int(t), i)
    try:
        decoded, _ = read_frames_at(side_by_side, sorted(first.values()))
    except VnvsError as e:
        raise InputError(str(e)) from None
    out = {}
    for t, i in first.items():
        if i not in decoded:
            continue
        img = decoded[i]
        panel_h = img.shape[0]  # side_by_side scales every panel to the tallest height
        panel_w = max(1, round(W * panel_h / H))
        panel = img[:, :panel_w]
        if panel.shape[:2] != (H, W):
            panel = cv2.resize(np.ascontiguousarray(panel), (W, H), interpolation=cv2.INTER_AREA)
        out[t] = torch.from_numpy(np.ascontiguousarray(panel)).permute(2, 0, 1)
    return out


# --------------------------------------------------------------------------------------------------
# Cameras: viser <-> vnvs


def viser_to_opencv(position, wxyz, fov: float, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A viser camera (``position``, ``wxyz``, vertical ``fov`` in radians) as vnvs ``(w2c (4, 4), K (3, 3))``.

    viser's camera is OpenCV-oriented (x right, y down, z forward): ``wxyz`` rotates camera axes into the
    world (``P_world = R p_camera + position``). ``K`` has square pixels, the principal point at the image
    centre ``((W - 1) / 2, (H - 1) / 2)`` and ``fy = (H / 2) / tan(fov / 2)`` (the image spans ``H`` pixels edge
    to edge), for a ``height x width`` image.

    Example:
        >>> w2c, K = viser_to_opencv((0.0, 0.0, -5.0), (1.0, 0.0, 0.0, 0.0), math.radians(90), 100, 200)
        >>> w2c[:3, 3].tolist(), round(K[1, 1].item(), 9), K[0, 2].item()
        ([0.0, 0.0, 5.0], 50.0, 99.5)
    """
    if not (0 < float(fov) < math.pi):
        raise InputError(f"camera field of view must be in (0, pi) radians, got {fov}")
    q = torch.as_tensor(np.asarray(wxyz, dtype=np.float64))
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = quaternion_to_matrix(q)
    c2w[:3, 3] = torch.as_tensor(np.asarray(position, dtype=np.float64))
    f = (height / 2.0) / math.tan(float(fov) / 2.0)
    K = torch.tensor([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return invert_se3(c2w), K


def opencv_to_viser(w2c: torch.Tensor, K: torch.Tensor, height: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The inverse of :func:`viser_to_opencv`: ``(position (3,), wxyz (4,), vertical fov in radians)``."""
    c2w = invert_se3(torch.as_tensor(w2c).double())
    wxyz = matrix_to_quaternion(c2w[:3, :3])
    fov = 2.0 * math.atan((height / 2.0) / float(K[1, 1]))
    return c2w[:3, 3].numpy(), wxyz.numpy(), fov


# --------------------------------------------------------------------------------------------------
# Trajectory editor


@dataclass
class Keyframe:
    """A camera recorded from the browser."""

    w2c: torch.Tensor
    """``(4, 4)`` float64 world-to-camera (OpenCV)."""
    fov: float
    """Vertical field of view in radians."""
    time: int
    """Time step shown when it was recorded (grid column, source frame)."""


def keyframe_from_viser(position, wxyz, fov: float, time: int) -> Keyframe:
    """A :class:`Keyframe` from a viser client's camera and the time step shown."""
    w2c, _ = viser_to_opencv(position, wxyz, fov, 2, 2)
    return Keyframe(w2c, float(fov), int(time))


def keyframes_to_trajectory(keyframes: list[Keyframe], num_frames: int, size: tuple[int, int], *,
                            keyframe_times: bool = False, meta: dict | None = None) -> Trajectory:
    """The camera path through ``keyframes``: ``num_frames`` frames of a ``size`` ``(H, W)`` image.

    Keyframes are spread evenly over the frames and interpolated as vnvs resamples trajectories
    (:meth:`Trajectory.resample`: rotation slerp, camera-centre lerp, intrinsics linearly). With
    ``keyframe_times`` every frame carries a time index interpolated between the keyframes' time steps
    (bullet time, slow motion, rewind); otherwise none, so frame ``i`` shows time ``i`` and readers spread
    the path over the whole clip.
    """
    if not keyframes:
        raise InputError("no keyframes: add at least one before saving")
    if num_frames < 1:
        raise InputError(f"the saved trajectory needs at least 1 frame, got {num_frames}")
    H, W = int(size[0]), int(size[1])
    w2c = torch.stack([k.w2c.double() for k in keyframes])
    K = torch.stack([viser_to_opencv((0, 0, 0), (1, 0, 0, 0), k.fov, H, W)[1] for k in keyframes])
    times = torch.tensor([k.time for k in keyframes], dtype=torch.int64)
    keys = Trajectory(w2c.float(), K.float(), H, W, times, dict(meta or {}))
    traj = keys.resample(num_frames)
    if not keyframe_times:
        traj.time_index = None
    return traj


def save_keyframes(path: str | Path, keyframes: list[Keyframe], num_frames: int, size: tuple[int, int], *,
                   keyframe_times: bool = False, meta: dict | None = None) -> Trajectory:
    """Write :func:`keyframes_to_trajectory` as a vnvs trajectory JSON (atomically); returns the trajectory."""
    traj = keyframes_to_trajectory(keyframes, num_frames, size, keyframe_times=keyframe_times, meta=meta)
    traj.save(path)
    return traj


__all__ = ["CameraPath", "Keyframe", "Points", "Splats", "Viewable", "detect_kind", "keyframe_from_viser",
           "keyframes_to_trajectory", "lift_points", "load_viewable", "opencv_to_viser", "save_keyframes",
           "source_frames", "viser_to_opencv"]
