"""Grid models on diffusers backbones (tiny random CogVideoX and Wan): the block wrapping, latents, training."""

import json

import numpy as np
import pytest
import torch

from vnvs.cli import main
from vnvs.errors import InputError
from vnvs.io import write_video
from vnvs.io.grid import read_grid
from vnvs.models.backbones import ADAPTERS
from vnvs.models.grid import DiffusersGridModel, GridModel, GridModelConfig, grid_preset
from vnvs.models.grid.diffusers_model import GridBlock
from vnvs.sampling.grid import GridPipeline
from vnvs.synthetic import generate_scene, render_source_video

B, V, T, H, W = 1, 3, 9, 32, 32
VARIANTS = [("4real-cogvideox-tiny", {}), ("4real-cogvideox-tiny", {"arch": "sequential"}),
            ("4real-cogvideox-tiny", {"sync": "hard"}), ("4real-wan-tiny", {}),
            ("4real-wan-tiny", {"sync_weights": "training-free"}), ("sv4d-cogvideox-tiny", {}),
            ("full4d-cogvideox-tiny", {}), ("full4d-wan-tiny", {})]


def _model(name, seed=0, **over):
    torch.manual_seed(seed)
    return GridModel.from_config(grid_preset(name, **over)).eval()


def _cells(views=V, times=T, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(B, views, times, 3, H, W, generator=g)
    mask = torch.zeros(B, views, times, dtype=torch.bool)
    mask[:, 0], mask[:, :, 0] = True, True
    w2c = torch.eye(4).expand(B, views, times, 4, 4).clone()
    w2c[..., 0, 3] = torch.arange(views, dtype=torch.float32)[None, :, None] * 0.2
    K = torch.tensor([[32.0, 0, 15.5], [0, 32, 15.5], [0, 0, 1]]).expand(B, views, times, 3, 3)
    return frames, mask, w2c, K


def _latents(model, views=V, times=T, seed=0):
    frames, mask, w2c, K = _cells(views, times, seed)
    lat = model.encode_grid(frames, mask, w2c=w2c, K=K, depth=torch.full((B, views, times, H, W), 2.0))
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(lat["x0"].shape, generator=g)
    return x, lat


@pytest.mark.parametrize("name,over", VARIANTS)
def test_forward_shapes_and_training_gradients(name, over):
    model = _model(name, **over)
    assert isinstance(model, DiffusersGridModel)
    x, lat = _latents(model)
    v = model(x, torch.tensor([600.0]), lat["x0"], lat["mask"], w2c=lat["w2c"], K=lat["K"], depth=lat["depth"])
    assert v.shape == x.shape and torch.isfinite(v).all()
    v.square().mean().backward()
    block = next(m for m in model.backbone.modules() if isinstance(m, GridBlock))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.block.parameters())
    assert all(p.grad is None for p in model.vae.parameters())  # the VAE is frozen


def _plain_backbone(model):
    """The pretrained transformer without the grid wrapping or the widened input channels."""
    cfg = model.config
    cls = type(model.backbone)
    plain = cls.from_config({**dict(cfg.backbone_config)})
    state = {}
    for k, v in model.backbone.state_dict().items():
        k = k.replace(".block.", ".")
        if k in plain.state_dict() and plain.state_dict()[k].shape != v.shape:  # the widened embedding
            flat = plain.state_dict()[k].shape
            v = v[:, :flat[1]] if v.ndim > 2 or k.endswith("weight") else v
        if k in plain.state_dict():
            state[k] = v
    plain.load_state_dict(state, strict=True)
    return plain.eval()


@pytest.mark.parametrize("name", ["full4d-cogvideox-tiny", "full4d-wan-tiny"])
def test_untrained_full4d_on_one_view_is_the_pretrained_backbone(name):
    """Zero-initialised conditioning channels and fused attention over one view's cells: the grid model is the
    pretrained transformer run on the row (the wrapping adds nothing of its own)."""
    model = _model(name, camera=False)
    x, lat = _latents(model, views=1)
    ts = torch.tensor([700.0])
    got = model(x, ts, lat["x0"], lat["mask"])
    plain = _plain_backbone(model)

    class Plain:
        backbone, vae, config = plain, model.vae, model.config

    want = ADAPTERS[model.config.backbone].run(Plain, x[:, 0], ts, None)
    torch.testing.assert_close(got[:, 0], want, rtol=1e-5, atol=1e-5)
    assert got.abs().mean() > 1e-3  # not trivially zero


