"""`vnvs prepare`: inputs, engines (local, process pool, Ray), resume after interruption, the dataset, the CLI."""

import json
import os
from collections import Counter

import numpy as np
import pytest
import torch

from vnvs.cli import main
from vnvs.data.config import PrepareConfig
from vnvs.data.dataset import ShardDataset, collate
from vnvs.data.engine import item_seed, prepare
from vnvs.data.inputs import collect_inputs
from vnvs.data.schema import BuildResult
from vnvs.data.shards import ShardReader, shard_paths
from vnvs.errors import InputError
from vnvs.geometry import build_control_signal

CFG = PrepareConfig(size=8, clip_frames=2)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")


def fake_build(item, config, seed):
    """Two small pair samples per scene; every third scene's samples are ``synthetic-pairs``."""
    g = torch.Generator().manual_seed(seed)
    kind = "synthetic-pairs" if item.scene % 3 == 2 else "flow-pairs"
    res = BuildResult()
    T, S = config.clip_frames, config.size
    for j in range(2):
        res.add({"source": torch.randint(0, 256, (T, 3, S, S), dtype=torch.uint8, generator=g),
                 "target": torch.randint(0, 256, (T, 3, S, S), dtype=torch.uint8, generator=g),
                 "warped": torch.randint(0, 256, (T, 3, S, S), dtype=torch.uint8, generator=g),
                 "mask": torch.randint(0, 2, (T, S, S), dtype=torch.uint8, generator=g),
                 "corr": torch.rand(T, 2, S, S, generator=g) * (S - 1)},
                {"kind": kind, "source": f"scene:{item.scene}", "id": f"{item.scene}/{j}"})
    res.drop("low_coverage")
    return res


class InterruptOnThird:
    def __init__(self):
        self.calls = 0

    def __call__(self, item, config, seed):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return fake_build(item, config, seed)


def _tensors(root):
    out = {}
    for path in sorted((root / "shards").glob("*.safetensors")):
        reader = ShardReader(path)
        for i in range(len(reader)):
            for k, t in reader.load(i).items():
                out[(path.name, i, k)] = t
    return out


def _assert_same_shards(a, b):
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys() and ta
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert (a / "index.json").read_text() == (b / "index.json").read_text()


# ---- inputs ---------------------------------------------------------------------------------------

