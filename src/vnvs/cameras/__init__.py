"""Cameras, trajectories, presets and converters (OpenCV convention, ``w2c`` extrinsics)."""

from vnvs.cameras.se3 import axis_angle_to_matrix, invert_se3, look_at

__all__ = ["axis_angle_to_matrix", "invert_se3", "look_at"]
