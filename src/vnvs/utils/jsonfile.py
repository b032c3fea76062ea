"""Reading the JSON and text files users hand to vnvs: every malformed file becomes one :class:`InputError` line.

Bytes that are not UTF-8, text that is not JSON, ``NaN``/``Infinity`` literals and numbers that
overflow a float (``1e400``) are all refused with the file's name, never as a traceback.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from vnvs.errors import InputError


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (one-line :class:`InputError` when missing, a folder, or not UTF-8)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not a file") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str, where: str) -> Any:
    """Parse JSON text strictly (finite numbers only); errors name ``where``.

    Example:
        >>> parse_json('{"a": [1, 2.5]}', "x.json")
        {'a': [1, 2.5]}
        >>> parse_json('{"w": 1e400}', "x.json")
        Traceback (most recent call last):
        ...
        vnvs.errors.InputError: x.json is not valid JSON: number 1e400 is out of range
    """
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{where} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise InputError(f"{where} is not valid JSON: {' '.join(str(e).split())}") from None


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON document in ``path``, read strictly (see :func:`parse_json`)."""
    return parse_json(read_text(path, what), f"{what} {path}")
