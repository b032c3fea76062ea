"""Geometry core: pure tensor functions, batched over frames (shapes in each docstring)."""

from vnvs.geometry.control import (
                                   CONTROL_CHANNELS,
                                   CORR,
                                   MASK,
                                   RENDERERS,
                                   SOURCE,
                                   WARPED,
                                   build_control_signal,
                                   composite_warped,
                                   control_mask,
                                   crop_control,
                                   fill_cracks,
                                   render_control,
                                   resize_control,
                                   split_control_signal,
                                   warp_cells,
)
from vnvs.geometry.mesh_render import mesh_render
from vnvs.geometry.projection import (
                                   depth_to_world,
                                   pixel_grid,
                                   project_points,
                                   relative_transform,
                                   transform_points,
                                   unproject_depth,
)
from vnvs.geometry.soft_splat import soft_splat
from vnvs.geometry.splat import (
                                   SplatResult,
                                   forward_splat,
                                   forward_splat_flow,
                                   project_depth_to_pixels,
                                   random_keys,
)
from vnvs.geometry.visibility import covisibility
from vnvs.geometry.warp import (
                                   backward_warp,
                                   correspondence_from_flow,
                                   denormalize_coords,
                                   flow_from_correspondence,
                                   normalize_coords,
)

__all__ = [
    "CONTROL_CHANNELS", "CORR", "MASK", "RENDERERS", "SOURCE", "SplatResult", "WARPED", "backward_warp", "build_control_signal",
    "composite_warped", "control_mask", "correspondence_from_flow", "crop_control", "fill_cracks", "render_control",
    "resize_control", "warp_cells",
    "covisibility", "denormalize_coords", "depth_to_world", "flow_from_correspondence", "forward_splat",
    "forward_splat_flow", "mesh_render", "normalize_coords", "pixel_grid", "project_depth_to_pixels", "project_points", "random_keys", "relative_transform",
    "soft_splat", "split_control_signal", "transform_points", "unproject_depth",
]
