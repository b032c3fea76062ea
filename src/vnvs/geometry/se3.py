"""Rigid transforms as pure tensor functions (OpenCV camera convention, ``w2c`` extrinsics)."""

from __future__ import annotations

import torch


def invert_se3(T: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms.

    Args:
        T: ``(..., 4, 4)`` rigid transforms ``[R | t]``.

    Returns:
        ``(..., 4, 4)`` inverses ``[R^T | -R^T t]``.

    Example:
        >>> T = torch.eye(4); T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
        >>> invert_se3(T)[:3, 3]
        tensor([-1., -2., -3.])
    """
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1
    return out


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    Args:
        axis_angle: ``(..., 3)`` rotation axis scaled by the angle in radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Example:
        >>> R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, torch.pi / 2]))
        >>> (R @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=6)
        tensor([0., 1., 0.])
    """
    angle = axis_angle.norm(dim=-1, keepdim=True)
    safe = torch.where(angle > 1e-12, angle, torch.ones_like(angle))
    axis = axis_angle / safe
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(Kx)
    R = eye + s * Kx + (1 - c) * (Kx @ Kx)
    return torch.where((angle > 1e-12)[..., None], R, eye)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-camera matrices of cameras at ``eye`` looking at ``target`` (OpenCV axes).

    The camera z axis points from ``eye`` to ``target``; its y axis points along ``up``'s
    opposite projected on the image plane (OpenCV y is down). ``up`` defaults to ``(0, -1, 0)``,
    i.e. world "up" is -y, as for a camera with identity rotation.

    Args:
        eye: ``(..., 3)`` camera centres.
        target: ``(..., 3)`` points to look at.
        up: ``(..., 3)`` world up direction.

    Returns:
        ``(..., 4, 4)`` world-to-camera matrices.

    Example:
        >>> w2c = look_at(torch.tensor([0.0, 0.0, -2.0]), torch.zeros(3))
        >>> torch.allclose(w2c, torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]))
        True
    """
    eye, target = torch.broadcast_tensors(eye, target)
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype, device=eye.device)
    up = up.expand_as(eye)
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    x = torch.nn.functional.normalize(torch.linalg.cross(-up, z, dim=-1), dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=-2)  # rows are the camera axes in world coordinates
    w2c = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    w2c[..., :3, :3] = R
    w2c[..., :3, 3] = -(R @ eye[..., None])[..., 0]
    w2c[..., 3, 3] = 1
    return w2c


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` of rotation matrices (Shepperd's method, ``w >= 0``).

    Stable for every rotation, including angles near 0 and pi: each quaternion is computed from the
    largest of the four diagonal combinations. The result is canonicalised to ``w >= 0``.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 4)`` unit quaternions, scalar first.

    Example:
        >>> matrix_to_quaternion(torch.eye(3))
        tensor([1., 0., 0., 0.])
    """
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate (unnormalised) quaternions scaled by 4*q_k; pick the best conditioned.
    cands = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of quaternions ``(w, x, y, z)``; the input need not be normalised.

    Args:
        q: ``(..., 4)`` quaternions, scalar first, non-zero.

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Example:
        >>> R = quaternion_to_matrix(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # 180 deg about z
        >>> R.diagonal()
        tensor([-1., -1.,  1.])
    """
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical linear interpolation of unit quaternions along the shortest arc.

    ``t = 0`` gives ``q0``, ``t = 1`` gives ``q1`` or ``-q1`` (the same rotation); the angular speed
    is constant in ``t``. Nearly equal quaternions fall back to normalised linear interpolation.

    Args:
        q0: ``(..., 4)`` unit quaternions (wxyz).
        q1: ``(..., 4)`` unit quaternions (wxyz).
        t: ``(...)`` interpolation parameters (broadcast against the batch shape) or a float.

    Returns:
        ``(..., 4)`` unit quaternions.

    Example:
        >>> q1 = torch.tensor([0.0, 0.0, 0.0, 1.0])  # 180 deg about z
        >>> slerp(torch.tensor([1.0, 0.0, 0.0, 0.0]), q1, 0.5).round(decimals=4)
        tensor([0.7071, 0.0000, 0.0000, 0.7071])
    """
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-6
    safe = torch.where(small, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(small, t, torch.sin(t * theta) / safe)
    return torch.nn.functional.normalize(w0 * q0 + w1 * q1, dim=-1)


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation angles in radians, in ``[0, pi]``, accurate near 0 and pi.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(...)`` angles.

    Example:
        >>> float(rotation_angle(axis_angle_to_matrix(torch.tensor([0.0, 0.3, 0.0])))).__round__(6)
        0.3
    """
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return torch.atan2(vee.norm(dim=-1) / 2, cos)


def interpolate_poses(w2c_keys: torch.Tensor, key_times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
    """Interpolate camera poses between keyframes (rotation slerp, camera-centre lerp).

    Interpolation happens on camera-to-world poses: the camera centre moves on straight lines
    between keyframe centres and the orientation rotates at constant angular speed. Query times
    outside ``[key_times[0], key_times[-1]]`` are clamped to the end keyframes. Computed in float64.

    Args:
        w2c_keys: ``(K, 4, 4)`` keyframe world-to-camera matrices, ``K >= 1``.
        key_times: ``(K,)`` strictly increasing keyframe times.
        query_times: ``(N,)`` times to evaluate.

    Returns:
        ``(N, 4, 4)`` world-to-camera matrices, dtype of ``w2c_keys``.

    Example:
        >>> a = torch.eye(4); b = torch.eye(4); b[:3, 3] = torch.tensor([-2.0, 0.0, 0.0])
        >>> out = interpolate_poses(torch.stack([a, b]), torch.tensor([0.0, 1.0]), torch.tensor([0.5, 3.0]))
        >>> out[:, 0, 3]
        tensor([-1., -2.])
    """
    dtype = w2c_keys.dtype
    c2w = invert_se3(w2c_keys.double())
    kt = key_times.to(torch.float64, copy=False).to(w2c_keys.device)
    qt = query_times.to(torch.float64, copy=False).to(w2c_keys.device)
    if c2w.shape[0] == 1:
        return w2c_keys[:1].expand(qt.shape[0], 4, 4).clone()
    qt = qt.clamp(kt[0], kt[-1])
    hi = torch.searchsorted(kt, qt, right=True).clamp(1, kt.shape[0] - 1)
    lo = hi - 1
    u = ((qt - kt[lo]) / (kt[hi] - kt[lo])).clamp(0, 1)
    quats = matrix_to_quaternion(c2w[:, :3, :3])
    q = slerp(quats[lo], quats[hi], u)
    centres = c2w[:, :3, 3]
    c = centres[lo] + u[:, None] * (centres[hi] - centres[lo])
    out = torch.zeros(qt.shape[0], 4, 4, dtype=torch.float64, device=w2c_keys.device)
    out[:, :3, :3] = quaternion_to_matrix(q)
    out[:, :3, 3] = c
    out[:, 3, 3] = 1
    return invert_se3(out).to(dtype)


def _hat(w: torch.Tensor) -> torch.Tensor:
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*w.shape[:-1], 3, 3)


def _left_jacobian(w: torch.Tensor) -> torch.Tensor:
    """``V(w) = I + (1 - cos a) / a^2 [w] + (a - sin a) / a^3 [w]^2`` (SE(3) exp: ``t = V rho``)."""
    a = w.norm(dim=-1)[..., None, None]
    small = a < 1e-8
    safe = torch.where(small, torch.ones_like(a), a)
    Wx = _hat(w)
    c1 = torch.where(small, torch.full_like(a, 0.5), (1 - torch.cos(safe)) / safe**2)
    c2 = torch.where(small, torch.full_like(a, 1.0 / 6.0), (safe - torch.sin(safe)) / safe**3)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(Wx)
    return eye + c1 * Wx + c2 * (Wx @ Wx)


def se3_fraction(T: torch.Tensor, fraction: torch.Tensor | float) -> torch.Tensor:
    """``T ** f``: the rigid transform a fraction ``f`` of the way along the screw motion of ``T``.

    ``exp(f log T)``: a rotation by ``f`` of the angle about the same screw axis, with ``f`` of its
    pitch (an orbit about a point stays an orbit about that point). Rotation angles below pi.
    Computed in float64.

    Args:
        T: ``(..., 4, 4)`` rigid transforms.
        fraction: scalar or tensor broadcastable to ``T.shape[:-2]``.

    Returns:
        ``(..., 4, 4)``, dtype of ``T``; ``f = 0`` gives the identity, ``f = 1`` gives ``T``.

    Example:
        >>> T = torch.eye(4); T[:3, :3] = axis_angle_to_matrix(torch.tensor([0.0, 0.6, 0.0])); T[0, 3] = 1.0
        >>> half = se3_fraction(T, 0.5)
        >>> bool(torch.allclose(half @ half, T, atol=1e-6)), round(float(rotation_angle(half[:3, :3])), 6)
        (True, 0.3)
    """
    dtype = T.dtype
    T = T.double()
    f = torch.as_tensor(fraction, dtype=torch.float64, device=T.device)
    R, t = T[..., :3, :3], T[..., :3, 3]
    angle = rotation_angle(R)
    vee = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    norm = vee.norm(dim=-1, keepdim=True)
    axis = vee / torch.where(norm > 1e-12, norm, torch.ones_like(norm))
    w = axis * angle[..., None]
    rho = torch.linalg.solve(_left_jacobian(w), t[..., None])[..., 0]
    f = f.expand(angle.shape) if f.ndim == 0 else f
    wf, rf = w * f[..., None], rho * f[..., None]
    out = torch.zeros(*wf.shape[:-1], 4, 4, dtype=torch.float64, device=T.device)
    out[..., :3, :3] = axis_angle_to_matrix(wf)
    out[..., :3, 3] = (_left_jacobian(wf) @ rf[..., None])[..., 0]
    out[..., 3, 3] = 1
    return out.to(dtype)
