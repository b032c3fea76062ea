"""Benchmark datasets read from a local folder in their public layouts (see ``docs/evaluation.md``).

* :mod:`~vnvs.evaluation.datasets.dycheck`: DyCheck iPhone scenes (and an exporter of procedural scenes into that layout);
* :mod:`~vnvs.evaluation.datasets.kubric4d`: Kubric-4D scenes as GCD released them;
* :mod:`~vnvs.evaluation.datasets.videos`: a folder of videos with trajectory files and optional ground truth.
"""

from vnvs.evaluation.datasets.base import EvalItem, ItemRef, select_frames
from vnvs.evaluation.datasets.dycheck import (
           export_dycheck_scene,
           export_dycheck_scenes,
           index_dycheck,
)
from vnvs.evaluation.datasets.kubric4d import index_kubric4d
from vnvs.evaluation.datasets.videos import index_videos

__all__ = ["EvalItem", "ItemRef", "export_dycheck_scene", "export_dycheck_scenes", "index_dycheck", "index_kubric4d",
           "index_videos", "select_frames"]
