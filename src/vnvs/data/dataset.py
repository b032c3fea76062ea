"""A PyTorch dataset over prepared shards (``index.json``): seeded shuffling, DDP/worker sharding, kind mixing.

Example:
    >>> import tempfile
    >>> from torch.utils.data import DataLoader
    >>> from vnvs.data.schema import BuildResult, WorkItem
    >>> from vnvs.data.shards import write_index, write_shard
    >>> tmp = tempfile.TemporaryDirectory(); root = tmp.name
    >>> img, mask = torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.ones(2, 8, 8, dtype=torch.uint8)
    >>> for kind in ("flow-pairs", "synthetic-pairs"):  # a folder as `vnvs prepare` writes it, one sample per kind
    ...     result = BuildResult()
    ...     result.add({"source": img, "target": img, "warped": img, "mask": mask, "corr": torch.zeros(2, 2, 8, 8)},
    ...                {"kind": kind})
    ...     _ = write_shard(root, WorkItem(kind), kind, result, config={}, seed=0, seconds=0)
    >>> _ = write_index(root)
    >>> ds = ShardDataset(root, weights={"flow-pairs": 0.8, "synthetic-pairs": 0.2}, seed=0, epoch_size=4)
    >>> loader = DataLoader(ds, batch_size=2, num_workers=0, collate_fn=collate)  # num_workers > 0 to train
    >>> for epoch in range(2):
    ...     ds.set_epoch(epoch)
    ...     for batch in loader:
    ...         print(tuple(batch["control"].shape), batch["kind"])  # (B, T, 9, H, W)
    (2, 2, 9, 8, 8) ['synthetic-pairs', 'flow-pairs']
    (2, 2, 9, 8, 8) ['synthetic-pairs', 'flow-pairs']
    (2, 2, 9, 8, 8) ['flow-pairs', 'flow-pairs']
    (2, 2, 9, 8, 8) ['synthetic-pairs', 'flow-pairs']
    >>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vnvs.data.schema import GRID_KINDS, PAIR_KINDS, PREPARE_KIND_OF, to_float
from vnvs.data.shards import ShardReader, read_samples
from vnvs.errors import InputError
from vnvs.geometry.control import build_control_signal

PAIR_OUTPUTS = ("control", "source", "target")
GRID_EXTRAS = ("affine", "w2c", "K")
_NEEDS = {"control": ("source", "corr", "warped", "mask"), "source": ("source",), "target": ("target",),
          "grid": ("grid",)}
_UINT8_IMAGES = ("source", "target", "warped", "grid")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"dataset:{int(seed)}:{int(epoch)}".encode()).digest()[:8], "little") % 2**63


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Samples of a prepared folder, as float tensors in the design conventions.

    Pair kinds give ``{"control": (T, 9, H, W), "source": (T, 3, H, W), "target": (T, 3, H, W),
    "kind", "meta"}`` (images float32 in [0, 1]); grid kinds give ``{"grid": (T, V, 3, H, W)}`` plus
    ``affine`` or ``w2c``/``K`` when stored, and ``kind``, ``meta``.

    It is an ``IterableDataset`` so that one object owns the whole epoch order (seeded shuffle,
    weighted mixing of kinds, cycling of small kinds) and every consumer -- DDP rank, then
    DataLoader worker -- takes a disjoint strided slice of the same global sequence. Random access
    is still available with :meth:`load`.

    Args:
        root: folder written by ``vnvs prepare`` (with ``index.json``), or a folder of such folders
            (their samples together).
        kinds: sample kinds to keep (default: all, or the keys of ``weights``).
        weights: per-kind mixing weights, e.g. ``{"flow-pairs": 0.8, "synthetic-pairs": 0.2}``. Each
            position of the epoch draws a kind with these probabilities, then takes that kind's next
            sample (each kind cycles through its own reshuffled samples), so small kinds repeat and
            large ones are subsampled. Without weights each sample appears once per epoch.
        seed: shuffling seed; the order of epoch ``n`` depends only on ``(seed, n)``.
        shuffle: shuffle (else index order).
        fields: outputs to return (default all): ``control``, ``source``, ``target``, ``grid``,
            ``affine``, ``w2c``, ``K``, or any stored field (returned as stored). Only the stored
            fields they need are read from disk.
        rank, world_size: DDP position; default from ``torch.distributed`` when initialised, else 0, 1.
        drop_last: drop the tail of the epoch so every rank gets the same number of samples (needed
            by DDP, which hangs when ranks run different numbers of steps).
        epoch_size: samples per epoch with ``weights`` (default: the number of samples of the kept kinds).
    """

    def __init__(self, root: str | os.PathLike, kinds: Sequence[str] | None = None,
                 weights: dict[str, float] | None = None, seed: int = 0, shuffle: bool = True,
                 fields: Sequence[str] | None = None, rank: int | None = None, world_size: int | None = None,
                 drop_last: bool = False, epoch_size: int | None = None, max_open_shards: int = 32):
        super().__init__()
        self.root = Path(root)
        samples = read_samples(self.root)
        present = sorted({s["kind"] for s in samples})
        if isinstance(kinds, str):
            kinds = [kinds]
        if weights is not None:
            bad = {k: w for k, w in weights.items() if not (w >= 0)}
            if bad or not any(w > 0 for w in weights.values()):
                raise InputError(f"mixing weights must be >= 0 with a positive sum, got {weights}")
            if kinds is None:
                kinds = [k for k, w in weights.items() if w > 0]
        if kinds is not None:
            missing = [k for k in kinds if k not in present]
            if missing:
                raise InputError(f"no {', '.join(missing)} samples in {self.root} (it holds {', '.join(present) or 'none'}); "
                                 f"{_how_to_make(missing)}")
        keep = set(kinds) if kinds is not None else set(present)
        self.samples: list[dict[str, Any]] = [s for s in samples if s["kind"] in keep]
        self.kinds = sorted(keep)
        self.weights = None
        if weights is not None:
            self.weights = {k: float(weights.get(k, 0.0)) for k in self.kinds}
        self.seed = int(seed)
        self.shuffle = shuffle
        self.fields = tuple(fields) if fields is not None else None
        self._rank, self._world_size = rank, world_size
        if (rank is None) != (world_size is None):
            raise InputError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise InputError(f"rank {rank} out of range for world_size {world_size}")
        self.drop_last = drop_last
        self.epoch_size = epoch_size
        self.epoch = 0
        self.max_open_shards = max_open_shards
        self._readers: OrderedDict[str, ShardReader] = OrderedDict()

    # ---- order ---------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (call before each epoch)."""
        self.epoch = int(epoch)

    def _epoch_length(self) -> int:
        if self.weights is not None and self.epoch_size is not None:
            return int(self.epoch_size)
        return len(self.samples)

    def order(self, epoch: int | None = None) -> list[int]:
        """Global sequence of sample positions (into ``self.samples``) of an epoch, before sharding."""
        epoch = self.epoch if epoch is None else epoch
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        n = self._epoch_length()
        if not self.samples or n == 0:
            return []
        if self.weights is None:
            return (torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)).tolist()
        by_kind = {k: [i for i, s in enumerate(self.samples) if s["kind"] == k] for k in self.kinds}
        kinds = [k for k in self.kinds if self.weights[k] > 0 and by_kind[k]]
        w = torch.tensor([self.weights[k] for k in kinds], dtype=torch.float64)
        draws = torch.multinomial(w, n, replacement=True, generator=g).tolist()
        streams = {k: [] for k in kinds}
        out = []
        for d in draws:
            k = kinds[d]
            if not streams[k]:  # next pass over this kind, reshuffled
                pool = by_kind[k]
                perm = torch.randperm(len(pool), generator=g).tolist() if self.shuffle else range(len(pool))
                streams[k] = [pool[j] for j in reversed(list(perm))]
            out.append(streams[k].pop())
        return out

    def _rank_world(self) -> tuple[int, int]:
        if self._world_size is not None:
            return self._rank, self._world_size
        return _distributed()

    def _rank_order(self, epoch: int | None = None) -> list[int]:
        order = self.order(epoch)
        rank, world = self._rank_world()
        if self.drop_last:
            order = order[: len(order) // world * world]
        return order[rank::world]

    def __len__(self) -> int:
        """Samples this rank yields per epoch (over all its DataLoader workers)."""
        n = self._epoch_length()
        rank, world = self._rank_world()
        if self.drop_last:
            return n // world
        return len(range(rank, n, world))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        mine = self._rank_order()
        info = get_worker_info()
        if info is not None:
            mine = mine[info.id::info.num_workers]
        for i in mine:
            yield self.load(i)

    # ---- loading -------------------------------------------------------------------------------
    def _reader(self, shard: str) -> ShardReader:
        reader = self._readers.get(shard)
        if reader is None:
            reader = ShardReader(self.root / shard)
            self._readers[shard] = reader
            while len(self._readers) > self.max_open_shards:
                self._readers.popitem(last=False)[1].close()
        else:
            self._readers.move_to_end(shard)
        return reader

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_readers"] = OrderedDict()
        return state

    def load(self, position: int) -> dict[str, Any]:
        """Sample ``position`` of ``self.samples`` (random access), converted to the conventions."""
        entry = self.samples[position]
        kind = entry["kind"]
        is_grid = kind in GRID_KINDS or (kind not in PAIR_KINDS and "grid" in self._reader(entry["shard"]).fields(entry["index"]))
        wanted = self.fields if self.fields is not None else (("grid",) + GRID_EXTRAS if is_grid else PAIR_OUTPUTS)
        stored: list[str] = []
        for name in wanted:
            for need in _NEEDS.get(name, (name,)):
                if need not in stored:
                    stored.append(need)
        raw = self._reader(entry["shard"]).load(entry["index"], stored)
        out: dict[str, Any] = {}
        for name in wanted:
            if name == "control":
                if not all(k in raw for k in _NEEDS["control"]):
                    continue
                out["control"] = build_control_signal(to_float(raw["source"]), raw["corr"].float(),
                                                      to_float(raw["warped"]), raw["mask"].bool())
            elif name in raw:
                t = raw[name]
                out[name] = to_float(t) if name in _UINT8_IMAGES and t.dtype == torch.uint8 else t
        out["kind"] = kind
        out["meta"] = entry["meta"]
        return out


def _how_to_make(kinds: Sequence[str]) -> str:
    """Which prepare kind builds each of ``kinds``."""
    made_by = {k: PREPARE_KIND_OF.get(k, k) for k in kinds}
    return "; ".join(f"prepare kind {p} builds {k}" for k, p in made_by.items())


def collate(batch: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of a batch (``(B, ...)``); strings and metas become lists."""
    batch = list(batch)
    if not batch:
        return {}
    keys = list(batch[0])
    for item in batch[1:]:
        if list(item) != keys and set(item) != set(keys):
            kinds = sorted({str(b.get("kind")) for b in batch})
            raise ValueError(f"cannot collate samples with different fields (kinds {kinds}); "
                             "mix only kinds of one family (pairs or grids) per dataset, or use batch_size=1")
    out: dict[str, Any] = {}
    for k in keys:
        values = [b[k] for b in batch]
        if isinstance(values[0], torch.Tensor):
            try:
                out[k] = torch.stack(values)
            except RuntimeError as exc:
                raise ValueError(f"cannot stack field {k!r}: shapes {[tuple(v.shape) for v in values]}") from exc
        else:
            out[k] = values
    return out
