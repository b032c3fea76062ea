"""vnvs.models: the three backbones with Correspondence Projector + VNVS blocks (tiny random configs)."""

from __future__ import annotations

import pytest
import torch

from vnvs.errors import InputError, VnvsError
from vnvs.models import ModelConfig, NovelViewModel, build_model, check_model_spec, get_preset
from vnvs.models.dit import DiTConfig, VideoDiT
from vnvs.models.injection import BlockWrapper
from vnvs.models.vnvs_block import VNVSBlock

BACKBONES = ["dit", "cogvideox", "wan"]
PRESET = {"dit": "dit-tiny", "cogvideox": "cogvideox-tiny", "wan": "wan-tiny"}


def build(backbone: str, seed: int = 0, **overrides) -> NovelViewModel:
    """A tiny model whose backbone output is not trivially zero (zero-initialised DiT layers filled)."""
    torch.manual_seed(seed)
    model = NovelViewModel.from_config(get_preset(PRESET[backbone], **overrides)).eval()
    with torch.no_grad():
        for p in model.backbone_parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return model


def activate_vnvs(model: NovelViewModel, seed: int = 1) -> None:
    """Give the zero-initialised VNVS output projections random weights (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.vnvs_blocks():
            block.to_out.weight.copy_(torch.randn(block.to_out.weight.shape, generator=g) * 0.2)


def inputs(model: NovelViewModel, frames: int | None = None, batch: int = 2, seed: int = 0):
    """Random ``(latents, timestep, control)`` of the smallest valid size (2x3 tokens per frame)."""
    g = torch.Generator().manual_seed(seed)
    T = frames or (1 + 2 * model.temporal_multiple if model.temporal_multiple > 1 else 3)
    H, W = 2 * model.spatial_multiple, 3 * model.spatial_multiple
    Tl, f = (T - 1) // model._spec.vae_temporal + 1, model._spec.vae_spatial
    latents = torch.randn(batch, Tl, model.latent_channels, H // f, W // f, generator=g)
    timestep = torch.tensor([700.0, 250.0][:batch])
    control = torch.rand(batch, T, 9, H, W, generator=g)
    return latents, timestep, control


@pytest.fixture(scope="module", params=BACKBONES)
def backbone(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(backbone) -> NovelViewModel:
    return build(backbone)


def plain_backbone_output(model: NovelViewModel, latents, timestep) -> torch.Tensor:
    """The output of the same backbone weights without any wrapper or VNVS block."""
    sd = model.backbone_state_dict()
    if model.config.backbone == "dit":
        plain = VideoDiT(DiTConfig.from_dict(model.config.backbone_config), model.config.null_text_tokens)
        plain.load_state_dict(sd, strict=True)
        return plain(latents, timestep, None)
    plain = type(model.backbone).from_config(model.backbone.config)
    plain.load_state_dict(sd, strict=True)
    c = plain.config
    B = latents.shape[0]
    if model.config.backbone == "cogvideox":
        text = torch.zeros(B, c.max_text_seq_length, c.text_embed_dim)
        return plain(latents, text, timestep, return_dict=False)[0]
    text = torch.zeros(B, model.config.null_text_tokens, c.text_dim)
    return plain(latents.transpose(1, 2), timestep, text, return_dict=False)[0].transpose(1, 2)


def test_forward_shapes(model):
    latents, t, control = inputs(model)
    with torch.no_grad():
        v = model(latents, t, control)
    assert v.shape == latents.shape
    assert torch.isfinite(v).all()


def test_encode_decode_shapes(model):
    T = 1 + model.temporal_multiple
    frames = torch.rand(1, T, 3, 2 * model.spatial_multiple, model.spatial_multiple)
    with torch.no_grad():
        z = model.encode(frames)
        back = model.decode(z)
    assert z.shape[1:3] == ((T - 1) // model._spec.vae_temporal + 1, model.latent_channels)
    assert back.shape == frames.shape
    assert back.min() >= 0 and back.max() <= 1
    with pytest.raises(ValueError, match="multiple") as err:  # an internal contract: a traceback, not a user error
        model.encode(torch.rand(1, T, 3, model.spatial_multiple + 2, model.spatial_multiple))
    assert not isinstance(err.value, VnvsError)


def test_zero_init_leaves_backbone_unchanged(model):
    latents, t, control = inputs(model)
    with torch.no_grad():
        ours = model(latents, t, control)
        reference = plain_backbone_output(model, latents, t)
    assert reference.abs().mean() > 1e-3  # the comparison is not between two zero tensors
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    # once the VNVS blocks are trained the control signal matters
    trained = build(model.config.backbone)
    activate_vnvs(trained)
    with torch.no_grad():
        changed = trained(latents, t, control)
    assert (changed - reference).abs().max() > 1e-3


def _first_block_tokens(model, latents, t, control):
    """Video tokens entering the first backbone block."""
    wrapper = next(m for m in model.backbone.modules() if isinstance(m, BlockWrapper))
    seen = {}

    def hook(module, args, kwargs):
        seen["x"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    handle = wrapper.block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(latents, t, control)
    finally:
        handle.remove()
    return seen["x"]


def test_projector_tokens_align_with_video_tokens(model):
    latents, t, control = inputs(model, batch=1)
    video = _first_block_tokens(model, latents, t, control)
    with torch.no_grad():
        tokens = model.control_tokens(control, tuple(latents.shape))
    assert tokens.shape == video.shape

    # perturb one latent pixel and the pixel box of the same space-time location: the video token
    # that changes most and the control token that changes most have the same index
    pt, ph, pw = model._spec.patch
    Tl, h, w = latents.shape[1], latents.shape[3], latents.shape[4]
    tj, yi, xk = Tl - 1, h - ph, w - 1  # last latent frame, bottom row, right column of tokens
    bumped = latents.clone()
    bumped[:, tj, :, yi, xk] += 5.0
    video_diff = (_first_block_tokens(model, bumped, t, control) - video).abs().sum(-1)[0]
    expected = (tj // pt) * (h // ph) * (w // pw) + (yi // ph) * (w // pw) + xk // pw
    assert int(video_diff.argmax()) == expected

    r, f = model._spec.vae_temporal, model._spec.vae_spatial
    frames = range(1 + (tj - 1) * r, 1 + tj * r) if tj > 0 else range(1)
    c2 = control.clone()
    c2[:, list(frames), :, yi * f : (yi + 1) * f, xk * f : (xk + 1) * f] += 1.0
    with torch.no_grad():
        control_diff = (model.control_tokens(c2, tuple(latents.shape)) - tokens).abs().sum(-1)[0]
    assert int(control_diff.argmax()) == expected
    # only a neighbourhood (the convs' receptive field) of that token changes: other frames do not
    per_frame = control_diff.reshape(Tl // pt, -1).sum(-1)
    assert per_frame[: tj // pt].abs().max() == 0


def test_save_load_round_trip(model, tmp_path):
    activate_vnvs(model)
    try:
        latents, t, control = inputs(model)
        with torch.no_grad():
            before = model(latents, t, control)
        model.save_pretrained(tmp_path / "m")
        assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
        loaded = NovelViewModel.from_pretrained(tmp_path / "m").eval()
        assert loaded.config == model.config
        with torch.no_grad():
            after = loaded(latents, t, control)
        torch.testing.assert_close(after, before, rtol=0, atol=0)

        model.save_pretrained(tmp_path / "half", dtype=torch.float16)
        full_size = (tmp_path / "m" / "model.safetensors").stat().st_size
        assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * full_size
        half = NovelViewModel.from_pretrained(tmp_path / "half").eval()
        assert half.dtype == torch.float32
        with torch.no_grad():
            approx = half(latents, t, control)
        assert (approx - before).abs().max() < 0.05 * before.abs().max() + 1e-3
    finally:
        with torch.no_grad():
            for block in model.vnvs_blocks():
                block.to_out.weight.zero_()


def test_from_pretrained_bad_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        NovelViewModel.from_pretrained(tmp_path / "nothing")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(InputError, match="model.safetensors"):
        NovelViewModel.from_pretrained(tmp_path / "partial")


def test_from_pretrained_mismatched_weights(tmp_path):
    build("dit").save_pretrained(tmp_path / "a")
    other = build("dit", vnvs_every=2)
    other.save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_bytes((tmp_path / "a" / "config.json").read_bytes())
    with pytest.raises(InputError, match="does not match its config"):
        NovelViewModel.from_pretrained(tmp_path / "b")


def test_gradients_reach_control_modules_with_frozen_backbone(backbone):
    model = build(backbone).train()
    for p in model.backbone_parameters():
        p.requires_grad_(False)
    params = list(model.control_parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    latents, t, control = inputs(model)
    target = torch.randn_like(latents)

    def step():
        opt.zero_grad()
        loss = (model(latents, t, control) - target).pow(2).mean()
        loss.backward()
        return loss

    step()  # at init only the zero-initialised output projections get gradient
    opt.step()
    step()
    named = {id(p): n for n, p in model.named_parameters()}
    without = [named[id(p)] for p in params if p.grad is None or not p.grad.any()]
    assert not without, f"no gradient reached {without}"
    assert all(p.grad is None for p in model.backbone_parameters())
    if model.vae is not None:
        assert not any(p.requires_grad for p in model.vae.parameters())

    # gradient checkpointing gives the same gradients
    reference = {named[id(p)]: p.grad.clone() for p in params}
    model.set_gradient_checkpointing(True)
    step()
    model.set_gradient_checkpointing(False)
    for p in params:
        torch.testing.assert_close(p.grad, reference[named[id(p)]], rtol=1e-4, atol=1e-6)


def test_parameter_split(model):
    control = {id(p) for p in model.control_parameters()}
    backbone = {id(p) for p in model.backbone_parameters()}
    vae = {id(p) for p in model.vae.parameters()} if model.vae is not None else set()
    assert control and backbone and not (control & backbone)
    assert control | backbone | vae == {id(p) for p in model.parameters()}
    projector = {id(p) for p in model.projector.parameters()}
    assert projector <= control
    assert len(model.vnvs_blocks()) == len(getattr(model.backbone, "blocks", None) or model.backbone.transformer_blocks)


def test_vnvs_every(backbone):
    model = build(backbone, vnvs_every=2)
    assert len(model.vnvs_blocks()) == 1  # 2 backbone blocks, a VNVS block after the second


def test_null_control_is_zero_signal_and_cache_is_safe(model):
    latents, t, control = inputs(model)
    with torch.no_grad():
        null = model(latents, t, None)
        zeros = model(latents, t, torch.zeros_like(control))
        torch.testing.assert_close(null, zeros)
        first = model.control_tokens(control, tuple(latents.shape))
        assert model.control_tokens(control, tuple(latents.shape)) is first  # cached
        control.mul_(0.5)  # in place: the cache must not be reused
        second = model.control_tokens(control, tuple(latents.shape))
    assert not torch.equal(first, second)
    with pytest.raises(ValueError, match="control must be") as err:
        model(latents, t, control[:, :, :, :-1])
    assert not isinstance(err.value, VnvsError)
    with pytest.raises(ValueError, match="timestep must be") as err:
        model(latents, torch.zeros(latents.shape[0] + 1), control)
    assert not isinstance(err.value, VnvsError)


def test_dit_any_frame_size_and_count():
    model = build("dit")
    m = model.spatial_multiple
    for T, H, W in [(2, 4 * m, 4 * m), (5, 3 * m, 6 * m)]:
        x = torch.randn(1, T, 3, H, W)
        with torch.no_grad():
            v = model(x, torch.tensor([500.0]), torch.rand(1, T, 9, H, W))
        assert v.shape == x.shape
    assert model.window is None and model.temporal_multiple == 1 and model.latent_channels == 3
    with pytest.raises(ValueError, match="multiple") as err:
        model(torch.randn(1, 2, 3, m + 1, m), torch.tensor([1.0]))
    assert not isinstance(err.value, VnvsError)
    frames = torch.rand(1, 2, 3, m, m)
    torch.testing.assert_close(model.decode(model.encode(frames)), frames)


def _text_through_vnvs(model, latents, t, control, text_embeds=None):
    """(input text, output text) of every VNVS block call."""
    pairs = []

    def hook(module, args, output):
        pairs.append((args[3], output[1]))

    handles = [b.register_forward_hook(hook) for b in model.vnvs_blocks()]
    try:
        with torch.no_grad():
            model(latents, t, control, text_embeds)
    finally:
        for h in handles:
            h.remove()
    return pairs


def test_ablation_flags_change_structure_and_text_path(backbone):
    plain, with_ffn = build(backbone), build(backbone, vnvs_ffn=True)
    assert all(b.ffn is None for b in plain.vnvs_blocks())
    assert all(isinstance(b.ffn, torch.nn.Sequential) for b in with_ffn.vnvs_blocks())
    assert sum(p.numel() for p in with_ffn.control_parameters()) > sum(p.numel() for p in plain.control_parameters())

    latents, t, control = inputs(plain)
    activate_vnvs(plain)
    for text_in, text_out in _text_through_vnvs(plain, latents, t, control):
        assert torch.equal(text_in, text_out)
    coupled = build(backbone, vnvs_text_coupled=True)
    activate_vnvs(coupled)
    pairs = _text_through_vnvs(coupled, latents, t, control)
    assert pairs and all((a - b).abs().max() > 1e-4 for a, b in pairs)
    with torch.no_grad():
        assert (coupled(latents, t, control) - plain(latents, t, control)).abs().max() > 1e-4


def test_vnvs_block_is_identity_at_init():
    block = VNVSBlock(16, 2, 8)
    x, c, temb = torch.randn(2, 10, 16), torch.randn(2, 10, 16), torch.randn(2, 8)
    out, text = block(x, c, temb)
    assert torch.equal(out, x) and text is None
    with pytest.raises(ValueError):
        VNVSBlock(10, 3, 8)


def test_config_round_trip_and_presets():
    cfg = get_preset("dit-small")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert get_preset("wan-1.3b").pretrained == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert get_preset("cogvideox-2b").pretrained == "THUDM/CogVideoX-2b"
    with pytest.raises(InputError, match="unknown model preset"):
        get_preset("nope")
    with pytest.raises(InputError, match="unknown backbone"):
        ModelConfig(backbone="unet")
    with pytest.raises(InputError, match="unknown model config fields"):
        ModelConfig.from_dict({"backbone": "dit", "bogus": 1})
    with pytest.raises(InputError, match="pretrained"):
        ModelConfig(backbone="wan", pretrained="x", vae_config={})


def test_build_model_from_name_config_or_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative names are looked up as folders first
    torch.manual_seed(0)
    named = build_model("dit-tiny")
    torch.manual_seed(0)
    assert _same(named.state_dict(), build_model(get_preset("dit-tiny")).state_dict())
    named.save_pretrained(tmp_path / "saved")
    loaded = build_model(tmp_path / "saved")
    assert _same(named.state_dict(), loaded.state_dict())
    (tmp_path / "empty").mkdir()
    for spec, message in (("nope", "unknown model 'nope'"), (tmp_path / "missing", "neither a model preset"),
                          (tmp_path / "empty", "has no config.json")):
        with pytest.raises(InputError, match=message):
            check_model_spec(spec)
        with pytest.raises(InputError, match=message):
            build_model(spec)
    check_model_spec("dit-small")  # names and configs pass without building
    check_model_spec(ModelConfig(vnvs_every=3))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dit_small_fits_the_shipped_budget():
    model = NovelViewModel.from_config(get_preset("dit-small"))
    n = sum(p.numel() for p in model.parameters())
    assert 1e6 <= n and 4 * n <= 25e6  # float32 checkpoint <= 25 MB


def test_pretrained_folder_loads_and_whole_model_needs_no_backbone_folder(tmp_path):
    import shutil

    source = build("wan")
    folder = tmp_path / "wan-diffusers"
    plain = type(source.backbone).from_config(source.backbone.config)
    plain.load_state_dict(source.backbone_state_dict())
    plain.save_pretrained(folder / "transformer")
    source.vae.save_pretrained(folder / "vae")

    torch.manual_seed(3)
    model = NovelViewModel.from_config(ModelConfig(backbone="wan", pretrained=str(folder), null_text_tokens=4)).eval()
    latents, t, control = inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(model(latents, t, control), plain_backbone_output(source, latents, t))
    activate_vnvs(model)
    with torch.no_grad():
        expected = model(latents, t, control)
    model.save_pretrained(tmp_path / "whole")
    shutil.rmtree(folder)  # the saved model carries the architecture: no hub, no backbone folder
    loaded = NovelViewModel.from_pretrained(tmp_path / "whole").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents, t, control), expected, rtol=0, atol=0)
    with pytest.raises(InputError, match="cannot load wan weights"):
        NovelViewModel.from_config(ModelConfig(backbone="wan", pretrained=str(folder)))


def test_cogvideox_with_rotary_positions():
    cfg = get_preset("cogvideox-tiny")
    cfg = cfg.replace(backbone_config={**cfg.backbone_config, "use_rotary_positional_embeddings": True, "attention_head_dim": 16})
    torch.manual_seed(0)
    model = NovelViewModel.from_config(cfg).eval()
    latents, t, control = inputs(model)
    with torch.no_grad():
        base = model(latents, t, control)
        activate_vnvs(model)
        moved = model(latents, t, control)
    assert base.shape == latents.shape and (moved - base).abs().max() > 1e-4


def test_deepcopy_is_independent(model):
    """EMA copies are made with deepcopy: the copy's wrappers and hooks must use the copy's context."""
    import copy

    activate_vnvs(model)
    try:
        twin = copy.deepcopy(model)
        latents, t, control = inputs(model)
        with torch.no_grad():
            torch.testing.assert_close(twin(latents, t, control), model(latents, t, control), rtol=0, atol=0)
            assert all(w.ctx is twin._ctx for w in twin._wrappers())
            for block in twin.vnvs_blocks():
                block.to_out.weight.mul_(2)
            assert (twin(latents, t, control) - model(latents, t, control)).abs().max() > 1e-4
    finally:
        with torch.no_grad():
            for block in model.vnvs_blocks():
                block.to_out.weight.zero_()


def test_control_cache_under_inference_mode():
    model = build("dit")
    latents, t, control = inputs(model)
    shape = tuple(latents.shape)
    with torch.inference_mode():
        c = control.clone()
        first = model.control_tokens(c, shape)
        assert model.control_tokens(c, shape) is first  # cached
        c.mul_(0.5)  # an inference tensor has no version counter: the contents decide
        second = model.control_tokens(c, shape)
        direct = model.projector(c)
    assert not torch.equal(first, second)
    torch.testing.assert_close(second, direct, rtol=0, atol=0)


def test_parameters_on_meta_is_accelerates_init_empty_weights(backbone):
    """from_pretrained builds the model with parameters on the meta device as accelerate's
    init_empty_weights(include_buffers=False) does, without importing accelerate."""
    from accelerate import init_empty_weights

    from vnvs.models.model import _parameters_on_meta

    config = get_preset(PRESET[backbone])
    with _parameters_on_meta():
        ours = NovelViewModel(config)
    with init_empty_weights(include_buffers=False):
        theirs = NovelViewModel(config)
    a, b = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert list(a) == list(b) and all(p.is_meta for p in a.values())
    assert all((type(a[k]), a[k].requires_grad, a[k].shape, a[k].dtype) == (type(b[k]), b[k].requires_grad, b[k].shape,
                                                                            b[k].dtype) for k in a)
    bufs_a, bufs_b = dict(ours.named_buffers()), dict(theirs.named_buffers())
    assert list(bufs_a) == list(bufs_b) and all(bufs_a[k].device == bufs_b[k].device for k in bufs_a)
    assert not torch.nn.Linear(2, 2).weight.is_meta  # the patch ends with the block
