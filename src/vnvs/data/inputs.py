"""Turn ``vnvs prepare --input`` into a sorted list of work items with stable keys."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path

from vnvs.data.config import PrepareConfig
from vnvs.data.schema import PREPARE_KINDS, WorkItem
from vnvs.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
DEPTH_EXTENSIONS = (".npz", ".npy")
CAMERA_EXTENSIONS = (".npz", ".json", ".txt")


def item_key(kind: str, ident: str | int | dict, config: PrepareConfig, seed: int, stem: str) -> str:
    """``<stem>-<12 hex>``: the hash covers the kind, the input (resolved path or scene), settings and seed."""
    payload = json.dumps({"kind": kind, "input": ident, "config": config.to_dict(), "seed": int(seed)},
                         sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:40] or "item"
    return f"{clean}-{digest}"


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _find_videos(spec: str) -> tuple[list[Path], Path | None]:
    """Video files of ``spec`` (file, folder or glob) and the folder relative names are taken from."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], None
    if path.is_dir():
        return [p for p in path.rglob("*") if _is_video(p)], path
    if any(c in spec for c in "*?["):
        found: list[Path] = []
        for match in glob.glob(os.path.expanduser(spec), recursive=True):
            m = Path(match)
            found.extend([p for p in m.rglob("*") if _is_video(p)] if m.is_dir() else [m] if _is_video(m) else [])
        return found, None
    raise InputError(f"input {spec!r} does not exist (expected a video file, a folder or a glob)")


def _lookup(folder: str | os.PathLike | None, rel: Path, extensions: tuple[str, ...],
            allow_dir: bool = False) -> str | None:
    """``folder/<rel without suffix>.<ext>`` or ``folder/<stem>.<ext>`` (first that exists)."""
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    bases = [rel.with_suffix(""), Path(rel.stem)]
    for base in bases:
        for ext in extensions:
            candidate = folder / base.parent / f"{base.name}{ext}"
            if candidate.is_file():
                return str(candidate.resolve())
        if allow_dir and (folder / base).is_dir():
            return str((folder / base).resolve())
    return None


def collect_inputs(input: str | os.PathLike | int, kind: str, limit: int | None = None, *,
                   depth_dir: str | os.PathLike | None = None, cameras_dir: str | os.PathLike | None = None,
                   config: PrepareConfig | None = None, seed: int = 0) -> list[WorkItem]:
    """Work items of a prepare run, sorted deterministically; ``limit`` keeps the first N.

    ``input`` is a video file, a folder (searched recursively for .mp4 .mov .mkv .avi .webm .m4v) or
    a glob; for ``kind="synthetic"`` it is a number of procedural scenes (scenes 0..N-1). For
    ``covis``, depth and camera files are looked up as ``<depth_dir>/<stem>.npz|.npy`` and
    ``<cameras_dir>/<stem>.npz|.json|.txt`` (or a folder ``<stem>/``), where ``<stem>`` is the
    video's path relative to the input folder without its extension, or else its bare file stem.
    """
    config = config or PrepareConfig()
    if kind not in PREPARE_KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {', '.join(PREPARE_KINDS)}")
    if limit is not None and limit <= 0:
        raise InputError(f"limit must be positive, got {limit}")
    if kind == "synthetic":
        try:
            count = int(str(input))
        except ValueError:
            raise InputError(f"for kind synthetic, the input is a number of scenes, got {input!r}") from None
        if count <= 0:
            raise InputError(f"for kind synthetic, the input must be a positive number of scenes, got {count}")
        count = count if limit is None else min(count, limit)
        return [WorkItem(key=item_key(kind, f"scene:{s}", config, seed, f"scene{s:06d}"), scene=s)
                for s in range(count)]

    videos, base = _find_videos(str(input))
    resolved = sorted({p.resolve() for p in videos}, key=str)
    if not resolved:
        raise InputError(f"no videos found in {input!r} (extensions: {' '.join(VIDEO_EXTENSIONS)})")
    if limit is not None:
        resolved = resolved[:limit]
    if kind == "covis" and depth_dir is None:
        raise InputError("covis samples need a depth file per video: give depth_dir, a folder of <stem>.npz or "
                         "<stem>.npy depth files")
    items = []
    for path in resolved:
        try:
            rel = path.relative_to(base.resolve()) if base is not None else Path(path.name)
        except ValueError:
            rel = Path(path.name)
        depth = _lookup(depth_dir, rel, DEPTH_EXTENSIONS)
        cameras = _lookup(cameras_dir, rel, CAMERA_EXTENSIONS, allow_dir=True)
        ident = str(path) if depth is None and cameras is None else {"path": str(path), "depth": depth,
                                                                      "cameras": cameras}
        items.append(WorkItem(key=item_key(kind, ident, config, seed, path.stem), path=str(path),
                              depth=depth, cameras=cameras))
    return items
