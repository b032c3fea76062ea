"""Procedural dynamic 4D scenes with exact ground truth (depth, instances, correspondence,
visibility): the offline default of ``vnvs`` and the ground truth of every benchmark.

See ``docs/synthetic.md``. Time is a float in ``[0, 1]`` over the clip.
"""

from vnvs.synthetic.correspondence import correspondence
from vnvs.synthetic.grids import procedural_grid
from vnvs.synthetic.paths import (
    SOURCE_MOTIONS,
    GridOutput,
    SourceVideo,
    clip_times,
    look_at_depth,
    orbit_camera,
    render_grid,
    render_source_video,
    render_views,
    source_camera_path,
)
from vnvs.synthetic.render import RenderOutput, cast_pixels, median_depth, render, render_depth
from vnvs.synthetic.scene import BOX, ELLIPSOID, SPHERE, Scene, SceneConfig, generate_scene

__all__ = [
    "BOX", "ELLIPSOID", "SPHERE", "SOURCE_MOTIONS",
    "GridOutput", "RenderOutput", "Scene", "SceneConfig", "SourceVideo",
    "cast_pixels", "clip_times", "correspondence", "generate_scene",
    "look_at_depth", "median_depth", "orbit_camera", "procedural_grid", "render", "render_depth", "render_grid",
    "render_source_video", "render_views", "source_camera_path",
]
