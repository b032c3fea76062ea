"""Checks of settings shared by the config dataclasses: each failure is one :class:`InputError` line."""

from __future__ import annotations

import math
from typing import Any

from vnvs.errors import InputError

MAX_SEED = 2**31 - 1
"""Seeds are integers in ``[0, MAX_SEED]`` in every command (every RNG accepts them, with room for offsets)."""


def need(ok: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``ok``."""
    if not ok:
        raise InputError(message)


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: Any, name: str, *, optional: bool = False) -> None:
    """``value`` is an integer >= 1 (or None when ``optional``).

    Example:
        >>> positive_int(3, "frames")
        >>> positive_int(0, "frames")
        Traceback (most recent call last):
        ...
        vnvs.errors.InputError: frames must be an integer >= 1, got 0
    """
    if optional and value is None:
        return
    need(is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")


def seed(value: Any, name: str = "seed") -> None:
    """``value`` is an integer in ``[0, MAX_SEED]``."""
    need(is_int(value) and 0 <= value <= MAX_SEED, f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")


def choice(value: Any, choices: tuple, name: str) -> None:
    """``value`` is one of ``choices``."""
    need(value in choices, f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
