"""Shard storage: one safetensors file plus one JSON sidecar per work item, and ``index.json``.

Layout of an output folder::

    DIR/shards/<key>.safetensors   tensors of every sample, under keys "<sample_index>/<field>"
    DIR/shards/<key>.json          sidecar: key, source, kind, num_samples, samples (metas), dropped,
                                   config, seed, seconds -- its existence marks the shard complete
    DIR/index.json                 every shard and sample, plus totals (rebuilt from the sidecars)

Both files are written to a temporary name, fsynced and renamed, tensors first, so a shard
without its sidecar is incomplete and is redone by the next run. See ``docs/data.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Iterable

import torch

from vnvs.data.schema import BuildResult, WorkItem
from vnvs.errors import InputError
from vnvs.utils.atomic import atomic_path
from vnvs.utils.jsonfile import read_json

SHARDS_DIR = "shards"
INDEX_NAME = "index.json"
FORMAT_VERSION = 1


def shard_paths(output: str | os.PathLike, key: str) -> tuple[Path, Path]:
    """``(tensors, sidecar)`` paths of the shard of work item ``key``."""
    folder = Path(output) / SHARDS_DIR
    return folder / f"{key}.safetensors", folder / f"{key}.json"


def is_complete(output: str | os.PathLike, key: str) -> bool:
    """Whether the shard of ``key`` was written completely: its sidecar (written last) is valid JSON
    and its tensors file is a complete safetensors file. A damaged pair is built again by a rerun."""
    tensors, sidecar = shard_paths(output, key)
    if not (sidecar.is_file() and tensors.is_file()):
        return False
    try:
        side = read_json(sidecar, "shard sidecar")
        check_shard(tensors)
    except InputError:
        return False
    return isinstance(side, dict) and side.get("key") == key


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        _fsync_file(tmp)
    _fsync_dir(path.parent)


def _flatten(samples: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    flat: dict[str, torch.Tensor] = {}
    for i, sample in enumerate(samples):
        for name, t in sample.items():
            if "/" in name:
                raise ValueError(f"field names may not contain '/': {name!r}")
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"sample {i} field {name!r} is not a tensor")
            # clone: safetensors refuses tensors that share storage (views of one buffer)
            flat[f"{i}/{name}"] = t.detach().to("cpu").contiguous().clone()
    return flat


def write_shard(output: str | os.PathLike, item: WorkItem, kind: str, result: BuildResult, *,
                config: dict[str, Any], seed: int, seconds: float) -> dict[str, Any]:
    """Write the shard of one work item atomically (tensors, then the sidecar); return the sidecar."""
    if len(result.samples) != len(result.meta):
        raise ValueError(f"{len(result.samples)} samples but {len(result.meta)} metas")
    from safetensors.torch import save_file

    tensors_path, sidecar_path = shard_paths(output, item.key)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    source = item.path if item.path is not None else f"scene:{item.scene}"
    with atomic_path(tensors_path) as tmp:
        # one metadata entry: safetensors writes several in hash order, which differs from process to process
        header = json.dumps({"format": FORMAT_VERSION, "key": item.key}, sort_keys=True)
        save_file(_flatten(result.samples), str(tmp), metadata={"vnvs": header})
        _fsync_file(tmp)
    sidecar = {
        "format": FORMAT_VERSION,
        "key": item.key,
        "source": source,
        "kind": kind,
        "num_samples": len(result.samples),
        "samples": [_jsonable(m) for m in result.meta],
        "dropped": {str(k): int(v) for k, v in sorted(result.dropped.items())},
        "config": config,
        "seed": int(seed),
        "seconds": round(float(seconds), 4),
    }
    _write_json_atomic(sidecar_path, sidecar)
    return sidecar


def _jsonable(value: Any) -> Any:
    """Metadata -> plain JSON (tensors and numpy values become lists / numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def read_sidecar(output: str | os.PathLike, key: str) -> dict[str, Any]:
    return read_json(shard_paths(output, key)[1], "shard sidecar")


def list_sidecars(output: str | os.PathLike) -> list[Path]:
    """Sidecars of the complete shards, sorted by key (temporary files are ignored)."""
    folder = Path(output) / SHARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json")
                  if not p.name.startswith(".") and is_complete(output, p.stem))


def write_index(output: str | os.PathLike) -> dict[str, Any]:
    """Rebuild ``index.json`` from every sidecar in ``output/shards`` (atomically); return it.

    The index does not hold timings, so the same shards always give the same index.
    """
    output = Path(output)
    shards, samples = [], []
    by_kind: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for path in list_sidecars(output):
        side = read_json(path, "shard sidecar")
        file = f"{SHARDS_DIR}/{side['key']}.safetensors"
        shards.append({"key": side["key"], "file": file, "source": side["source"], "kind": side["kind"],
                       "num_samples": side["num_samples"], "dropped": side.get("dropped", {})})
        for i, meta in enumerate(side["samples"]):
            kind = meta.get("kind", side["kind"])
            samples.append({"shard": file, "index": i, "kind": kind, "meta": meta})
            by_kind[kind] = by_kind.get(kind, 0) + 1
        for reason, n in side.get("dropped", {}).items():
            dropped[reason] = dropped.get(reason, 0) + int(n)
    index = {
        "format": FORMAT_VERSION,
        "shards": shards,
        "samples": samples,
        "totals": {"shards": len(shards), "samples": len(samples), "by_kind": dict(sorted(by_kind.items())),
                   "dropped": dict(sorted(dropped.items()))},
    }
    _write_json_atomic(output / INDEX_NAME, index)
    return index


