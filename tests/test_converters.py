import json
import logging
import math

import numpy as np
import pytest
import torch

from vnvs.cameras import Cameras, Trajectory, default_intrinsics, look_at, make_preset_trajectory
from vnvs.cameras.converters import (
    parse_trajcrafter_text,
    read_colmap_text,
    read_megasam_npz,
    read_trajcrafter_txt,
    read_transforms_json,
    trajectory_to_trajcrafter,
    write_colmap_text,
    write_megasam_npz,
    write_trajcrafter_txt,
    write_transforms_json,
)
from vnvs.errors import TrajectoryError


def trajectory(n=5, varying_K=False):
    t = torch.arange(n, dtype=torch.float32)
    eyes = torch.stack([torch.cos(t), 0.3 * t - 1, torch.sin(t) - 3], -1)
    w2c = look_at(eyes, torch.tensor([0.1, 0.2, 1.0]))
    K = default_intrinsics(30, 40).repeat(n, 1, 1)
    if varying_K:
        K[:, 0, 0] += t
        K[:, 1, 2] -= 0.25 * t
    return Trajectory(w2c, K, 30, 40)


def assert_same(a, b, tol=1e-5):
    assert (a.height, a.width) == (b.height, b.width)
    assert torch.allclose(a.w2c, b.w2c, atol=tol), (a.w2c - b.w2c).abs().max()
    assert torch.allclose(a.K, b.K, atol=tol)


@pytest.mark.parametrize("varying_K", [False, True])
def test_transforms_json_round_trip(tmp_path, varying_K):
    traj = trajectory(varying_K=varying_K)
    write_transforms_json(traj, tmp_path / "transforms.json")
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert ("fl_x" in doc) != varying_K
    assert_same(read_transforms_json(tmp_path / "transforms.json"), traj)


def test_transforms_json_known_values(tmp_path):
    # OpenGL camera at (1, 2, 3) looking down world -z with y up: in OpenCV, w2c = diag(1,-1,-1) rotation.
    doc = {
        "w": 640, "h": 480, "fl_x": 500.0, "fl_y": 510.0, "cx": 320.0, "cy": 240.0, "k1": 0.1,
        "frames": [{"file_path": "a.png", "transform_matrix": [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]]}],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(doc))
    traj = read_transforms_json(tmp_path / "transforms.json")
    expected = torch.tensor([[1.0, 0, 0, -1], [0, -1, 0, 2], [0, 0, -1, 3], [0, 0, 0, 1]])
    assert torch.allclose(traj.w2c[0], expected)
    assert torch.allclose(traj.K[0], torch.tensor([[500.0, 0, 319.5], [0, 510.0, 239.5], [0, 0, 1]]))
    assert (traj.height, traj.width) == (480, 640)
    # a world point in front of the camera (OpenGL -z) lands in front in OpenCV (z > 0)
    X = torch.tensor([1.0, 2.0, 1.0, 1.0])
    assert (traj.w2c[0] @ X)[2] > 0


def test_transforms_json_nerf_synthetic_camera_angle(tmp_path):
    doc = {"camera_angle_x": math.radians(90), "frames": [{"file_path": "r_0", "transform_matrix": torch.eye(4).tolist()}]}
    (tmp_path / "transforms_train.json").write_text(json.dumps(doc))
    with pytest.raises(TrajectoryError, match="no image size"):
        read_transforms_json(tmp_path / "transforms_train.json")
    traj = read_transforms_json(tmp_path / "transforms_train.json", default_size=(100, 200))
    assert torch.allclose(traj.K[0], torch.tensor([[100.0, 0, 99.5], [0, 100.0, 49.5], [0, 0, 1]]))


def test_transforms_json_errors(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"frames": []}')
    with pytest.raises(TrajectoryError, match="non-empty 'frames'"):
        read_transforms_json(p)
    p.write_text(json.dumps({"w": 4, "h": 4, "fl_x": 2, "frames": [{"transform_matrix": [[1, 0], [0, 1]]}]}))
    with pytest.raises(TrajectoryError, match="must be 4x4"):
        read_transforms_json(p)


def test_colmap_round_trip(tmp_path):
    traj = trajectory(varying_K=True)
    write_colmap_text(traj, tmp_path / "sparse")
    assert_same(read_colmap_text(tmp_path / "sparse"), traj)
    assert_same(read_colmap_text(tmp_path / "sparse" / "images.txt"), traj)


