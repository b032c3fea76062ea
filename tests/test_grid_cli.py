"""`vnvs grid` end to end (grid folders, per-cell cameras, methods), grid training through `vnvs train`, errors."""

import json

import numpy as np
import pytest
import torch

from vnvs.cli import main
from vnvs.geometry import warp_cells
from vnvs.io import write_video
from vnvs.io.grid import read_grid
from vnvs.metrics import psnr
from vnvs.synthetic import generate_scene, render_source_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("gridclip")
    video = render_source_video(generate_scene(3), num_frames=5, size=(32, 48), seed=3)
    write_video(root / "clip.mp4", video.frames, fps=8)
    np.save(root / "depth.npy", video.depth.numpy())
    return root, video


def run_cli(args, capsys):
    code = main([str(a) for a in args] + ["--threads", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_independent_grid_folder(clip, tmp_path, capsys):
    root, video = clip
    code, out, err = run_cli(["grid", root / "clip.mp4", "--depth", root / "depth.npy", "--views", "3",
                              "--max-frames", "4", "--generator", "warp+inpaint", "--trajectory", "orbit:20",
                              "-o", tmp_path / "g"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["method"] == "independent"
    grid = read_grid(tmp_path / "g")
    assert grid.frames.shape == (3, 4, 3, 32, 48)
    assert psnr(grid.frames[0], video.frames[:4]) > 25  # row 0 is the input video (H.264 twice at 32x48)
    assert torch.allclose(grid.w2c[0], torch.eye(4).expand(4, 4, 4), atol=1e-6)  # static source camera
    angle = lambda w: float(torch.rad2deg(torch.arccos(((w[:3, :3].trace() - 1) / 2).clamp(-1, 1))))
    assert angle(grid.w2c[1, 2]) == pytest.approx(10.0, abs=0.01) and angle(grid.w2c[2, 2]) == pytest.approx(20.0, abs=0.01)
    assert grid.valid[0].all() and not grid.valid[1:].any()
    assert grid.meta["method"] == "independent" and grid.meta["trajectory"] == "orbit:20"
    assert psnr(grid.frames[1], grid.frames[0]) < 40  # the views differ from the source


def test_train_grid_model_and_fill_a_grid(clip, tmp_path, capsys):
    root, _ = clip
    code, _, err = run_cli(["prepare", "--input", "1", "--kind", "synthetic", "--size", "16", "--clip-frames", "4",
                            "--views", "3", "--workers", "1", "-o", tmp_path / "data"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["train", "--config", "grid-tiny", "--data", tmp_path / "data", "-o", tmp_path / "run"],
                             capsys)
    assert code == 0, err
    result = json.loads(out.splitlines()[0])
    assert result["steps"] == 2 and np.isfinite(result["final_loss"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]
    model = tmp_path / "run" / "model"
    args = ["grid", root / "clip.mp4", "--depth", root / "depth.npy", "--views", "3", "--max-frames", "4",
            "--generator", "warp+inpaint", "--method", model, "--steps", "2"]
    code, out, err = run_cli(args + ["-o", tmp_path / "a"], capsys)
    assert code == 0, err
    code, _, err = run_cli(args + ["-o", tmp_path / "b"], capsys)
    assert code == 0, err
    a, b = read_grid(tmp_path / "a"), read_grid(tmp_path / "b")
    assert torch.equal(a.frames, b.frames)  # seeded
    assert 0.2 < float(a.frames[1:, 1:].mean()) < 0.8  # generated content (NaN from unset cells came out black)
    assert a.meta["method"] == "model" and a.meta["grid_model"] == "model"
    assert a.w2c.shape == (3, 4, 4, 4) and not torch.allclose(a.w2c[1], a.w2c[0])
    assert json.loads((model / "config.json").read_text())["grid_model"]["resolution"] == 16  # the data's size
    code, _, err = run_cli(args + ["--no-composite", "-o", tmp_path / "raw"], capsys)
    assert code == 0, err
    raw = read_grid(tmp_path / "raw")
    # composite (the default) keeps the clip warped to each cell wherever it landed; --no-composite does not
    depth = torch.from_numpy(np.load(root / "depth.npy"))[:4].float()
    warped, landed = warp_cells(a.frames[0], depth, a.K[0], a.w2c[0], a.K, a.w2c, renderer="mesh")
    cells = landed[1:, 1:, None].expand(-1, -1, 3, -1, -1)
    err_comp = (a.frames[1:, 1:] - warped[1:, 1:])[cells].abs().mean()
    err_raw = (raw.frames[1:, 1:] - warped[1:, 1:])[cells].abs().mean()
    assert err_comp < 0.03 < err_raw, (err_comp, err_raw)
    assert torch.equal(raw.frames[0], a.frames[0])


@pytest.mark.parametrize("extra,needle", [(["--views", "1"], "views"), (["--method", "cat4d"], "grid method"),
                                          (["--window-views", "1"], "window_views"),
                                          (["--grid-resolution", "0"], "grid_resolution")])
def test_bad_options_are_one_line_errors(clip, tmp_path, capsys, extra, needle):
    root, _ = clip
    code, out, err = run_cli(["grid", root / "clip.mp4", "--depth", root / "depth.npy", "-o", tmp_path / "g"] + extra,
                             capsys)
    assert code == 2 and err.startswith("error:") and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_missing_video_is_an_error(tmp_path, capsys):
    code, _, err = run_cli(["grid", tmp_path / "none.mp4", "--depth", tmp_path / "d.npy", "-o", tmp_path / "g"], capsys)
    assert code == 2 and err.startswith("error:") and not (tmp_path / "g").exists()


def test_grid_benchmark_report(tmp_path, capsys):
    code, out, err = run_cli(["eval", "--benchmark", "grid", "--scenes", "1", "--frames", "3", "--size", "16",
                              "--views", "3", "--steps", "1", "--grid-generator", "warp+inpaint",
                              "--methods", "independent,free=4real-hard-free", "-o", tmp_path / "e"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["benchmark"] == "grid" and list(report["methods"]) == ["independent", "free"]
    assert set(report["metrics"]) == {"psnr", "ssim", "view_error", "time_error", "seconds_per_cell"}
    ind = report["methods"]["independent"]["mean"]
    assert 10 < ind["psnr"] < 60 and ind["view_error"] is not None and ind["time_error"] is not None
    assert report["exact"]["view_error"] < ind["view_error"]  # the exact grid is more consistent than any method
    assert "view err" in (tmp_path / "e" / "report.md").read_text()


def test_train_on_affine4d_and_synthetic_grids_together(clip, tmp_path, capsys):
    """affine4d grids have no cameras: a batch mixing them with synthetic grids trains without camera input."""
    root, _ = clip
    for kind, inp in (("affine4d", root / "clip.mp4"), ("synthetic", "1")):
        code, _, err = run_cli(["prepare", "--input", inp, "--kind", kind, "--size", "16", "--clip-frames", "4",
                                "--views", "3", "--workers", "1", "-o", tmp_path / "data" / kind], capsys)
        assert code == 0, err
    (tmp_path / "c.json").write_text(json.dumps({"preset": "grid-tiny", "model": "full4d-tiny", "batch_size": 2,
                                                 "data": {"affine4d": 0.5, "synthetic-grid": 0.5}}))
    code, out, err = run_cli(["train", "--config", tmp_path / "c.json", "--data", tmp_path / "data",
                              "-o", tmp_path / "run"], capsys)
    assert code == 0, err
    assert np.isfinite(json.loads(out.splitlines()[0])["final_loss"])
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert meta["grid_model"]["method"] == "full4d"
