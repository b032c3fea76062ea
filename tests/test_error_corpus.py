"""A corpus of bad inputs and faults across every command, each a kind a user can cause.

Every case must end the same way: exit code 2, exactly one line on stderr starting ``error:`` (no
traceback), no new or changed file in the output folder, and no temporary file left anywhere in
the case's folder. Cases are grouped by the class of fault (command line, videos, depth files,
trajectories, camera files, model folders, outputs, prepared data, checkpoints, absurd sizes).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vnvs.cli import main
from vnvs.io import write_video
from vnvs.synthetic import generate_scene, render_source_video

CASES: dict[str, callable] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn
    return register


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Good inputs the cases spoil: a clip with exact depth, a trajectory file, a model folder, prepared
    data and a training run with two checkpoints."""
    from vnvs.data.config import PrepareConfig
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs
    from vnvs.training import get_preset, train

    root = tmp_path_factory.mktemp("corpus")
    video = render_source_video(generate_scene(2), num_frames=6, size=(32, 48), seed=2)
    write_video(root / "clip.mp4", video.frames, fps=6)
    np.save(root / "depth.npy", video.depth.numpy())
    assert main(["trajectory", "orbit:10", "--frames", "6", "--output", str(root / "traj.json")]) == 0
    cfg = PrepareConfig(size=16, clip_frames=3)
    prepare(collect_inputs("2", "synthetic", config=cfg, seed=0), root / "data", "synthetic", cfg, seed=0, workers=1)
    run = root / "run"
    train(get_preset("tiny", data={"synthetic-pairs": 1.0}, max_steps=2, checkpoint_every=1, tensorboard=False),
          root / "data", run)
    return SimpleNamespace(root=root, clip=root / "clip.mp4", depth=root / "depth.npy", traj=root / "traj.json",
                           data=root / "data", run=run, model=run / "model")


def render(fx, out, *extra, clip=None, depth=None):
    return ["render", clip or fx.clip, "--depth", depth or fx.depth, "--generator", "warp", "--output", out, *extra]


# ---------------------------------------------------------------- command line
for i, args in enumerate([["--size", "abc"], ["--size", "-5"], ["--size", "0"], ["--seed", "-1"],
                          ["--seed", str(2**70)], ["--threads", "0"], ["--stride", "0"], ["--max-frames", "0"],
                          ["--steps", "0"], ["--guidance", "nan"], ["--fov", "0"], ["--fov", "180"], ["--fov", "nan"],
                          ["--mode", "sideways"], ["--renderer", "raytrace"], ["--device", "tpu"], ["--no-such-option"],
                          ["--trajectory", ""]]):
    case(f"render-option-{i}-{args[0].lstrip('-')}")(lambda fx, tmp, a=args: render(fx, tmp / "out", *a))
for i, args in enumerate([["--size", "-1"], ["--frames", "0"], ["--seed", "-1"], ["--seed", str(2**70)],
                          ["--trajectory", "orbit:abc"], ["--trajectory", "nosuch:3"], ["--generator", "nosuch"],
                          ["--steps", "-2"]]):
    case(f"demo-option-{i}-{args[0].lstrip('-')}")(lambda fx, tmp, a=args: ["demo", "--output", tmp / "out", *a])
for i, args in enumerate([["--fov", "0"], ["--fov", "180"], ["--fov", "-5"], ["--fov", "nan"], ["--frames", "0"],
                          ["--height", "0"], ["--look-at-depth", "-1"], ["--look-at-depth", "inf"]]):
    case(f"trajectory-option-{i}-{args[0].lstrip('-')}")(
        lambda fx, tmp, a=args: ["trajectory", "orbit:10", "--output", tmp / "out" / "t.json", *a])
for i, args in enumerate([["--kind", "nope"], ["--flow", "nosuch"], ["--size", "0"], ["--workers", "0"],
                          ["--engine", "spark"], ["--seed", "-1"], ["--clip-frames", "0"], ["--min-coverage", "2"]]):
    case(f"prepare-option-{i}-{args[0].lstrip('-')}")(
        lambda fx, tmp, a=args: ["prepare", "--input", "1", "--kind", "synthetic", "--output", tmp / "out", *a])
for i, args in enumerate([["--benchmark", "nope"], ["--methods", ""], ["--methods", "nosuch"], ["--scenes", "0"],
                          ["--frames", "0"], ["--seed", "-1"], ["--benchmark", "real"], ["--steps", "0"]]):
    case(f"eval-option-{i}-{args[0].lstrip('-')}")(lambda fx, tmp, a=args: ["eval", "--output", tmp / "out", *a])
for i, args in enumerate([["--config", "nosuch"], ["--batch-size", "0"], ["--lr", "-1"], ["--num-workers", "-1"],
                          ["--max-steps", "0"], ["--seed", "-1"]]):
    case(f"train-option-{i}-{args[0].lstrip('-')}")(
        lambda fx, tmp, a=args: ["train", "--data", fx.data, "--output", tmp / "out", *(a if a[0] == "--config"
                                                                                           else ["--config", "tiny", *a])])