def test_collect_inputs(tmp_path):
    (tmp_path / "v" / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.MOV", "sub/c.webm", "notes.txt", "sub/.hidden.mp4"):
        (tmp_path / "v" / name).write_bytes(b"x")
    (tmp_path / "depth" / "sub").mkdir(parents=True)
    (tmp_path / "depth" / "sub" / "c.npz").write_bytes(b"x")
    (tmp_path / "depth" / "b.npy").write_bytes(b"x")
    items = collect_inputs(tmp_path / "v", "covis", depth_dir=tmp_path / "depth", config=CFG)
    assert [os.path.basename(i.path) for i in items] == ["a.MOV", "b.mp4", "c.webm"]
    assert [i.depth and os.path.basename(i.depth) for i in items] == [None, "b.npy", "c.npz"]
    again = collect_inputs(str(tmp_path / "v"), "covis", depth_dir=tmp_path / "depth", config=CFG)
    assert [i.key for i in items] == [i.key for i in again]  # stable keys
    assert items[1].key.startswith("b-")
    assert [i.path for i in collect_inputs(str(tmp_path / "v" / "*.mp4"), "flow-pairs", config=CFG)] == [items[1].path]
    assert len(collect_inputs(tmp_path / "v", "flow-pairs", limit=2, config=CFG)) == 2
    # settings and seed are part of the key
    other = collect_inputs(tmp_path / "v", "flow-pairs", config=PrepareConfig(size=9))
    assert {i.key for i in other}.isdisjoint(i.key for i in collect_inputs(tmp_path / "v", "flow-pairs", config=CFG))
    assert collect_inputs(tmp_path / "v", "flow-pairs", config=CFG, seed=1)[0].key != \
        collect_inputs(tmp_path / "v", "flow-pairs", config=CFG, seed=0)[0].key
    scenes = collect_inputs("5", "synthetic", limit=3, config=CFG)
    assert [i.scene for i in scenes] == [0, 1, 2] and scenes[0].key.startswith("scene000000-")
    with pytest.raises(InputError, match="no videos"):
        collect_inputs(tmp_path / "depth", "flow-pairs")
    with pytest.raises(InputError, match="does not exist"):
        collect_inputs(tmp_path / "missing", "flow-pairs")
    with pytest.raises(InputError, match="number of scenes"):
        collect_inputs("abc", "synthetic")


# ---- engine: interruption, resume, process pool ------------------------------------------------------

def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    items = collect_inputs("5", "synthetic", config=CFG, seed=1)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        prepare(items, out, "synthetic", CFG, seed=1, workers=1, builder=InterruptOnThird())
    files = sorted(p.name for p in (out / "shards").iterdir())
    assert not [f for f in files if f.startswith(".")]  # no temporary files
    assert files == sorted(f"{items[i].key}.{ext}" for i in (0, 1) for ext in ("json", "safetensors"))
    assert not shard_paths(out, items[2].key)[1].exists()

    summary = prepare(items, out, "synthetic", CFG, seed=1, workers=1, builder=fake_build)
    assert (summary.inputs, summary.skipped, summary.done, summary.failed) == (5, 2, 3, 0)
    assert summary.samples == 6 and summary.total_samples == 10 and summary.dropped == {"low_coverage": 3}
    assert summary.frames == 12 and summary.samples_per_second > 0

    # an uninterrupted run in a process pool (spawned workers) gives identical shards and index
    ref = tmp_path / "ref"
    pooled = prepare(items, ref, "synthetic", CFG, seed=1, workers=2, builder=fake_build)
    assert (pooled.done, pooled.workers) == (5, 2)
    _assert_same_shards(out, ref)
    again = prepare(items, ref, "synthetic", CFG, seed=1, workers=2, builder=fake_build)
    assert (again.skipped, again.done) == (5, 0)
    side = json.loads(shard_paths(ref, items[0].key)[1].read_text())
    assert side["seed"] == item_seed(1, items[0].key) and side["config"] == CFG.to_dict()


def test_bad_engine_and_workers(tmp_path):
    with pytest.raises(InputError, match="engine"):
        prepare([], tmp_path, "synthetic", CFG, engine="spark")
    with pytest.raises(InputError, match="workers"):
        prepare([], tmp_path, "synthetic", CFG, workers=0)


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from vnvs.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"vnvs\[scale\]"):
        prepare(collect_inputs("1", "synthetic", config=CFG), tmp_path, "synthetic", CFG, engine="ray")


