"""Shard storage: bit-exact round trip, lazy field loading, atomic writes and the index."""

import json

import numpy as np
import pytest
import torch

from vnvs.data import shards
from vnvs.data.schema import BuildResult, WorkItem
from vnvs.data.shards import ShardReader, is_complete, list_sidecars, shard_paths, write_index, write_shard


def _result(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    res = BuildResult()
    for i in range(n):
        base = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g)
        res.add({"source": base, "target": base.flip(0),  # a view: shares storage with base
                 "warped": torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g),
                 "mask": torch.randint(0, 2, (2, 8, 8), dtype=torch.uint8, generator=g),
                 "corr": torch.randn(2, 2, 8, 8, generator=g) * 1e3},
                {"kind": "flow-pairs", "source": "a.mp4", "offset": np.int64(i), "frames": torch.arange(2)})
    res.drop("low_coverage", 2)
    return res


def test_round_trip_is_bit_exact(tmp_path):
    item = WorkItem(key="clip-abc", path="/videos/a.mp4")
    res = _result()
    side = write_shard(tmp_path, item, "flow-pairs", res, config={"size": 8}, seed=5, seconds=0.25)
    assert is_complete(tmp_path, "clip-abc")
    assert side["num_samples"] == 3 and side["dropped"] == {"low_coverage": 2} and side["seed"] == 5
    assert side["samples"][1] == {"kind": "flow-pairs", "source": "a.mp4", "offset": 1, "frames": [0, 1]}
    on_disk = json.loads(shard_paths(tmp_path, "clip-abc")[1].read_text())
    assert on_disk == side and on_disk["source"] == "/videos/a.mp4" and on_disk["config"] == {"size": 8}

    reader = ShardReader(shard_paths(tmp_path, "clip-abc")[0])
    assert len(reader) == 3
    assert reader.fields(0) == ["corr", "mask", "source", "target", "warped"]
    for i, sample in enumerate(res.samples):
        loaded = reader.load(i)
        assert set(loaded) == set(sample)
        for k, t in sample.items():
            assert loaded[k].dtype == t.dtype and torch.equal(loaded[k], t)
    assert set(reader.load(2, ["corr", "nope"])) == {"corr"}  # only requested fields that exist
    assert reader.sidecar["key"] == "clip-abc"


def test_empty_shard_and_index(tmp_path):
    write_shard(tmp_path, WorkItem(key="b-1", path="b.mp4"), "flow-pairs", _result(2, 1), config={}, seed=0,
                seconds=1.0)
    empty = BuildResult()
    empty.drop("no_depth")
    write_shard(tmp_path, WorkItem(key="a-2", scene=3), "synthetic", empty, config={}, seed=0, seconds=2.0)
    assert len(ShardReader(shard_paths(tmp_path, "a-2")[0])) == 0
    # a tensors file without its sidecar is an unfinished shard: not complete, not indexed
    shard_paths(tmp_path, "c-3")[0].write_bytes(b"partial")
    assert not is_complete(tmp_path, "c-3")
    index = write_index(tmp_path)
    assert [s["key"] for s in index["shards"]] == ["a-2", "b-1"]
    assert index["shards"][0]["source"] == "scene:3"
    assert [(s["shard"], s["index"], s["kind"]) for s in index["samples"]] == [
        ("shards/b-1.safetensors", 0, "flow-pairs"), ("shards/b-1.safetensors", 1, "flow-pairs")]
    assert index["totals"] == {"shards": 2, "samples": 2, "by_kind": {"flow-pairs": 2},
                               "dropped": {"low_coverage": 2, "no_depth": 1}}
    assert json.loads((tmp_path / "index.json").read_text()) == index
    # timings are not in the index: rewriting a shard with another duration gives the same index
    write_shard(tmp_path, WorkItem(key="b-1", path="b.mp4"), "flow-pairs", _result(2, 1), config={}, seed=0,
                seconds=9.0)
    assert write_index(tmp_path) == index


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def boom(path):
        calls.append(path)
        if len(calls) == 2:  # tensors written, sidecar being written
            raise KeyboardInterrupt

    monkeypatch.setattr(shards, "_fsync_file", boom)
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path, WorkItem(key="x-1", path="x.mp4"), "flow-pairs", _result(1), config={}, seed=0,
                    seconds=0)
    files = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert files == ["x-1.safetensors"]  # no temporary file, no sidecar
    assert not is_complete(tmp_path, "x-1") and list_sidecars(tmp_path) == []


def test_identical_runs_write_identical_shard_bytes(tmp_path):
    """Two processes (two hash seeds) writing the same shard give the same bytes."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from vnvs.data.schema import BuildResult, WorkItem\n"
            "from vnvs.data.shards import write_shard\n"
            "r = BuildResult(); r.add({'mask': torch.ones(2, 3, dtype=torch.uint8)}, {'kind': 'x'})\n"
            "write_shard(sys.argv[1], WorkItem('item-1', scene=1), 'synthetic', r, config={}, seed=0, seconds=0.0)\n")
    for i, hash_seed in enumerate(("1", "2")):
        env = dict(__import__("os").environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / str(i))], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    a, b = (sorted((tmp_path / str(i)).rglob("*.safetensors")) for i in range(2))
    assert len(a) == len(b) == 1 and a[0].read_bytes() == b[0].read_bytes()