case("no-command")(lambda fx, tmp: [])
case("unknown-command")(lambda fx, tmp: ["paint"])


# ---------------------------------------------------------------- videos
def _bad_video(name, content):
    def make(fx, tmp):
        path = tmp / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content(fx) if callable(content) else content)
        return render(fx, tmp / "out", clip=path)
    return make


case("video-missing")(lambda fx, tmp: render(fx, tmp / "out", clip=tmp / "nope.mp4"))
case("video-empty")(_bad_video("v.mp4", b""))
case("video-text")(_bad_video("v.mp4", b"hello, not a video\n" * 10))
case("video-truncated")(_bad_video("v.mp4", lambda fx: fx.clip.read_bytes()[:600]))
case("video-is-folder")(_bad_video("v.mp4", None))
case("video-png-named-mp4")(_bad_video("v.mp4", b"\x89PNG\r\n\x1a\n" + b"\0" * 64))


# ---------------------------------------------------------------- depth files
def _depth(make_file):
    def make(fx, tmp):
        path = make_file(fx, tmp)
        return render(fx, tmp / "out", depth=path)
    return make


def _npy(name, arr):
    def f(fx, tmp):
        np.save(tmp / name, arr(fx) if callable(arr) else arr)
        return tmp / name
    return f


def _raw(name, data):
    def f(fx, tmp):
        (tmp / name).write_bytes(data)
        return tmp / name
    return f


def _gt(fx):
    return np.load(fx.depth)


case("depth-missing")(lambda fx, tmp: render(fx, tmp / "out", depth=tmp / "nope.npy"))
case("depth-nan")(_depth(_npy("d.npy", lambda fx: np.where(np.arange(_gt(fx).size).reshape(_gt(fx).shape) % 7 == 0,
                                                            np.nan, _gt(fx)))))
case("depth-negative")(_depth(_npy("d.npy", lambda fx: -_gt(fx))))
case("depth-zero")(_depth(_npy("d.npy", lambda fx: np.zeros_like(_gt(fx)))))
case("depth-inf")(_depth(_npy("d.npy", lambda fx: np.full_like(_gt(fx), np.inf))))
case("depth-2d")(_depth(_npy("d.npy", lambda fx: _gt(fx)[0])))
case("depth-two-channels")(_depth(_npy("d.npy", lambda fx: np.stack([_gt(fx)] * 2, 1))))
case("depth-too-few-frames")(_depth(_npy("d.npy", lambda fx: _gt(fx)[:2])))
case("depth-wrong-aspect")(_depth(_npy("d.npy", lambda fx: np.ones((6, 40, 20), np.float32))))
case("depth-strings")(_depth(_npy("d.npy", np.array([["a", "b"]]))))
case("depth-complex")(_depth(_npy("d.npy", lambda fx: _gt(fx).astype(np.complex64))))
case("depth-junk-npy")(_depth(_raw("d.npy", b"\x93NUMPY\x01\x00garbage")))
case("depth-text-npy")(_depth(_raw("d.npy", b"1 2 3\n")))
case("depth-zip-signature-npz")(_depth(_raw("d.npz", b"PK\x03\x04" + b"\0" * 40)))
case("depth-empty-npz")(_depth(lambda fx, tmp: (np.savez(tmp / "d.npz"), tmp / "d.npz")[1]))
case("depth-npz-wrong-key")(_depth(lambda fx, tmp: (np.savez(tmp / "d.npz", foo=_gt(fx)[:, :2]), tmp / "d.npz")[1]))
case("depth-pickled-object")(_depth(lambda fx, tmp: (np.save(tmp / "d.npy", np.array([{"a": 1}], dtype=object),
                                                             allow_pickle=True), tmp / "d.npy")[1]))
case("depth-folder-empty")(_depth(lambda fx, tmp: ((tmp / "dm").mkdir(), tmp / "dm")[1]))
case("depth-unknown-extension")(_depth(_raw("d.exr", b"\0" * 32)))


# ---------------------------------------------------------------- trajectories
def _traj(edit):
    def make(fx, tmp):
        path = tmp / "t.json"
        if isinstance(edit, bytes):
            path.write_bytes(edit)
        else:
            doc = json.loads(fx.traj.read_text())
            doc["meta"].pop("preset", None)  # frames as written, not the preset they came from
            text = edit(doc)
            path.write_text(text if isinstance(text, str) else json.dumps(doc))
        return render(fx, tmp / "out", "--trajectory", path)
    return make


def _set(key, value):
    def edit(doc):
        doc[key] = value
    return edit


def _frame(key, value):
    def edit(doc):
        doc["frames"][1][key] = value
    return edit


