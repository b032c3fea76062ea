"""Optical flow backends and the forward-backward consistency mask."""

import numpy as np
import pytest
import torch

from vnvs.cameras import Cameras
from vnvs.cameras.presets import make_preset_trajectory
from vnvs.errors import InputError, MissingDependencyError
from vnvs.estimators.flow import (FLOW_BACKENDS, flow_with_consistency, forward_backward_consistency,
                                  get_flow_estimator)
from vnvs.geometry import flow_from_correspondence
from vnvs.synthetic import SceneConfig, correspondence, generate_scene, render_source_video, render_views


@pytest.fixture(scope="module")
def static_pair():
    """A static procedural scene seen from a source camera and from a 6-degree orbit, with the exact flow."""
    scene = generate_scene(2, SceneConfig(static=True))
    video = render_source_video(scene, num_frames=2, size=(160, 160), seed=2)
    traj = make_preset_trajectory("orbit:6", Cameras(video.w2c, video.K, 160, 160), float(video.depth.median()),
                                  mode="direct")
    target = render_views(scene, traj.w2c, traj.K, 160, 160, video.times).rgb
    coords, visible = correspondence(scene, traj.w2c, traj.K, video.times, video.w2c, video.K, video.times, 160, 160)
    return video.frames, target, flow_from_correspondence(coords), visible


def textured_shift(shift=(3, -2), size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, size // 4, size // 4, generator=g)
    img = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    moved = torch.roll(img, shifts=(shift[1], shift[0]), dims=(2, 3))
    return img, moved


@pytest.mark.parametrize("name", ["dis", "dis-fast", "farneback"])
def test_backends_recover_a_shift(name):
    img, moved = textured_shift()
    flow = get_flow_estimator(name)(img, moved)
    assert flow.shape == (1, 2, 96, 96)
    inner = flow[0, :, 16:-16, 16:-16]
    assert abs(float(inner[0].median()) - 3) < 0.3 and abs(float(inner[1].median()) + 2) < 0.3


def test_dis_against_exact_flow(static_pair):
    src, tgt, gt, visible = static_pair
    fw, bw, valid = flow_with_consistency(get_flow_estimator("dis"), src, tgt)
    epe = (fw - gt).norm(dim=1)
    assert gt.norm(dim=1)[visible].mean() > 5  # a real motion, not a near-identity
    assert epe[visible].mean() < 2.0
    assert epe[visible & valid].mean() < epe[visible].mean()  # the mask removes the worst pixels
    # most pixels that are not visible in the target are flagged inconsistent
    assert (~valid)[~visible].float().mean() > 0.6
    assert valid.float().mean() > 0.6


def test_consistency_criterion():
    f = torch.zeros(1, 2, 8, 8)
    f[:, 0] = 2.0
    assert forward_backward_consistency(f, -f)[0, :, :6].all()
    assert not forward_backward_consistency(f, -f)[0, :, 6:].any()  # lands outside the image
    # a backward flow that disagrees by more than the tolerance (|e|^2 > 0.01 (4 + 4) + 0.5) fails
    b = -f.clone()
    b[:, 1] = 0.8
    assert not forward_backward_consistency(f, b)[0, :, :6].any()
    b[:, 1] = 0.6
    assert forward_backward_consistency(f, b)[0, :, :6].all()


def test_errors():
    with pytest.raises(InputError, match="unknown flow backend"):
        get_flow_estimator("pwc")
    with pytest.raises(InputError, match="same shape"):
        get_flow_estimator("dis")(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="torchvision"):
            get_flow_estimator("raft")
    else:
        with pytest.raises(MissingDependencyError, match="weights"):
            get_flow_estimator("raft", weights="/nonexistent/raft.pth")
    assert set(FLOW_BACKENDS) >= {"dis", "farneback", "raft"}


def test_uint8_frames_give_the_luma_and_flows_of_float_frames():
    """Every RGB colour: the luma of uint8 frames (table route) is that of the float frames u / 255; and
    the OpenCV backends give the same flows for both."""
    from vnvs.estimators.flow import _gray_u8

    v = torch.arange(256, dtype=torch.uint8)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    cube = torch.stack([r.reshape(256, -1), g.reshape(256, -1), b.reshape(256, -1)])[None]
    assert np.array_equal(_gray_u8(cube), _gray_u8(cube.to(torch.float32) / 255))
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 3, 40, 48), generator=gen, dtype=torch.uint8)
    b = torch.roll(a, 2, dims=-1)
    for name in ("dis", "farneback"):
        est = get_flow_estimator(name)
        assert torch.equal(est(a, b), est(a.float() / 255, b.float() / 255))
    fw, bw, ok = flow_with_consistency(get_flow_estimator("dis"), a, b)
    fw_f, bw_f, ok_f = flow_with_consistency(get_flow_estimator("dis"), a.float() / 255, b.float() / 255)
    assert torch.equal(fw, fw_f) and torch.equal(bw, bw_f) and torch.equal(ok, ok_f)


@pytest.mark.parametrize("threads", [1, 2])
def test_dis_forward_and_backward_together_equal_the_separate_calls(threads):
    """``DISFlow.both`` (the backward flows on a second thread when the budget allows) gives exactly the
    flows of two separate calls."""
    from vnvs.utils.threads import configure_threads, thread_budget

    before = thread_budget()
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (3, 3, 40, 48), generator=gen, dtype=torch.uint8)
    b = torch.roll(a, (1, 3), dims=(-2, -1))
    est = get_flow_estimator("dis")
    try:
        configure_threads(threads)
        fw, bw = est.both(a, b)
    finally:
        configure_threads(before)
    assert torch.equal(fw, est(a, b)) and torch.equal(bw, est(b, a))