def read_samples(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The sample entries of a prepared folder, or of every prepared folder directly inside ``root``
    (``data/`` holding ``data/flow``, ``data/synthetic``, ...), in a fixed order; each entry's ``shard``
    is relative to ``root``.

    Raises:
        InputError: ``root`` holds no ``index.json`` and no folder inside it does.
    """
    root = Path(root)
    if (root / INDEX_NAME).is_file():
        return read_index(root)["samples"]
    parts = sorted(p for p in root.iterdir() if (p / INDEX_NAME).is_file()) if root.is_dir() else []
    if not parts:
        raise InputError(f"{root} holds no prepared samples: neither {root / INDEX_NAME} nor a folder with one "
                         "inside it; prepare training data first")
    return [dict(s, shard=f"{p.name}/{s['shard']}") for p in parts for s in read_index(p)["samples"]]


def read_index(output: str | os.PathLike, *, check_shards: bool = True) -> dict[str, Any]:
    """The validated ``index.json`` of a prepared folder; with ``check_shards``, every shard it lists is
    checked to exist and to be complete (:func:`check_shard`). Damage is one :class:`InputError` line
    that says how to repair it."""
    path = Path(output) / INDEX_NAME
    if not path.is_file():
        raise InputError(f"{path} not found; run `vnvs prepare` first")
    repair = f"rerun the same `vnvs prepare` on {Path(output)} to rebuild it"
    try:
        index = read_json(path, "index")
    except InputError as e:
        raise InputError(f"{e}; {repair}") from None
    samples = index.get("samples") if isinstance(index, dict) else None
    if not isinstance(samples, list) or not all(
            isinstance(e, dict) and isinstance(e.get("kind"), str) and isinstance(e.get("shard"), str)
            and isinstance(e.get("index"), int) and isinstance(e.get("meta", {}), dict) for e in samples):
        raise InputError(f"index {path} is damaged (expected a 'samples' list of kind/shard/index entries); {repair}")
    if check_shards:
        for shard in sorted({e["shard"] for e in samples}):
            check_shard(Path(output) / shard, repair)
    return index


def check_shard(path: Path, repair: str = "prepare the data again") -> None:
    """Raise :class:`InputError` unless ``path`` is a complete safetensors file (reads its header only)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            header = json.loads(f.read(n)) if 0 < n <= min(size - 8, 100 << 20) else None
    except FileNotFoundError:
        raise InputError(f"shard {path} is missing; {repair}") from None
    except (OSError, ValueError, UnicodeDecodeError):
        header = None
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"] \
        if isinstance(header, dict) and all(isinstance(v, dict) and "data_offsets" in v
                                            for k, v in header.items() if k != "__metadata__") else None
    if ends is None or 8 + n + max(ends, default=0) > size:
        raise InputError(f"shard {path} is damaged (truncated or not a safetensors file); {repair}")


class ShardReader:
    """Lazy reader of one shard: the file is opened on first use and only requested fields are loaded.

    Example:
        >>> import tempfile
        >>> from vnvs.data.schema import BuildResult, WorkItem
        >>> tmp = tempfile.TemporaryDirectory()
        >>> result = BuildResult()
        >>> result.add({"target": torch.zeros(16, 3, 64, 64, dtype=torch.uint8)}, {"kind": "flow-pairs"})
        >>> _ = write_shard(tmp.name, WorkItem("clip-1a2b3c4d5e6f"), "flow-pairs", result, config={}, seed=0, seconds=0)
        >>> reader = ShardReader(shard_paths(tmp.name, "clip-1a2b3c4d5e6f")[0])  # DIR/shards/<key>.safetensors
        >>> len(reader), reader.load(0, ["target"])["target"].shape
        (1, torch.Size([16, 3, 64, 64]))
        >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._handle = None
        self._keys: set[str] | None = None

    def _open(self):
        if self._handle is None:
            from safetensors import safe_open

            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            self._keys = set(self._handle.keys())
        return self._handle

    def close(self) -> None:
        self._handle = None

    def __getstate__(self):  # picklable for DataLoader workers: reopen lazily
        return {"path": self.path, "_handle": None, "_keys": None}

    @property
    def sidecar(self) -> dict[str, Any]:
        return json.loads(self.path.with_suffix(".json").read_text())

    def __len__(self) -> int:
        self._open()
        return len({k.split("/", 1)[0] for k in self._keys})

    def fields(self, index: int) -> list[str]:
        self._open()
        prefix = f"{index}/"
        return sorted(k[len(prefix):] for k in self._keys if k.startswith(prefix))

    def load(self, index: int, fields: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Tensors of sample ``index`` (all fields, or only ``fields`` that the sample has)."""
        f = self._open()
        names = self.fields(index) if fields is None else [n for n in fields if f"{index}/{n}" in self._keys]
        return {n: f.get_tensor(f"{index}/{n}") for n in names}