case("traj-not-utf8")(_traj(b'{"format": "vnvs-trajectory", "\xff\xfe": 1}'))
case("traj-not-json")(_traj(b"{"))
case("traj-array")(_traj(b"[1, 2]"))
case("traj-empty-file")(_traj(b""))
case("traj-version")(_traj(_set("version", 99)))
case("traj-format")(_traj(_set("format", "other")))
case("traj-width-overflow")(_traj(lambda doc: json.dumps(doc).replace('"width": ', '"width": 1e400, "_w": ')))
case("traj-width-string")(_traj(_set("width", "wide")))
case("traj-width-float")(_traj(_set("width", 12.5)))
case("traj-width-bool")(_traj(_set("width", True)))
case("traj-huge-size")(_traj(lambda doc: doc.update(width=30000, height=30000)))
case("traj-no-frames")(_traj(_set("frames", [])))
case("traj-frames-object")(_traj(_set("frames", {"a": 1})))
case("traj-w2c-shape")(_traj(_frame("w2c", [[1, 0], [0, 1]])))
case("traj-w2c-nan")(_traj(lambda doc: json.dumps(doc).replace("[1.0, 0.0, 0.0", "[NaN, 0.0, 0.0", 1)))
case("traj-w2c-scaled")(_traj(_frame("w2c", [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]])))
case("traj-K-negative-focal")(_traj(_frame("K", [[-30, 0, 24], [0, 30, 16], [0, 0, 1]])))
case("traj-K-strings")(_traj(_frame("K", "identity")))
def _times(bad):
    def edit(doc):
        for i, frame in enumerate(doc["frames"]):
            frame["time"] = bad if i == 1 else i
    return edit


case("traj-time-negative")(_traj(_times(-3)))
case("traj-time-past-end")(_traj(_times(1000)))
case("traj-time-float")(_traj(_times(1.5)))
case("traj-unknown-preset")(lambda fx, tmp: render(fx, tmp / "out", "--trajectory", "twirl:3"))
case("traj-preset-nan")(lambda fx, tmp: render(fx, tmp / "out", "--trajectory", "orbit:nan"))
case("traj-preset-text")(lambda fx, tmp: render(fx, tmp / "out", "--trajectory", "dolly:far"))
case("traj-preset-empty-part")(lambda fx, tmp: render(fx, tmp / "out", "--trajectory", "orbit:10+"))
case("traj-behind-scene")(lambda fx, tmp: render(fx, tmp / "out", "--trajectory", "dolly:1000", "--mode", "direct"))
case("traj-txt-garbage")(lambda fx, tmp: ((tmp / "t.txt").write_text("a b c\n"),
                                          render(fx, tmp / "out", "--trajectory", tmp / "t.txt"))[1])


# ---------------------------------------------------------------- camera files
def _cams(name, content, option="--cameras"):
    def make(fx, tmp):
        path = tmp / name
        if isinstance(content, dict):
            path.write_text(json.dumps(content))
        else:
            path.write_bytes(content)
        return render(fx, tmp / "out", option, path)
    return make


case("cameras-transforms-not-utf8")(_cams("transforms.json", b'{"frames": "\xff"}'))
case("cameras-transforms-no-frames")(_cams("transforms.json", {"fl_x": 30}))
case("cameras-transforms-bad-matrix")(_cams("transforms.json", {"fl_x": 30, "fl_y": 30, "cx": 24, "cy": 16, "w": 48,
                                                                "h": 32, "frames": [{"transform_matrix": [[1, 2]]}]}))
case("cameras-npz-junk")(_cams("c.npz", b"PK\x03\x04junkjunk"))
case("cameras-unknown-extension")(_cams("c.xyz", b"1 2 3"))
case("intrinsics-not-json")(_cams("k.json", b"{", option="--intrinsics"))
case("intrinsics-wrong-shape")(_cams("k.json", {"K": [[1, 2], [3, 4]]}, option="--intrinsics"))
case("intrinsics-negative-focal")(_cams("k.json", {"fx": -20, "fy": 20, "cx": 24, "cy": 16}, option="--intrinsics"))


# ---------------------------------------------------------------- model folders
def _model(edit):
    def make(fx, tmp):
        folder = tmp / "model"
        shutil.copytree(fx.model, folder)
        edit(folder)
        return ["render", fx.clip, "--depth", fx.depth, "--generator", folder, "--output", tmp / "out"]
    return make


def _write(name, data):
    return lambda folder: (folder / name).write_bytes(data)


def _json_edit(name, fn):
    def edit(folder):
        doc = json.loads((folder / name).read_text())
        fn(doc)
        (folder / name).write_text(json.dumps(doc))
    return edit


def _weights(folder):
    return next(p for p in folder.iterdir() if p.suffix == ".safetensors")


