"""Where outputs go: checked before any work, and write failures (full disk, read-only file system)
turned into one line.

:func:`check_destination` answers, before a command starts its work, whether it could write its
output: an existing file where a folder is expected (or the reverse), a parent that is a file, a
path that cannot be created (``/proc/...``), a read-only file system or a folder without write
permission. :func:`describe_write_error` turns an ``OSError`` raised while writing (``ENOSPC``,
``EDQUOT``, ``EROFS``, ...; also the same errors wrapped by safetensors or PyAV in other exception
types) into a one-line message that names the device and its free space.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from vnvs.errors import InputError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_WRITE_ERRORS = _DISK_FULL + (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                              errno.ENAMETOOLONG, errno.ENOENT, errno.EEXIST)


def check_destination(path: str | os.PathLike, kind: Literal["folder", "file"] = "folder") -> Path:
    """Raise :class:`InputError` (one line) unless ``path`` can be written as a ``kind``; create nothing.

    Example:
        >>> import tempfile, pathlib
        >>> tmp = pathlib.Path(tempfile.mkdtemp()); (tmp / "f").write_text("x")
        1
        >>> check_destination(tmp / "new" / "out").name
        'out'
        >>> check_destination(tmp / "f")
        Traceback (most recent call last):
        ...
        vnvs.errors.InputError: output ... exists and is not a folder
    """
    path = Path(path)
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise InputError(f"output {path} exists and is not a folder")
        if kind == "file" and path.is_dir():
            raise InputError(f"output {path} is a folder; give a file name")
    anchor = path if (kind == "folder" and path.is_dir()) else path.parent
    while not anchor.exists():
        if anchor.parent == anchor:
            break
        anchor = anchor.parent
    if anchor.exists() and not anchor.is_dir():
        raise InputError(f"cannot create output {path}: {anchor} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vnvs-write-check.", dir=anchor)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"cannot write output {path}: {e.strerror or e} ({anchor})") from None
    return path


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _errno_of(exc: BaseException) -> tuple[int | None, str | None]:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno, exc.filename
    text = str(exc)
    if re.search(r"No space left|StorageFull|code: 28\b|Errno 28", text):
        return errno.ENOSPC, None
    if re.search(r"Read-only file system|Errno 30", text):
        return errno.EROFS, None
    if re.search(r"Disk quota exceeded|Errno 122", text):
        return errno.EDQUOT, None
    return None, None


def describe_write_error(exc: BaseException, output: str | os.PathLike | None = None) -> str | None:
    """A one-line message for a failure to write (full disk, read-only, ...), or None for other errors."""
    code, filename = _errno_of(exc)
    if code is None or code not in _WRITE_ERRORS:
        return None
    where = filename or output
    if code in _DISK_FULL:
        free = free_bytes(where) if where is not None else None
        room = f" ({free / 1024**2:.1f} MB free there)" if free is not None else ""
        return f"no space left on the device holding {where or 'the output'}{room}; free some space or choose another --output"
    if isinstance(exc, OSError) and exc.filename is not None and output is not None and code != errno.ENOENT:
        inside = Path(os.path.abspath(exc.filename)).is_relative_to(Path(os.path.abspath(output)).parent)
        if inside or code in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"cannot write {exc.filename}: {exc.strerror}"
    return None
