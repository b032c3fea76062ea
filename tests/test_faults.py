"""Faults a user's machine causes: a full disk, a killed run, two runs into one folder, a damaged checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from vnvs.cameras import Cameras
from vnvs.cameras.trajectory import Trajectory
from vnvs.cli import main
from vnvs.io import read_video, write_video
from vnvs.synthetic import generate_scene, render_source_video
from vnvs.utils.atomic import staged_output

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    video = render_source_video(generate_scene(4), num_frames=6, size=(32, 48), seed=4)
    write_video(root / "clip.mp4", video.frames, fps=6)
    np.save(root / "depth.npy", video.depth.numpy())
    return root


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture
def full_disk(tmp_path):
    """A 256 kB tmpfs filled up to its last 4 kB (root only; skipped where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        free = shutil.disk_usage(mount).free
        (mount / "filler").write_bytes(b"\0" * max(0, free - 4096))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_ends_in_one_line_and_leaves_nothing(full_disk, clip, tmp_path, capsys):
    from vnvs.data.config import PrepareConfig
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs

    data = tmp_path / "data"
    cfg = PrepareConfig(size=16, clip_frames=3)
    prepare(collect_inputs("2", "synthetic", config=cfg, seed=0), data, "synthetic", cfg, seed=0, workers=1)
    commands = {
        "render": ["render", clip / "clip.mp4", "--depth", clip / "depth.npy", "--generator", "warp", "--save-depth"],
        "demo": ["demo", "--frames", "3", "--size", "32", "--generator", "warp"],
        "trajectory": ["trajectory", "orbit:10", "--frames", "400"],
        "eval": ["eval", "--scenes", "1", "--frames", "3", "--size", "32", "--methods", "warp"],
        "prepare": ["prepare", "--input", "2", "--kind", "synthetic", "--size", "64", "--clip-frames", "3",
                    "--workers", "1"],
        "train": ["train", "--config", "tiny", "--data", data, "--max-steps", "1"],
    }
    for name, argv in commands.items():
        out = full_disk / (name + (".json" if name == "trajectory" else ""))
        code, err = _run([*argv, "--output", out], capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and lines and lines[-1].startswith("error:") and "no space left" in lines[-1].lower(), (name, err)
        assert "Traceback" not in err
        assert sorted(p.name for p in full_disk.iterdir()) == ["filler"], (name, list(full_disk.rglob("*")))


def test_two_runs_into_one_folder_the_second_refuses(clip, tmp_path, capsys):
    out = tmp_path / "out"
    with staged_output(out):  # a run in progress holds the folder
        code, err = _run(["render", clip / "clip.mp4", "--depth", clip / "depth.npy", "--generator", "warp",
                          "--output", out], capsys)
        assert code == 2 and "another vnvs run is writing" in err
    code, err = _run(["render", clip / "clip.mp4", "--depth", clip / "depth.npy", "--generator", "warp",
                      "--output", out], capsys)
    assert code == 0, err


def _vnvs(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "vnvs.cli", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", **extra)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_a_killed_render_leaves_the_old_output_whole_and_the_next_run_cleans_up(tmp_path):
    video = render_source_video(generate_scene(5), num_frames=48, size=(96, 128), seed=5)
    write_video(tmp_path / "long.mp4", video.frames, fps=12)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    out, ref = tmp_path / "out", tmp_path / "ref"

    def argv(output):
        return ["render", tmp_path / "long.mp4", "--depth", tmp_path / "depth.npy", "--generator", "warp",
                "--chunk-frames", "4", "--output", output]

    for output, spec in ((out, "pan:5"), (ref, "orbit:20")):  # the old result, and what the new run writes whole
        run = _vnvs(*argv(output), "--trajectory", spec, env=_env())
        assert run.wait(timeout=300) == 0, run.stderr.read()
    old, new = _digest(out), _digest(ref)
    for delay in (0.5, 2.0, 4.0):  # kill runs into `out` at several moments
        run = _vnvs(*argv(out), "--trajectory", "orbit:20", env=_env())
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert _digest(out) in (old, new)  # the old result or the new one, whole; never a mix
    third = _vnvs(*argv(out), "--trajectory", "orbit:20", env=_env())
    assert third.wait(timeout=300) == 0, third.stderr.read()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # debris of the killed runs gone
    assert _digest(out) == new
    assert read_video(out / "novel.mp4").frames.shape[0] == 48


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_prepare_takes_its_workers_with_it(tmp_path):
    marker = f"VNVS_FAULT_TEST={uuid.uuid4().hex}"
    key, value = marker.split("=")
    run = _vnvs("prepare", "--input", "40", "--kind", "synthetic", "--size", "48", "--clip-frames", "9",
                "--workers", "2", "--output", tmp_path / "data", env=_env(**{key: value}))
    deadline = time.time() + 180
    while not list((tmp_path / "data").glob("shards/*.json")) and time.time() < deadline:  # the workers are writing
        time.sleep(0.2)
    assert len(_processes_with(marker)) >= 3, run.stderr.read() if run.poll() is not None else "no workers"
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 30
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == []


def test_resume_falls_back_from_a_damaged_newest_checkpoint(tmp_path, capsys, caplog):
    from vnvs.data.config import PrepareConfig
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs
    from vnvs.training import get_preset, train
    from vnvs.training.checkpoint import list_checkpoints

    cfg = PrepareConfig(size=16, clip_frames=3)
    prepare(collect_inputs("2", "synthetic", config=cfg, seed=0), tmp_path / "data", "synthetic", cfg, seed=0,
            workers=1)
    run = tmp_path / "run"
    train(get_preset("tiny", data={"synthetic-pairs": 1.0}, max_steps=2, checkpoint_every=1, tensorboard=False),
          tmp_path / "data", run)
    newest = list_checkpoints(run)[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code = main(["train", "--data", str(tmp_path / "data"), "--output", str(run), "--resume", "--max-steps", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["start_step"] == 1
    assert f"checkpoint {newest.name} is damaged" in caplog.text + err


@pytest.mark.parametrize("file_frames", [3, 50])
def test_a_trajectory_file_of_another_length_is_resampled_over_the_whole_video(clip, tmp_path, capsys, file_frames):
    src = Cameras.static(file_frames, 32, 48)
    w2c = src.w2c.clone()
    w2c[:, 0, 3] = torch.linspace(0, 0.2, file_frames)  # a pan from the first to the last frame
    Trajectory(w2c, src.K, 32, 48).save(tmp_path / "t.json")
    code, err = _run(["render", clip / "clip.mp4", "--depth", clip / "depth.npy", "--generator", "warp",
                      "--trajectory", tmp_path / "t.json", "--output", tmp_path / "out"], capsys)
    assert code == 0, err
    written = Trajectory.load(tmp_path / "out" / "trajectory.json")
    assert len(written) == 6  # one frame per source frame, whatever the file's length
    assert abs(float(written.w2c[0, 0, 3])) < 1e-6 and abs(float(written.w2c[-1, 0, 3]) - 0.2) < 1e-5