case("generator-missing-folder")(lambda fx, tmp: ["render", fx.clip, "--depth", fx.depth, "--generator",
                                                  tmp / "nomodel", "--output", tmp / "out"])
case("generator-empty-folder")(_model(lambda f: [p.unlink() for p in f.iterdir()]))
case("model-config-not-utf8")(_model(_write("config.json", b'{"\xff": 1}')))
case("model-config-not-json")(_model(_write("config.json", b"{")))
case("model-config-wrong-dim")(_model(_json_edit("config.json", lambda d: d["model"]["backbone_config"].update(
    dim=2 * d["model"]["backbone_config"]["dim"]))))
case("model-config-wrong-depth")(_model(_json_edit("config.json", lambda d: d["model"]["backbone_config"].update(
    depth=d["model"]["backbone_config"]["depth"] + 1))))
case("model-config-missing-key")(_model(_json_edit("config.json", lambda d: d.pop("model"))))
case("model-weights-truncated")(_model(lambda f: _weights(f).write_bytes(_weights(f).read_bytes()[:200])))
case("model-weights-missing")(_model(lambda f: _weights(f).unlink()))
case("model-weights-header-junk")(_model(lambda f: _weights(f).write_bytes(struct.pack("<Q", 10**12) + b"{}")))
case("sampling-not-utf8")(_model(_write("sampling.json", b'{"\xff": 1}')))
case("sampling-not-json")(_model(_write("sampling.json", b"[")))
case("sampling-wrong-types")(_model(_json_edit("sampling.json", lambda d: d.update(resolution="big", steps=[1]))))
case("sampling-unknown-renderer")(_model(_json_edit("sampling.json", lambda d: d.update(renderer="raytrace"))))
case("sampling-overflow")(_model(lambda f: (f / "sampling.json").write_text('{"resolution": 1e400}')))


# ---------------------------------------------------------------- outputs
def _existing_file(argv_fn):
    def make(fx, tmp):
        (tmp / "out").write_text("keep me")
        return argv_fn(fx, tmp)
    return make


case("render-output-is-file")(_existing_file(lambda fx, tmp: render(fx, tmp / "out")))
case("demo-output-is-file")(_existing_file(lambda fx, tmp: ["demo", "--frames", "2", "--size", "16", "--output",
                                                            tmp / "out"]))
case("eval-output-is-file")(_existing_file(lambda fx, tmp: ["eval", "--scenes", "1", "--frames", "2", "--size", "16",
                                                            "--methods", "warp", "--output", tmp / "out"]))
case("prepare-output-is-file")(_existing_file(lambda fx, tmp: ["prepare", "--input", "1", "--kind", "synthetic",
                                                               "--size", "16", "--clip-frames", "3", "--output",
                                                               tmp / "out"]))
case("train-output-is-file")(_existing_file(lambda fx, tmp: ["train", "--config", "tiny", "--data", fx.data,
                                                             "--output", tmp / "out"]))
case("trajectory-output-is-folder")(lambda fx, tmp: ((tmp / "out" / "t.json").mkdir(parents=True),
                                                     ["trajectory", "orbit:10", "--output", tmp / "out" / "t.json"])[1])
case("trajectory-output-txt")(lambda fx, tmp: ["trajectory", "orbit:10", "--output", tmp / "out" / "t.txt"])
case("render-output-in-proc")(lambda fx, tmp: render(fx, "/proc/vnvs-out"))
case("render-output-under-a-file")(_existing_file(lambda fx, tmp: render(fx, tmp / "out" / "sub")))
case("demo-output-in-proc")(lambda fx, tmp: ["demo", "--frames", "2", "--size", "16", "--output", "/proc/vnvs-out"])
case("eval-output-in-proc")(lambda fx, tmp: ["eval", "--scenes", "1", "--frames", "2", "--size", "16", "--methods",
                                             "warp", "--output", "/proc/vnvs-out"])
case("train-output-in-proc")(lambda fx, tmp: ["train", "--config", "tiny", "--data", fx.data, "--output",
                                              "/proc/vnvs-out"])
case("prepare-output-in-proc")(lambda fx, tmp: ["prepare", "--input", "1", "--kind", "synthetic", "--output",
                                                "/proc/vnvs-out"])
case("trajectory-output-in-proc")(lambda fx, tmp: ["trajectory", "orbit:10", "--output", "/proc/vnvs-out/t.json"])


# ---------------------------------------------------------------- prepare inputs
case("prepare-input-missing")(lambda fx, tmp: ["prepare", "--input", tmp / "none", "--kind", "flow-pairs",
                                               "--output", tmp / "out"])
case("prepare-input-empty-folder")(lambda fx, tmp: ((tmp / "vids").mkdir(), ["prepare", "--input", tmp / "vids",
                                                                             "--kind", "flow-pairs", "--output",
                                                                             tmp / "out"])[1])