@pytest.mark.slow
def test_ray_engine_matches_local(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = PrepareConfig(size=16, clip_frames=3)
    items = collect_inputs("2", "synthetic", config=cfg, seed=4)
    local = prepare(items, tmp_path / "local", "synthetic", cfg, seed=4, workers=1)
    try:  # the engine starts a local Ray (num_cpus=2, no dashboard) and shuts it down
        summary = prepare(items, tmp_path / "ray", "synthetic", cfg, seed=4, engine="ray", workers=2)
        assert not ray.is_initialized()
    finally:
        ray.shutdown()
    assert (summary.done, summary.samples, summary.failed) == (2, local.samples, 0)
    _assert_same_shards(tmp_path / "local", tmp_path / "ray")


# ---- dataset --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    prepare(collect_inputs("12", "synthetic", config=CFG), root, "synthetic", CFG, workers=1, builder=fake_build)
    return root  # 24 samples: 16 flow-pairs, 8 synthetic-pairs


def _ids(ds):
    return [x["meta"]["id"] for x in ds]


def test_dataset_order_is_seeded(prepared):
    ds = ShardDataset(prepared, seed=0, fields=("target",))
    first = _ids(ds)
    assert len(first) == len(ds) == 24 and len(set(first)) == 24
    assert _ids(ShardDataset(prepared, seed=0, fields=("target",))) == first
    assert _ids(ShardDataset(prepared, seed=1, fields=("target",))) != first
    ds.set_epoch(1)
    second = _ids(ds)
    assert second != first and sorted(second) == sorted(first)
    plain = _ids(ShardDataset(prepared, shuffle=False, fields=("target",)))
    assert plain == [s["meta"]["id"] for s in ShardDataset(prepared).samples]


def test_dataset_rank_sharding(prepared):
    everything = set(_ids(ShardDataset(prepared, seed=3, fields=("target",))))
    parts = [_ids(ShardDataset(prepared, seed=3, fields=("target",), rank=r, world_size=5)) for r in range(5)]
    assert sum(len(p) for p in parts) == 24 and set().union(*parts) == everything
    assert [len(ShardDataset(prepared, rank=r, world_size=5)) for r in range(5)] == [len(p) for p in parts]
    even = [ShardDataset(prepared, rank=r, world_size=5, drop_last=True) for r in range(5)]
    assert [len(d) for d in even] == [4] * 5 and len(_ids(even[4])) == 4
    with pytest.raises(InputError):
        ShardDataset(prepared, rank=2, world_size=2)


def test_dataloader_workers_get_disjoint_slices(prepared):
    ds = ShardDataset(prepared, seed=2, rank=1, world_size=2)
    expected = sorted(_ids(ds))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    got, batches = [], 0
    for batch in loader:
        batches += 1
        assert batch["control"].shape[1:] == (2, 9, 8, 8) and batch["target"].dtype == torch.float32
        assert isinstance(batch["meta"], list) and isinstance(batch["kind"][0], str)
        got += [m["id"] for m in batch["meta"]]
    assert sorted(got) == expected and len(got) == 12


def test_dataset_mixing_weights(prepared):
    ds = ShardDataset(prepared, weights={"flow-pairs": 0.8, "synthetic-pairs": 0.2}, epoch_size=4000)
    kinds = Counter(ds.samples[i]["kind"] for i in ds.order())
    assert abs(kinds["synthetic-pairs"] / 4000 - 0.2) < 0.03
    # each kind cycles through all its samples before repeating one
    first = [ds.samples[i]["meta"]["id"] for i in ds.order() if ds.samples[i]["kind"] == "synthetic-pairs"][:8]
    assert len(set(first)) == 8
    only = ShardDataset(prepared, weights={"synthetic-pairs": 1.0})
    assert len(only) == 8 and {x["kind"] for x in only} == {"synthetic-pairs"}
    assert {x["kind"] for x in ShardDataset(prepared, kinds=["flow-pairs"])} == {"flow-pairs"}
    with pytest.raises(InputError, match="no affine4d samples in"):
        ShardDataset(prepared, kinds=["affine4d"])


def test_dataset_item_conventions(prepared):
    ds = ShardDataset(prepared, shuffle=False)
    item = ds.load(0)
    entry = ds.samples[0]
    raw = ShardReader(prepared / entry["shard"]).load(entry["index"])
    expected = build_control_signal(raw["source"].float() / 255, raw["corr"], raw["warped"].float() / 255,
                                    raw["mask"].bool())
    assert torch.equal(item["control"], expected)
    assert torch.equal(item["source"], raw["source"].float() / 255)
    assert item["kind"] == entry["kind"] and item["meta"] == entry["meta"]
    assert set(ShardDataset(prepared, fields=("target", "mask")).load(0)) == {"target", "mask", "kind", "meta"}


# ---- CLI end to end, real builders ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from vnvs.io import write_video
    from vnvs.synthetic import generate_scene, render_source_video

    root = tmp_path_factory.mktemp("videos")
    (root / "in").mkdir()
    (root / "depth").mkdir()
    video = render_source_video(generate_scene(1), num_frames=8, size=(40, 48), seed=1)
    write_video(root / "in" / "clip.mp4", video.frames, fps=8)
    np.save(root / "depth" / "clip.npy", video.depth.numpy())
    (root / "in" / "corrupt.mp4").write_bytes(b"not a video" * 50)
    np.save(root / "depth" / "corrupt.npy", video.depth.numpy())  # so covis tries to decode it too
    return root


def _cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


TINY = ["--size", 32, "--clip-frames", 3, "--workers", 1, "--pairs-per-video", 2]


@pytest.mark.parametrize("kind", ["flow-pairs", "affine4d", "covis"])
def test_cli_video_kinds(kind, videos, tmp_path, capsys):
    out = tmp_path / kind
    code, stdout, stderr = _cli(["prepare", "--input", videos / "in", "--output", out, "--kind", kind,
                                 "--depth-dir", videos / "depth", *TINY], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout.splitlines()[0])
    assert "inputs done now" in stdout.splitlines()[1]
    # the corrupt file is logged on one line and counted; the run completes
    assert summary["inputs"] == 2 and summary["done"] == 1 and summary["failed"] == 1
    assert summary["failed_items"][0]["source"].endswith("corrupt.mp4")
    assert "corrupt.mp4" in stderr and "Traceback" not in stderr
    assert summary["samples"] > 0 and summary["total_samples"] == summary["samples"]
    ds = ShardDataset(out)
    item = next(iter(ds))
    if kind == "affine4d":
        assert item["grid"].shape[:1] == (3,) and item["grid"].shape[2:] == (3, 32, 32)
        assert item["affine"].shape[1:] == (2, 3)
    else:
        assert item["control"].shape == (3, 9, 32, 32) and item["target"].shape == (3, 3, 32, 32)


def test_cli_synthetic_and_resume(tmp_path, capsys):
    args = ["prepare", "--input", 2, "--output", tmp_path, "--kind", "synthetic", *TINY]
    code, stdout, _ = _cli(args, capsys)
    assert code == 0
    summary = json.loads(stdout.splitlines()[0])
    assert (summary["done"], summary["samples"]) == (2, 6)
    ds = ShardDataset(tmp_path, kinds=["synthetic-grid"])
    grid = ds.load(0)
    assert grid["grid"].shape[0] == 3 and grid["w2c"].shape[1:] == (4, 4) and grid["K"].shape[1:] == (3, 3)
    code, stdout, _ = _cli(args, capsys)
    summary = json.loads(stdout.splitlines()[0])
    assert (summary["done"], summary["skipped"], summary["total_samples"]) == (0, 2, 6)


def test_cli_errors(tmp_path, capsys):
    code, _, err = _cli(["prepare", "--input", tmp_path, "--output", tmp_path / "o", "--kind", "flow-pairs"], capsys)
    assert code == 2 and err.startswith("error: no videos found") and len(err.strip().splitlines()) == 1
    code, _, err = _cli(["prepare", "--input", "x", "--output", tmp_path / "o", "--kind", "synthetic"], capsys)
    assert code == 2 and "number of scenes" in err
    code, _, err = _cli(["prepare", "--input", "1", "--output", tmp_path / "o", "--kind", "synthetic",
                         "--min-offset", 5, "--max-offset", 2], capsys)
    assert code == 2 and "min_offset 5 is larger than max_offset 2" in err
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--input", "1", "--output", str(tmp_path), "--kind", "nope"])
    assert exc.value.code == 2


def test_cli_runs_that_keep_nothing_fail(videos, tmp_path, capsys):
    # covis without depth: refused before any work
    code, _, err = _cli(["prepare", "--input", videos / "in", "--output", tmp_path / "a", "--kind", "covis", *TINY],
                        capsys)
    assert code == 2 and "covis samples need a depth file" in err and not (tmp_path / "a").exists()
    # every input dropped: the summary is printed, then one error line with the reasons, exit 2
    code, out, err = _cli(["prepare", "--input", videos / "in" / "clip.mp4", "--output", tmp_path / "b",
                           "--kind", "flow-pairs", "--min-coverage", 1.0, *TINY], capsys)
    assert code == 2 and json.loads(out.splitlines()[0])["samples"] == 0
    assert err.startswith("error: no samples were kept from 1 input(s) (dropped: 2 low_coverage")
    # every input failed
    code, _, err = _cli(["prepare", "--input", videos / "in" / "corrupt.mp4", "--output", tmp_path / "c",
                         "--kind", "flow-pairs", *TINY], capsys)
    assert code == 2 and "error: every input failed (1)" in err and "corrupt.mp4" in err


@pytest.mark.slow
def test_cli_video_kinds_on_ray_match_local(videos, tmp_path, capsys, monkeypatch):
    """Every video kind runs on the Ray engine from the command line and equals the local engine's shards."""
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one Ray for the three runs
    try:
        for kind in ("flow-pairs", "affine4d", "covis"):
            args = ["prepare", "--input", videos / "in", "--kind", kind, "--depth-dir", videos / "depth",
                    "--size", 32, "--clip-frames", 3, "--pairs-per-video", 2, "--seed", 5]
            code, stdout, stderr = _cli(args + ["--output", tmp_path / kind / "ray", "--engine", "ray",
                                                "--workers", 2], capsys)
            assert code == 0, stderr
            summary = json.loads(stdout.splitlines()[0])
            assert summary["done"] == 1 and summary["failed"] == 1 and summary["samples"] > 0, kind
            code, _, stderr = _cli(args + ["--output", tmp_path / kind / "local", "--workers", 1], capsys)
            assert code == 0, stderr
            _assert_same_shards(tmp_path / kind / "local", tmp_path / kind / "ray")
    finally:
        ray.shutdown()
