"""Preset camera paths relative to the source video's cameras (``orbit:30``, ``dolly:0.3``, ...).

Every preset is an offset expressed in the source camera's own frame and applied per frame, around
a look-at point at distance ``d = look_at_depth`` along the source optical axis. Sign conventions
and the spec grammar are documented in ``docs/trajectories.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vnvs.cameras.camera import Cameras
from vnvs.geometry.se3 import invert_se3
from vnvs.cameras.trajectory import Trajectory
from vnvs.errors import TrajectoryError

PRESETS: dict[str, str] = {
    "orbit": "orbit:DEG - circle the look-at point horizontally; + moves the camera right",
    "arc": "arc:DEG - circle the look-at point vertically; + moves the camera up",
    "dolly": "dolly:FRACTION - move along the optical axis by FRACTION of the look-at distance; + moves in",
    "pan": "pan:DEG - turn in place; + turns right",
    "tilt": "tilt:DEG - turn in place; + looks up",
    "zoom": "zoom:FACTOR - multiply the focal length (pose unchanged); > 1 zooms in",
    "translate": "translate:DX,DY,DZ - move in the camera frame (x right, y down, z forward), units of the look-at distance",
    "spiral": "spiral:DEG - orbit whose yaw/pitch trace one circle of growing radius DEG",
    "bullet": "bullet:DEG[@FRAME] - freeze time at FRAME (default middle) while orbiting DEG",
}
_NUM_PARAMS = {"translate": 3}
MODES = ("gradual", "direct")


@dataclass(frozen=True)
class PresetStep:
    """One parsed component of a preset spec."""

    name: str
    """Preset name (a key of :data:`PRESETS`)."""
    params: tuple[float, ...]
    """Numeric parameters, in spec order."""
    frame: int | None = None
    """Freeze frame of ``bullet`` (``None``: the middle frame)."""


def _valid() -> str:
    return "valid presets: " + ", ".join(f"{n}:{'DX,DY,DZ' if n == 'translate' else 'X'}" for n in PRESETS)


def parse_preset(spec: str) -> list[PresetStep]:
    """Parse ``name:params[+name:params...]`` into steps; raises :class:`TrajectoryError`.

    Example:
        >>> parse_preset("orbit:30+translate:0.1,0,0.2")[1].params
        (0.1, 0.0, 0.2)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TrajectoryError(f"empty trajectory spec; {_valid()}")
    steps = []
    for part in spec.replace(" ", "").split("+"):
        name, sep, rest = part.partition(":")
        name = name.lower()
        if name not in PRESETS:
            raise TrajectoryError(f"unknown trajectory preset {name!r} in {spec!r}; {_valid()}")
        if not sep or not rest:
            raise TrajectoryError(f"preset {name!r} needs parameters, e.g. {PRESETS[name].split(' ')[0]}; {_valid()}")
        frame = None
        if name == "bullet" and "@" in rest:
            rest, _, frame_text = rest.partition("@")
            try:
                frame = int(frame_text)
            except ValueError:
                raise TrajectoryError(f"bullet freeze frame must be an integer, got {frame_text!r}") from None
        try:
            params = tuple(float(x) for x in rest.split(","))
        except ValueError:
            raise TrajectoryError(f"bad number in preset {part!r}; {_valid()}") from None
        if not all(math.isfinite(p) for p in params):
            raise TrajectoryError(f"preset {part!r} has a non-finite parameter")
        expected = _NUM_PARAMS.get(name, 1)
        if len(params) != expected:
            raise TrajectoryError(f"preset {name!r} takes {expected} parameter(s), got {len(params)} in {part!r}; {_valid()}")
        if name == "zoom" and params[0] <= 0:
            raise TrajectoryError(f"zoom factor must be > 0, got {params[0]:g}")
        steps.append(PresetStep(name, params, frame))
    if sum(s.name == "bullet" for s in steps) > 1:
        raise TrajectoryError(f"at most one bullet per spec, got {spec!r}")
    return steps


def _translation(v: torch.Tensor) -> torch.Tensor:
    M = torch.eye(4, dtype=v.dtype).repeat(v.shape[0], 1, 1)
    M[:, :3, 3] = v
    return M