case("prepare-covis-without-depth")(lambda fx, tmp: ["prepare", "--input", fx.clip, "--kind", "covis",
                                                     "--output", tmp / "out"])
case("prepare-all-inputs-fail")(lambda fx, tmp: ((tmp / "vids").mkdir(), (tmp / "vids" / "a.mp4").write_text("x"),
                                                 (tmp / "vids" / "b.mp4").write_text("y"),
                                                 ["prepare", "--input", tmp / "vids", "--kind", "flow-pairs",
                                                  "--workers", "1", "--output", tmp / "out"])[3])
case("prepare-absurd-size")(lambda fx, tmp: ["prepare", "--input", "1", "--kind", "synthetic", "--size", "100000",
                                             "--output", tmp / "out"])


# ---------------------------------------------------------------- prepared data and checkpoints
def _data(edit, command="train"):
    def make(fx, tmp):
        data = tmp / "data"
        shutil.copytree(fx.data, data)
        edit(data)
        if command == "train":
            return ["train", "--config", "tiny", "--data", data, "--output", tmp / "out"]
        return ["eval", "--benchmark", "real", "--kind", "synthetic-pairs", "--data", data, "--methods", "warp",
                "--output", tmp / "out"]
    return make


def _shard(data):
    return sorted(data.rglob("*.safetensors"))[0]


for command in ("train", "eval"):
    case(f"{command}-index-cut-short")(_data(lambda d: (d / "index.json").write_text((d / "index.json").read_text()[:50]),
                                             command))
    case(f"{command}-index-not-utf8")(_data(lambda d: (d / "index.json").write_bytes(b'{"\xff"'), command))
    case(f"{command}-index-missing")(_data(lambda d: (d / "index.json").unlink(), command))
    case(f"{command}-shard-truncated")(_data(lambda d: _shard(d).write_bytes(_shard(d).read_bytes()[:300]), command))
    case(f"{command}-shard-deleted")(_data(lambda d: _shard(d).unlink(), command))
    case(f"{command}-index-wrong-types")(_data(lambda d: (d / "index.json").write_text(json.dumps({"samples": 3})),
                                               command))
case("train-data-not-a-folder")(lambda fx, tmp: ["train", "--config", "tiny", "--data", fx.clip, "--output",
                                                 tmp / "out"])
case("train-config-wrong-types")(lambda fx, tmp: ((tmp / "c.json").write_text('{"preset": "tiny", "lr": "fast"}'),
                                                  ["train", "--config", tmp / "c.json", "--data", fx.data, "--output",
                                                   tmp / "out"])[1])
case("train-config-not-utf8")(lambda fx, tmp: ((tmp / "c.json").write_bytes(b'{"\xff": 1}'),
                                               ["train", "--config", tmp / "c.json", "--data", fx.data, "--output",
                                                tmp / "out"])[1])
case("train-config-unknown-field")(lambda fx, tmp: ((tmp / "c.toml").write_text('preset = "tiny"\nspeed = 3\n'),
                                                    ["train", "--config", tmp / "c.toml", "--data", fx.data,
                                                     "--output", tmp / "out"])[1])
case("train-config-overflow")(lambda fx, tmp: ((tmp / "c.json").write_text('{"preset": "tiny", "lr": 1e400}'),
                                               ["train", "--config", tmp / "c.json", "--data", fx.data, "--output",
                                                tmp / "out"])[1])
case("train-batch-larger-than-data")(lambda fx, tmp: ["train", "--config", "tiny", "--batch-size", "999", "--data",
                                                      fx.data, "--output", tmp / "out"])


def _resume(edit):
    def make(fx, tmp):
        run = tmp / "out"
        shutil.copytree(fx.run, run)
        edit(run)
        return ["train", "--data", fx.data, "--output", run, "--resume", "--max-steps", "3"]
    return make


case("resume-all-checkpoints-damaged")(_resume(lambda r: [p.write_bytes(b"") for p in r.rglob("*.safetensors")
                                                          if "checkpoints" in p.parts]))
case("resume-state-not-json")(_resume(lambda r: [p.write_bytes(b"{") for p in r.rglob("*.json")
                                                 if "checkpoints" in p.parts]))
case("resume-different-config")(lambda fx, tmp: (shutil.copytree(fx.run, tmp / "out"),
                                                 ["train", "--config", "tiny", "--lr", "0.5", "--data", fx.data,
                                                  "--output", tmp / "out", "--resume"])[1])


# ---------------------------------------------------------------- absurd sizes
case("render-absurd-size")(lambda fx, tmp: render(fx, tmp / "out", "--size", "100000"))
case("demo-absurd-size")(lambda fx, tmp: ["demo", "--size", "100000", "--output", tmp / "out"])
case("demo-absurd-frames")(lambda fx, tmp: ["demo", "--frames", "10000000", "--output", tmp / "out"])
case("eval-absurd-size")(lambda fx, tmp: ["eval", "--size", "100000", "--scenes", "1", "--methods", "warp",
                                          "--output", tmp / "out"])


