"""Cameras and videos of synthetic scenes: source camera paths, source videos, target views and
time x view grids."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vnvs.cameras.camera import default_intrinsics
from vnvs.geometry.se3 import invert_se3, look_at
from vnvs.errors import InputError
from vnvs.synthetic.render import RenderOutput, _as_batch, render
from vnvs.synthetic.scene import DEFAULT_EYE, Scene

SOURCE_MOTIONS = ("gentle", "static", "orbit", "dolly", "pan")


def source_camera_path(scene: Scene, num_frames: int, height: int, width: int, seed: int = 0,
                       motion: str = "gentle", fov_deg: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras of a monocular source video looking at the scene centre.

    The camera sits about 4.5 units from the scene centre, slightly above it (``y`` down), with the
    objects in view. ``motion``:

    * ``"gentle"`` (default): a small random arc (5-12 degrees of azimuth) with a slight height bob
      and dolly, like a hand-held camera;
    * ``"static"``: a fixed camera;
    * ``"orbit"``: a 30-45 degree arc around the centre;
    * ``"dolly"``: moves towards the centre (4.5 -> 3.6 units);
    * ``"pan"``: fixed position, the look-at point sweeps sideways.

    Args:
        scene: the scene (its centre is the look-at point).
        num_frames: ``N``.
        height, width: image size of ``K``.
        seed: seed of the random path parameters.
        motion: one of :data:`SOURCE_MOTIONS`.
        fov_deg: field of view across the longer image side, degrees (see `vnvs.cameras.default_intrinsics`).

    Returns:
        ``w2c`` ``(N, 4, 4)`` and ``K`` ``(N, 3, 3)``.
    """
    if motion not in SOURCE_MOTIONS:
        raise InputError(f"unknown source motion {motion!r}; choose from {', '.join(SOURCE_MOTIONS)}")
    if num_frames < 1:
        raise InputError("num_frames must be >= 1")
    rng = np.random.default_rng(int(seed))
    s = np.linspace(0.0, 1.0, num_frames)
    base = np.array(DEFAULT_EYE)
    r0 = float(np.hypot(base[0], base[2]))
    az0 = rng.uniform(-0.15, 0.15)
    sign = rng.choice([-1.0, 1.0])
    target = np.tile(scene.center.numpy().astype(np.float64), (num_frames, 1))
    radius = np.full(num_frames, r0)
    height_y = np.full(num_frames, base[1])
    az = np.full(num_frames, az0)
    if motion == "gentle":
        sweep = math.radians(rng.uniform(5, 12)) * sign
        az = az0 + sweep * (s - 0.5)
        height_y = base[1] + 0.15 * np.sin(2 * math.pi * (s * rng.uniform(0.5, 1.0) + rng.uniform()))
        radius = r0 + 0.25 * np.sin(math.pi * s * rng.uniform(0.5, 1.0))
    elif motion == "orbit":
        sweep = math.radians(rng.uniform(30, 45)) * sign
        az = az0 + sweep * (s - 0.5)
    elif motion == "dolly":
        radius = r0 - 0.9 * s
    elif motion == "pan":
        target[:, 0] += sign * 1.2 * (s - 0.5)
    eye = np.stack([radius * np.sin(az), height_y, -radius * np.cos(az)], -1)
    w2c = look_at(torch.as_tensor(eye, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32))
    return w2c, default_intrinsics(height, width, fov_deg).expand(num_frames, 3, 3).clone()


def orbit_camera(w2c: torch.Tensor, degrees: float, center: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate cameras about the vertical (world y) axis through ``center`` by ``degrees``.

    The camera keeps its orientation relative to the centre (it orbits, still looking at the same
    point). ``w2c`` ``(..., 4, 4)``; ``center`` defaults to the origin.
    """
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    Ry = torch.tensor([[c, 0.0, s, 0.0], [0.0, 1.0, 0.0, 0.0], [-s, 0.0, c, 0.0], [0.0, 0.0, 0.0, 1.0]])
    T = torch.eye(4)
    if center is not None:
        T[:3, 3] = torch.as_tensor(center, dtype=torch.float32)
    M = T @ Ry @ invert_se3(T)  # world motion applied to the camera
    return w2c @ invert_se3(M)


@dataclass
class SourceVideo:
    """A rendered source video.

    Attributes:
        frames: ``(N, 3, H, W)`` float32 in [0, 1].
        depth: ``(N, H, W)`` float32 z-depth (> 0).
        instance: ``(N, H, W)`` int64 instance ids.
        w2c: ``(N, 4, 4)``; K: ``(N, 3, 3)``; times: ``(N,)`` in [0, 1].
    """

    frames: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor
    w2c: torch.Tensor
    K: torch.Tensor
    times: torch.Tensor


def clip_times(num_frames: int) -> torch.Tensor:
    """Frame times of an ``N``-frame clip: ``linspace(0, 1, N)`` (``[0]`` for one frame)."""
    return torch.linspace(0.0, 1.0, num_frames) if num_frames > 1 else torch.zeros(1)


def render_source_video(scene: Scene, num_frames: int = 49, size: tuple[int, int] = (256, 256), seed: int = 0,
                        motion: str = "gentle", fov_deg: float = 60.0) -> SourceVideo:
    """Render the monocular source video of a scene along :func:`source_camera_path`.

    Frame ``i`` is at time ``i / (N - 1)``.
    """
    H, W = size
    w2c, K = source_camera_path(scene, num_frames, H, W, seed=seed, motion=motion, fov_deg=fov_deg)
    times = clip_times(num_frames)
    out = render(scene, w2c, K, H, W, times, local_points=False)
    return SourceVideo(out.rgb, out.depth, out.instance, w2c, K, times)


def render_views(scene: Scene, w2c, K, height: int, width: int, times, **kwargs) -> RenderOutput:
    """Ground-truth video along a target trajectory with any per-frame times (a constant time is
    bullet time). Same arguments as :func:`vnvs.synthetic.render.render`."""
    return render(scene, w2c, K, height, width, times, **kwargs)


@dataclass
class GridOutput:
    """A time x view grid: ``rgb`` ``(T, V, 3, H, W)``, ``depth`` / ``instance`` ``(T, V, H, W)``."""

    rgb: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor


def render_grid(scene: Scene, view_w2c, view_K, times, height: int, width: int) -> GridOutput:
    """Render every view at every time.

    Args:
        view_w2c: ``(V, 4, 4)``; view_K: ``(V, 3, 3)`` or ``(3, 3)``; times: ``(T,)``.

    Returns:
        :class:`GridOutput` with ``(T, V, ...)`` tensors.
    """
    view_w2c, view_K, _ = _as_batch(view_w2c, view_K, 0.0)
    V = view_w2c.shape[0]
    times = torch.as_tensor(times, dtype=torch.float32).reshape(-1)
    T = times.shape[0]
    out = render(scene, view_w2c.repeat(T, 1, 1), view_K.repeat(T, 1, 1), height, width,
                 times.repeat_interleave(V), local_points=False)
    return GridOutput(out.rgb.reshape(T, V, 3, height, width), out.depth.reshape(T, V, height, width),
                      out.instance.reshape(T, V, height, width))


def look_at_depth(scene: Scene, video: SourceVideo) -> float:
    """Median depth of a source video (the depth of the look-at point for target trajectories).

    ``scene`` is unused (kept for symmetry with :meth:`Scene.median_depth`, which renders the depth
    itself for any cameras)."""
    return float(video.depth.median())
