"""Process-level memory settings for the command line.

glibc serves large allocations (above its mmap threshold) with fresh pages from the kernel and
returns them on free, so every big temporary tensor is page-faulted and zeroed again; on small
CPU machines (and in VMs) that costs more than the arithmetic. Keeping freed memory in the heap
lets PyTorch reuse it. Called by the ``vnvs`` command, not on import: a library should not change
its host process's allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from vnvs.errors import InputError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 2**31 - 1) -> bool:
    """Raise glibc's mmap and trim thresholds so freed large buffers are reused (Linux/glibc only).

    Returns True when the settings were applied.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


FRAME_BYTES_PER_PIXEL = 64
"""A lower bound of what a command holds per pixel of every frame at once: float32 source (12 bytes),
depth (4), control signal (36) and result (12)."""


def available_memory() -> int | None:
    """Bytes a new allocation can use on this machine: the smaller of the kernel's ``MemAvailable`` and
    the room left under the process's cgroup limit (None where neither can be read)."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < (1 << 60):
            found.append(int(limit) - usage)
        break
    return min(found) if found else None


def check_fits(nbytes: float, what: str) -> None:
    """Raise :class:`~vnvs.errors.InputError` when ``nbytes`` exceed the memory available (one line with both).

    Example:
        >>> check_fits(1024, "a tiny job")  # fits anywhere
        >>> check_fits(1e18, "a huge job")
        Traceback (most recent call last):
        ...
        vnvs.errors.InputError: a huge job needs at least 931322574.6 GB of memory, ...
    """
    available = available_memory()
    if available is not None and nbytes > available:
        raise InputError(f"{what} needs at least {nbytes / 1024**3:.1f} GB of memory, but {available / 1024**3:.1f} GB "
                         "are available; use fewer frames or a smaller --size")