# ---------------------------------------------------------------- eval datasets in public layouts
def _dycheck(edit):
    """A DyCheck scene (exported procedural scene, 16 px, 3 frames) spoiled by ``edit(scene folder)``."""
    def make(fx, tmp):
        from vnvs.evaluation.datasets import export_dycheck_scene

        scene = export_dycheck_scene(2**40, tmp / "dy" / "s", frames=3, size=16, val_cameras=1)
        edit(scene)
        return ["eval", "--benchmark", "dycheck", "--data", tmp / "dy", "--methods", "warp", "--output", tmp / "out"]
    return make


def _kubric(edit):
    """A two-view Kubric-4D scene in GCD's layout (2 frames, 16x12) spoiled by ``edit(scene folder)``."""
    def make(fx, tmp):
        import cv2

        scene = tmp / "kub" / "scn00001"
        for v in range(2):
            (scene / f"frames_p0_v{v}").mkdir(parents=True)
            meta = {"scene": {"num_frames": 2, "resolution": [16, 12]},
                    "camera": {"K": [[1.0, 0, -0.5], [0, -1.3, -0.5], [0, 0, -1]], "positions": [[0.1 * v, 0, 5]] * 2,
                               "quaternions": [[1.0, 0, 0, 0]] * 2}}
            (scene / f"scn00001_p0_v{v}.json").write_text(json.dumps(meta))
            for t in range(2):
                cv2.imwrite(str(scene / f"frames_p0_v{v}" / f"rgba_{t:05d}.png"), np.full((12, 16, 4), 128, np.uint8))
                cv2.imwrite(str(scene / f"frames_p0_v{v}" / f"depth_{t:05d}.tiff"), np.full((12, 16, 1), 5, np.float32))
        edit(scene)
        return ["eval", "--benchmark", "kubric4d", "--data", tmp / "kub", "--methods", "warp", "--output", tmp / "out"]
    return make


def _png(path, size):
    import cv2

    cv2.imwrite(str(path), np.zeros((*size, 3), np.uint8))


def _edit_json(path, fn):
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


case("eval-dycheck-no-data")(lambda fx, tmp: ["eval", "--benchmark", "dycheck", "--methods", "warp",
                                              "--output", tmp / "out"])
case("eval-dycheck-not-a-scene")(lambda fx, tmp: ["eval", "--benchmark", "dycheck", "--data", fx.root, "--methods",
                                                  "warp", "--output", tmp / "out"])
case("eval-dycheck-dataset-json-cut")(_dycheck(lambda s: (s / "dataset.json").write_text('{"train_ids": [')))
case("eval-dycheck-no-val-ids")(_dycheck(lambda s: _edit_json(s / "dataset.json", lambda d: {**d, "val_ids": []})))
case("eval-dycheck-metadata-missing")(_dycheck(lambda s: (s / "metadata.json").unlink()))
case("eval-dycheck-metadata-no-entry")(_dycheck(lambda s: _edit_json(s / "metadata.json",
                                                                     lambda d: {k: v for k, v in d.items() if k != "1_00001"})))
case("eval-dycheck-scene-json-bad-scale")(_dycheck(lambda s: _edit_json(s / "scene.json", lambda d: {**d, "scale": "x"})))
case("eval-dycheck-camera-missing")(_dycheck(lambda s: (s / "camera" / "1_00002.json").unlink()))
case("eval-dycheck-camera-no-position")(_dycheck(lambda s: _edit_json(
    s / "camera" / "0_00001.json", lambda d: {k: v for k, v in d.items() if k != "position"})))
case("eval-dycheck-camera-not-rotation")(_dycheck(lambda s: _edit_json(
    s / "camera" / "1_00000.json", lambda d: {**d, "orientation": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]})))
case("eval-dycheck-rgb-missing")(_dycheck(lambda s: (s / "rgb" / "1x" / "1_00001.png").unlink()))
case("eval-dycheck-rgb-not-an-image")(_dycheck(lambda s: (s / "rgb" / "1x" / "0_00002.png").write_bytes(b"no png")))
case("eval-dycheck-rgb-wrong-size")(_dycheck(lambda s: _png(s / "rgb" / "1x" / "1_00000.png", (8, 8))))
case("eval-dycheck-depth-missing")(_dycheck(lambda s: (s / "depth" / "1x" / "0_00001.npy").unlink()))
case("eval-dycheck-depth-garbage")(_dycheck(lambda s: (s / "depth" / "1x" / "0_00000.npy").write_bytes(b"\x93NUMPYxx")))
case("eval-dycheck-depth-wrong-shape")(_dycheck(lambda s: np.save(s / "depth" / "1x" / "0_00002.npy",
                                                                 np.ones((5, 7), np.float32))))
