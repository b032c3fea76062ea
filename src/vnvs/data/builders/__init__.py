"""Builders: one work item -> samples. ``get_builder(kind)`` returns ``build(item, config, seed) -> BuildResult``."""

from __future__ import annotations

import importlib
from typing import Callable

from vnvs.data.config import PrepareConfig
from vnvs.data.schema import BuildResult, WorkItem
from vnvs.errors import InputError

Builder = Callable[[WorkItem, PrepareConfig, int], BuildResult]

_MODULES = {"flow-pairs": "flow_pairs", "covis": "covis", "affine4d": "affine4d", "synthetic": "synthetic"}


def get_builder(kind: str) -> Builder:
    """The ``build`` function of a ``vnvs prepare --kind`` (imported lazily)."""
    if kind not in _MODULES:
        raise InputError(f"unknown kind {kind!r}; expected one of {', '.join(_MODULES)}")
    return importlib.import_module(f"vnvs.data.builders.{_MODULES[kind]}").build
