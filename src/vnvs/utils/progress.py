"""Progress bars for long steps (tqdm on stderr; silenced with ``VNVS_PROGRESS=0``)."""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("VNVS_PROGRESS", "1") not in ("0", "false", "no")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar labelled ``desc``."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not progress_enabled(), leave=False, dynamic_ncols=True)


def progress_bar(desc: str, total: int | None = None, unit: str = "it"):
    """A manual progress bar (``with progress_bar(...) as bar: bar.update(n)``)."""
    return tqdm(desc=desc, total=total, unit=unit, disable=not progress_enabled(), leave=False, dynamic_ncols=True)