def _rotation(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """``(N, 4, 4)`` rotations by ``angle`` (radians) about camera axis 0 (x) or 1 (y)."""
    c, s = torch.cos(angle), torch.sin(angle)
    M = torch.eye(4, dtype=angle.dtype).repeat(angle.shape[0], 1, 1)
    if axis == 0:
        M[:, 1, 1], M[:, 1, 2], M[:, 2, 1], M[:, 2, 2] = c, -s, s, c
    else:
        M[:, 0, 0], M[:, 0, 2], M[:, 2, 0], M[:, 2, 2] = c, s, -s, c
    return M


def _about(R: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return _translation(p) @ R @ _translation(-p)


def orbit_offset(yaw_deg: torch.Tensor, pitch_deg: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Camera-frame offsets rotating a camera about ``point`` while it keeps facing it.

    Positive yaw moves the camera to its right, positive pitch moves it up (OpenCV: towards -y).
    The new camera-to-world is ``c2w @ offset``.

    Args:
        yaw_deg: ``(N,)`` degrees about the camera's y axis through ``point``.
        pitch_deg: ``(N,)`` degrees about the camera's x axis through ``point`` (applied after yaw, in
            the yawed frame).
        point: ``(N, 3)`` pivot in camera coordinates.

    Returns:
        ``(N, 4, 4)`` offsets.

    Example:
        >>> M = orbit_offset(torch.tensor([90.0]), torch.tensor([0.0]), torch.tensor([[0.0, 0.0, 1.0]]))
        >>> M[0, :3, 3].round(decimals=6)  # a quarter turn right of a point 1 ahead
        tensor([1., 0., 1.])
    """
    R = _rotation(1, -torch.deg2rad(yaw_deg)) @ _rotation(0, -torch.deg2rad(pitch_deg))
    return _about(R, point)


def preset_offsets(
    steps: list[PresetStep], num_frames: int, look_at_depth: float, mode: str = "gradual"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame camera-frame offsets and focal factors of parsed preset steps.

    Steps compose in order; each acts in the camera frame left by the previous ones and all of them
    pivot about the same look-at point (initially ``(0, 0, d)`` in the source camera frame).

    Args:
        steps: parsed spec.
        num_frames: ``N``.
        look_at_depth: ``d`` > 0.
        mode: ``"gradual"`` (``s_i = i / (N - 1)``) or ``"direct"`` (``s_i = 1``); bullet always sweeps.

    Returns:
        ``(N, 4, 4)`` float64 offsets (new ``c2w = source c2w @ offset``) and ``(N,)`` focal factors.
    """
    n, d = num_frames, float(look_at_depth)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    s_mode = ramp if mode == "gradual" else torch.ones(n, dtype=torch.float64)
    M = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    point = torch.tensor([0.0, 0.0, d], dtype=torch.float64).repeat(n, 1)
    focal = torch.ones(n, dtype=torch.float64)
    zero = torch.zeros(n, dtype=torch.float64)
    for step in steps:
        s = ramp if step.name == "bullet" else s_mode
        v = step.params[0]
        if step.name in ("orbit", "bullet"):
            off = orbit_offset(s * v, zero, point)
        elif step.name == "arc":
            off = orbit_offset(zero, s * v, point)
        elif step.name == "spiral":
            phase = 2 * math.pi * ramp
            off = orbit_offset(s * v * torch.cos(phase), s * v * torch.sin(phase), point)
        elif step.name == "pan":
            off = _rotation(1, torch.deg2rad(s * v))
        elif step.name == "tilt":
            off = _rotation(0, torch.deg2rad(s * v))
        elif step.name == "dolly":
            off = _translation(torch.stack([zero, zero, s * v * d], -1))
        elif step.name == "translate":
            off = _translation(s[:, None] * torch.tensor(step.params, dtype=torch.float64) * d)
        else:  # zoom
            focal = focal * (1 + s * (v - 1))
            continue
        M = M @ off
        point = (invert_se3(off) @ torch.cat([point, torch.ones(n, 1, dtype=torch.float64)], -1)[..., None])[:, :3, 0]
    return M, focal


def make_preset_trajectory(spec: str, source: Cameras, look_at_depth: float, mode: str = "gradual") -> Trajectory:
    """A trajectory with one frame per source frame, following a preset spec.

    Args:
        spec: ``name:params[+name:params...]`` (see :data:`PRESETS`).
        source: ``(T)`` source cameras.
        look_at_depth: distance of the look-at point along each source optical axis (scene units,
            typically the scene's median depth).
        mode: ``"gradual"`` (frame 0 is the source camera, full offset at the last frame) or
            ``"direct"`` (full offset at every frame).

    Returns:
        The trajectory (``time_index`` set only for ``bullet``).

    Example:
        >>> traj = make_preset_trajectory("dolly:0.5", Cameras.static(3, 16, 16), look_at_depth=2.0)
        >>> traj.cameras().centers[:, 2]
        tensor([0.0000, 0.5000, 1.0000])
    """
    if mode not in MODES:
        raise TrajectoryError(f"trajectory mode must be 'gradual' or 'direct', got {mode!r}")
    if not (isinstance(look_at_depth, (int, float)) or torch.is_tensor(look_at_depth)) or not math.isfinite(float(look_at_depth)) or float(look_at_depth) <= 0:
        raise TrajectoryError(f"look-at depth must be a finite number > 0, got {look_at_depth!r}")
    steps = parse_preset(spec)
    n = len(source)
    if n < 1:
        raise TrajectoryError("the source video has no cameras")
    c2w = source.c2w.double()
    K = source.K.double()
    time_index = None
    bullet = next((s for s in steps if s.name == "bullet"), None)
    if bullet is not None:
        frame = n // 2 if bullet.frame is None else bullet.frame
        if not 0 <= frame < n:
            raise TrajectoryError(f"bullet freeze frame {frame} is outside the video's frames 0..{n - 1}")
        c2w = c2w[frame].expand(n, 4, 4)
        K = K[frame].expand(n, 3, 3)
        time_index = torch.full((n,), frame, dtype=torch.int64, device=source.device)
    M, focal = preset_offsets(steps, n, float(look_at_depth), mode)
    new_c2w = c2w @ M.to(c2w.device)
    K = K.clone()
    K[:, :2, :2] *= focal.to(K.device)[:, None, None]
    meta = {"preset": spec, "mode": mode, "look_at_depth": float(look_at_depth)}
    return Trajectory(invert_se3(new_c2w).float(), K.float(), source.height, source.width, time_index, meta)


__all__ = ["PRESETS", "PresetStep", "parse_preset", "preset_offsets", "orbit_offset", "make_preset_trajectory"]
