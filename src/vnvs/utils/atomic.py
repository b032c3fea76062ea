"""Atomic outputs: write to a temporary name in the same folder, rename when complete.

A failure (exception, Ctrl-C) while writing removes the temporary file, so an output path either
holds a complete file or does not exist. :func:`replace_dir` moves any finished temporary folder
into place (used by :func:`atomic_dir` and the training checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where the platform allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary name keeps the file extension (writers such as PyAV and OpenCV choose the
    format from it) unless ``suffix`` is given.

    Example:
        >>> import tempfile, pathlib
        >>> folder = tempfile.TemporaryDirectory(); out = pathlib.Path(folder.name) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text()
        'done'
        >>> folder.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # as a plain open() would have made it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds.

    An existing ``path`` is removed only after the new folder is complete (:func:`replace_dir`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # as a plain mkdir would have made it
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(finished: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the complete folder ``finished`` to ``path`` (same file system), replacing any existing ``path``.

    An existing ``path`` is first renamed to ``.NAME.old`` beside it, then ``finished`` takes its
    name, then the old copy is deleted: ``path`` never holds a mix of the two folders, and a crash
    leaves at worst the hidden ``.old`` copy behind (removed by the next call).
    """
    finished, path = Path(finished), Path(path)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(finished, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(finished, path)
