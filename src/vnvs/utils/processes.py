"""Worker processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; call it in a worker).

    A killed ``vnvs prepare`` thereby takes its pool workers with it instead of leaving them writing
    for minutes. ``parent`` is the pid of the process that started this one (default: the current
    parent); if it is already gone when this runs, the process ends at once. Returns whether the
    request was made (False off Linux).
    """
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request: follow it now
        os.kill(os.getpid(), sig)
    return True
