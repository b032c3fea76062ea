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
