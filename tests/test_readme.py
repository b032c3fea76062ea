"""The README, walked as a newcomer walks it: every command of every ``bash`` block, in order, in one fresh folder.

The files the README assumes the user has are made first: ``clip.mp4`` (a real camera-shot clip),
``clip_depth.npz``, ``videos/`` with ``depth/``, a COLMAP model in ``colmap/sparse/0`` and held-out
flow pairs in ``heldout_pairs/``; the README's default depth model is a tiny random Depth Anything
placed in a private Hugging Face cache under the default model's id (offline). Commands run with the
README's flags; only what sets the amount of work is made small (:data:`SMALLER`, :func:`small`): the
set-up lines' ``pip install`` is not run (the tests run inside that install), the test command itself
is not run again, ``vnvs view`` (a server that runs until stopped, from the ``viewer`` extra) is left
out, and the eight-GPU launch runs as one CPU process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from vnvs.defaults import DEFAULT_DEPTH_MODEL

ROOT = Path(__file__).resolve().parents[1]

SMALLER = {"--size": "32", "--frames": "5", "--clip-frames": "5", "--scenes": "1", "--workers": "2",
           "--num_processes": "1", "--steps": "2", "--ttf": "2", "--views": "3"}
"""Options that only set the amount of work, and the small value the walk uses."""
ADDED = {
    "demo": ["--size", "32", "--frames", "5"],
    "render": ["--size", "32", "--max-frames", "9"],
    "grid": ["--size", "32", "--max-frames", "13"],  # the README's bullet-time example freezes column 12
    "reconstruct": ["--steps", "20"],
    "finetune": ["--max-frames", "5", "--pairs", "4"],
    "prepare": ["--size", "32", "--clip-frames", "5"],
    "train": ["--max-steps", "2", "--batch-size", "2"],
    "eval": ["--size", "32", "--frames", "5"],
}
"""Work-size options added to a command that does not give them (the README's defaults are larger)."""


def readme_commands(text: str) -> list[str]:
    """Every command line of the README's ``bash`` blocks, in order (comments dropped, ``&&`` split)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            line = re.split(r"\s#\s", line)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


def small(argv: list[str]) -> list[str] | None:
    """The command with its work made small (see the module docstring); None for lines not to run."""
    if argv[:2] == ["pip", "install"] or argv[:3] == ["python", "-m", "pytest"] or argv[:2] == ["vnvs", "view"]:
        return None
    if argv[:2] == ["accelerate", "launch"]:
        argv = [a for a in argv if a != "--multi_gpu"]
        argv.insert(2, "--cpu")
    out = []
    for i, a in enumerate(argv):
        out.append(SMALLER[argv[i - 1]] if i and argv[i - 1] in SMALLER else a)
    if "--input" in out and out[out.index("--input") + 1].isdigit():  # procedural scenes
        out[out.index("--input") + 1] = "2"
    command = next((a for a in ("demo", "render", "grid", "prepare", "train", "finetune", "eval", "reconstruct")
                    if a in out[:9]), None)
    if command is not None:
        for flag, value in zip(ADDED[command][::2], ADDED[command][1::2]):
            if flag not in out:
                if command == "train" and "--resume" in out and flag == "--max-steps":
                    value = "3"
                out += [flag, value]
    if out[0] == "vnvs":
        out[:1] = vnvs_command()
    elif out[0] == "accelerate":
        out[0] = str(Path(sys.executable).parent / "accelerate")
    return out


def vnvs_command() -> list[str]:
    """The installed ``vnvs`` script of this Python (``python -m vnvs.cli`` where it is absent)."""
    exe = Path(sys.executable).parent / "vnvs"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "vnvs.cli"]


def test_readme_command_lines_are_found():
    commands = readme_commands((ROOT / "README.md").read_text())
    names = {shlex.split(c)[1] for c in commands if c.startswith("vnvs ")}
    assert {"demo", "render", "prepare", "train", "eval", "trajectory"} <= names
    assert small(shlex.split("vnvs prepare --input 1000 --output d --kind synthetic --size 64 --workers 8"))[-13:] == \
        ["prepare", "--input", "2", "--output", "d", "--kind", "synthetic", "--size", "32", "--workers", "2",
         "--clip-frames", "5"]


def _fake_hub_cache(root: Path, model_folder: Path) -> Path:
    """A Hugging Face cache holding ``model_folder`` under the default depth model's id."""
    repo = root / ("models--" + DEFAULT_DEPTH_MODEL.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(model_folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return root


def _user_files(work: Path, clip: Path) -> None:
    from vnvs.cameras import Cameras
    from vnvs.cameras.converters import write_colmap_text
    from vnvs.cameras.trajectory import Trajectory
    from vnvs.evaluation.datasets import export_dycheck_scene
    from vnvs.io.video import probe_video

    shutil.copy(clip, work / "clip.mp4")
    info = probe_video(clip)
    H, W = info.size
    h, w = 32, max(2, round(32 * W / H))
    ramp = np.linspace(2.0, 6.0, h, dtype=np.float32)[:, None].repeat(w, 1)
    depth = np.stack([ramp * (1 + 0.01 * np.sin(t)) for t in range(info.num_frames)])
    np.savez(work / "clip_depth.npz", depth=depth)
    (work / "videos").mkdir()
    (work / "depth").mkdir()
    shutil.copy(clip, work / "videos" / "clip.mp4")
    np.savez(work / "depth" / "clip.npz", depth=depth)
    write_colmap_text(Trajectory.from_cameras(Cameras.static(3, 48, 64)), work / "colmap" / "sparse" / "0")
    # a DyCheck scene in its public layout (a procedural scene exported: 4 frames, 32 px, 2x images)
    export_dycheck_scene(2**40, work / "dycheck" / "scene", frames=4, size=32, factors=(1, 2))


def test_every_readme_command_runs_as_written(tmp_path, real_clip, tiny_depth_model):
    work = tmp_path / "walk"
    work.mkdir()
    _user_files(work, real_clip)
    env = dict(os.environ, HF_HUB_CACHE=str(_fake_hub_cache(tmp_path / "hub", tiny_depth_model)), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true", PYTHONPATH=str(ROOT / "src"))
    subprocess.run([*vnvs_command(), "prepare", "--input", "videos/", "--output", "heldout_pairs", "--kind",
                    "flow-pairs", "--size", "32", "--clip-frames", "5", "--seed", "1"],
                   cwd=work, env=env, check=True, capture_output=True)
    ran = []
    for line in readme_commands((ROOT / "README.md").read_text()):
        argv = small(shlex.split(line))
        if argv is None:
            continue
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"README line failed: {line}\n{' '.join(argv)}\n{proc.stderr[-2000:]}"
        ran.append(line)
    assert len(ran) >= 20
    # what the README says these lines write
    assert (work / "out" / "novel.mp4").is_file() and (work / "out" / "side_by_side.mp4").is_file()
    assert json.loads((work / "demo_out" / "metrics.json").read_text())["psnr"] > 10
    assert (work / "runs" / "dit-small" / "model" / "sampling.json").is_file()
    assert (work / "runs" / "a" / "model" / "config.json").is_file()
    assert (work / "eval_real" / "report.md").is_file() and (work / "eval" / "report.json").is_file()
    assert json.loads((work / "eval_dycheck" / "report.json").read_text())["items"][0]["name"] == "scene/cam1"
    assert len(json.loads((work / "cams.json").read_text())["frames"]) == 3
    assert json.loads((work / "grid" / "grid.json").read_text())["views"] == 3
    assert (work / "clip-model" / "sampling.json").is_file()
