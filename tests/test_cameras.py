import math

import pytest
import torch

from vnvs.cameras import Cameras, crop_intrinsics, default_intrinsics, fov_to_focal, look_at, scale_intrinsics


def project(K, X):
    x = K @ X
    return x[:2] / x[2]


def test_fov_to_focal_and_default_intrinsics_use_longer_side():
    assert fov_to_focal(90.0, 100) == pytest.approx(50.0)
    K = default_intrinsics(40, 100, fov_deg=90.0)
    assert K[0, 0] == pytest.approx(50.0) and K[1, 1] == pytest.approx(50.0)
    assert K[0, 2] == pytest.approx(49.5) and K[1, 2] == pytest.approx(19.5)
    Kp = default_intrinsics(100, 40, fov_deg=90.0)  # portrait: fov across the height
    assert Kp[0, 0] == pytest.approx(50.0) and Kp[0, 2] == pytest.approx(19.5)
    # the horizontal field of view spans the full image width edge to edge
    half = math.degrees(math.atan((100 / 2) / K[0, 0].item()))
    assert 2 * half == pytest.approx(90.0)


def test_scale_intrinsics_is_pixel_centre_correct():
    K = torch.tensor([[30.0, 0.0, 15.2], [0.0, 32.0, 9.7], [0.0, 0.0, 1.0]])
    X = torch.tensor([0.3, -0.2, 2.0])
    sx, sy = 0.5, 0.25
    p = project(K, X)
    expected = torch.stack([(p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5])
    assert torch.allclose(project(scale_intrinsics(K, sx, sy), X), expected, atol=1e-5)
    # a 2x2 image's centre 0.5 maps to the 4x4 image's centre 1.5
    assert torch.allclose(scale_intrinsics(default_intrinsics(2, 2), 2.0, 2.0)[:2, 2], torch.tensor([1.5, 1.5]))
    assert torch.equal(K, torch.tensor([[30.0, 0.0, 15.2], [0.0, 32.0, 9.7], [0.0, 0.0, 1.0]]))  # not in place


def test_crop_intrinsics_shifts_principal_point():
    K = default_intrinsics(10, 20)
    X = torch.tensor([0.1, 0.2, 1.0])
    p = project(K, X)
    assert torch.allclose(project(crop_intrinsics(K, 3, 4), X), p - torch.tensor([3.0, 4.0]), atol=1e-5)


def make_cameras(n=5):
    eyes = torch.stack([torch.tensor([0.2 * i, -0.1 * i, 0.0]) for i in range(n)])
    w2c = look_at(eyes, torch.tensor([0.0, 0.0, 4.0]))
    return Cameras(w2c, default_intrinsics(24, 32).repeat(n, 1, 1), 24, 32)


def test_cameras_basics():
    cams = make_cameras(5)
    assert len(cams) == 5
    assert torch.allclose(cams.centers, torch.stack([torch.tensor([0.2 * i, -0.1 * i, 0.0]) for i in range(5)]), atol=1e-5)
    assert torch.allclose(cams.c2w @ cams.w2c, torch.eye(4).expand(5, 4, 4), atol=1e-5)
    assert len(cams[1:3]) == 2 and len(cams[-1]) == 1 and len(cams[2]) == 1
    assert torch.equal(cams[-1].w2c[0], cams.w2c[4]) and torch.equal(cams[2].w2c[0], cams.w2c[2])
    assert len(cams[torch.tensor([0, 4])]) == 2
    assert cams.to("cpu").w2c.device.type == "cpu"
    K2 = default_intrinsics(24, 32, fov_deg=30.0)
    assert torch.allclose(cams.with_K(K2).K, K2.expand(5, 3, 3))


def test_cameras_resize_and_crop():
    cams = make_cameras(3)
    small = cams.resize(12, 16)
    assert (small.height, small.width) == (12, 16)
    assert torch.allclose(small.K, scale_intrinsics(cams.K, 0.5, 0.5))
    crop = cams.crop(2, 3, 10, 11)
    assert (crop.height, crop.width) == (10, 11)
    assert torch.allclose(crop.K[:, :2, 2], cams.K[:, :2, 2] - torch.tensor([3.0, 2.0]))
    assert torch.equal(crop.w2c, cams.w2c)


def test_cameras_static_and_shape_errors():
    cams = Cameras.static(4, 48, 64, fov_deg=90.0)
    assert torch.equal(cams.w2c, torch.eye(4).expand(4, 4, 4))
    assert cams.K[0, 0, 0] == pytest.approx(32.0)
    with pytest.raises(ValueError):
        Cameras(torch.eye(4)[None], torch.eye(3).repeat(2, 1, 1), 4, 4)
    with pytest.raises(ValueError):
        Cameras(torch.eye(3)[None], torch.eye(3)[None], 4, 4)