def test_4real_without_positions_is_equivariant_to_the_view_order():
    """The tiny CogVideoX has no rotary positions: swapping the two views swaps the result (the view stream
    regroups the right tokens; 2 views x 3 latent times, so a wrong regrouping mixes times and views)."""
    model = _model("4real-cogvideox-tiny", sync="hard", sync_weights="training-free")
    x, lat = _latents(model, views=2)
    ts = torch.tensor([500.0])
    out = model(x, ts, lat["x0"], lat["mask"])
    perm = [1, 0]
    out_p = model(x[:, perm], ts, lat["x0"][:, perm], lat["mask"][:, perm])
    torch.testing.assert_close(out_p, out[:, perm], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("over", [{}, {"arch": "sequential"}])
def test_4real_views_exchange_information(over):
    """Wan passes the text through unchanged, so only the view stream can carry view 2 into view 1."""
    model = _model("4real-wan-tiny", **over)
    x, lat = _latents(model)
    ts = torch.tensor([500.0])
    out = model(x, ts, lat["x0"], lat["mask"])
    x2 = x.clone()
    x2[:, 2] += 1.0
    changed = model(x2, ts, lat["x0"], lat["mask"])
    assert (changed[:, 1] - out[:, 1]).abs().max() > 1e-4


def test_conditioning_channels_start_at_zero():
    model = _model("4real-wan-tiny")
    x, lat = _latents(model)
    ts = torch.tensor([300.0])
    a = model(x, ts, lat["x0"], lat["mask"])
    b = model(x, ts, torch.zeros_like(lat["x0"]), torch.zeros_like(lat["mask"]))
    torch.testing.assert_close(a, b)  # untrained: the given cells are not read yet
    with torch.no_grad():
        for p in model.control_parameters():
            p.add_(0.05)
    assert not torch.allclose(model(x, ts, lat["x0"], lat["mask"]), model(x, ts, torch.zeros_like(lat["x0"]),
                                                                         torch.zeros_like(lat["mask"])))


def test_full4d_prior_reaches_cogvideox_attention():
    model = _model("full4d-cogvideox-tiny")
    x, lat = _latents(model)
    ts = torch.tensor([400.0])
    kw = {"w2c": lat["w2c"], "K": lat["K"], "depth": lat["depth"]}
    a = model(x, ts, lat["x0"], lat["mask"], **kw)
    with torch.no_grad():
        for m in model.backbone.modules():
            if isinstance(m, GridBlock):
                m.bias_scale.fill_(0.0)
    b = model(x, ts, lat["x0"], lat["mask"], **kw)
    assert (a - b).abs().max() > 1e-4


def test_latent_times_and_masks():
    model = _model("4real-cogvideox-tiny")  # VAE 4x in time; CogVideoX takes an odd number of latents
    frames, mask, w2c, K = _cells(times=6)
    mask[:, 0, 5] = False  # the last frame of row 0 is missing: its latent is not given
    lat = model.encode_grid(frames, mask, w2c=w2c, K=K)
    assert lat["x0"].shape[:3] == (B, V, 3) and model.temporal_multiple == 8
    assert lat["mask"][0].tolist() == [[True, True, False], [True, False, False], [True, False, False]]
    assert torch.equal(lat["w2c"], w2c[:, :, [0, 4, 5]])
    assert model.decode_grid(lat["x0"], 6).shape == (B, V, 6, 3, H, W)


def test_pipeline_is_seeded_and_keeps_given_cells():
    model = _model("sv4d-cogvideox-tiny")
    frames, mask, w2c, K = _cells(times=5)
    pipe = GridPipeline(model)
    a = pipe(frames, mask, w2c=w2c, K=K, num_inference_steps=2, seed=1)
    b = pipe(frames, mask, w2c=w2c, K=K, num_inference_steps=2, seed=1)
    c = pipe(frames, mask, w2c=w2c, K=K, num_inference_steps=2, seed=2)
    assert a.shape == frames.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[mask], frames[mask])


def test_save_load_round_trip(tmp_path):
    model = _model("4real-wan-tiny", seed=2)
    with torch.no_grad():
        for p in model.control_parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["grid_model"]["backbone"] == "wan" and "transformer" in meta["architecture"]
    back = GridModel.from_pretrained(tmp_path / "m").eval()
    assert isinstance(back, DiffusersGridModel)
    x, lat = _latents(model)
    ts = torch.tensor([500.0])
    torch.testing.assert_close(back(x, ts, lat["x0"], lat["mask"]), model(x, ts, lat["x0"], lat["mask"]))
    meta.pop("architecture")
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="architecture"):
        GridModel.from_pretrained(tmp_path / "m")


def test_config_errors():
    with pytest.raises(InputError, match="backbone"):
        GridModelConfig(backbone="unet")
    with pytest.raises(InputError, match="vae_config"):
        GridModelConfig(vae_config={"z_dim": 4})
    with pytest.raises(InputError, match="diffusers model folder"):
        GridModelConfig(backbone="wan", pretrained="shipped")
    with pytest.raises(InputError, match="backbone_config and vae_config"):
        GridModelConfig(backbone="cogvideox")
    with pytest.raises(InputError, match="built-in DiT"):
        GridModel(grid_preset("4real-wan-tiny"))


def test_train_a_cogvideox_grid_model_and_fill_a_grid(tmp_path, capsys):
    def cli(args):
        code = main([str(a) for a in args] + ["--threads", "1"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return captured.out

    video = render_source_video(generate_scene(3), num_frames=11, size=(32, 48), seed=3)
    write_video(tmp_path / "clip.mp4", video.frames, fps=8)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    cli(["prepare", "--input", "1", "--kind", "synthetic", "--size", "16", "--clip-frames", "4", "--views", "3",
         "--workers", "1", "-o", tmp_path / "data"])
    out = cli(["train", "--config", "grid-tiny-cogvideox", "--data", tmp_path / "data", "-o", tmp_path / "run"])
    assert json.loads(out.splitlines()[0])["steps"] == 2
    model = tmp_path / "run" / "model"
    meta = json.loads((model / "config.json").read_text())
    assert meta["grid_model"]["backbone"] == "cogvideox" and meta["grid_model"]["resolution"] == 16
    args = ["grid", tmp_path / "clip.mp4", "--depth", tmp_path / "depth.npy", "--views", "3", "--max-frames", "10",
            "--generator", "warp+inpaint", "--method", model, "--steps", "2", "--no-composite"]
    cli(args + ["-o", tmp_path / "a"])
    cli(args + ["-o", tmp_path / "b"])
    a, b = read_grid(tmp_path / "a"), read_grid(tmp_path / "b")
    assert a.frames.shape == (3, 10, 3, 32, 48) and torch.equal(a.frames, b.frames)
    assert 0.05 < float(a.frames[1:, 1:].mean()) < 0.95 and float(a.frames[1:, 1:].std()) > 0.01