case("eval-dycheck-covisible-missing")(_dycheck(lambda s: (s / "covisible" / "1x" / "val" / "1_00002.png").unlink()))
case("eval-dycheck-no-rgb-at-factor")(lambda fx, tmp: _dycheck(lambda s: None)(fx, tmp) + ["--factor", "4"])
case("eval-kubric-no-scene")(lambda fx, tmp: ["eval", "--benchmark", "kubric4d", "--data", fx.root, "--methods",
                                              "warp", "--output", tmp / "out"])
case("eval-kubric-rgba-missing")(_kubric(lambda s: (s / "frames_p0_v1" / "rgba_00001.png").unlink()))
case("eval-kubric-depth-missing")(_kubric(lambda s: (s / "frames_p0_v0" / "depth_00000.tiff").unlink()))
case("eval-kubric-depth-not-tiff")(_kubric(lambda s: (s / "frames_p0_v0" / "depth_00001.tiff").write_bytes(b"II*\x00")))
case("eval-kubric-metadata-cut")(_kubric(lambda s: (s / "scn00001_p0_v1.json").write_text('{"scene": {')))
case("eval-kubric-quaternions-short")(_kubric(lambda s: _edit_json(
    s / "scn00001_p0_v0.json", lambda d: {**d, "camera": {**d["camera"], "quaternions": [[1.0, 0, 0, 0]]}})))
case("eval-kubric-source-view-absent")(lambda fx, tmp: _kubric(lambda s: None)(fx, tmp) + ["--source-view", "7"])
case("eval-kubric-target-views-bad")(lambda fx, tmp: _kubric(lambda s: None)(fx, tmp) + ["--target-views", "a,b"])
case("eval-kubric-target-view-absent")(lambda fx, tmp: _kubric(lambda s: None)(fx, tmp) + ["--target-views", "5"])


def _videos(fx, tmp, *files):
    data = tmp / "vids"
    data.mkdir()
    shutil.copy(fx.clip, data / "a.mp4")
    for name, content in files:
        (data / name).write_bytes(content) if isinstance(content, bytes) else shutil.copy(content, data / name)
    return ["eval", "--benchmark", "videos", "--data", data, "--methods", "warp", "--depth", fx.depth,
            "--output", tmp / "out"]


case("eval-videos-no-trajectory")(lambda fx, tmp: _videos(fx, tmp))
case("eval-videos-empty-folder")(lambda fx, tmp: (tmp / "e").mkdir() or ["eval", "--benchmark", "videos", "--data",
                                                                        tmp / "e", "--methods", "warp", "--output",
                                                                        tmp / "out"])
case("eval-videos-trajectory-cut")(lambda fx, tmp: _videos(fx, tmp, ("a.trajectory.json", b'{"version": 1, "fr')))
case("eval-videos-target-not-a-video")(lambda fx, tmp: _videos(fx, tmp, ("a.trajectory.json", fx.traj),
                                                         ("a.target.mp4", b"not a video")))
for i, args in enumerate([["--lpips", "squeeze"], ["--stride", "0"], ["--max-frames", "0"], ["--factor", "0"],
                          ["--sheets", "-1"], ["--renderer", "raytrace"]]):
    case(f"eval-dataset-option-{i}-{args[0].lstrip('-')}")(
        lambda fx, tmp, a=args: ["eval", "--benchmark", "dycheck", "--data", tmp, "--output", tmp / "out", *a])


# ---------------------------------------------------------------- grids, finetuning, 4D scenes
def _grid_folder(fx, tmp, edit=None):
    from vnvs.io.grid import write_grid
    from vnvs.synthetic import procedural_grid

    path = tmp / "grid"
    write_grid(path, procedural_grid(1, views=2, frames=3, size=16))
    if edit is not None:
        edit(path)
    return path


for i, args in enumerate([["--views", "1"], ["--views", "0"], ["--method", "nosuch"], ["--window-views", "1"],
                          ["--trajectory", "twirl:3"], ["--size", "100000"]]):
    case(f"grid-option-{i}-{args[0].lstrip('-')}")(
        lambda fx, tmp, a=args: ["grid", fx.clip, "--depth", fx.depth, "--views", "2", "--trajectory", "orbit:10",
                                 "--output", tmp / "out", *a])
case("grid-output-is-file")(_existing_file(lambda fx, tmp: ["grid", fx.clip, "--depth", fx.depth, "--views", "2",
                                                            "--trajectory", "orbit:10", "--output", tmp / "out"]))
case("grid-foreign-folder")(lambda fx, tmp: ((tmp / "out").mkdir(), (tmp / "out" / "mine.txt").write_text("x"),
                                             ["grid", fx.clip, "--depth", fx.depth, "--views", "2", "--trajectory",
                                              "orbit:10", "--output", tmp / "out"])[2])
