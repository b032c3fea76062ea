"""Procedural dynamic 4D scenes: a textured room plus rigidly moving textured objects.

World frame: OpenCV-style, **y points down** (the floor is at ``y = +floor_y``, the ceiling at a
negative ``y``), x right, z forward (away from the default source camera). The scene centre is the
origin. Time is a float ``t`` in ``[0, 1]`` over the whole clip (0 = first frame, 1 = last frame);
object poses are analytic functions of ``t`` (see :meth:`Scene.poses`).

Every random choice comes from a ``numpy.random.Generator`` seeded with the scene seed, so the same
seed gives the same scene (and bit-identical CPU renders).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vnvs.geometry.se3 import axis_angle_to_matrix
from vnvs.errors import InputError

#: Shape kinds of objects (instance ids start at 1; 0 is the room).
SPHERE, ELLIPSOID, BOX = 0, 1, 2
KIND_NAMES = {SPHERE: "sphere", ELLIPSOID: "ellipsoid", BOX: "box"}

#: Number of per-instance texture parameters (see :mod:`vnvs.synthetic.textures`).
TEXTURE_PARAMS = 38


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of :func:`generate_scene`. All lengths are in scene units (the default source camera
    sits about 4.5 units from the scene centre)."""

    min_objects: int = 4
    """Fewest objects in the scene (inclusive)."""
    max_objects: int = 7
    """Most objects in the scene (inclusive)."""
    static: bool = False
    """If True every object is still (no translation, no rotation): a static scene."""
    room_half_width: float = 6.0
    """Half extent of the room along x and z (walls at ``x = +-w``, ``z = +-w``)."""
    floor_y: float = 1.2
    """Height of the floor plane (``y`` down, so the floor is at ``y = +floor_y``)."""
    ceiling_y: float = -3.8
    """Height of the ceiling plane (negative: above the scene centre)."""
    object_size: tuple[float, float] = (0.3, 0.65)
    """Range of the object "radius" (sphere radius, ellipsoid semi-axes, box half extents)."""
    placement_half_extent: tuple[float, float, float] = (1.8, 0.6, 1.4)
    """Object centres are drawn in ``[-e, e]`` per axis around the scene centre (x, y, z)."""
    motion_speed: float = 0.6
    """Peak translation amplitude of an object over the clip (scene units); 0 = no translation."""
    rotation_speed: float = 2.0
    """Largest total rotation angle of an object over the clip (radians); 0 = no rotation."""
    texture_scale: float = 1.0
    """Multiplies every texture period: larger = coarser, smoother textures (less aliasing)."""
    occlusion_prob: float = 0.5
    """Probability that a new object is placed partly behind an earlier one (seen from the
    default source camera), so objects occlude each other."""
    light_dir: tuple[float, float, float] = (-0.45, -0.8, -0.4)
    """Direction from the scene towards the (infinitely far) light, world frame (y down: up-ish)."""
    ambient: float = 0.3
    """Ambient shading term in [0, 1]; the rest is (wrapped) Lambertian."""
    kinds: tuple[int, ...] = (SPHERE, ELLIPSOID, BOX)
    """Object kinds to draw from (:data:`SPHERE`, :data:`ELLIPSOID`, :data:`BOX`)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects:
            raise InputError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not self.ceiling_y < 0 < self.floor_y:
            raise InputError("need ceiling_y < 0 < floor_y (y points down)")
        if self.texture_scale <= 0:
            raise InputError("texture_scale must be > 0")
        if not self.kinds or any(k not in KIND_NAMES for k in self.kinds):
            raise InputError(f"kinds must be a non-empty subset of {sorted(KIND_NAMES)}")


#: Where the default source camera sits (used for placing occluding objects).
DEFAULT_EYE = (0.0, -0.9, -4.5)


@dataclass
class Scene:
    """A procedural dynamic scene (all tensors float32 on the CPU; ``O`` objects).

    Attributes:
        seed: the seed it was generated from.
        config: the :class:`SceneConfig` used.
        kinds: ``(O,)`` int64 shape kind per object (:data:`SPHERE`, :data:`ELLIPSOID`, :data:`BOX`).
        sizes: ``(O, 3)`` semi-axes (spheres, ellipsoids) or half extents (boxes), object frame.
        centers: ``(O, 3)`` mean position of each object over the clip.
        amplitudes: ``(O, 2, 3)`` translation amplitudes of two sinusoids.
        frequencies: ``(O, 2)`` their frequencies in cycles per clip.
        phases: ``(O, 2)`` their phases (radians).
        rot_axes: ``(O, 3)`` unit rotation axes (world frame).
        rot_speeds: ``(O,)`` rotation angle over the whole clip (radians).
        rot0: ``(O, 3, 3)`` object orientation at ``t = 0``.
        textures: ``(O + 1, TEXTURE_PARAMS)`` texture parameters; row 0 is the room.
        room_min, room_max: ``(3,)`` the room box corners.
        light_dir: ``(3,)`` unit direction towards the light.
        ambient: ambient shading term.
    """

    seed: int
    config: SceneConfig
    kinds: torch.Tensor
    sizes: torch.Tensor
    centers: torch.Tensor
    amplitudes: torch.Tensor
    frequencies: torch.Tensor
    phases: torch.Tensor
    rot_axes: torch.Tensor
    rot_speeds: torch.Tensor
    rot0: torch.Tensor
    textures: torch.Tensor
    room_min: torch.Tensor
    room_max: torch.Tensor
    light_dir: torch.Tensor
    ambient: float
    center: torch.Tensor = field(default_factory=lambda: torch.zeros(3))

    @property
    def num_objects(self) -> int:
        return int(self.kinds.shape[0])

    @property
    def static(self) -> bool:
        return bool((self.amplitudes == 0).all() and (self.rot_speeds == 0).all())

    def select(self, objects) -> "Scene":
        """A copy holding only the given objects (0-based object indices; their instance ids
        become ``1..len(objects)`` in the given order). Useful to build controlled test cases."""
        idx = torch.as_tensor(list(objects), dtype=torch.int64).reshape(-1)
        return replace(
            self, kinds=self.kinds[idx], sizes=self.sizes[idx], centers=self.centers[idx],
            amplitudes=self.amplitudes[idx], frequencies=self.frequencies[idx], phases=self.phases[idx],
            rot_axes=self.rot_axes[idx], rot_speeds=self.rot_speeds[idx], rot0=self.rot0[idx],
            textures=torch.cat([self.textures[:1], self.textures[1:][idx]]),
        )

    def poses(self, times: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Object poses at the given times.

        ``X_world = R(t) @ X_local + p(t)`` with ``R(t) = Rot(axis, speed * t) @ R0`` and
        ``p(t) = center + sum_k A_k sin(2 pi f_k t + phi_k)``.

        Args:
            times: ``(N,)`` times in ``[0, 1]`` (a float is one time).

        Returns:
            ``R`` ``(N, O, 3, 3)`` and ``p`` ``(N, O, 3)``.
        """
        t = torch.as_tensor(times, dtype=torch.float32).reshape(-1)
        arg = 2 * math.pi * self.frequencies[None] * t[:, None, None] + self.phases[None]  # (N,O,2)
        p = self.centers[None] + (torch.sin(arg)[..., None] * self.amplitudes[None]).sum(-2)
        aa = self.rot_axes[None] * (self.rot_speeds[None] * t[:, None])[..., None]  # (N,O,3)
        R = axis_angle_to_matrix(aa) @ self.rot0[None]
        return R, p

    def transform_points(self, local: torch.Tensor, instance: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Move object-local points to world coordinates at per-frame times.

        Args:
            local: ``(N, 3, H, W)`` points in the local frame of ``instance`` (room: world frame).
            instance: ``(N, H, W)`` int64 instance ids (0 = room).
            times: ``(N,)`` times.

        Returns:
            ``(N, 3, H, W)`` world points.
        """
        N, _, H, W = local.shape
        R, p = self.poses(times)
        eye = torch.eye(3).expand(N, 1, 3, 3)
        R = torch.cat([eye, R], 1)  # (N, O+1, 3, 3): index by instance id directly
        p = torch.cat([torch.zeros(N, 1, 3), p], 1)
        idx = instance.reshape(N, -1)
        Rg = torch.gather(R.reshape(N, -1, 9), 1, idx[..., None].expand(-1, -1, 9)).reshape(N, -1, 3, 3)
        pg = torch.gather(p, 1, idx[..., None].expand(-1, -1, 3))
        X = local.reshape(N, 3, -1).transpose(1, 2)  # (N, P, 3)
        Xw = (Rg @ X[..., None])[..., 0] + pg
        return Xw.transpose(1, 2).reshape(N, 3, H, W)


def _palette(rng: np.random.Generator, muted: bool) -> np.ndarray:
    h = rng.uniform()
    if muted:
        sat, val = rng.uniform(0.3, 0.55), rng.uniform(0.6, 0.9)
    else:
        sat, val = rng.uniform(0.55, 0.9), rng.uniform(0.7, 0.98)
    h2 = (h + rng.uniform(0.25, 0.6)) % 1.0
    h3 = (h + rng.uniform(-0.12, 0.12)) % 1.0
    c1 = colorsys.hsv_to_rgb(h, sat, val)
    c2 = colorsys.hsv_to_rgb(h2, sat * rng.uniform(0.6, 1.0), val * rng.uniform(0.55, 0.85))
    c3 = colorsys.hsv_to_rgb(h3, min(1.0, sat * 1.1), min(1.0, val * 1.1))
    return np.array([c1, c2, c3], dtype=np.float64).reshape(-1)


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _texture_params(rng: np.random.Generator, scale: float, room: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """One row of texture parameters (layout documented in :mod:`vnvs.synthetic.textures`)."""
    out = np.zeros(TEXTURE_PARAMS)
    out[0:9] = _palette(rng, muted=room is not None)
    # Three low-frequency plane waves (period >= 0.9 * scale for objects, larger for the room).
    base = 2.5 if room is not None else 1.0
    periods = base * scale * rng.uniform(0.9, 2.5, size=3)
    out[9:18] = (_random_unit(rng, 3) * (2 * math.pi / periods)[:, None]).reshape(-1)
    out[18:21] = rng.uniform(0, 2 * math.pi, size=3)
    amps = rng.uniform(0.2, 1.0, size=3)
    out[21:24] = amps / amps.sum()
    # Smoothed 3D checker: sign(prod_i sin(pi (x_i + o_i) / a_i)) softened by tanh.
    if room is not None:
        lo, hi = room
        half = (hi - lo) / 2
        cells = np.maximum(1, np.round(2 * half / (1.2 * scale)))  # a_i * n_i = 2 half_i
        a = 2 * half / cells
        out[24:27] = 1.0 / a
        out[27:30] = a / 2 - hi  # every room face sits mid-cell along its constant axis
        out[30] = 2.0
        out[31] = 1.0
    else:
        a = scale * rng.uniform(0.22, 0.4)
        out[24:27] = 1.0 / a
        out[27:30] = rng.uniform(0, 2 * a, size=3)
        out[30] = rng.uniform(1.2, 2.2)
        out[31] = rng.uniform(0.0, 1.0)
    # Soft stripes along a random direction.
    period = scale * (rng.uniform(0.5, 0.9) if room is None else rng.uniform(1.6, 2.4))
    out[32:35] = _random_unit(rng, 1)[0] * (2 * math.pi / period)
    out[35] = rng.uniform(0, 2 * math.pi)
    out[36] = rng.uniform(1.0, 2.0)
    out[37] = rng.uniform(0.0, 1.0) if room is None else 0.35
    if out[31] + out[37] < 0.3:
        out[31] += 0.5
    return out


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Generate a procedural dynamic scene.

    Args:
        seed: integer seed; the same seed (and config) gives the same scene.
        config: a :class:`SceneConfig` (defaults to ``SceneConfig()``).

    Returns:
        A :class:`Scene`.

    Example:
        >>> scene = generate_scene(0)
        >>> scene.num_objects >= 4
        True
    """
    cfg = config or SceneConfig()
    rng = np.random.default_rng(int(seed))
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    ext = np.array(cfg.placement_half_extent)
    eye = np.array(DEFAULT_EYE)
    kinds, sizes, centers, radii = [], [], [], []
    for i in range(n):
        kind = int(cfg.kinds[int(rng.integers(len(cfg.kinds)))])
        lo, hi = cfg.object_size
        if kind == SPHERE:
            s = np.full(3, rng.uniform(lo, hi))
        elif kind == ELLIPSOID:
            s = rng.uniform(lo, hi * 1.2, size=3)
        else:
            s = rng.uniform(lo * 0.8, hi * 0.9, size=3)
        r = float(np.linalg.norm(s) if kind == BOX else s.max())
        c = None
        for _ in range(200):
            if centers and rng.uniform() < cfg.occlusion_prob:
                j = int(rng.integers(len(centers)))
                d = centers[j] - eye
                d /= np.linalg.norm(d)
                lateral = _random_unit(rng, 1)[0]
                lateral -= lateral.dot(d) * d
                lateral /= np.linalg.norm(lateral) + 1e-9
                cand = centers[j] + d * rng.uniform(1.0, 2.0) * (r + radii[j]) + lateral * rng.uniform(0.3, 0.9) * (r + radii[j])
            else:
                cand = rng.uniform(-ext, ext)
            ok = np.all(np.abs(cand) <= ext * 1.5) and all(
                np.linalg.norm(cand - cc) > 1.05 * (r + rr) for cc, rr in zip(centers, radii))
            ok = ok and cand[1] + r < cfg.floor_y - 0.05
            if ok:
                c = cand
                break
        if c is None:  # crowded: give up on this object
            continue
        kinds.append(kind)
        sizes.append(s)
        centers.append(c)
        radii.append(r)
    m = len(kinds)
    amplitudes = np.zeros((m, 2, 3))
    frequencies = rng.uniform(0.3, 1.0, size=(m, 2))
    phases = rng.uniform(0, 2 * math.pi, size=(m, 2))
    rot_axes = _random_unit(rng, m)
    rot_speeds = rng.uniform(0.3, 1.0, size=m) * cfg.rotation_speed * rng.choice([-1, 1], size=m)
    rot0 = _random_unit(rng, m) * rng.uniform(0, math.pi, size=(m, 1))
    amp_dirs = _random_unit(rng, 2 * m).reshape(m, 2, 3)
    amp_dirs[..., 1] *= 0.4  # mostly horizontal motion
    amplitudes = amp_dirs * rng.uniform(0.3, 1.0, size=(m, 2, 1)) * cfg.motion_speed / 2
    # Keep objects above the floor whatever their motion: clip the vertical amplitude.
    for i in range(m):
        room_left = cfg.floor_y - 0.02 - (centers[i][1] + radii[i])
        vert = np.abs(amplitudes[i, :, 1]).sum()
        if vert > room_left:
            amplitudes[i, :, 1] *= max(room_left, 0.0) / vert
    if cfg.static:
        amplitudes[:] = 0
        rot_speeds[:] = 0
    room_min = np.array([-cfg.room_half_width, cfg.ceiling_y, -cfg.room_half_width])
    room_max = np.array([cfg.room_half_width, cfg.floor_y, cfg.room_half_width])
    tex = [_texture_params(rng, cfg.texture_scale, (room_min, room_max))]
    tex += [_texture_params(rng, cfg.texture_scale, None) for _ in range(m)]
    light = np.array(cfg.light_dir, dtype=np.float64)
    light /= np.linalg.norm(light)

    def f(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    return Scene(
        seed=int(seed), config=cfg,
        kinds=torch.as_tensor(kinds, dtype=torch.int64).reshape(m),
        sizes=f(np.array(sizes).reshape(m, 3)),
        centers=f(np.array(centers).reshape(m, 3)),
        amplitudes=f(amplitudes.reshape(m, 2, 3)), frequencies=f(frequencies), phases=f(phases),
        rot_axes=f(rot_axes), rot_speeds=f(rot_speeds),
        rot0=axis_angle_to_matrix(f(rot0.reshape(m, 3))),
        textures=f(np.stack(tex)), room_min=f(room_min), room_max=f(room_max),
        light_dir=f(light), ambient=float(cfg.ambient),
    )
