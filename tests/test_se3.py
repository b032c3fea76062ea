import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vnvs.geometry.se3 import (
    axis_angle_to_matrix,
    interpolate_poses,
    invert_se3,
    look_at,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_angle,
    slerp,
)

coord = st.floats(-3.0, 3.0, allow_nan=False)
vec3 = st.tuples(coord, coord, coord)


def rot(axis, angle):
    a = torch.tensor(axis, dtype=torch.float64)
    a = a / a.norm().clamp(min=1e-9)
    return axis_angle_to_matrix(a * angle)


axis = vec3.filter(lambda v: sum(x * x for x in v) > 1e-2)
angle = st.floats(0.0, math.pi, allow_nan=False)


def pose(ax, ang, t):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = rot(ax, ang)
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


@settings(max_examples=40, deadline=None)
@given(axis, angle, vec3)
def test_invert_se3_is_inverse(ax, ang, t):
    T = pose(ax, ang, t)
    assert torch.allclose(T @ invert_se3(T), torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(invert_se3(invert_se3(T)), T, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(axis, angle)
def test_quaternion_round_trip(ax, ang):
    R = rot(ax, ang)
    q = matrix_to_quaternion(R)
    assert abs(q.norm().item() - 1) < 1e-12 and q[0] >= 0
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-10)
    assert abs(2 * math.acos(min(1.0, q[0].item())) - ang) < 1e-6


def test_quaternion_near_pi_and_identity():
    for ang in (0.0, 1e-9, math.pi - 1e-9, math.pi):
        for ax in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)):
            R = rot(ax, ang)
            assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-8)


def test_quaternion_matches_known_value():
    q = matrix_to_quaternion(rot((0, 0, 1), math.pi / 2))
    assert torch.allclose(q, torch.tensor([math.sqrt(0.5), 0, 0, math.sqrt(0.5)], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(axis, angle, axis, angle)
def test_slerp_endpoints_midpoint_and_constant_speed(ax0, ang0, ax1, ang1):
    q0 = matrix_to_quaternion(rot(ax0, ang0))
    q1 = matrix_to_quaternion(rot(ax1, ang1))
    R0, R1 = quaternion_to_matrix(q0), quaternion_to_matrix(q1)
    assert torch.allclose(quaternion_to_matrix(slerp(q0, q1, 0.0)), R0, atol=1e-9)
    assert torch.allclose(quaternion_to_matrix(slerp(q0, q1, 1.0)), R1, atol=1e-9)
    total = rotation_angle(R0.T @ R1).item()
    ts = torch.linspace(0, 1, 9, dtype=torch.float64)
    Rt = quaternion_to_matrix(slerp(q0.expand(9, 4), q1.expand(9, 4), ts))
    travelled = rotation_angle(R0.T @ Rt)
    assert torch.allclose(travelled, ts * total, atol=1e-6)  # constant angular speed, midpoint at half angle
    remaining = rotation_angle(Rt.transpose(-1, -2) @ R1)
    assert torch.allclose(remaining, (1 - ts) * total, atol=1e-6)  # on the geodesic


@settings(max_examples=40, deadline=None)
@given(axis, st.floats(0.0, math.pi - 1e-4))
def test_rotation_angle(ax, ang):
    assert abs(rotation_angle(rot(ax, ang)).item() - ang) < 1e-9


def test_interpolate_poses_keys_clamp_and_midpoint():
    eyes = torch.tensor([[0.0, 0.0, -2.0], [2.0, 0.0, 0.0], [0.0, -1.0, 2.0]])
    w2c = look_at(eyes, torch.zeros(3))
    keys = torch.tensor([0.0, 1.0, 3.0])
    out = interpolate_poses(w2c, keys, torch.tensor([-1.0, 0.0, 1.0, 3.0, 5.0, 0.5, 2.0]))
    assert out.dtype == torch.float32 and out.shape == (7, 4, 4)
    assert torch.allclose(out[[1, 2, 3]], w2c, atol=1e-5)
    assert torch.allclose(out[0], w2c[0], atol=1e-5) and torch.allclose(out[4], w2c[2], atol=1e-5)
    c = invert_se3(out)[:, :3, 3]
    assert torch.allclose(c[5], (eyes[0] + eyes[1]) / 2, atol=1e-5)
    assert torch.allclose(c[6], (eyes[1] + eyes[2]) / 2, atol=1e-5)
    R0, R1, Rm = w2c[0, :3, :3].double(), w2c[1, :3, :3].double(), out[5, :3, :3].double()
    half = rotation_angle(R0 @ R1.T).item() / 2
    assert abs(rotation_angle(R0 @ Rm.T).item() - half) < 1e-5
    assert abs(rotation_angle(Rm @ R1.T).item() - half) < 1e-5


def test_interpolate_single_key():
    w2c = look_at(torch.tensor([[1.0, 2.0, 3.0]]), torch.zeros(3))
    out = interpolate_poses(w2c, torch.tensor([0.0]), torch.tensor([0.0, 4.0]))
    assert torch.allclose(out, w2c.expand(2, 4, 4))