case("grid-model-folder-empty")(lambda fx, tmp: ((tmp / "gm").mkdir(),
                                                 ["grid", fx.clip, "--depth", fx.depth, "--views", "2", "--trajectory",
                                                  "orbit:10", "--method", tmp / "gm", "--output", tmp / "out"])[1])
case("finetune-video-missing")(lambda fx, tmp: ["finetune", tmp / "none.mp4", "--generator", fx.model, "--output",
                                                tmp / "out"])
case("finetune-generator-classical")(lambda fx, tmp: ["finetune", fx.clip, "--generator", "warp", "--output",
                                                      tmp / "out"])
case("finetune-steps-zero")(lambda fx, tmp: ["finetune", fx.clip, "--generator", fx.model, "--steps", "0",
                                             "--output", tmp / "out"])
case("finetune-output-is-file")(_existing_file(lambda fx, tmp: ["finetune", fx.clip, "--generator", fx.model,
                                                                "--output", tmp / "out"]))
case("render-ttf-negative")(lambda fx, tmp: render(fx, tmp / "out", "--ttf", "-1"))
case("reconstruct-input-missing")(lambda fx, tmp: ["reconstruct", tmp / "nogrid", "--output", tmp / "out"])
case("reconstruct-input-not-a-grid")(lambda fx, tmp: ["reconstruct", fx.root, "--output", tmp / "out"])
case("reconstruct-grid-json-not-utf8")(lambda fx, tmp: ["reconstruct", _grid_folder(
    fx, tmp, lambda p: (p / "grid.json").write_bytes(b'{"\xff": 1}')), "--output", tmp / "out"])
case("reconstruct-grid-video-missing")(lambda fx, tmp: ["reconstruct", _grid_folder(
    fx, tmp, lambda p: (p / "view_001.mp4").unlink()), "--output", tmp / "out"])
case("reconstruct-output-is-file")(_existing_file(lambda fx, tmp: ["reconstruct", _grid_folder(fx, tmp),
                                                                   "--output", tmp / "out"]))
case("reconstruct-steps-zero")(lambda fx, tmp: ["reconstruct", _grid_folder(fx, tmp), "--steps", "0", "--output",
                                                tmp / "out"])
case("render-scene-missing")(lambda fx, tmp: ["render-scene", tmp / "noscene", "--trajectory", "orbit:10",
                                              "--output", tmp / "out"])
case("render-scene-not-a-scene")(lambda fx, tmp: ["render-scene", fx.root, "--trajectory", "orbit:10", "--output",
                                                  tmp / "out"])
case("view-missing-path")(lambda fx, tmp: ["view", tmp / "nothing"])
case("view-port-out-of-range")(lambda fx, tmp: ["view", fx.root, "--port", "70000"])
case("view-folder-of-nothing-viewable")(lambda fx, tmp: ["view", fx.root])
case("view-file-not-a-ply")(lambda fx, tmp: ["view", fx.clip])
case("view-ply-broken")(lambda fx, tmp: ["view", _folder_with(tmp, {"broken.ply": "ply\nformat ascii 1.0\nend_header\n1 2 3\n"})
                                         / "broken.ply"])
case("view-grid-view-out-of-range")(lambda fx, tmp: ["view", _grid_folder(fx, tmp), "--view", "5"])
case("view-view-negative")(lambda fx, tmp: ["view", _grid_folder(fx, tmp), "--view", "-1"])
case("view-max-points-zero")(lambda fx, tmp: ["view", _grid_folder(fx, tmp), "--max-points", "0"])
case("view-trajectory-out-is-a-folder")(lambda fx, tmp: ["view", _grid_folder(fx, tmp), "--trajectory-out", tmp])
case("view-scene-json-malformed")(lambda fx, tmp: ["view", _folder_with(tmp, {"scene.json": "{"})])
case("view-render-output-bad-trajectory")(lambda fx, tmp: ["view", _folder_with(
    tmp, {"trajectory.json": '{"format": "vnvs-trajectory"}', "side_by_side.mp4": fx.clip.read_bytes()})])


def _folder_with(tmp, files: dict) -> Path:
    path = tmp / "folder"
    path.mkdir()
    for name, data in files.items():
        (path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": (folder.stat().st_size, folder.stat().st_mtime_ns)}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _temporaries(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]


def test_the_corpus_is_large():
    assert len(CASES) >= 100


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_in_one_line(name, fx, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [str(a) for a in CASES[name](fx, tmp_path)]
    out = tmp_path / "out"
    before = _snapshot(out)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"{name}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1 and lines[-1].startswith("error:"), err
    assert _snapshot(out) == before, f"{name}: the output changed"
    assert not _temporaries(tmp_path), f"{name}: left {_temporaries(tmp_path)}"
    assert not _temporaries(fx.root), f"{name}: left {_temporaries(fx.root)}"
