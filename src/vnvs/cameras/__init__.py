"""Cameras, trajectories, presets and converters (OpenCV convention, ``w2c`` extrinsics)."""

from vnvs.cameras.camera import Cameras, crop_intrinsics, default_intrinsics, fov_to_focal, scale_intrinsics
from vnvs.cameras.presets import PRESETS, make_preset_trajectory, parse_preset
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
from vnvs.cameras.resolve import read_camera_file, resolve_trajectory
from vnvs.cameras.trajectory import Trajectory, validate_cameras

__all__ = [
    "Cameras",
    "PRESETS",
    "Trajectory",
    "axis_angle_to_matrix",
    "crop_intrinsics",
    "default_intrinsics",
    "fov_to_focal",
    "interpolate_poses",
    "invert_se3",
    "look_at",
    "make_preset_trajectory",
    "matrix_to_quaternion",
    "parse_preset",
    "quaternion_to_matrix",
    "read_camera_file",
    "resolve_trajectory",
    "rotation_angle",
    "scale_intrinsics",
    "slerp",
    "validate_cameras",
]
