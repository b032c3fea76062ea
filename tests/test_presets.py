import math

import pytest
import torch

from vnvs.cameras import Cameras, PRESETS, default_intrinsics, look_at, make_preset_trajectory, parse_preset, rotation_angle
from vnvs.errors import TrajectoryError

D = 3.0


def source(n=6):
    t = torch.arange(n, dtype=torch.float32)
    eyes = torch.stack([0.3 * t, -0.1 * t, 0.05 * t], -1)
    targets = torch.stack([0.5 * t, 0.2 * torch.sin(t), 5.0 + 0 * t], -1)
    w2c = look_at(eyes, targets)
    return Cameras(w2c, default_intrinsics(24, 32).repeat(n, 1, 1), 24, 32)


def lookat_points(cams, d=D):
    return cams.centers + d * cams.c2w[:, :3, 2]


def project(w2c, K, X):
    Xc = (w2c[:, :3, :3] @ X[..., None])[..., 0] + w2c[:, :3, 3]
    x = (K @ Xc[..., None])[..., 0]
    return x[:, :2] / x[:, 2:], Xc


def test_registry_and_parse():
    assert set(PRESETS) == {"orbit", "arc", "dolly", "pan", "tilt", "zoom", "translate", "spiral", "bullet"}
    steps = parse_preset("orbit:30+dolly:0.2")
    assert [(s.name, s.params) for s in steps] == [("orbit", (30.0,)), ("dolly", (0.2,))]
    assert parse_preset("bullet:30@2")[0].frame == 2


@pytest.mark.parametrize("spec", ["orbit:30", "arc:-15", "dolly:0.3", "pan:20", "tilt:10", "zoom:1.5", "translate:0.1,0,0.2", "spiral:20", "orbit:30+dolly:0.2"])
def test_gradual_frame0_is_source_and_direct_frame0_is_full(spec):
    src = source()
    g = make_preset_trajectory(spec, src, D, mode="gradual")
    d = make_preset_trajectory(spec, src, D, mode="direct")
    assert len(g) == len(src) and (g.height, g.width) == (24, 32) and g.time_index is None
    assert torch.allclose(g.w2c[0], src.w2c[0], atol=1e-5) and torch.allclose(g.K[0], src.K[0])
    if spec.startswith("spiral"):
        return  # direct spiral's frame 0 is on the circle, not the end of the gradual path
    # the direct trajectory applies the full offset everywhere: its frame 0 is the gradual's last offset
    # applied to the source camera 0; compare relative offsets source->target
    rel_last = src.w2c[-1] @ torch.linalg.inv(g.w2c[-1])
    rel_direct0 = src.w2c[0] @ torch.linalg.inv(d.w2c[0])
    assert torch.allclose(rel_last, rel_direct0, atol=1e-4)
    assert torch.allclose(g.K[-1], d.K[0])
    if spec not in ("zoom:1.5",):
        assert not torch.allclose(d.w2c[0], src.w2c[0], atol=1e-3)


@pytest.mark.parametrize("spec,axis,sign", [("orbit:30", 0, 1), ("orbit:-30", 0, -1), ("arc:20", 1, -1), ("arc:-20", 1, 1)])
def test_orbit_arc_keep_distance_and_look_at_point(spec, axis, sign):
    src = source()
    traj = make_preset_trajectory(spec, src, D, mode="direct")
    cams = traj.cameras()
    P = lookat_points(src)
    assert torch.allclose((cams.centers - P).norm(dim=-1), torch.full((len(src),), D), atol=1e-4)
    uv, Xc = project(cams.w2c, cams.K, P)
    assert torch.allclose(uv, cams.K[:, :2, 2], atol=1e-3)  # still projects to the principal point
    # direction of motion in the source camera frame: orbit + -> right (+x), arc + -> up (-y)
    move = (src.w2c[:, :3, :3] @ (cams.centers - src.centers)[..., None])[..., 0]
    assert (sign * move[:, axis] > 0.1).all()
    angle = float(spec.split(":")[1])
    rel = src.w2c[:, :3, :3].double() @ cams.c2w[:, :3, :3].double()
    assert torch.allclose(rotation_angle(rel), torch.full((len(src),), math.radians(abs(angle)), dtype=torch.float64), atol=1e-4)


def test_pan_tilt_keep_centre_and_turn_the_right_way():
    src = source()
    pan = make_preset_trajectory("pan:20", src, D, mode="direct").cameras()
    tilt = make_preset_trajectory("tilt:10", src, D, mode="direct").cameras()
    assert torch.allclose(pan.centers, src.centers, atol=1e-5) and torch.allclose(tilt.centers, src.centers, atol=1e-5)
    fwd_pan = (src.w2c[:, :3, :3] @ pan.c2w[:, :3, 2:])[..., 0]  # new optical axis in source frame
    assert torch.allclose(fwd_pan[:, 0], torch.full((6,), math.sin(math.radians(20))), atol=1e-5)  # right
    fwd_tilt = (src.w2c[:, :3, :3] @ tilt.c2w[:, :3, 2:])[..., 0]
    assert torch.allclose(fwd_tilt[:, 1], torch.full((6,), -math.sin(math.radians(10))), atol=1e-5)  # up is -y


