"""The contract between builders (which turn one input into samples) and the engines and storage.

A *work item* is one input: a video file, or for procedural data a scene number. A builder turns
one work item into zero or more samples plus counts of dropped candidates by reason. Each sample
is a flat dict of CPU tensors (the fields below, by kind) and a JSON-able metadata dict.

Stored fields (uint8 images keep shards small; the dataset converts to float in [0, 1]):

pair kinds (``flow-pairs``, ``covis``, ``synthetic-pairs``, ``synthetic-covis``):
    ``source``  (T, 3, H, W) uint8   source frames ``I_s``
    ``target``  (T, 3, H, W) uint8   frames to predict (ground truth)
    ``warped``  (T, 3, H, W) uint8   warped source ``I_r``
    ``mask``    (T, H, W)    uint8   ``M`` (0/1)
    ``corr``    (T, 2, H, W) float32 ``C``: source pixel coordinates (0 where ``mask`` is 0)
  The 9-channel control signal is rebuilt exactly from these by
  ``vnvs.geometry.build_control_signal`` when loading.

grid kinds (``affine4d``, ``synthetic-grid``):
    ``grid``    (T, V, 3, H, W) uint8   frame of view ``v`` at time ``t``
  ``affine4d`` adds ``affine`` (V, 2, 3) float32: the 2D affine map (pixels, applied to every
  frame) that produced view ``v`` from the source video; ``synthetic-grid`` adds ``w2c`` (V, 4, 4)
  and ``K`` (V, 3, 3) float32.

Metadata always holds ``kind`` (one of :data:`SAMPLE_KINDS`) and ``source`` (the input's name),
plus whatever the builder records (frame indices, offsets, trajectory, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from vnvs.data.kinds import GRID_KINDS, PAIR_KINDS, PREPARE_KIND_OF, PREPARE_KINDS, SAMPLE_KINDS  # noqa: F401 (re-exported)

PAIR_FIELDS = {"source": torch.uint8, "target": torch.uint8, "warped": torch.uint8, "mask": torch.uint8,
               "corr": torch.float32}
GRID_FIELDS = {"grid": torch.uint8}


@dataclass(frozen=True)
class WorkItem:
    """One input of a prepare run."""

    key: str
    """Stable identifier, used to name the shard (same input and settings -> same key)."""
    path: str | None = None
    """Video file, for video kinds."""
    scene: int | None = None
    """Procedural scene number, for ``synthetic``."""
    depth: str | None = None
    """Depth file for ``covis`` on real videos (one map per frame), if found."""
    cameras: str | None = None
    """Camera file for ``covis`` on real videos (MegaSaM npz, transforms.json, ...), if found."""


@dataclass
class BuildResult:
    """What a builder returns for one work item."""

    samples: list[dict[str, torch.Tensor]] = field(default_factory=list)
    """Stored tensors of each sample (fields above)."""
    meta: list[dict[str, Any]] = field(default_factory=list)
    """Metadata of each sample (same order as ``samples``)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Candidates dropped, counted by reason (e.g. ``low_coverage``, ``inconsistent_flow``)."""

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def add(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.samples.append(tensors)
        self.meta.append(meta)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float frames in [0, 1] -> uint8 (rounded)."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float32 in [0, 1]."""
    return frames.to(torch.float32) / 255
