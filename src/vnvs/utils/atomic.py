"""Atomic outputs: write to a temporary name in the same folder, rename when complete.

A failure (exception, Ctrl-C) while writing removes the temporary file, so an output path either
holds a complete file or does not exist. :func:`replace_dir` moves any finished temporary folder
into place (used by :func:`atomic_dir` and the training checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from vnvs.errors import InputError


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


MANIFEST = ".vnvs-output.json"
"""Hidden file in an output folder that lists the files vnvs wrote there (written last)."""


@contextlib.contextmanager
def staged_output(path: str | os.PathLike, names: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside the output folder ``path``; on success it replaces ``path`` whole.

    The output folder therefore holds either the complete previous result or the complete new one,
    never a mix, whatever moment a run is killed. While the block runs, a lock beside ``path``
    makes a second run into the same folder refuse in one line; the temporary folders of killed
    runs into ``path`` are removed when the next run starts. A folder at ``path`` that holds files
    vnvs did not write (anything but an earlier output: its manifest's files, or ``names``) is
    refused rather than replaced.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> with staged_output(out) as tmp:
        ...     _ = (tmp / "a.txt").write_text("one")
        >>> sorted(p.name for p in out.iterdir()), sorted(p.name for p in out.parent.iterdir())
        (['.vnvs-output.json', 'a.txt'], ['out'])
    """
    import fcntl

    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    lock = open(lock_path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another vnvs run is writing {path}; wait for it or choose another output") from None
        for stale in list(path.parent.glob(f".{path.name}.*.tmp")) + [path.parent / f".{path.name}.old"]:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        check_output_folder(path, names)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            files = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))
            (tmp / MANIFEST).write_text(json.dumps({"files": files}) + "\n")
            os.chmod(tmp, 0o777 & ~current_umask())
            replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        lock.close()


def check_output_folder(path: str | os.PathLike, names: Iterable[str] = ()) -> None:
    """Raise :class:`~vnvs.errors.InputError` unless :func:`staged_output` may replace the folder ``path``:
    absent, or holding only what vnvs wrote there (its manifest's files, or ``names``)."""
    path, names = Path(path), set(names)
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"output {path} exists and is not a folder")
    try:
        listed = set(json.loads((path / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    foreign = sorted(p.name for p in path.iterdir() if p.name not in listed | names | {MANIFEST})
    if foreign:
        raise InputError(f"output folder {path} holds files vnvs did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty folder")
