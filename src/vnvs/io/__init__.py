"""File input and output: videos (PyAV), still images and contact sheets, depth maps.

Every reader raises a one-line :class:`vnvs.errors.VnvsError` subclass for bad input; every writer
goes through :func:`vnvs.utils.atomic.atomic_path`, so outputs are complete or absent.
"""

from vnvs.io.depth import DepthMaps, load_depth, save_depth
from vnvs.io.images import (
    contact_sheet,
    read_png,
    resize_frames,
    side_by_side,
    write_contact_sheet,
    write_png,
)
from vnvs.io.transform import FrameTransform, plan_transform, transform_depth
from vnvs.io.video import (
    Video,
    VideoInfo,
    VideoStream,
    VideoWriter,
    iter_video_chunks,
    probe_video,
    read_frames_at,
    read_video,
    write_video,
)

__all__ = [
    "DepthMaps",
    "FrameTransform",
    "Video",
    "VideoInfo",
    "VideoStream",
    "VideoWriter",
    "contact_sheet",
    "iter_video_chunks",
    "load_depth",
    "plan_transform",
    "probe_video",
    "read_png",
    "read_frames_at",
    "read_video",
    "resize_frames",
    "save_depth",
    "transform_depth",
    "side_by_side",
    "write_contact_sheet",
    "write_png",
    "write_video",
]
