"""Camera trajectories: the versioned JSON document, validation, resampling and resolution.

A trajectory is one camera per output frame (``w2c``, ``K``), one image size, and optionally the
time index of the source video each frame shows (bullet time). See ``docs/trajectories.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vnvs.cameras.camera import Cameras, scale_intrinsics
from vnvs.geometry.se3 import interpolate_poses
from vnvs.defaults import MAX_SIDE
from vnvs.errors import InputError, TrajectoryError
from vnvs.utils.atomic import atomic_path
from vnvs.utils.jsonfile import read_json

FORMAT = "vnvs-trajectory"
VERSION = 1
CONVENTION = "opencv-w2c"
ROTATION_TOL = 1e-3
"""Largest ``|R^T R - I|`` entry accepted for a rotation read from a file."""


@dataclass
class Trajectory:
    """One target camera per output frame.

    Example:
        >>> traj = Trajectory.from_cameras(Cameras.static(3, 32, 48))
        >>> Trajectory.from_dict(traj.to_dict()).resample(5).w2c.shape
        torch.Size([5, 4, 4])
    """

    w2c: torch.Tensor
    """``(N, 4, 4)`` float32 world-to-camera matrices (OpenCV axes)."""
    K: torch.Tensor
    """``(N, 3, 3)`` float32 intrinsics in pixels of a ``height x width`` image."""
    height: int
    """Output image height in pixels."""
    width: int
    """Output image width in pixels."""
    time_index: torch.Tensor | None = None
    """``(N,)`` int64 source time shown by each frame; ``None`` means frame ``i`` shows time ``i``."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form JSON-serialisable metadata (origin, preset spec, ...)."""

    def __post_init__(self) -> None:
        n = self.w2c.shape[0] if self.w2c.ndim == 3 else -1
        if self.w2c.ndim != 3 or self.w2c.shape[1:] != (4, 4):
            raise TrajectoryError(f"trajectory w2c must have shape (N, 4, 4), got {tuple(self.w2c.shape)}")
        if self.K.shape != (n, 3, 3):
            raise TrajectoryError(f"trajectory K must have shape ({n}, 3, 3), got {tuple(self.K.shape)}")
        if not (0 < int(self.height) <= MAX_SIDE and 0 < int(self.width) <= MAX_SIDE):
            raise TrajectoryError(f"trajectory image size {self.height}x{self.width} is outside 1..{MAX_SIDE} pixels")
        if self.time_index is not None:
            self.time_index = torch.as_tensor(self.time_index, dtype=torch.int64, device=self.w2c.device)
            if self.time_index.numel() and int(self.time_index.min()) < 0:
                raise TrajectoryError(f"trajectory frame times must be >= 0, got {int(self.time_index.min())}")
            if self.time_index.shape != (n,):
                raise TrajectoryError(f"trajectory time_index must have shape ({n},), got {tuple(self.time_index.shape)}")

    def __len__(self) -> int:
        return self.w2c.shape[0]

    @property
    def times(self) -> torch.Tensor:
        """``(N,)`` int64 source time of each frame (``arange(N)`` when ``time_index`` is ``None``)."""
        if self.time_index is None:
            return torch.arange(len(self), device=self.w2c.device)
        return self.time_index

    @staticmethod
    def from_cameras(cameras: Cameras, time_index: torch.Tensor | None = None, meta: dict | None = None) -> "Trajectory":
        """A trajectory with one frame per camera."""
        return Trajectory(cameras.w2c.float(), cameras.K.float(), cameras.height, cameras.width, time_index, dict(meta or {}))

    def cameras(self) -> Cameras:
        """The frames as a :class:`~vnvs.cameras.camera.Cameras` batch."""
        return Cameras(self.w2c, self.K, self.height, self.width)

    def resize(self, height: int, width: int) -> "Trajectory":
        """The same cameras for a ``height x width`` output (intrinsics rescaled)."""
        K = scale_intrinsics(self.K, width / self.width, height / self.height)
        return replace(self, K=K, height=int(height), width=int(width))

    def resample(self, n: int) -> "Trajectory":
        """``n`` frames evenly spaced along the trajectory (first and last frames kept).

        Poses use :func:`~vnvs.geometry.se3.interpolate_poses` (slerp + centre lerp), intrinsics are
        interpolated linearly, time indices are interpolated and rounded half up (``None`` stays ``None``
        only when ``n == len(self)``).
        """
        if n < 1:
            raise TrajectoryError(f"cannot resample a trajectory to {n} frames")
        m = len(self)
        if n == m:
            return replace(self, meta=dict(self.meta))
        keys = torch.arange(m, dtype=torch.float64)
        query = torch.linspace(0, m - 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        w2c = interpolate_poses(self.w2c, keys, query)
        lo = query.floor().long().clamp(0, m - 1)
        hi = (lo + 1).clamp(max=m - 1)
        u = (query - lo).to(torch.float64)
        K64 = self.K.double()
        K = (K64[lo] * (1 - u)[:, None, None] + K64[hi] * u[:, None, None]).float()
        t = self.times.double().cpu()
        times = torch.floor(t[lo] * (1 - u) + t[hi] * u + 0.5).long().to(self.w2c.device)
        return Trajectory(w2c, K.to(self.w2c.device), self.height, self.width, times, dict(self.meta))

    # ---- JSON document -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON document (see ``docs/trajectories.md``)."""
        frames = []
        w2c = _short_floats(self.w2c)
        K = _short_floats(self.K)
        for i in range(len(self)):
            frame: dict[str, Any] = {"w2c": w2c[i], "K": K[i]}
            if self.time_index is not None:
                frame["time"] = int(self.time_index[i])
            frames.append(frame)
        return {
            "format": FORMAT,
            "version": VERSION,
            "convention": CONVENTION,
            "height": int(self.height),
            "width": int(self.width),
            "frames": frames,
            "meta": self.meta,
        }

    @staticmethod
    def from_dict(doc: Any) -> "Trajectory":
        """Parse and validate a JSON document; raises :class:`TrajectoryError` on any problem."""
        if not isinstance(doc, dict):
            raise TrajectoryError("trajectory document must be a JSON object")
        for key in ("format", "version", "height", "width", "frames"):
            if key not in doc:
                raise TrajectoryError(f"trajectory document is missing the key '{key}'")
        if doc["format"] != FORMAT:
            raise TrajectoryError(f"trajectory format must be '{FORMAT}', got {doc['format']!r}")
        if doc["version"] != VERSION:
            raise TrajectoryError(f"unsupported trajectory version {doc['version']!r} (this vnvs reads version {VERSION})")
        if doc.get("convention", CONVENTION) != CONVENTION:
            raise TrajectoryError(f"trajectory convention must be '{CONVENTION}', got {doc['convention']!r}")
        height, width = _positive_int(doc["height"], "height"), _positive_int(doc["width"], "width")
        frames = doc["frames"]
        if not isinstance(frames, list) or not frames:
            raise TrajectoryError("trajectory has no frames")
        w2cs, Ks, times = [], [], []
        for i, frame in enumerate(frames):
            if not isinstance(frame, dict):
                raise TrajectoryError(f"trajectory frame {i} must be an object")
            for key in ("w2c", "K"):
                if key not in frame:
                    raise TrajectoryError(f"trajectory frame {i} is missing the key '{key}'")
            w2cs.append(_matrix(frame["w2c"], (4, 4), f"frame {i} w2c"))
            Ks.append(_matrix(frame["K"], (3, 3), f"frame {i} K"))
            times.append(frame.get("time"))
        has_time = [t is not None for t in times]
        if any(has_time) and not all(has_time):
            raise TrajectoryError("trajectory frames must all have a 'time' or none")
        time_index = None
        if all(has_time):
            for i, t in enumerate(times):
                if isinstance(t, bool) or not isinstance(t, int):
                    raise TrajectoryError(f"trajectory frame {i} time must be an integer, got {t!r}")
                if t < 0:
                    raise TrajectoryError(f"trajectory frame {i} time must be >= 0, got {t}")
            time_index = torch.tensor(times, dtype=torch.int64)
        w2c = torch.stack(w2cs)
        K = torch.stack(Ks)
        validate_cameras(w2c, K)
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise TrajectoryError("trajectory 'meta' must be an object")
        return Trajectory(w2c.float(), K.float(), height, width, time_index, dict(meta))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON document atomically; returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @staticmethod
    def load(path: str | os.PathLike) -> "Trajectory":
        """Read and validate a vnvs trajectory JSON file."""
        path = Path(path)
        try:
            doc = read_json(path, "trajectory file")
        except InputError as exc:
            raise TrajectoryError(str(exc)) from None
        try:
            return Trajectory.from_dict(doc)
        except TrajectoryError as exc:
            raise TrajectoryError(f"{path}: {exc}") from None


def validate_cameras(w2c: torch.Tensor, K: torch.Tensor, what: str = "frame") -> None:
    """Raise :class:`TrajectoryError` unless every ``w2c`` is rigid and every ``K`` a valid pinhole.

    Args:
        w2c: ``(N, 4, 4)`` world-to-camera matrices.
        K: ``(N, 3, 3)`` intrinsics.
        what: noun used in messages (``"frame"``, ``"image"``).
    """
    w2c, K = w2c.double().cpu(), K.double().cpu()
    n = w2c.shape[0]
    R = w2c[:, :3, :3]
    orth = (R.transpose(-1, -2) @ R - torch.eye(3, dtype=R.dtype)).abs().amax(dim=(-1, -2))
    checks = [
        (~torch.isfinite(w2c).flatten(1).all(1), lambda i: "w2c has non-finite values"),
        (~torch.isfinite(K).flatten(1).all(1), lambda i: "K has non-finite values"),
        ((w2c[:, 3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=w2c.dtype)).abs().amax(-1) > 1e-6, lambda i: "w2c last row must be [0, 0, 0, 1]"),
        (
            (orth > ROTATION_TOL) | (torch.linalg.det(R) <= 0),
            lambda i: f"w2c rotation is not orthonormal with det +1 (error {orth[i].item():.2g})",
        ),
        (
            ~((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0)),
            lambda i: f"K focal lengths must be > 0, got fx={K[i, 0, 0].item():g} fy={K[i, 1, 1].item():g}",
        ),
        (
            (K[:, 1, 0] != 0) | ((K[:, 2] - torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype)).abs().amax(-1) > 1e-9),
            lambda i: "K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]]",
        ),
    ]
    bad = [(int(torch.nonzero(mask)[0]), j) for j, (mask, _) in enumerate(checks) if n and mask.any()]
    if bad:
        i, j = min(bad)
        raise TrajectoryError(f"{what} {i}: {checks[j][1](i)}")


def _short_floats(t: torch.Tensor) -> list:
    """Nested lists of the shortest decimals that read back to the same float32 values."""
    flat = [float(str(np.float32(x))) for x in t.detach().float().cpu().flatten().tolist()]
    return np.asarray(flat, dtype=np.float64).reshape(tuple(t.shape)).tolist()


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TrajectoryError(f"trajectory {name} must be a positive integer, got {value!r}")
    return value


def _matrix(value: Any, shape: tuple[int, int], name: str) -> torch.Tensor:
    ok = isinstance(value, list) and len(value) == shape[0]
    ok = ok and all(isinstance(row, list) and len(row) == shape[1] for row in value)
    ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) for row in value for x in row)
    if not ok:
        raise TrajectoryError(f"trajectory {name} must be a {shape[0]}x{shape[1]} list of numbers")
    t = torch.tensor(value, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise TrajectoryError(f"trajectory {name} has non-finite values")
    return t


__all__ = ["Trajectory", "validate_cameras", "FORMAT", "VERSION"]
