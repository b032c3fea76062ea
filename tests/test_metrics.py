"""SSIM: the OpenCV path against the plain torch reference, on random and real frames, with masks."""

import pytest
import torch

from vnvs.io import read_video
from vnvs.metrics import ssim, ssim_from_map, ssim_map
from vnvs.metrics.image import _ssim_map_reference


def _reference_ssim(pred, target, mask=None):
    return ssim_from_map(_ssim_map_reference(pred, target), mask)


@pytest.mark.parametrize("shape", [(3, 3, 40, 56), (2, 1, 17, 23), (2, 4, 6, 9)])
def test_ssim_equals_reference_on_random_frames(shape):
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(shape, generator=g)
    b = (a + 0.2 * torch.randn(shape, generator=g)).clamp(0, 1)
    mask = torch.rand(shape[0], *shape[2:], generator=g) > 0.6
    mask[0] = False  # an empty frame is skipped in both
    assert (ssim_map(a, b) - _ssim_map_reference(a, b)).abs().max() < 1e-5
    for m in (None, mask, ~mask):
        assert abs(ssim(a, b, m) - _reference_ssim(a, b, m)) < 1e-5
    assert ssim_map(a, b).dtype == torch.float32 and ssim_map(a, b).shape == (shape[0], *shape[2:])


def test_ssim_equals_reference_on_real_frames(real_clip):
    frames = read_video(real_clip, stride=25, max_frames=6, size=96).frames
    pred, target = frames[:-1], frames[1:]
    mask = target.mean(1) > 0.4
    # per pixel both are float32 computations of exx - mx^2, which cancels in flat regions: each is
    # within ~2.5e-4 of a float64 evaluation there, and their frame means agree to 1e-5
    assert (ssim_map(pred, target) - _ssim_map_reference(pred, target)).abs().max() < 1e-3
    for m in (None, mask, ~mask):
        assert abs(ssim(pred, target, m) - _reference_ssim(pred, target, m)) < 1e-5


def test_ssim_edge_cases():
    x = torch.rand(2, 3, 8, 8)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, x, torch.zeros(2, 8, 8, dtype=torch.bool)) != ssim(x, x, torch.zeros(2, 8, 8, dtype=torch.bool))  # NaN
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 5, 9), torch.rand(1, 3, 5, 9))  # smaller than the window's half
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
