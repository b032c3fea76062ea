"""A user's ``--trajectory`` argument (preset spec or camera file) and ``--cameras`` file, read into a
:class:`~vnvs.cameras.trajectory.Trajectory`: the one place that knows every format."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vnvs.cameras import converters, presets
from vnvs.cameras.camera import Cameras
from vnvs.cameras.trajectory import FORMAT, Trajectory
from vnvs.errors import InputError, TrajectoryError
from vnvs.utils.jsonfile import read_json, read_text


def resolve_trajectory(
    spec_or_path: str | os.PathLike,
    source: Cameras,
    look_at_depth: float,
    mode: str = "gradual",
    num_frames: int | None = None,
    size: str = "file",
) -> Trajectory:
    """Turn a ``--trajectory`` argument (preset spec or file) into a :class:`Trajectory`.

    Accepted inputs: a preset spec (``orbit:30``, see :mod:`vnvs.cameras.presets`); a vnvs JSON
    document; a nerfstudio/NeRF ``transforms.json`` (or a folder holding one); a COLMAP text model
    (folder with ``cameras.txt`` and ``images.txt``, ``sparse/0`` inside it, or ``images.txt``);
    a MegaSaM-style ``.npz``; a TrajectoryCrafter theta/phi/r ``.txt``.

    A vnvs JSON written from a preset (its ``meta`` names the ``preset`` and ``mode``) is relative too: the
    preset is applied to ``source`` and ``look_at_depth``, so the file renders exactly as the preset does
    (remove ``meta.preset`` to use the file's absolute poses).

    Frame count: relative inputs (presets, TrajectoryCrafter text) give one frame per source frame;
    absolute inputs (all other files) are resampled to ``num_frames`` (default ``len(source)``)
    when their frame count differs; presets too are resampled when ``num_frames`` differs.

    Size: with ``size="file"`` (default) a file that states its image size keeps it (and its K);
    files without a size (and relative inputs) take the source's size, their intrinsics being read
    as pixels of the source image. ``size="source"`` always renders at the source's size and
    rescales the file's K to it (``scale_intrinsics``).

    Args:
        spec_or_path: preset spec or path.
        source: ``(T)`` cameras of the source video.
        look_at_depth: distance from each source camera to the look-at point (scene units).
        mode: ``"gradual"`` or ``"direct"`` (presets only).
        num_frames: output frame count, default ``len(source)``.
        size: ``"file"`` or ``"source"``.

    Returns:
        The trajectory.

    Example:
        >>> traj = resolve_trajectory("orbit:30", Cameras.static(5, 32, 48), look_at_depth=2.0)
        >>> len(traj), traj.height, traj.width
        (5, 32, 48)
    """
    if size not in ("file", "source"):
        raise TrajectoryError(f"size must be 'file' or 'source', got {size!r}")
    n_out = len(source) if num_frames is None else int(num_frames)
    if n_out < 1:
        raise TrajectoryError(f"num_frames must be >= 1, got {n_out}")
    text = os.fspath(spec_or_path)
    path = Path(text)
    if not path.exists():
        if _looks_like_path(text):
            raise TrajectoryError(f"trajectory file not found: {text}")
        traj = presets.make_preset_trajectory(text, source, look_at_depth, mode=mode)
        return traj.resample(n_out) if n_out != len(traj) else traj
    kind, target = _detect_kind(path)
    if kind == "trajcrafter":
        traj = converters.read_trajcrafter_txt(target, source, look_at_depth)
        return traj.resample(n_out) if n_out != len(traj) else traj
    traj = _read_absolute(kind, target, (source.height, source.width))
    preset = traj.meta.get("preset") if kind == "vnvs" else None
    if isinstance(preset, str):  # written from a preset: relative to the source, applied as the preset is
        traj = presets.make_preset_trajectory(preset, source, look_at_depth, mode=traj.meta.get("mode", mode))
        return traj.resample(n_out) if n_out != len(traj) else traj
    traj.meta.setdefault("source", text)
    traj.meta.setdefault("kind", kind)
    if size == "source" and (traj.height, traj.width) != (source.height, source.width):
        traj = traj.resize(source.height, source.width)
    if traj.time_index is not None and int(traj.time_index.max()) >= len(source):
        raise TrajectoryError(f"{text}: frame time {int(traj.time_index.max())} is beyond the video's last frame {len(source) - 1}")
    if len(traj) != n_out:  # resampled over the whole video
        had_times = traj.time_index is not None
        traj = traj.resample(n_out)
        if not had_times:  # its frames show the video's frames in order, first to last
            traj.time_index = None if n_out == len(source) else \
                torch.floor(torch.linspace(0, len(source) - 1, n_out, dtype=torch.float64) + 0.5).long()
    return traj


def check_trajectory_spec(spec_or_path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Raise :class:`TrajectoryError` now for a malformed preset or an unreadable trajectory file, before a
    command spends time on its source (what depends on the source is checked by :func:`resolve_trajectory`)."""
    text = os.fspath(spec_or_path)
    path = Path(text)
    if not path.exists():
        if _looks_like_path(text):
            raise TrajectoryError(f"trajectory file not found: {text}")
        presets.parse_preset(text)
        return
    kind, target = _detect_kind(path)
    if kind == "trajcrafter":
        converters.parse_trajcrafter_text(read_text(target, "trajectory file"), str(target))
    else:
        _read_absolute(kind, target, size)


def read_camera_file(path: str | os.PathLike, default_size: tuple[int, int]) -> Trajectory:
    """Cameras from an absolute camera file: vnvs JSON, nerfstudio ``transforms.json`` (or its folder),
    COLMAP text or a MegaSaM ``.npz``; ``default_size`` ``(H, W)`` for files that state no image size.
    Raises :class:`TrajectoryError` for relative files (TrajectoryCrafter text) and unreadable ones."""
    kind, target = _detect_kind(Path(path))
    if kind == "trajcrafter":
        raise TrajectoryError(f"{path} is a relative trajectory (TrajectoryCrafter text); it holds no cameras")
    return _read_absolute(kind, target, default_size)


def _read_absolute(kind: str, target: Path, default_size: tuple[int, int]) -> Trajectory:
    if kind == "vnvs":
        return Trajectory.load(target)
    if kind == "nerfstudio":
        return converters.read_transforms_json(target, default_size=default_size)
    if kind == "colmap":
        return converters.read_colmap_text(target)
    return converters.read_megasam_npz(target, default_size=default_size)


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in (".json", ".txt", ".npz")


def _detect_kind(path: Path) -> tuple[str, Path]:
    if path.is_dir():
        if (path / "transforms.json").is_file():
            return "nerfstudio", path / "transforms.json"
        for sub in (path, path / "sparse" / "0", path / "sparse"):
            if (sub / "images.txt").is_file() and (sub / "cameras.txt").is_file():
                return "colmap", sub
        raise TrajectoryError(f"{path} is a folder without transforms.json or COLMAP cameras.txt/images.txt")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "megasam", path
    if suffix == ".json":
        try:
            doc = read_json(path, "camera file")
        except InputError as exc:
            raise TrajectoryError(str(exc)) from None
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            return "vnvs", path
        if isinstance(doc, dict) and isinstance(doc.get("frames"), list) and doc["frames"] \
                and isinstance(doc["frames"][0], dict) and "transform_matrix" in doc["frames"][0]:
            return "nerfstudio", path
        if isinstance(doc, dict) and "format" in doc:
            raise TrajectoryError(f"{path}: trajectory format must be '{FORMAT}', got {doc['format']!r}")
        raise TrajectoryError(f"{path} is neither a vnvs trajectory nor a nerfstudio transforms.json")
    if suffix == ".txt":
        if path.name == "images.txt":
            return "colmap", path.parent
        return "trajcrafter", path
    raise TrajectoryError(f"unrecognised trajectory file {path} (expected .json, .txt, .npz or a COLMAP folder)")


__all__ = ["read_camera_file", "resolve_trajectory"]