def test_zoom_changes_only_K():
    src = source()
    traj = make_preset_trajectory("zoom:1.5", src, D)
    assert torch.allclose(traj.w2c, src.w2c, atol=1e-6)
    factors = traj.K[:, 0, 0] / src.K[:, 0, 0]
    assert torch.allclose(factors, torch.linspace(1, 1.5, 6), atol=1e-6)
    assert torch.allclose(traj.K[:, 1, 1] / src.K[:, 1, 1], factors) and torch.allclose(traj.K[:, :2, 2], src.K[:, :2, 2])


def test_dolly_and_translate_distances():
    src = source()
    dolly = make_preset_trajectory("dolly:0.3", src, D).cameras()
    P = lookat_points(src)
    s = torch.linspace(0, 1, 6)
    assert torch.allclose((dolly.centers - P).norm(dim=-1), D * (1 - 0.3 * s), atol=1e-4)
    assert torch.allclose(dolly.w2c[:, :3, :3], src.w2c[:, :3, :3], atol=1e-5)
    tr = make_preset_trajectory("translate:0.1,0,0.2", src, D, mode="direct").cameras()
    move = (src.w2c[:, :3, :3] @ (tr.centers - src.centers)[..., None])[..., 0]
    assert torch.allclose(move, torch.tensor([0.1, 0.0, 0.2]).expand(6, 3) * D, atol=1e-4)


def test_spiral_circles_the_point():
    src = source(9)
    traj = make_preset_trajectory("spiral:20", src, D).cameras()
    P = lookat_points(src)
    assert torch.allclose((traj.centers - P).norm(dim=-1), torch.full((9,), D), atol=1e-4)
    uv, _ = project(traj.w2c, traj.K, P)
    assert torch.allclose(uv, traj.K[:, :2, 2], atol=1e-3)
    rel = rotation_angle(src.w2c[:, :3, :3].double() @ traj.c2w[:, :3, :3].double())
    assert rel[0] < 1e-4 and abs(rel[-1].item() - math.radians(20)) < 1e-3  # radius grows to DEG
    move = (src.w2c[:, :3, :3] @ (traj.centers - src.centers)[..., None])[..., 0]
    assert move[2, 1] < -0.05 and move[6, 1] > 0.05  # a quarter turn goes up, three quarters down


def test_bullet_freezes_time_and_orbits_the_frozen_pose():
    src = source(7)
    traj = make_preset_trajectory("bullet:30@2", src, D, mode="direct")
    assert torch.equal(traj.time_index, torch.full((7,), 2, dtype=torch.int64))
    assert torch.allclose(traj.w2c[0], src.w2c[2], atol=1e-5)  # sweeps even in direct mode
    cams = traj.cameras()
    P = lookat_points(src[2])
    assert torch.allclose((cams.centers - P).norm(dim=-1), torch.full((7,), D), atol=1e-4)
    assert torch.equal(make_preset_trajectory("bullet:30", src, D).time_index, torch.full((7,), 3))


def test_composition_orbit_then_dolly_keeps_looking_at_point():
    src = source()
    traj = make_preset_trajectory("orbit:30+dolly:0.2", src, D, mode="direct").cameras()
    P = lookat_points(src)
    assert torch.allclose((traj.centers - P).norm(dim=-1), torch.full((6,), 0.8 * D), atol=1e-4)
    uv, _ = project(traj.w2c, traj.K, P)
    assert torch.allclose(uv, traj.K[:, :2, 2], atol=1e-3)
    other = make_preset_trajectory("dolly:0.2+orbit:30", src, D, mode="direct").cameras()
    assert torch.allclose((other.centers - P).norm(dim=-1), torch.full((6,), 0.8 * D), atol=1e-4)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("spin:30", "unknown trajectory preset 'spin'"),
        ("orbit", "needs parameters"),
        ("orbit:abc", "bad number"),
        ("orbit:1,2", "takes 1 parameter"),
        ("translate:0.1,0", "takes 3 parameter"),
        ("zoom:0", "zoom factor must be > 0"),
        ("orbit:nan", "non-finite"),
        ("bullet:30@x", "freeze frame must be an integer"),
        ("bullet:30@99", "outside the video"),
        ("bullet:10+bullet:20", "at most one bullet"),
        ("", "empty trajectory spec"),
    ],
)
def test_errors(spec, match):
    with pytest.raises(TrajectoryError, match=match) as info:
        make_preset_trajectory(spec, source(), D)
    assert "\n" not in str(info.value)
    if "unknown" in match or "takes" in match:
        assert "valid presets: orbit:X" in str(info.value)


def test_bad_mode_and_depth():
    with pytest.raises(TrajectoryError, match="mode"):
        make_preset_trajectory("orbit:10", source(), D, mode="sideways")
    with pytest.raises(TrajectoryError, match="look-at depth"):
        make_preset_trajectory("orbit:10", source(), -1.0)
