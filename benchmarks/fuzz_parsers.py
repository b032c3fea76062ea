"""Fuzz every file parser of vnvs with hypothesis: any input must give a result or a one-line ``VnvsError``.

Each parser gets a valid file of its kind, then hypothesis mutates it: bytes flipped, cut,
inserted or replaced by random bytes; for JSON files also values replaced by random JSON (any
type, huge and tiny numbers, deep nesting) at random places. A crash is any other exception (or a
``VnvsError`` whose message spans several lines). Writes ``benchmarks/results/fuzz.json``.

Usage: python benchmarks/fuzz_parsers.py [--seconds-per-parser 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from vnvs.cameras import Cameras  # noqa: E402
from vnvs.cameras.converters import write_colmap_text, write_megasam_npz, write_transforms_json  # noqa: E402
from vnvs.cameras.resolve import read_camera_file  # noqa: E402
from vnvs.cameras.source import read_intrinsics  # noqa: E402
from vnvs.cameras.trajectory import Trajectory  # noqa: E402
from vnvs.errors import VnvsError  # noqa: E402
from vnvs.io.depth import load_depth  # noqa: E402
from vnvs.io.grid import Grid, read_grid_json, write_grid  # noqa: E402
from vnvs.sampling import SamplingConfig  # noqa: E402
from vnvs.training.presets import load_config  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


def _mutate_bytes(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, pos, chunk in edits:
        pos = pos % (len(out) + 1)
        if kind == 0:  # replace
            out[pos:pos + len(chunk)] = chunk
        elif kind == 1:  # insert
            out[pos:pos] = chunk
        elif kind == 2:  # cut here
            del out[pos:]
        else:  # delete a run
            del out[pos:pos + len(chunk) + 1]
    return bytes(out)


BYTE_EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
                      min_size=1, max_size=6)


def _paths_in(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths_in(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from _paths_in(v, prefix + (i,))


def _replace_at(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def make_seeds(folder: Path) -> dict[str, tuple[Path, callable, str]]:
    """name -> (valid seed file, parser of a file path, 'json' | 'bytes')."""
    cams = Cameras.static(4, 24, 32)
    cams.w2c[:, 0, 3] = torch.linspace(0, 0.1, 4)
    traj = Trajectory.from_cameras(cams)
    traj.save(folder / "traj.json")
    write_transforms_json(traj, folder / "transforms.json")
    write_colmap_text(traj, folder / "colmap")
    write_megasam_npz(traj, folder / "cams.npz")
    (folder / "k.json").write_text(json.dumps({"fx": 20, "fy": 20, "cx": 16, "cy": 12}))
    np.save(folder / "depth.npy", np.full((4, 24, 32), 2.0, np.float32))
    np.savez(folder / "depth.npz", depth=np.full((4, 24, 32), 2.0, np.float32))
    SamplingConfig(resolution=64, window=9).save(folder / "model")
    (folder / "train.json").write_text(json.dumps({"preset": "tiny", "lr": 0.001}))
    write_grid(folder / "grid", Grid(torch.rand(2, 3, 3, 8, 8), torch.eye(4).expand(2, 3, 4, 4),
                                     torch.tensor([[8.0, 0, 4], [0, 8, 4], [0, 0, 1]]).expand(2, 3, 3, 3)))

    def in_folder(name, fn):
        def parse(path: Path):
            target = path.parent / f"case-{name}"
            target.mkdir(exist_ok=True)
            (target / name).write_bytes(path.read_bytes())
            return fn(target)
        return parse

    return {
        "trajectory JSON": (folder / "traj.json", Trajectory.load, "json"),
        "nerfstudio transforms.json": (folder / "transforms.json", lambda p: read_camera_file(p, (24, 32)), "json"),
        "COLMAP images.txt": (folder / "colmap" / "images.txt",
                              in_folder("images.txt", lambda d: (
                                  (d / "cameras.txt").write_bytes((folder / "colmap" / "cameras.txt").read_bytes()),
                                  read_camera_file(d, (24, 32)))), "bytes"),
        "COLMAP cameras.txt": (folder / "colmap" / "cameras.txt",
                               in_folder("cameras.txt", lambda d: (
                                   (d / "images.txt").write_bytes((folder / "colmap" / "images.txt").read_bytes()),
                                   read_camera_file(d, (24, 32)))), "bytes"),
        "MegaSaM npz": (folder / "cams.npz", lambda p: read_camera_file(p, (24, 32)), "bytes"),
        "intrinsics JSON": (folder / "k.json", lambda p: read_intrinsics(p, (24, 32)), "json"),
        "depth npy": (folder / "depth.npy", lambda p: load_depth(p), "bytes"),
        "depth npz": (folder / "depth.npz", lambda p: load_depth(p), "bytes"),
        "sampling.json": (folder / "model" / "sampling.json", in_folder("sampling.json", SamplingConfig.load), "json"),
        "training config JSON": (folder / "train.json", load_config, "json"),
        "grid.json": (folder / "grid" / "grid.json", in_folder("grid.json", lambda d: (
            [(d / n).write_bytes((folder / "grid" / n).read_bytes()) for n in ("view_000.mp4", "view_001.mp4")],
            read_grid_json(d))), "json"),
    }


def fuzz(name: str, seed_file: Path, parse, kind: str, seconds: float, work: Path) -> dict:
    data = seed_file.read_bytes()
    suffix = seed_file.suffix
    counts = {"inputs": 0, "accepted": 0, "refused": 0, "crashes": 0}
    crashes: list[str] = []
    clock = {"deadline": None}  # started at the first example (hypothesis takes a while to start)
    doc = json.loads(data) if kind == "json" else None
    paths = list(_paths_in(doc)) if doc is not None else []

    def check(payload: bytes) -> None:
        counts["inputs"] += 1
        path = work / f"input{suffix}"
        path.write_bytes(payload)
        try:
            parse(path)
            counts["accepted"] += 1
        except VnvsError as e:
            if "\n" in str(e):
                counts["crashes"] += 1
                crashes.append(f"multi-line message: {str(e)[:120]!r}")
            else:
                counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - what the fuzzing looks for
            counts["crashes"] += 1
            if len(crashes) < 20:
                crashes.append(f"{type(e).__name__}: {' '.join(str(e).split())[:160]} <- "
                               f"{traceback.extract_tb(e.__traceback__)[-1].name}")

    strategies = [BYTE_EDITS.map(lambda e: _mutate_bytes(data, e)), st.binary(max_size=256)]
    if doc is not None:
        strategies.append(st.tuples(st.sampled_from(paths), JSON_VALUES).map(
            lambda pv: json.dumps(_replace_at(doc, pv[0], pv[1])).encode()))
        strategies.append(st.tuples(st.sampled_from(paths), st.sampled_from(["1e400", "-1e400", "NaN", "Infinity",
                                                                                "\"\\ud800\"", "[[[[[[[[]]]]]]]]"])).map(
            lambda pv: json.dumps(_replace_at(doc, pv[0], "@@")).replace('"@@"', pv[1]).encode()))

    @settings(max_examples=10**9, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(*strategies))
    def run(payload):
        if clock["deadline"] is None:
            clock["deadline"] = time.perf_counter() + seconds
        if time.perf_counter() > clock["deadline"]:
            raise _TimeUp
        check(payload)

    try:
        run()
    except _TimeUp:
        pass
    except HypothesisException:
        pass
    return {"parser": name, **counts, "examples_of_crashes": crashes}


class _TimeUp(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-per-parser", type=float, default=30.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seeds = make_seeds(tmp)
        results = []
        for name, (seed_file, parse, kind) in seeds.items():
            work = tmp / "work" / name.replace(" ", "_")
            work.mkdir(parents=True)
            r = fuzz(name, seed_file, parse, kind, args.seconds_per_parser, work)
            print(f"{name}: {r['inputs']} inputs, {r['accepted']} accepted, {r['refused']} refused, "
                  f"{r['crashes']} crashes", file=sys.stderr)
            results.append(r)
    total = {k: sum(r[k] for r in results) for k in ("inputs", "accepted", "refused", "crashes")}
    path = save("fuzz", {"seconds_per_parser": args.seconds_per_parser, "parsers": results, "total": total})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