def test_colmap_known_values_sorted_by_name_and_models(tmp_path, caplog):
    (tmp_path / "cameras.txt").write_text(
        "# Camera list\n"
        "1 SIMPLE_RADIAL 64 48 50 32 24 0.01\n"
        "2 OPENCV 64 48 50 52 31 23 0 0 0 0\n"
    )
    # 90 deg about z: qw = qz = sqrt(1/2); image b.png listed first, with a points line; a.png with an empty one
    s = math.sqrt(0.5)
    (tmp_path / "images.txt").write_text(
        "# Image list\n"
        f"2 {s} 0 0 {s} 1 2 3 2 b.png\n"
        "10.0 20.0 -1 11.0 21.0 5\n"
        "1 1 0 0 0 0.5 0 0 1 a.png\n"
        "\n"
    )
    with caplog.at_level(logging.WARNING):
        traj = read_colmap_text(tmp_path)
    assert "distortion" in caplog.text
    assert traj.meta["image_names"] == ["a.png", "b.png"]
    assert torch.allclose(traj.w2c[0], torch.tensor([[1.0, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    assert torch.allclose(traj.w2c[1, :3, :3], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    assert torch.allclose(traj.w2c[1, :3, 3], torch.tensor([1.0, 2, 3]))
    assert torch.allclose(traj.K[0], torch.tensor([[50.0, 0, 31.5], [0, 50, 23.5], [0, 0, 1]]))
    assert torch.allclose(traj.K[1], torch.tensor([[50.0, 0, 30.5], [0, 52, 22.5], [0, 0, 1]]))
    assert (traj.height, traj.width) == (48, 64)


def test_colmap_errors(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 FISHEYE 64 48 50 32 24\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(TrajectoryError, match="unsupported camera model FISHEYE"):
        read_colmap_text(tmp_path)
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 64 48 50 50 32 24\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 7 a.png\n\n")
    with pytest.raises(TrajectoryError, match="unknown camera 7"):
        read_colmap_text(tmp_path)


def test_megasam_round_trip_and_sizes(tmp_path):
    traj = trajectory(varying_K=True)
    write_megasam_npz(traj, tmp_path / "out.npz")
    assert_same(read_megasam_npz(tmp_path / "out.npz"), traj)
    c2w = torch.linalg.inv(traj.w2c).numpy()
    np.savez(tmp_path / "m.npz", cam_c2w=c2w, intrinsic=traj.K[0].numpy(), depths=np.ones((5, 30, 40), np.float32))
    got = read_megasam_npz(tmp_path / "m.npz")
    assert (got.height, got.width) == (30, 40) and torch.allclose(got.K, traj.K[:1].expand(5, 3, 3))
    np.savez(tmp_path / "i.npz", cam_c2w=c2w, K=traj.K.numpy(), images=np.zeros((5, 30, 40, 3), np.uint8))
    assert read_megasam_npz(tmp_path / "i.npz").width == 40
    np.savez(tmp_path / "bad.npz", cam_c2w=c2w)
    with pytest.raises(TrajectoryError, match="missing intrinsics"):
        read_megasam_npz(tmp_path / "bad.npz")


def source(n=6):
    t = torch.arange(n, dtype=torch.float32)
    w2c = look_at(torch.stack([0.2 * t, 0 * t, 0.1 * t], -1), torch.stack([0.3 * t, 0.1 * t, 4 + 0 * t], -1))
    return Cameras(w2c, default_intrinsics(24, 32).repeat(n, 1, 1), 24, 32)


def test_trajcrafter_matches_presets_and_round_trips(tmp_path):
    src, d = source(), 2.5
    (tmp_path / "t.txt").write_text("0 20\n0 0\n0 0\n")
    up = read_trajcrafter_txt(tmp_path / "t.txt", src, d)
    assert torch.allclose(up.w2c, make_preset_trajectory("arc:20", src, d).w2c, atol=1e-5)
    # phi > 0 moves the camera left, so phi = -30 is orbit:30 (right)
    (tmp_path / "p.txt").write_text("0\n-30\n0\n")
    right = read_trajcrafter_txt(tmp_path / "p.txt", src, d)
    assert torch.allclose(right.w2c, make_preset_trajectory("orbit:30", src, d).w2c, atol=1e-5)
    (tmp_path / "r.txt").write_text("0 0\n0 0\n0 -0.3\n")
    closer = read_trajcrafter_txt(tmp_path / "r.txt", src, d)
    assert torch.allclose(closer.w2c, make_preset_trajectory("dolly:0.3", src, d).w2c, atol=1e-5)
    (tmp_path / "loop.txt").write_text("0 5 10 -4 0\n0 -8 -20 6 2\n0 0.1 -0.2 0.3 0\n")
    traj = read_trajcrafter_txt(tmp_path / "loop.txt", src, d)
    write_trajcrafter_txt(traj, src, d, tmp_path / "back.txt")
    assert_same(read_trajcrafter_txt(tmp_path / "back.txt", src, d), traj)
    theta, phi, r = trajectory_to_trajcrafter(traj, src, d)
    assert theta[0] == pytest.approx(0, abs=1e-4) and phi[-1] == pytest.approx(2, abs=1e-3) and r[-1] == pytest.approx(0, abs=1e-5)


def test_trajcrafter_errors(tmp_path):
    with pytest.raises(TrajectoryError, match="expected 3 lines"):
        parse_trajcrafter_text("0 1\n0 1\n")
    with pytest.raises(TrajectoryError, match="phi line has a value that is not a number"):
        parse_trajcrafter_text("0\nx\n0\n")
    with pytest.raises(TrajectoryError, match="r values must be > -1"):
        parse_trajcrafter_text("0\n0\n-1\n")
    src = source()
    with pytest.raises(TrajectoryError, match="not expressible"):
        trajectory_to_trajcrafter(make_preset_trajectory("pan:20", src, 2.0), src, 2.0)
