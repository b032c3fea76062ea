import copy
import json
import math

import pytest
import torch

from vnvs.cameras import Cameras, Trajectory, default_intrinsics, look_at, make_preset_trajectory, resolve_trajectory, rotation_angle
from vnvs.cameras.converters import write_colmap_text, write_megasam_npz, write_transforms_json
from vnvs.errors import TrajectoryError


def trajectory(n=4, times=None):
    t = torch.arange(n, dtype=torch.float32)
    w2c = look_at(torch.stack([t, 0 * t, -2 + 0 * t], -1), torch.zeros(3))
    return Trajectory(w2c, default_intrinsics(20, 30).repeat(n, 1, 1), 20, 30, times, {"note": "x"})


def source(n=6):
    t = torch.arange(n, dtype=torch.float32)
    w2c = look_at(torch.stack([0.1 * t, 0 * t, 0 * t], -1), torch.stack([0 * t, 0 * t, 3 + 0 * t], -1))
    return Cameras(w2c, default_intrinsics(24, 32).repeat(n, 1, 1), 24, 32)


def test_json_round_trip(tmp_path):
    traj = trajectory(times=torch.tensor([2, 2, 3, 0]))
    path = traj.save(tmp_path / "t.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "vnvs-trajectory" and doc["version"] == 1 and doc["convention"] == "opencv-w2c"
    assert doc["frames"][0]["time"] == 2 and len(doc["frames"][0]["w2c"]) == 4
    back = Trajectory.load(path)
    assert torch.equal(back.w2c, traj.w2c) and torch.equal(back.K, traj.K)  # float32 values survive exactly
    assert torch.equal(back.time_index, traj.time_index) and back.meta == {"note": "x"}
    assert "time" not in trajectory().to_dict()["frames"][0]
    assert Trajectory.from_dict(trajectory().to_dict()).time_index is None
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary


def corrupt(edit):
    doc = trajectory().to_dict()
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def rotate_bad(doc):
    doc["frames"][1]["w2c"][0][0] = 2.0


def set_(path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def delete(path):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return edit


@pytest.mark.parametrize(
    "edit,match",
    [
        (set_(["format"], "other"), "format must be 'vnvs-trajectory'"),
        (set_(["version"], 2), "unsupported trajectory version 2"),
        (set_(["convention"], "opengl-c2w"), "convention must be 'opencv-w2c'"),
        (delete(["frames"]), "missing the key 'frames'"),
        (delete(["height"]), "missing the key 'height'"),
        (set_(["width"], -3), "width must be a positive integer"),
        (set_(["frames"], []), "trajectory has no frames"),
        (delete(["frames", 0, "K"]), "frame 0 is missing the key 'K'"),
        (set_(["frames", 1, "w2c"], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "frame 1 w2c must be a 4x4"),
        (set_(["frames", 0, "K"], [[1, 0], [0, 1]]), "frame 0 K must be a 3x3"),
        (set_(["frames", 2, "w2c"], [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "frame 2 w2c has non-finite values"),
        (rotate_bad, "frame 1: w2c rotation is not orthonormal"),
        (set_(["frames", 0, "w2c"], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]), "frame 0: w2c rotation is not orthonormal with det"),
        (set_(["frames", 0, "w2c"], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]), "last row"),
        (set_(["frames", 3, "K"], [[-5, 0, 1], [0, 5, 1], [0, 0, 1]]), "frame 3: K focal lengths must be > 0"),
        (set_(["frames", 3, "K"], [[5, 0, 1], [0, 5, 1], [0, 1, 1]]), "frame 3: K must be"),
        (set_(["frames", 0, "time"], -1), "frame 0 time must be >= 0"),
        (set_(["frames", 0, "time"], 1.5), "frame 0 time must be an integer"),
        (set_(["meta"], [1]), "'meta' must be an object"),
    ],
)
def test_validation_errors(edit, match):
    doc = corrupt(edit)
    if "time" in match:
        for i, f in enumerate(doc["frames"][1:]):
            f["time"] = i
    with pytest.raises(TrajectoryError, match=match) as info:
        Trajectory.from_dict(doc)
    assert "\n" not in str(info.value)


def test_partial_times_and_bad_files(tmp_path):
    doc = trajectory().to_dict()
    doc["frames"][0]["time"] = 0
    with pytest.raises(TrajectoryError, match="all have a 'time' or none"):
        Trajectory.from_dict(doc)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TrajectoryError, match=r"bad.json is not valid JSON: .*\(line 1") as info:
        Trajectory.load(tmp_path / "bad.json")
    assert "\n" not in str(info.value)
    with pytest.raises(TrajectoryError, match="trajectory file .*missing.json does not exist"):
        Trajectory.load(tmp_path / "missing.json")
    with pytest.raises(TrajectoryError, match="must be a JSON object"):
        Trajectory.from_dict([1, 2])


def test_resample_keeps_ends_and_interpolates():
    traj = trajectory(4)
    traj.K[:, 0, 0] = torch.tensor([10.0, 20.0, 30.0, 40.0])
    out = traj.resample(7)
    assert len(out) == 7 and (out.height, out.width) == (20, 30)
    assert torch.allclose(out.w2c[0], traj.w2c[0], atol=1e-5) and torch.allclose(out.w2c[-1], traj.w2c[-1], atol=1e-5)
    assert torch.allclose(out.w2c[2], traj.w2c[1], atol=1e-5)
    assert torch.allclose(out.K[:, 0, 0], torch.linspace(10, 40, 7))
    assert out.time_index.tolist() == [0, 1, 1, 2, 2, 3, 3]
    c = out.cameras().centers
    assert torch.allclose(c[1], (traj.cameras().centers[0] + traj.cameras().centers[1]) / 2, atol=1e-5)
    same = traj.resample(4)
    assert same.time_index is None and torch.equal(same.w2c, traj.w2c)
    with pytest.raises(TrajectoryError):
        traj.resample(0)


def test_resolve_preset_and_num_frames():
    src = source()
    traj = resolve_trajectory("orbit:20", src, 3.0, mode="direct")
    assert torch.allclose(traj.w2c, make_preset_trajectory("orbit:20", src, 3.0, "direct").w2c)
    assert len(resolve_trajectory("orbit:20", src, 3.0, num_frames=11)) == 11
    with pytest.raises(TrajectoryError, match="unknown trajectory preset"):
        resolve_trajectory("wobble:3", src, 3.0)
    with pytest.raises(TrajectoryError, match="file not found"):
        resolve_trajectory("nowhere/path.json", src, 3.0)


def test_resolve_files(tmp_path):
    src = source(6)
    absolute = trajectory(4)
    absolute.save(tmp_path / "vnvs.json")
    write_transforms_json(absolute, tmp_path / "ns" / "transforms.json")
    write_colmap_text(absolute, tmp_path / "colmap" / "sparse" / "0")
    write_megasam_npz(absolute, tmp_path / "mega.npz")
    (tmp_path / "tc.txt").write_text("0 10\n0 0\n0 0\n")
    for arg, kind in [
        (tmp_path / "vnvs.json", "vnvs"),
        (tmp_path / "ns", "nerfstudio"),
        (tmp_path / "ns" / "transforms.json", "nerfstudio"),
        (tmp_path / "colmap", "colmap"),
        (tmp_path / "colmap" / "sparse" / "0" / "images.txt", "colmap"),
        (tmp_path / "mega.npz", "megasam"),
    ]:
        traj = resolve_trajectory(arg, src, 3.0)
        assert traj.meta["kind"] == kind
        assert len(traj) == 6, kind  # resampled to the video's frame count
        assert (traj.height, traj.width) == (20, 30), kind  # the file's own size wins
        assert torch.allclose(traj.w2c[0], absolute.w2c[0], atol=1e-5) and torch.allclose(traj.w2c[-1], absolute.w2c[-1], atol=1e-5)
        at_source = resolve_trajectory(arg, src, 3.0, size="source")
        assert (at_source.height, at_source.width) == (24, 32)
        assert torch.allclose(at_source.K[0, 0, 2], (absolute.K[0, 0, 2] + 0.5) * 32 / 30 - 0.5)
    tc = resolve_trajectory(tmp_path / "tc.txt", src, 3.0)
    assert torch.allclose(tc.w2c, make_preset_trajectory("arc:10", src, 3.0).w2c, atol=1e-5)
    assert (tc.height, tc.width) == (24, 32)
    assert len(resolve_trajectory(str(tmp_path / "vnvs.json"), src, 3.0, num_frames=4)) == 4


def test_resolve_rejects_unknown_files(tmp_path):
    trajectory(times=torch.tensor([0, 1, 9, 2])).save(tmp_path / "late.json")
    with pytest.raises(TrajectoryError, match="frame time 9 is beyond the video's last frame 5"):
        resolve_trajectory(tmp_path / "late.json", source(), 3.0)
    (tmp_path / "x.json").write_text('{"format": "something"}')
    with pytest.raises(TrajectoryError, match="format must be 'vnvs-trajectory'"):
        resolve_trajectory(tmp_path / "x.json", source(), 3.0)
    (tmp_path / "y.json").write_text('{"a": 1}')
    with pytest.raises(TrajectoryError, match="neither a vnvs trajectory nor"):
        resolve_trajectory(tmp_path / "y.json", source(), 3.0)
    (tmp_path / "z.ply").write_text("ply")
    with pytest.raises(TrajectoryError, match="unrecognised trajectory file"):
        resolve_trajectory(tmp_path / "z.ply", source(), 3.0)
    with pytest.raises(TrajectoryError, match="folder without"):
        resolve_trajectory(tmp_path, source(), 3.0)


def test_resampled_bullet_keeps_frozen_time():
    traj = make_preset_trajectory("bullet:40@1", source(5), 2.0).resample(9)
    assert torch.equal(traj.time_index, torch.ones(9, dtype=torch.int64))
    angles = rotation_angle(traj.w2c[1:, :3, :3].double() @ traj.w2c[:-1, :3, :3].double().transpose(-1, -2))
    assert torch.allclose(angles, torch.full((8,), math.radians(40) / 8, dtype=torch.float64), atol=1e-5)
