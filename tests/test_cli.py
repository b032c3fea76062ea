"""The `vnvs` command end to end: outputs, determinism and one-line errors with exit code 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vnvs.cli import main
from vnvs.io import read_video, write_video
from vnvs.synthetic import generate_scene, render_source_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A short real H.264 file of a procedural scene, with its exact depth saved beside it."""
    root = tmp_path_factory.mktemp("clip")
    video = render_source_video(generate_scene(3), num_frames=8, size=(48, 64), seed=3)
    write_video(root / "clip.mp4", video.frames, fps=8)
    np.save(root / "depth.npy", video.depth.numpy())
    return root, video


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_writes_outputs_and_is_deterministic(tmp_path, capsys):
    args = ["demo", "--frames", "6", "--size", "64", "--seed", "1"]
    code, out, err = run_cli(args + ["--output", tmp_path / "a"], capsys)
    assert code == 0, err
    for name in ("novel.mp4", "conditioning.mp4", "comparison.png", "metrics.json", "trajectory.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in ("psnr", "ssim", "psnr_covisible", "psnr_disoccluded", "frames", "height", "width", "generator", "seconds"):
        assert key in m
    assert (m["frames"], m["height"], m["width"], m["generator"]) == (6, 64, 64, "vnvs-dit-small")  # the shipped model
    assert m["psnr_covisible"] > 25 and m["psnr_covisible"] > m["psnr_disoccluded"]
    assert read_video(tmp_path / "a" / "novel.mp4").frames.shape == (6, 3, 64, 64)
    code, _, err = run_cli(args + ["--output", tmp_path / "b"], capsys)
    assert code == 0, err
    m2 = json.loads((tmp_path / "b" / "metrics.json").read_text())
    m.pop("seconds"), m2.pop("seconds")
    assert m == m2


def test_demo_with_warp_generator_leaves_holes(tmp_path, capsys):
    code, _, err = run_cli(["demo", "--frames", "4", "--size", "48", "--generator", "warp", "--trajectory", "orbit:40",
                            "--mode", "direct", "--output", tmp_path], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["generator"] == "warp" and m["warp_coverage"] < 1.0


def test_render_real_video(clip, tmp_path, capsys):
    root, video = clip
    code, out, err = run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", "dolly:0.2",
                              "--output", tmp_path], capsys)
    assert code == 0, err
    novel = read_video(tmp_path / "novel.mp4").frames
    assert novel.shape == (8, 3, 48, 64)
    assert read_video(tmp_path / "side_by_side.mp4").frames.shape[-1] > 3 * 64
    traj = json.loads((tmp_path / "trajectory.json").read_text())
    assert traj["format"] == "vnvs-trajectory" and len(traj["frames"]) == 8
    # frame 0 of a gradual trajectory is the source camera: the novel view reproduces the input
    src = read_video(root / "clip.mp4").frames
    assert (novel[0] - src[0]).abs().mean() < 0.03


def test_render_with_stride_and_resize_selects_depth(clip, tmp_path, capsys):
    root, _ = clip
    code, _, err = run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--stride", "2", "--size", "24",
                            "--trajectory", "pan:5", "--output", tmp_path], capsys)
    assert code == 0, err
    assert read_video(tmp_path / "novel.mp4").frames.shape == (4, 3, 24, 32)


