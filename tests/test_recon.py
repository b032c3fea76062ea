"""Deformable Gaussian scenes: fitting a procedural grid, densification, determinism, resumable
checkpoints, PLY / scene folders, and the `vnvs reconstruct` / `vnvs render-scene` commands."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

from vnvs.cli import main
from vnvs.errors import InputError
from vnvs.io.grid import Grid, write_grid
from vnvs.io.video import probe_video
from vnvs.recon.config import ReconSettings
from vnvs.recon.formats import read_ply, read_scene, write_ply
from vnvs.recon.losses import _ssim_map_conv, photometric_loss, ssim_map, visibility_weights
from vnvs.recon.optimize import _densify, _lrs, _make_optimizer, grid_targets, reconstruct, render_views
from vnvs.recon.scene import DeformableGaussians
from vnvs.synthetic.grids import procedural_grid

FAST = dict(steps=30, deform_warmup=10, densify_every=10, checkpoint_every=15, max_gaussians=4000,
            mlp_width=16, mlp_layers=2, pos_octaves=2, time_octaves=2, device="cpu")


@pytest.fixture(scope="module")
def grid():
    return procedural_grid(2, views=3, frames=4, size=32)


def _psnr(a, b):
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


def test_fit_improves_and_is_seeded(grid):
    settings = ReconSettings(**FAST)
    a = reconstruct(grid, settings, seed=3)
    b = reconstruct(grid, settings, seed=3)
    for k, v in a.scene.gaussian_state_dict().items():
        assert torch.equal(v, b.scene.gaussian_state_dict()[k]), k
    # the fit beats the initial Gaussians on the training cells
    init = reconstruct(grid, ReconSettings(**{**FAST, "steps": 1}), seed=3).scene
    w2c, K, times = grid.w2c[:, 2], grid.K[:, 2], grid.time[2].repeat(3)
    before = _psnr(render_views(init, w2c, K, times, 32, 32)[0], grid.frames[:, 2])
    after = _psnr(render_views(a.scene, w2c, K, times, 32, 32)[0], grid.frames[:, 2])
    assert after > before + 0.5 and after > 20, (before, after)


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None,
                    reason="needs CUDA and gsplat")
def test_fit_on_cuda_with_gsplat_matches_the_cpu_fit(grid, tmp_path):  # pragma: no cover - GPU only
    settings = ReconSettings(**{**FAST, "steps": 60, "device": "cuda"})
    gpu = reconstruct(grid, settings, seed=3, checkpoint_dir=tmp_path)
    cpu = reconstruct(grid, ReconSettings(**{**FAST, "steps": 60}), seed=3)
    assert gpu.scene.means.is_cuda
    w2c, K, times = grid.w2c[:, 2], grid.K[:, 2], grid.time[2].repeat(3)
    on_gpu = _psnr(render_views(gpu.scene, w2c, K, times, 32, 32)[0], grid.frames[:, 2])
    on_cpu = _psnr(render_views(cpu.scene, w2c, K, times, 32, 32)[0], grid.frames[:, 2])
    assert on_gpu > 20 and abs(on_gpu - on_cpu) < 1.5, (on_gpu, on_cpu)
    resumed = reconstruct(grid, settings, seed=3, checkpoint_dir=tmp_path, resume=True)  # loads onto the GPU
    assert resumed.scene.means.is_cuda and resumed.steps == 60


def test_resume_continues_exactly(grid, tmp_path):
    settings = ReconSettings(**FAST)
    full = reconstruct(grid, settings, seed=1)
    half = reconstruct(grid, settings, seed=1, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("recon_step_*.pt"))) == 2 and half.steps == 30
    # drop the last checkpoint: resume from step 15 and finish
    sorted(tmp_path.glob("recon_step_*.pt"))[-1].unlink()
    resumed = reconstruct(grid, settings, seed=1, checkpoint_dir=tmp_path, resume=True)
    for k, v in full.scene.gaussian_state_dict().items():
        torch.testing.assert_close(resumed.scene.gaussian_state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_densify_clones_splits_prunes_and_keeps_adam_rows():
    means = torch.tensor([[0.0, 0, 3], [0.5, 0, 3], [-0.5, 0, 3], [0.0, 0.5, 3]])
    scene = DeformableGaussians(means, torch.rand(4, 3), torch.tensor([0.001, 0.05, 0.01, 0.01]), views=1, width=8,
                                layers=1, pos_octaves=0, time_octaves=0)
    with torch.no_grad():
        scene.opacity_logits[3] = -10.0  # nearly transparent: pruned
    settings = ReconSettings(densify_grad=0.1, max_gaussians=100)
    opt = _make_optimizer(scene, _lrs(settings, 1.0))
    scene.means.sum().backward()
    opt.step()
    exp_avg_1 = opt.state[scene.means]["exp_avg"][1].clone()
    means = scene.means.detach().clone()
    grad = torch.tensor([1.0, 1.0, 0.0, 1.0])  # 0: small -> clone; 1: large -> split; 2: kept; 3: pruned
    K = torch.tensor([[[50.0, 0, 32], [0, 50, 32], [0, 0, 1]]])
    _densify(scene, opt, grad, torch.ones(4), settings, extent=1.0, frustum=(torch.eye(4)[None], K, 64, 64),
             generator=torch.Generator().manual_seed(0), allow_growth=True)
    assert len(scene) == 2 + 1 + 2  # kept 0 and 2, the clone of 0, two children of 1
    torch.testing.assert_close(scene.means[:3], torch.stack([means[0], means[2], means[0]]))
    children = scene.means.detach()[3:]
    assert torch.allclose(torch.exp(scene.log_scales[3:]), torch.full((2, 3), 0.05 / 1.6))
    assert float((children - means[1]).norm(dim=1).max()) > 1e-3
    state = opt.state[scene.means]
    assert state["exp_avg"].shape == (5, 3) and float(state["exp_avg"][2:].abs().sum()) == 0
    assert opt.param_groups[0]["params"][0] is scene.means
    assert float(exp_avg_1.abs().sum()) > 0  # the split parent's moments left with it


@pytest.mark.parametrize("size", [(128, 128), (30, 47), (12, 16)])
def test_ssim_by_banded_matrices_equals_the_convolution(size):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, *size, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(3, *size, generator=g, dtype=torch.float64)
    a, b = ssim_map(x, y), _ssim_map_conv(x, y)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    ga, = torch.autograd.grad(a.sum(), x)
    gb, = torch.autograd.grad(b.sum(), x)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-12)


def test_cells_without_depth_count_fully(grid):
    """A `vnvs grid` folder holds depth for its source row only: the generated rows must still supervise."""
    partial = Grid(grid.frames, grid.w2c, grid.K, fps=grid.fps, time=grid.time, depth=grid.depth.clone(),
                   valid=grid.valid.clone())
    partial.valid[1:] = False
    _, w = grid_targets(partial, ReconSettings(**FAST))
    assert torch.equal(w[1:], torch.ones_like(w[1:]))
    assert float(w[0].min()) >= 0 and float(w[0].max()) <= 1 and float(w[0].mean()) < 1


def test_visibility_weights_follow_the_viewing_angle():
    K = torch.tensor([[[20.0, 0, 15.5], [0, 20, 15.5], [0, 0, 1]]])
    ys = torch.arange(32.0)[:, None].expand(32, 32)
    # a plane z = 2 + 0.05 * y_world ... rendered as depth of a plane tilted by 45 degrees about x
    depth = 2.0 / (1 - (ys - 15.5) / 20)
    w = visibility_weights(depth[None], K, torch.ones(1, 32, 32, dtype=torch.bool), floor=0.0)
    ray = torch.tensor([0.0, 0.0, 1.0])
    normal = torch.tensor([0.0, -1.0, 1.0]) / math.sqrt(2)
    assert abs(float(w[0, 16, 16]) - float((ray * normal).abs().sum())) < 0.02
    loss_w = photometric_loss(torch.zeros(3, 32, 32), torch.ones(3, 32, 32), w[0])
    assert 0.7 < float(loss_w) <= 1.0


def test_cli_reconstruct_and_render_scene(grid, tmp_path, capsys):
    gdir = tmp_path / "grid"
    write_grid(gdir, grid)
    scene_dir = tmp_path / "scene"
    fast = ["--steps", "30", "--deform-warmup", "10", "--densify-every", "10", "--mlp-width", "16",
            "--mlp-layers", "2", "--max-gaussians", "3000"]
    code = main(["reconstruct", str(gdir), "-o", str(scene_dir), "--ply-times", "0,last", "--holdout-views", "1", *fast])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out.splitlines()[0])
    assert summary["steps"] == 30 and "psnr_heldout_middle_column" in summary
    doc = json.loads((scene_dir / "scene.json").read_text())
    assert doc["format"] == "vnvs-gaussian-scene" and doc["version"] == 1 and doc["holdout_views"] == [1]
    assert doc["time_range"] == [0.0, 1.0] and len(doc["cameras"]["w2c"]) == 3
    assert sorted(p.name for p in (scene_dir / "ply").iterdir()) == ["time_000.ply", "time_003.ply"]
    ply = read_ply(scene_dir / "ply" / "time_003.ply")
    scene, _ = read_scene(scene_dir)
    g = scene.at(1.0)
    torch.testing.assert_close(ply["means"], g.means.detach())
    torch.testing.assert_close(ply["opacity_logits"], g.opacity_logits.detach())
    assert not list(tmp_path.glob(".scene.checkpoints"))  # removed after success

    out_dir = tmp_path / "render"
    code = main(["render-scene", str(scene_dir), "-t", "bullet:20", "-o", str(out_dir), "--frames", "6"])
    assert code == 0, capsys.readouterr()
    assert probe_video(out_dir / "render.mp4").num_frames == 6
    traj = json.loads((out_dir / "trajectory.json").read_text())
    assert len({f["time"] for f in traj["frames"]}) == 1  # bullet time: one grid column


@pytest.fixture(scope="module")
def tiny_learned(tmp_path_factory):
    from vnvs.models import NovelViewModel, get_preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("stage2") / "tiny-dit"
    NovelViewModel.from_config(get_preset("dit-tiny")).save_pretrained(path)
    return path


def test_stage2_refiner_keeps_the_source_row_and_refines_the_others(grid, tiny_learned):
    from vnvs.generators import LearnedGenerator, WarpGenerator
    from vnvs.recon.stage2 import generator_refiner

    gen = LearnedGenerator(tiny_learned, steps=2, composite=False)
    fn = generator_refiner(gen, grid, strength=0.5, seed=1)
    cells = [(v, t) for v in range(3) for t in range(4)]
    renders = torch.rand(len(cells), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = fn(renders, cells)
    assert out.shape == renders.shape and torch.equal(out, fn(renders, cells))  # seeded
    torch.testing.assert_close(out[:4], grid.frames[0].float())  # the input video stays the target of its row
    assert float((out[4:] - renders[4:]).abs().mean()) > 1e-3  # the other rows are redrawn
    with pytest.raises(InputError, match="learned generator"):
        generator_refiner(WarpGenerator(), grid)


def test_cli_reconstruct_with_stage2(grid, tiny_learned, tmp_path, capsys):
    gdir = tmp_path / "grid"
    write_grid(gdir, grid)
    fast = ["--steps", "20", "--deform-warmup", "5", "--densify-every", "10", "--mlp-width", "16", "--mlp-layers", "2",
            "--max-gaussians", "2000", "--device", "cpu"]
    code = main(["reconstruct", str(gdir), "-o", str(tmp_path / "scene"), "--stage2", str(tiny_learned), "--stage2-steps",
                 "6", "--stage2-sampling-steps", "2", *fast])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out.splitlines()[0])["steps"] == 26
    doc = json.loads((tmp_path / "scene" / "scene.json").read_text())
    assert doc["stage2"] == {"generator": str(tiny_learned), "steps": 6, "strength": 0.4}
    code = main(["reconstruct", str(gdir), "-o", str(tmp_path / "scene2"), "--stage2", "warp+inpaint", *fast])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "learned generator" in err
    assert not (tmp_path / "scene2").exists()


def test_render_output_reconstructs_as_a_two_row_grid(tmp_path, capsys):
    import numpy as np

    from vnvs.apps.render_grid import grid_from_render_output
    from vnvs.cameras.trajectory import Trajectory
    from vnvs.io.video import read_video, write_video
    from vnvs.synthetic import generate_scene, render_source_video

    video = render_source_video(generate_scene(5), num_frames=5, size=(24, 32), seed=5)
    write_video(tmp_path / "clip.mp4", video.frames, fps=5, crf=0)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    Trajectory(video.w2c, video.K, 24, 32).save(tmp_path / "cameras.json")
    base = ["render", str(tmp_path / "clip.mp4"), "--depth", str(tmp_path / "depth.npy"), "--cameras",
            str(tmp_path / "cameras.json"), "--generator", "warp+inpaint", "--trajectory", "orbit:10"]
    assert main(base + ["--save-depth", "-o", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    grid = grid_from_render_output(tmp_path / "r")
    assert grid.frames.shape == (2, 5, 3, 24, 32) and grid.time_index.tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(grid.w2c[0], video.w2c.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(grid.depth[0], torch.where(video.depth > 0, video.depth, 0).float(), atol=1e-4, rtol=1e-4)
    assert not grid.valid[1].any() and float((grid.frames[0] - video.frames.float()).abs().mean()) < 0.05
    novel = read_video(tmp_path / "r" / "novel.mp4").frames
    torch.testing.assert_close(grid.frames[1], novel.float(), rtol=0, atol=1e-6)  # row 1 is the novel view as written
    assert 0.05 < float(grid.frames[1].mean()) < 0.95
    scene = tmp_path / "scene"
    fast = ["--steps", "20", "--deform-warmup", "5", "--densify-every", "10", "--mlp-width", "16", "--mlp-layers", "2",
            "--max-gaussians", "2000", "--device", "cpu"]
    assert main(["reconstruct", str(tmp_path / "r"), "-o", str(scene), *fast]) == 0, capsys.readouterr().err
    doc = json.loads((scene / "scene.json").read_text())
    assert doc["views"] == 2 and doc["times"] == 5
    assert main(base + ["-o", str(tmp_path / "nodepth")]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "nodepth"), "-o", str(tmp_path / "s2"), *fast]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--save-depth" in err and not (tmp_path / "s2").exists()


@pytest.mark.parametrize("args,needle", [
    (["reconstruct", "{tmp}/nothing", "-o", "{tmp}/s"], "grid"),
    (["reconstruct", "{grid}", "-o", "{tmp}/s", "--ply-times", "9"], "column 9"),
    (["reconstruct", "{grid}", "-o", "{tmp}/s", "--holdout-views", "0,1,2"], "at least one view"),
    (["render-scene", "{tmp}/nothing", "-o", "{tmp}/r"], "scene folder"),
    (["render-scene", "{grid}", "-o", "{tmp}/r"], "scene.json"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(grid, tmp_path, capsys, args, needle):
    gdir = tmp_path / "grid"
    write_grid(gdir, grid)
    argv = [a.format(tmp=tmp_path, grid=gdir) for a in args]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_view_checks_the_path_then_names_the_missing_extra(grid, tmp_path, capsys):
    code = main(["view", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and "scene folder" in err and len(err.strip().splitlines()) == 1
    ply = tmp_path / "a.ply"
    write_ply(ply, torch.rand(5, 3), torch.rand(5, 3), torch.rand(5, 4), torch.rand(5), torch.rand(5, 3))
    if importlib.util.find_spec("viser") is None:
        code = main(["view", str(ply)])
        err = capsys.readouterr().err
        assert code == 2 and "pip install 'vnvs[viewer]'" in err, err
