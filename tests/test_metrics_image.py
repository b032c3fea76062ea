"""PSNR, SSIM and DyCheck's masked metrics: cross-checked against scikit-image and against a direct
port of DyCheck's ``compute_ssim`` (scipy's ``convolve2d`` in place of jax's), with masks."""

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from vnvs.io import read_video
from vnvs.metrics import (
    MetricOptions,
    Unavailable,
    dycheck_ssim_per_frame,
    epe_per_frame,
    flow_metrics,
    per_video_metrics,
    psnr_per_frame,
    ssim_map,
    to_json,
)

skimage_metrics = pytest.importorskip("skimage.metrics")


def _pair(shape, seed, noise=0.15):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    b = (a + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return a, b


def _sk_ssim(a, b):
    return [skimage_metrics.structural_similarity(a[t].permute(1, 2, 0).double().numpy(), b[t].permute(1, 2, 0).double().numpy(),
                                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                                  channel_axis=2) for t in range(a.shape[0])]


def _sk_psnr(a, b):
    return [skimage_metrics.peak_signal_noise_ratio(a[t].double().numpy(), b[t].double().numpy(), data_range=1)
            for t in range(a.shape[0])]


def _dycheck_reference(img0: np.ndarray, img1: np.ndarray, mask: np.ndarray) -> float:
    """DyCheck's compute_ssim for one (H, W, C) image pair and (H, W) mask, line by line, in numpy."""
    size, sigma = 11, 1.5
    hw = size // 2
    f = np.exp(-0.5 * ((np.arange(size) - hw) / sigma) ** 2)
    f /= f.sum()

    def conv(z, m, filt):
        z_ = convolve2d(z * m, filt, mode="valid")
        m_ = convolve2d(m, np.ones_like(filt), mode="valid")
        return np.where(m_ != 0, z_ * np.ones_like(filt).sum() / np.where(m_ != 0, m_, 1), 0), (m_ != 0).astype(z.dtype)

    def blur(z, m):  # per channel: first along width (filt[None, :]), then along height with the new mask
        out = []
        for c in range(z.shape[2]):
            zc, mc = conv(z[..., c], m, f[None, :])
            out.append(conv(zc, mc, f[:, None])[0])
        return np.stack(out, -1)

    mu0, mu1 = blur(img0, mask), blur(img1, mask)
    s00 = np.maximum(0, blur(img0**2, mask) - mu0 * mu0)
    s11 = np.maximum(0, blur(img1**2, mask) - mu1 * mu1)
    s01 = blur(img0 * img1, mask) - mu0 * mu1
    s01 = np.sign(s01) * np.minimum(np.sqrt(s00 * s11), np.abs(s01))
    c1, c2 = 0.01**2, 0.03**2
    smap = (2 * mu0 * mu1 + c1) * (2 * s01 + c2) / ((mu0**2 + mu1**2 + c1) * (s00 + s11 + c2))
    return float(smap.mean())


@pytest.mark.parametrize("shape", [(3, 3, 40, 56), (2, 3, 11, 17), (1, 1, 23, 19)])
def test_ssim_and_psnr_equal_skimage(shape):
    a, b = _pair(shape, sum(shape))
    assert np.allclose(dycheck_ssim_per_frame(a, b).numpy(), _sk_ssim(a, b), atol=1e-10, rtol=0)
    assert np.allclose(psnr_per_frame(a, b).numpy(), _sk_psnr(a, b), atol=1e-9, rtol=0)
    full = torch.ones(shape[0], *shape[2:], dtype=torch.bool)
    assert torch.equal(dycheck_ssim_per_frame(a, b, full), dycheck_ssim_per_frame(a, b))  # a full mask changes nothing
    assert torch.equal(psnr_per_frame(a, b, full), psnr_per_frame(a, b))


def test_padded_ssim_differs_from_skimage_only_at_the_border():
    # vnvs.metrics.ssim_map pads (reflect-101) and keeps the border; skimage (and DyCheck, and the suite)
    # average the interior only. The interiors agree to float32 rounding; the full-frame means do not.
    a, b = _pair((3, 3, 40, 56), 7)
    padded = ssim_map(a, b)
    interior = padded[:, 5:-5, 5:-5].flatten(1).mean(1).double().numpy()
    assert np.allclose(interior, _sk_ssim(a, b), atol=1e-5, rtol=0)
    whole = padded.flatten(1).mean(1).double().numpy()
    assert np.abs(whole - np.array(_sk_ssim(a, b))).max() > 1e-4


def test_ssim_equals_skimage_on_real_frames(real_clip):
    frames = read_video(real_clip, stride=25, max_frames=4, size=96).frames
    pred, target = frames[:-1], frames[1:]
    assert np.allclose(dycheck_ssim_per_frame(pred, target).numpy(), _sk_ssim(pred, target), atol=1e-6, rtol=0)
    assert np.allclose(psnr_per_frame(pred, target).numpy(), _sk_psnr(pred, target), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_ssim_equals_a_line_by_line_port_of_dycheck(seed):
    a, b = _pair((2, 3, 30, 37), seed, noise=0.2)
    g = torch.Generator().manual_seed(100 + seed)
    mask = torch.zeros(2, 30, 37, dtype=torch.bool)
    mask[0, 5:22, 8:30] = True  # a block: mask pixels far from its edges, and pixels far outside it
    mask[1] = torch.rand(30, 37, generator=g) > 0.7  # scattered pixels
    ours = dycheck_ssim_per_frame(a, b, mask)
    for t in range(2):
        ref = _dycheck_reference(a[t].permute(1, 2, 0).double().numpy(), b[t].permute(1, 2, 0).double().numpy(),
                                 mask[t].double().numpy())
        assert abs(float(ours[t]) - ref) < 1e-10
    assert float(ours[0]) != pytest.approx(float(dycheck_ssim_per_frame(a, b)[0]), abs=1e-3)  # the mask matters


def test_masked_metrics_ignore_what_is_outside_the_mask():
    a, _ = _pair((2, 3, 48, 48), 3)
    mask = torch.zeros(2, 48, 48, dtype=torch.bool)
    mask[:, 10:30, 12:40] = True
    noisy = torch.where(mask[:, None], a, torch.rand(a.shape, generator=torch.Generator().manual_seed(9)))
    # equal inside the mask: mPSNR at its cap, mSSIM exactly 1 (partial convolutions never read outside)
    assert psnr_per_frame(noisy, a, mask).tolist() == [100.0, 100.0]
    assert dycheck_ssim_per_frame(noisy, a, mask).tolist() == [1.0, 1.0]
    assert psnr_per_frame(noisy, a).max() < 30 and dycheck_ssim_per_frame(noisy, a).max() < 0.9
    # mPSNR is the PSNR of the mask's pixels
    b = (a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    inside = ((a - b) ** 2).permute(0, 2, 3, 1)[mask]
    assert float(psnr_per_frame(a, b, mask).mean()) == pytest.approx(float(-10 * torch.log10(inside.double().mean())), abs=0.05)


def test_empty_masks_are_left_out_of_the_means():
    a, b = _pair((3, 3, 16, 16), 5)
    mask = torch.ones(3, 16, 16, dtype=torch.bool)
    mask[1] = False
    r = per_video_metrics(a, b, mask, options=MetricOptions(lpips=None), nets={})
    assert np.isnan(r["per_frame"]["mpsnr"][1]) and np.isnan(r["per_frame"]["mssim"][1])
    kept = [0, 2]
    assert r["mpsnr"] == pytest.approx(np.mean([r["per_frame"]["psnr"][i] for i in kept]))
    assert r["mssim"] == pytest.approx(np.mean([r["per_frame"]["ssim"][i] for i in kept]))
    assert to_json(r)["per_frame"]["mpsnr"][1] is None
    assert to_json(r)["lpips"] == {"unavailable": "LPIPS switched off (lpips=None)"}


def test_suite_shape_checks_and_unavailable_networks(tmp_path):
    a, b = _pair((2, 3, 32, 32), 6)
    with pytest.raises(ValueError):
        per_video_metrics(a, b[:, :, :31], options=MetricOptions(), nets={})
    with pytest.raises(ValueError):
        per_video_metrics(a, b, torch.ones(2, 32, 31, dtype=torch.bool), options=MetricOptions(), nets={})
    r = per_video_metrics(a, b, options=MetricOptions(lpips_weights=str(tmp_path), clip_model=str(tmp_path)))
    for key in ("lpips", "mlpips", "clip_v", "clip_f"):
        assert isinstance(r[key], Unavailable), key
    assert str(tmp_path) in r["lpips"].reason and "alexnet" in r["lpips"].reason
    assert r["psnr"] == pytest.approx(float(np.mean(_sk_psnr(a, b))))


def test_epe():
    g = torch.Generator().manual_seed(0)
    gt = 5 * torch.randn(3, 2, 10, 12, generator=g)
    pred = gt.clone()
    pred[:, 0, :5] += 3.0
    pred[:, 1, :5] += 4.0  # EPE 5 on the top half, 0 below
    assert torch.allclose(epe_per_frame(pred, gt), torch.full((3,), 2.5, dtype=torch.float64))
    top = torch.zeros(3, 10, 12, dtype=torch.bool)
    top[:, :5] = True
    assert torch.allclose(epe_per_frame(pred, gt, top), torch.full((3,), 5.0, dtype=torch.float64))
    assert epe_per_frame(pred, gt, ~top).abs().max() == 0
    m = flow_metrics(pred, gt)
    assert m["epe"] == pytest.approx(2.5, abs=1e-6) and m["1px"] == m["3px"] == 0.5 and m["fl"] == 0.5
    empty = torch.zeros(3, 10, 12, dtype=torch.bool)
    assert epe_per_frame(pred, gt, empty).isnan().all() and np.isnan(flow_metrics(pred, gt, empty)["epe"])