def expect_user_error(args, capsys, pattern, out_dir):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert pattern in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_bad_videos(clip, tmp_path, capsys):
    root, _ = clip
    out = tmp_path / "out"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    data = (root / "clip.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for path, pattern in ((junk, "junk.mp4"), (empty, "empty.mp4"), (cut, "cut.mp4"), (tmp_path / "missing.mp4", "missing.mp4")):
        expect_user_error(["render", path, "--depth", root / "depth.npy", "--output", out], capsys, pattern, out)


def test_bad_depth(clip, tmp_path, capsys):
    root, video = clip
    out = tmp_path / "out"
    d = video.depth.numpy()
    np.save(tmp_path / "short.npy", d[:5])
    expect_user_error(["render", root / "clip.mp4", "--depth", tmp_path / "short.npy", "--output", out], capsys, "5", out)
    np.save(tmp_path / "size.npy", d[:, :20, :20])
    expect_user_error(["render", root / "clip.mp4", "--depth", tmp_path / "size.npy", "--output", out], capsys, "20", out)
    nan = d.copy()
    nan[2, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    expect_user_error(["render", root / "clip.mp4", "--depth", tmp_path / "nan.npy", "--output", out], capsys, "NaN", out)
    neg = d.copy()
    neg[1] = -1
    np.save(tmp_path / "neg.npy", neg)
    expect_user_error(["render", root / "clip.mp4", "--depth", tmp_path / "neg.npy", "--output", out], capsys,
                      "neg.npy", out)


def test_bad_trajectories(clip, tmp_path, capsys):
    root, _ = clip
    out = tmp_path / "out"
    base = ["render", root / "clip.mp4", "--depth", root / "depth.npy", "--output", out, "--trajectory"]
    expect_user_error(base + ["wobble:3"], capsys, "wobble", out)
    expect_user_error(base + ["orbit:abc"], capsys, "orbit", out)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "vnvs-trajectory", "version": 1, "frames": [')
    expect_user_error(base + [bad], capsys, "bad.json", out)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "vnvs-trajectory", "version": 1, "height": 48, "width": 64,
                                 "frames": [{"w2c": [[1, 0, 0], [0, 1, 0]], "K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]]}]}))
    expect_user_error(base + [wrong], capsys, "w2c", out)


def test_trajectory_command_and_console_script(tmp_path):
    out = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, "-m", "vnvs.cli", "trajectory", "orbit:30+dolly:0.2", "--frames", "5",
                           "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert len(doc["frames"]) == 5
    proc = subprocess.run([sys.executable, "-m", "vnvs.cli", "trajectory", "spin:3", "--output", str(tmp_path / "x.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("spec", ["orbit:20", "arc:-10", "dolly:0.3", "pan:10", "tilt:-5", "zoom:1.5",
                                  "translate:0.1,0,0.05", "spiral:10", "bullet:20@3", "orbit:15+dolly:0.1"])
def test_render_every_preset(clip, tmp_path, spec, capsys):
    root, _ = clip
    code, _, err = run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", spec,
                            "--output", tmp_path], capsys)
    assert code == 0, err
    traj = json.loads((tmp_path / "trajectory.json").read_text())
    assert len(traj["frames"]) == 8
    if spec.startswith("bullet"):
        assert {f["time"] for f in traj["frames"]} == {3}


def test_render_accepts_every_trajectory_format(clip, tmp_path, capsys):
    from vnvs.cameras import Cameras, default_intrinsics
    from vnvs.cameras.converters import write_colmap_text, write_megasam_npz, write_transforms_json
    from vnvs.cameras.presets import make_preset_trajectory

    root, _ = clip
    source = Cameras(torch.eye(4).repeat(8, 1, 1), default_intrinsics(48, 64).expand(8, 3, 3).clone(), 48, 64)
    traj = make_preset_trajectory("orbit:10", source, 3.0)
    files = {"vnvs.json": traj.save(tmp_path / "t.json"),
             "transforms.json": write_transforms_json(traj, tmp_path / "transforms.json"),
             "colmap": write_colmap_text(traj, tmp_path / "colmap"),
             "megasam": write_megasam_npz(traj, tmp_path / "cams.npz")}
    (tmp_path / "tc.txt").write_text("0 5\n0 -10\n0 0.1\n")
    files["trajcrafter"] = tmp_path / "tc.txt"
    for name, path in files.items():
        out = tmp_path / f"out_{name}"
        code, _, err = run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", path,
                                "--output", out], capsys)
        assert code == 0, (name, err)
        assert read_video(out / "novel.mp4").frames.shape[0] == 8, name


def test_a_preset_written_to_a_file_renders_exactly_as_the_preset(clip, tmp_path, capsys):
    root, _ = clip
    spec = "orbit:15+dolly:0.2"
    code, _, err = run_cli(["trajectory", spec, "--output", tmp_path / "t.json"], capsys)
    assert code == 0, err
    outs = []
    for name, trajectory in (("preset", spec), ("file", tmp_path / "t.json")):
        code, _, err = run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", trajectory,
                                "-g", "warp", "--output", tmp_path / name], capsys)
        assert code == 0, err
        outs.append(read_video(tmp_path / name / "novel.mp4").frames)
    assert outs[0].shape[0] == 8 and torch.equal(outs[0], outs[1])


