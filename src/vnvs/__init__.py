"""vnvs: video novel-view synthesis and 4D lifting of monocular videos.

Conventions shared by every module (see ``docs/conventions.md``):

* cameras are OpenCV (x right, y down, z forward); extrinsics are world-to-camera ``w2c``
  ``(..., 4, 4)``; intrinsics ``K`` ``(..., 3, 3)`` in pixels of the image they belong to, with
  pixel centres at integer coordinates;
* videos are ``(T, 3, H, W)`` float32 in [0, 1]; depth is ``(T, H, W)`` in scene units, > 0.
"""

__version__ = "0.1.0"
