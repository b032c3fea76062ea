"""Depth estimators (a tiny random transformers model saved locally, depth files) and scale alignment."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from vnvs.errors import DepthError, InputError, MissingDependencyError
from vnvs.estimators.depth import (
    FileDepth,
    TransformersDepth,
    align_depth_scale,
    depth_flicker,
    disparity_to_depth,
    get_depth_estimator,
)
from vnvs.synthetic import SceneConfig, generate_scene, render_source_video


def _frames(T=4, H=40, W=52, seed=0):
    return torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(seed))


def test_transformers_depth_local_folder(tiny_depth_model):
    est = get_depth_estimator(str(tiny_depth_model), max_side=56, device="cpu")
    assert isinstance(est, TransformersDepth) and est.kind == "relative"
    assert est.input_size(40, 52) == (42, 56)
    frames = _frames()
    pred = est(frames)
    assert pred.kind == "relative"
    assert pred.depth.shape == (4, 40, 52) and pred.valid.shape == (4, 40, 52)
    assert pred.depth.dtype == torch.float32 and pred.valid.dtype == torch.bool
    assert torch.isfinite(pred.depth).all() and (pred.depth > 0).all()
    assert pred.valid.float().mean() > 0.9
    assert pred.depth.std() > 0  # not collapsed to a constant
    assert torch.equal(est(frames).depth, pred.depth)  # deterministic
    for bs in (1, 3):
        other = TransformersDepth(str(tiny_depth_model), device="cpu", batch_size=bs, max_side=56)(frames)
        torch.testing.assert_close(other.depth, pred.depth, rtol=1e-4, atol=1e-5)
        assert torch.equal(other.valid, pred.valid)


def test_transformers_depth_metric_flag(tiny_depth_model):
    est = TransformersDepth(str(tiny_depth_model), device="cpu", max_side=28, metric=True)
    pred = est(_frames(T=2, H=20, W=20))
    assert pred.kind == "metric" and pred.depth.shape == (2, 20, 20)
    assert (pred.depth[pred.valid] > 0).all() and (pred.depth[~pred.valid] == 0).all()
    assert torch.equal(pred.valid, torch.isfinite(est.predict_raw(_frames(T=2, H=20, W=20))) &
                       (est.predict_raw(_frames(T=2, H=20, W=20)) > 0))


def test_missing_model_raises_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingDependencyError) as e:
        get_depth_estimator("no-such-org/no-such-model")
    msg = str(e.value)
    assert "no-such-org/no-such-model" in msg and "\n" not in msg
    with pytest.raises(MissingDependencyError, match="not in the Hugging Face cache"):
        get_depth_estimator(str(tmp_path / "no_model_here"))


def test_disparity_to_depth_rule():
    disp = torch.linspace(0, 1, 101).repeat(2, 1).reshape(2, 1, 101)
    depth, valid = disparity_to_depth(disp, near=1.0, far=20.0)
    assert (depth > 0).all() and depth.dtype == torch.float32
    # percentiles 2 / 98 -> depth far / near; larger disparity = nearer
    torch.testing.assert_close(depth[0, 0, 2], torch.tensor(20.0), rtol=1e-4, atol=0)
    torch.testing.assert_close(depth[0, 0, 98], torch.tensor(1.0), rtol=1e-4, atol=0)
    assert (depth[0, 0, 1:] <= depth[0, 0, :-1]).all()
    assert valid.all()  # 1 / (4 far) is not reached by this range
    const, cvalid = disparity_to_depth(torch.full((1, 3, 3), 2.0))
    torch.testing.assert_close(const, torch.full((1, 3, 3), float(np.sqrt(20.0))))
    assert cvalid.all()


def test_file_depth(tmp_path):
    d = np.random.default_rng(0).uniform(1, 5, (3, 8, 10)).astype(np.float32)
    np.save(tmp_path / "d.npy", d)
    est = get_depth_estimator(str(tmp_path / "d.npy"))
    assert isinstance(est, FileDepth)
    pred = est(torch.zeros(3, 3, 8, 10))
    assert pred.kind == "metric" and pred.valid.all()
    np.testing.assert_array_equal(pred.depth.numpy(), d)
    with pytest.raises(DepthError):
        est(torch.zeros(2, 3, 8, 10))  # frame count differs from the video's
    with pytest.raises(DepthError):
        get_depth_estimator(str(tmp_path / "missing.npz"))(torch.zeros(3, 3, 8, 10))
    with pytest.raises(InputError):
        est(torch.zeros(3, 8, 10))


@pytest.fixture(scope="module")
def static_video():
    scene = generate_scene(3, SceneConfig(static=True))
    return render_source_video(scene, num_frames=6, size=(96, 96), seed=3)


def test_align_depth_scale_removes_flicker(static_video):
    video = static_video
    exact = video.depth
    g = torch.Generator().manual_seed(0)
    s = torch.exp(torch.empty(6).uniform_(-0.7, 0.7, generator=g))
    s[0] = 1.0
    disp = 1.0 / exact
    b = 0.03 * disp.median() * torch.randn(6, generator=g)
    b[0] = 0.0  # frame 0 is the reference: a pure scale of it is what alignment can recover
    s[0] = 1.7
    corrupted = 1.0 / (disp * s[:, None, None] + b[:, None, None])

    before = depth_flicker(corrupted, None, video.frames)
    exact_flicker = depth_flicker(exact, None, video.frames)
    aligned, scale, shift = align_depth_scale(corrupted, None, video.frames)
    after = depth_flicker(aligned, None, video.frames)
    # measured: exact 0.011, before 0.243, after 0.0003
    assert before > 0.2 and exact_flicker < 0.03
    assert after < 0.3 * before
    assert scale[0] == 1 and shift[0] == 0 and (scale > 0).all()
    assert aligned.shape == exact.shape and (aligned > 0).all() and torch.isfinite(aligned).all()
    # equal to the exact depth up to frame 0's scale
    rel = ((aligned * s[0] - exact) / exact).abs()
    assert float(rel[0].max()) < 1e-4
    assert float(rel.median()) < 0.05  # measured 0.019
    assert float(rel.flatten(1).median(1).values.max()) < 0.1  # measured 0.057 (drift along the chain)


def test_align_keeps_invalid_and_single_frame(static_video):
    video = static_video
    depth = video.depth.clone()
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :10] = False
    aligned, scale, shift = align_depth_scale(depth, valid, video.frames)
    assert (aligned[~valid] == 0).all() and (aligned[valid] > 0).all()
    one, s1, b1 = align_depth_scale(depth[:1], None, video.frames[:1])
    torch.testing.assert_close(one, depth[:1])
    assert s1.tolist() == [1.0] and b1.tolist() == [0.0]
    assert depth_flicker(depth[:1], None, video.frames[:1]) == 0.0
    with pytest.raises(InputError):
        align_depth_scale(depth[:, :50], None, video.frames)


def test_ground_truth_depth_matches_the_rendered_video():
    from vnvs.estimators.depth import GroundTruthDepth

    scene = generate_scene(4)
    video = render_source_video(scene, num_frames=5, size=(24, 32), seed=4)
    est = GroundTruthDepth(scene, video.w2c, video.K, video.times)
    pred = est(video.frames)
    assert pred.kind == "metric" and pred.valid.all()
    torch.testing.assert_close(pred.depth, video.depth)
    torch.testing.assert_close(est(video.frames[2:4], start=2).depth, video.depth[2:4])
    with pytest.raises(InputError, match="beyond"):
        est(video.frames, start=3)