def test_trajectory_command_frames_and_output_format(tmp_path, capsys):
    from vnvs.cameras import Cameras
    from vnvs.cameras.converters import write_colmap_text
    from vnvs.cameras.presets import make_preset_trajectory

    traj = make_preset_trajectory("orbit:10", Cameras.static(3, 48, 64), 2.0)
    write_colmap_text(traj, tmp_path / "colmap")
    code, out, err = run_cli(["trajectory", tmp_path / "colmap", "--output", tmp_path / "c.json"], capsys)
    assert code == 0, err
    assert len(json.loads((tmp_path / "c.json").read_text())["frames"]) == 3  # the file's cameras, not 49
    code, _, err = run_cli(["trajectory", "orbit:10", "--output", tmp_path / "o.txt"], capsys)
    assert code == 2 and "name the output *.json" in err and not (tmp_path / "o.txt").exists()


def test_docs_cli_md_lists_every_option_as_the_commands_define_them():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("write_cli_doc", root / "scripts" / "write_cli_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "cli.md").read_text() == module.text(), \
        "docs/cli.md is out of date: run python scripts/write_cli_doc.py"


def test_render_with_the_mesh_renderer_warns_for_the_shipped_model(clip, tmp_path, capsys):
    root, _ = clip
    base = ["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", "dolly:0.2", "--max-frames", "4",
            "--generator", "default"]
    code, _, err = run_cli(base + ["--renderer", "mesh", "--output", tmp_path / "mesh"], capsys)
    assert code == 0, err
    for name in ("novel.mp4", "conditioning.mp4", "side_by_side.mp4", "trajectory.json"):
        assert (tmp_path / "mesh" / name).stat().st_size > 0
    assert "warning:" in err and "trained with the zbuffer renderer" in err  # the shipped model's sampling.json
    code, _, err = run_cli(base + ["--renderer", "zbuffer", "--output", tmp_path / "zb"], capsys)
    assert code == 0, err
    assert "trained with" not in err
    code, out, err = run_cli(base + ["--output", tmp_path / "default"], capsys)  # the default: mesh, no warning
    assert code == 0 and "trained with" not in err and json.loads(out.splitlines()[0])["renderer"] == "mesh"
    code, _, err = run_cli(base + ["--renderer", "mesh", "--generator", "warp", "--output", tmp_path / "warp"], capsys)
    assert code == 0 and "trained with" not in err  # classical generators read any conditioning
    cond = {k: read_video(tmp_path / k / "conditioning.mp4").frames for k in ("mesh", "zb")}
    assert cond["mesh"].shape == cond["zb"].shape and not torch.equal(cond["mesh"], cond["zb"])


def test_render_rejects_an_unknown_renderer(clip, tmp_path, capsys):
    root, _ = clip
    with pytest.raises(SystemExit) as exc:  # argparse refuses it with a one-line error
        run_cli(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--renderer", "nope",
                 "--output", tmp_path], capsys)
    assert exc.value.code == 2 and "--renderer" in capsys.readouterr().err
