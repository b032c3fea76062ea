"""Inpainting conditioning (CogNVS, ``ModelConfig.control = "inpaint"``) on the three backbones (tiny configs)."""

from __future__ import annotations

import pytest
import torch

from vnvs.errors import InputError
from vnvs.geometry.control import MASK, WARPED
from vnvs.models import ModelConfig, NovelViewModel, get_preset
from vnvs.models.dit import DiTConfig, VideoDiT
from vnvs.models.injection import BlockWrapper

BACKBONES = ["dit", "cogvideox", "wan"]
PRESET = {"dit": "dit-tiny", "cogvideox": "cogvideox-tiny", "wan": "wan-tiny"}


def inputs(model: NovelViewModel, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    T = 1 + 2 * model.temporal_multiple if model.temporal_multiple > 1 else 3
    H, W = 2 * model.spatial_multiple, 3 * model.spatial_multiple
    Tl, f = (T - 1) // model._spec.vae_temporal + 1, model._spec.vae_spatial
    latents = torch.randn(batch, Tl, model.latent_channels, H // f, W // f, generator=g)
    control = torch.rand(batch, T, 9, H, W, generator=g)
    control[:, :, MASK] = (control[:, :, MASK] > 0.4).float()
    return latents, torch.tensor([700.0, 250.0][:batch]), control


def plain_folder(backbone: str, folder, seed: int = 0):
    """A plain (unconditioned) pretrained backbone: a random tiny diffusers transformer + VAE saved the
    diffusers way (``transformer/``, ``vae/``), or a random VideoDiT; returned with its forward function."""
    torch.manual_seed(seed)
    cfg = get_preset(PRESET[backbone])
    if backbone == "dit":
        plain = VideoDiT(DiTConfig.from_dict(cfg.backbone_config), cfg.null_text_tokens).eval()
        with torch.no_grad():
            for p in plain.parameters():
                if not p.any():
                    p.normal_(0, 0.05)
        return cfg, plain, lambda x, t: plain(x, t, None)
    import diffusers

    tcls = {"cogvideox": diffusers.CogVideoXTransformer3DModel, "wan": diffusers.WanTransformer3DModel}[backbone]
    vcls = {"cogvideox": diffusers.AutoencoderKLCogVideoX, "wan": diffusers.AutoencoderKLWan}[backbone]
    tr = tcls.from_config(dict(cfg.backbone_config)).eval()
    with torch.no_grad():
        for p in tr.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    tr.save_pretrained(folder / "transformer")
    vcls.from_config(dict(cfg.vae_config)).save_pretrained(folder / "vae")
    tr = tcls.from_pretrained(folder, subfolder="transformer").eval()
    c = tr.config

    def run(x, t):
        B = x.shape[0]
        if backbone == "cogvideox":
            return tr(x, torch.zeros(B, c.max_text_seq_length, c.text_embed_dim), t, return_dict=False)[0]
        text = torch.zeros(B, cfg.null_text_tokens, c.text_dim)
        return tr(x.transpose(1, 2), t, text, return_dict=False)[0].transpose(1, 2)

    return cfg.replace(backbone_config={}, vae_config=None, pretrained=str(folder)), tr, run


def inpaint_model(backbone: str, folder, seed: int = 0):
    """An inpainting model on the pretrained plain backbone of :func:`plain_folder`, and that backbone's forward."""
    cfg, plain, run = plain_folder(backbone, folder, seed)
    torch.manual_seed(seed + 1)
    model = NovelViewModel.from_config(cfg.replace(control="inpaint")).eval()
    if backbone == "dit":  # the built-in DiT has no pretrained loader: its weights are copied in
        missing = model.backbone.load_state_dict(_wrapped(plain.state_dict()), strict=False)
        assert missing.missing_keys == ["cond_embed.weight"] and not missing.unexpected_keys
    return model, run


def _wrapped(state: dict) -> dict:
    """Plain DiT keys -> the keys of the wrapped blocks (``blocks.i.`` -> ``blocks.i.block.``)."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "blocks":
            k = ".".join(parts[:2] + ["block"] + parts[2:])
        out[k] = v
    return out


@pytest.mark.parametrize("backbone", BACKBONES)
def test_zero_init_keeps_pretrained_output_for_any_conditioning(backbone, tmp_path):
    model, run = inpaint_model(backbone, tmp_path)
    assert model.projector is None and not [m for m in model.backbone.modules() if getattr(m, "vnvs", None) is not None]
    latents, t, control = inputs(model)
    with torch.no_grad():
        reference = run(latents, t)
        assert reference.abs().mean() > 1e-3
        for c in (control, None, torch.ones_like(control), control.flip(0)):
            torch.testing.assert_close(model(latents, t, c), reference, rtol=1e-5, atol=1e-5)
    # the new channels are the only difference: once they have weights, the conditioning matters
    with torch.no_grad():
        for p in model.control_parameters():
            p.add_(torch.randn_like(p) * 0.1)
        a, b = model(latents, t, control), model(latents, t, control.flip(0))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("backbone", BACKBONES)
def test_condition_channels_and_layout(backbone):
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset(PRESET[backbone], control="inpaint")).eval()
    latents, t, control = inputs(model)
    with torch.no_grad():
        cond = model.inpaint_condition(control, tuple(latents.shape))
        z = model.encode(control[:, :, WARPED])
    r = model._spec.vae_temporal
    assert model.cond_channels == model.latent_channels + r
    assert cond.shape == (*latents.shape[:2], model.cond_channels, *latents.shape[3:])
    torch.testing.assert_close(cond[:, :, : model.latent_channels], z)
    mask = cond[:, :, model.latent_channels:]
    assert mask.min() >= 0 and mask.max() <= 1
    f = model._spec.vae_spatial
    # latent frame 0 is frame 0 (repeated r times); latent frame 1 holds frames 1..r, one per channel
    m = control[:, :, MASK][:, :, 0]
    torch.testing.assert_close(mask[:, 0, 0], torch.nn.functional.avg_pool2d(m[:, 0:1], f)[:, 0])
    torch.testing.assert_close(mask[:, 1, r - 1], torch.nn.functional.avg_pool2d(m[:, r : r + 1], f)[:, 0])
    # the control parameters are the conditioning channels, disjoint from the backbone's
    ids = {id(p) for p in model.control_parameters()}
    assert ids and not ids & {id(p) for p in model.backbone_parameters()}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_save_load_round_trip(backbone, tmp_path):
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset(PRESET[backbone], control="inpaint")).eval()
    with torch.no_grad():
        for p in model.control_parameters():
            p.normal_(0, 0.1)
    latents, t, control = inputs(model)
    with torch.no_grad():
        expected = model(latents, t, control)
    model.save_pretrained(tmp_path / "m")
    loaded = NovelViewModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.control == "inpaint" and loaded.cond_channels == model.cond_channels
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents, t, control), expected, rtol=0, atol=0)
    if backbone != "dit":  # the saved backbone is an ordinary diffusers transformer with wider input
        c = loaded.backbone.config
        assert c.in_channels == model.latent_channels + model.cond_channels and c.out_channels == model.latent_channels


def test_gradients_and_checkpointing_on_inpaint_dit():
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset("dit-tiny", control="inpaint")).train()
    with torch.no_grad():  # as after training: the zero-initialised output layers carry weights
        for p in model.backbone_parameters():
            if not p.any():
                p.normal_(0, 0.05)
    latents, t, control = inputs(model)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.set_gradient_checkpointing(ckpt)
        model(latents, t, control).square().mean().backward()
        grads.append(model.backbone.cond_embed.weight.grad.clone())
    assert any(isinstance(m, BlockWrapper) for m in model.backbone.modules())
    assert grads[0].abs().sum() > 0  # the zero-initialised conditioning channels learn
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_control_name():
    with pytest.raises(InputError, match="unknown control"):
        ModelConfig(control="concat")


# ---- training and rendering --------------------------------------------------------------------

@pytest.fixture(scope="module")
def covis_data(tmp_path_factory):
    """3 procedural scenes, 16x16, 3 frames (synthetic-pairs, synthetic-covis, synthetic-grid)."""
    from vnvs.data.config import PrepareConfig
    from vnvs.data.engine import prepare
    from vnvs.data.inputs import collect_inputs

    root = tmp_path_factory.mktemp("covis-data")
    cfg = PrepareConfig(size=16, clip_frames=3)
    prepare(collect_inputs("3", "synthetic", config=cfg, seed=0), root, "synthetic", cfg, seed=0, workers=1)
    return root


@pytest.fixture(scope="module")
def trained(covis_data, tmp_path_factory):
    from vnvs.training import get_preset, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("inpaint-run")
    config = get_preset("tiny-inpaint").replace(max_steps=2, checkpoint_every=1, epoch_size=4, tensorboard=False)
    return out, train(config, covis_data, out)


def test_train_inpaint_model_and_render_with_it(trained, tmp_path, capsys, monkeypatch):
    import json

    import numpy as np

    from vnvs.cli import main
    from vnvs.io import read_video, write_video
    from vnvs.synthetic import generate_scene, render_source_video

    monkeypatch.setenv("VNVS_PROGRESS", "0")
    out, result = trained
    assert result.steps == 2 and result.final_loss is not None and np.isfinite(result.final_loss)
    model = NovelViewModel.from_pretrained(result.model)
    assert model.config.control == "inpaint" and model.projector is None
    # training moved the conditioning channels away from zero
    assert model.backbone.cond_embed.weight.abs().sum() > 0
    video = render_source_video(generate_scene(5), num_frames=4, size=(24, 32), seed=5)
    write_video(tmp_path / "clip.mp4", video.frames, fps=8)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    code = main(["render", str(tmp_path / "clip.mp4"), "--depth", str(tmp_path / "depth.npy"), "--trajectory",
                 "orbit:20", "--generator", result.model, "--steps", "2", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    novel = read_video(tmp_path / "out" / "novel.mp4").frames
    assert novel.shape == (4, 3, 24, 32) and torch.isfinite(novel).all()
    assert json.loads((tmp_path / "out" / "trajectory.json").read_text())["frames"]


def test_covis_trained_model_samples_with_the_mesh_renderer(trained):
    from vnvs.sampling import SamplingConfig

    _, result = trained
    assert SamplingConfig.load(result.model).renderer == "mesh"
