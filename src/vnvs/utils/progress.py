"""Progress bars for long steps: tqdm on stderr when it is a terminal.

``VNVS_PROGRESS=1`` forces bars on (e.g. in logs), ``VNVS_PROGRESS=0`` turns them off.
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _disable() -> bool | None:
    """tqdm's ``disable``: True (off), False (on) or None (on only when stderr is a terminal)."""
    value = os.environ.get("VNVS_PROGRESS", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return True
    if value in ("1", "true", "yes", "on"):
        return False
    return None


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar labelled ``desc``."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=_disable(), leave=False, dynamic_ncols=True)


def progress_bar(desc: str, total: int | None = None, unit: str = "it", position: int | None = None):
    """A manual progress bar (``with progress_bar(...) as bar: bar.update(n)``); ``position`` stacks
    several bars (0 = top line)."""
    return tqdm(desc=desc, total=total, unit=unit, disable=_disable(), leave=False, dynamic_ncols=True,
                position=position)
