"""Flow-matching sampling pipeline, the learned generator, sliding windows, the out-of-memory retry, the registry."""

from __future__ import annotations

import logging

import pytest
import torch

from vnvs.errors import InputError, VnvsError
from vnvs.generators import GENERATORS, WarpGenerator, get_generator, shipped_checkpoint
from vnvs.generators.learned import LearnedGenerator, pad_frames, working_size
from vnvs.geometry.control import MASK, WARPED, resize_control
from vnvs.generators.windows import OomRetry, WindowedGenerator, blend_weights, run_windows, window_starts
from vnvs.utils.oom import halve
from vnvs.geometry import build_control_signal
from vnvs.models import NovelViewModel, get_preset
from vnvs.sampling import NovelViewPipeline, SamplingConfig


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")


def _randomize_zero_inits(model: NovelViewModel, seed: int = 0) -> NovelViewModel:
    """Give the zero-initialised control layers random values, so the control signal changes the output
    (a freshly built model ignores it by design, like a ControlNet before training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and float(p.abs().max()) == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_model() -> NovelViewModel:
    torch.manual_seed(0)
    return _randomize_zero_inits(NovelViewModel.from_config(get_preset("dit-tiny")))


@pytest.fixture(scope="module")
def tiny_folder(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny-dit"
    tiny_model.save_pretrained(path)
    return path


def _control(T: int, H: int, W: int, seed: int = 0, coverage: float = 0.7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(T, H, W, generator=g) < coverage
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    corr = torch.stack([xs, ys]).expand(T, 2, H, W)
    return build_control_signal(torch.rand(T, 3, H, W, generator=g), corr, torch.rand(T, 3, H, W, generator=g), mask)


# ---- pipeline -------------------------------------------------------------------------------------

def test_pipeline_is_seeded_and_returns_frames_in_range(tiny_model):
    pipe = NovelViewPipeline(tiny_model)
    control = torch.stack([_control(3, 16, 24, seed=1), _control(3, 16, 24, seed=2)])
    a = pipe(control, num_inference_steps=3, seed=7)
    b = pipe(control, num_inference_steps=3, seed=7)
    c = pipe(control, num_inference_steps=3, seed=8)
    assert a.shape == (2, 3, 3, 16, 24) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    # the noise comes from the CPU generator: an explicit generator with the same seed gives the same frames
    d = pipe(control, num_inference_steps=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, d)


def test_guidance_and_euler_step_follow_the_formula(tiny_model):
    """One Euler step from sigma=1 to 0: x0 = noise - v, with v = v_u + g (v_c - v_u)."""
    pipe = NovelViewPipeline(tiny_model)
    control = _control(3, 16, 16, seed=3)[None]
    noise = torch.randn(1, 3, tiny_model.latent_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    calls = []
    hook = tiny_model.register_forward_hook(lambda m, args, kwargs_out: calls.append(1))
    try:
        plain = pipe(control, num_inference_steps=1, latents=noise, output_type="latents")
        assert len(calls) == 1  # guidance 1: one pass per step
        guided = pipe(control, num_inference_steps=1, guidance_scale=2.5, latents=noise, output_type="latents")
        assert len(calls) == 3  # guidance > 1: conditional and unconditional passes
    finally:
        hook.remove()
    t = torch.full((1,), 1000.0)
    with torch.no_grad():
        v_c = tiny_model(noise, t, control=control)
        v_u = tiny_model(noise, t, control=None)
    torch.testing.assert_close(plain, noise - v_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided, noise - (v_u + 2.5 * (v_c - v_u)), atol=1e-5, rtol=1e-5)
    assert (plain - guided).abs().max() > 1e-3
    frames_1 = pipe(control, num_inference_steps=2, seed=0)
    frames_3 = pipe(control, num_inference_steps=2, seed=0, guidance_scale=3.0)
    assert (frames_1 - frames_3).abs().max() > 1e-3


def test_text_embeds_reach_the_model(tiny_model):
    pipe = NovelViewPipeline(tiny_model)
    control = _control(3, 8, 8)[None]
    text = torch.randn(1, 5, tiny_model.config.backbone_config["text_dim"], generator=torch.Generator().manual_seed(0))
    a = pipe(control, num_inference_steps=2, seed=0)
    b = pipe(control, num_inference_steps=2, seed=0, text_embeds=text)
    assert (a - b).abs().max() > 1e-4


def test_pipeline_rejects_bad_arguments(tiny_model):
    """Internal contracts: a plain ValueError with a traceback, not a one-line user error (VnvsError)."""
    pipe = NovelViewPipeline(tiny_model)
    control = _control(3, 8, 8)[None]
    for call, match in ((lambda: pipe(torch.zeros(1, 2, 9, 10, 12)), "multiple of 4"),
                        (lambda: pipe(torch.zeros(1, 2, 7, 8, 8)), "9"),
                        (lambda: pipe(control, output_type="pil"), "output_type"),
                        (lambda: pipe(control, num_inference_steps=0), "at least 1")):
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert not isinstance(err.value, VnvsError)


# ---- learned generator ------------------------------------------------------------------------

def test_working_size_and_padding():
    assert working_size(30, 45, 4) == (32, 44)
    assert working_size(30, 45, 16, resolution=32) == (32, 48)
    assert pad_frames(torch.arange(5.0), 4).tolist() == [0, 1, 2, 3, 4]
    assert pad_frames(torch.arange(6.0), 4).tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5]


def test_resize_control_keeps_the_signal_form():
    T, H, W = 2, 24, 36
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(T, H, W, dtype=torch.bool)
    mask[:, :, : W // 2] = True
    warped = torch.full((T, 3, H, W), 0.7)
    corr = torch.rand(T, 2, H, W, generator=g) * 0 + torch.tensor([10.0, 5.0]).view(1, 2, 1, 1)
    control = build_control_signal(torch.rand(T, 3, H, W, generator=g), corr, warped, mask)
    for size in ((16, 24), (40, 60)):
        out = resize_control(control, size)
        m = out[:, 8]
        assert out.shape == (T, 9) + size
        assert set(m.unique().tolist()) <= {0.0, 1.0}  # the mask stays binary (nearest)
        inside = m > 0.5
        assert 0.4 < float(inside.float().mean()) < 0.6
        # values inside the new mask are averages of masked pixels only: no black leaks in at the edge
        torch.testing.assert_close(out[:, 5:8].permute(1, 0, 2, 3)[:, inside], torch.full((3, int(inside.sum())), 0.7))
        torch.testing.assert_close(out[:, 3:5].permute(1, 0, 2, 3)[:, inside],
                                   control[0, 3:5, 0, 0].view(2, 1).expand(2, int(inside.sum())))
        assert float(out[:, 3:8].permute(1, 0, 2, 3)[:, ~inside].abs().max()) == 0  # C, I_r zero outside M


def test_learned_generator_non_multiple_size_and_odd_frames(tiny_folder):
    gen = get_generator(str(tiny_folder), steps=2, device="cpu")
    assert isinstance(gen, LearnedGenerator) and gen.name == "tiny-dit" and gen.spatial_multiple == 4
    control = _control(5, 30, 45)
    out = gen(control, seed=3)
    assert out.shape == (5, 3, 30, 45) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, gen(control, seed=3))
    assert (out - gen(control, seed=4)).abs().max() > 1e-3
    with pytest.raises(InputError, match="control signal"):
        gen(torch.zeros(5, 8, 30, 45))


def test_learned_generator_pads_frames_for_a_temporal_vae(tmp_path):
    """A Wan-style latent model (VAE: 4x temporal, 8x spatial) on 6 frames (needs 1 + 4k) of 20x28."""
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset("wan-tiny"))
    assert model.temporal_multiple == 4 and model.spatial_multiple == 16
    gen = LearnedGenerator(_randomize_zero_inits(model), steps=2, device="cpu")
    out = gen(_control(6, 20, 28), seed=0)
    assert out.shape == (6, 3, 20, 28)
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1


def test_learned_generator_sliding_windows(tiny_model):
    """A model window shorter than the clip: windows of 4 frames overlapping by 2 cover all 9 frames."""
    gen = LearnedGenerator(tiny_model, steps=1, device="cpu", window=4, overlap=2, name="tiny")
    seen = []
    hook = tiny_model.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        out = gen(_control(9, 16, 16), seed=0)
    finally:
        hook.remove()
    assert out.shape == (9, 3, 16, 16)
    assert seen == [4] * len(window_starts(9, 4, 2)) == [4, 4, 4, 4]


# ---- sliding windows ----------------------------------------------------------------------------

@pytest.mark.parametrize("T,window,overlap", [(10, 4, 1), (11, 4, 1), (17, 6, 3), (5, 8, 2), (9, 3, 0), (30, 7, 6)])
def test_windows_cover_every_frame_and_blend_exactly(T, window, overlap):
    x = torch.rand(T, 9, 4, 4, generator=torch.Generator().manual_seed(T))
    covered = torch.zeros(T, dtype=torch.long)
    calls = []

    def fn(chunk, seed):
        calls.append((seed, chunk.shape[0]))
        covered[seed:seed + chunk.shape[0]] += 1  # seed = first frame index (base seed 0)
        return chunk[:, 5:8] * 2  # any per-frame function: windows agree on their shared frames

    out = run_windows(fn, x, window, overlap)
    assert (covered >= 1).all()
    assert all(n == min(window, T) for _, n in calls)
    torch.testing.assert_close(out, x[:, 5:8] * 2, atol=1e-6, rtol=0)
    if T > window:
        starts = [s for s, _ in calls]
        assert starts[0] == 0 and starts[-1] + window == T


def test_overlaps_cross_fade_linearly():
    T, window, overlap = 10, 6, 2  # windows [0, 6) and [4, 10): frames 4, 5 shared
    out = run_windows(lambda chunk, seed: torch.full((chunk.shape[0], 1), float(seed)), torch.zeros(T, 1), window, overlap)
    expected = torch.tensor([0, 0, 0, 0, 4 * 1 / 3, 4 * 2 / 3, 4, 4, 4, 4]).view(T, 1)
    torch.testing.assert_close(out, expected)
    shared = blend_weights(T, 0, 6, 2)[4:] + blend_weights(T, 4, 6, 2)[:2]
    assert shared.tolist() == pytest.approx([1.0, 1.0])  # the two ramps sum to one on the shared frames


def test_windowed_generator_with_any_generator():
    control = _control(13, 8, 8, coverage=1.0)
    out = WindowedGenerator(WarpGenerator(), window=5, overlap=2)(control)
    torch.testing.assert_close(out, control[:, 5:8], atol=1e-6, rtol=0)
    with pytest.raises(InputError):
        window_starts(10, 4, 4)


class OomAbove:
    """A generator that runs out of GPU memory on more than ``limit`` frames (raises the real CUDA error type)."""

    name = "oom-above"

    def __init__(self, limit: int):
        self.limit = limit
        self.sizes: list[int] = []

    def __call__(self, control, *, seed=0):
        self.sizes.append(control.shape[0])
        if control.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return control[:, 5:8].clone()


def test_oom_halves_the_window_and_warns_once(caplog):
    gen = OomAbove(limit=5)
    wrapped = WindowedGenerator(gen, overlap=2)
    control = _control(24, 8, 8, coverage=1.0)
    out = wrapped(control)
    torch.testing.assert_close(out, control[:, 5:8], atol=1e-6, rtol=0)
    assert gen.sizes[:3] == [24, 12, 6] and set(gen.sizes[3:]) == {3}
    assert wrapped._retry.window == 3
    out2 = wrapped(control[:10])  # the reduced window stays: no new failure, no new warning
    torch.testing.assert_close(out2, control[:10, 5:8], atol=1e-6, rtol=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "oom-above ran out of GPU memory on 24 frames" in warnings[0], warnings
    with pytest.raises(torch.cuda.OutOfMemoryError):
        WindowedGenerator(OomAbove(limit=0))(control)
    with pytest.raises(ValueError, match="not an oom"):
        OomRetry(window=4)(lambda c, s: (_ for _ in ()).throw(ValueError("not an oom")), control)


def test_halve_respects_the_temporal_multiple():
    assert halve(49, 4) == 25 and (25 - 1) % 4 == 0
    assert halve(9, 4) == 5 and halve(5, 4) == 1
    assert halve(16) == 8 and halve(2) == 1


# ---- registry -----------------------------------------------------------------------------------

def test_registry(tmp_path, tiny_folder):
    assert {"warp", "warp+inpaint", "default"} <= set(GENERATORS)
    assert get_generator("warp").name == "warp"
    with pytest.raises(InputError, match="warp, warp\\+inpaint"):
        get_generator("no-such-generator")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json"):
        get_generator(str(tmp_path / "empty"))
    assert shipped_checkpoint() is not None  # the package ships its model
    gen = get_generator("default", steps=1)
    assert isinstance(gen, LearnedGenerator) and gen.name == "vnvs-dit-small"
    (tiny_folder / "sampling.json").write_text('{"steps": 1, "window": 3}')
    try:
        gen = get_generator(str(tiny_folder), device="cpu")
        assert gen.steps == 1 and gen.window == 3
        assert get_generator(str(tiny_folder), device="cpu", steps=2).steps == 2  # arguments win
    finally:
        (tiny_folder / "sampling.json").unlink()


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{", "cannot read"),
    (b"[1, 2]", "must hold a JSON object"),
    (b'{"steps": 4, "speed": 2}', "unknown keys 'speed'"),
    (b'{"steps": "four"}', "steps must be an integer >= 1"),
    (b'{"composite": 1}', "composite must be true or false"),
    (b'{"seamless": "yes"}', "seamless must be true or false"),
    (b'{"shift": 1e400}', "shift must be a number > 0"),
])
def test_sampling_file_errors_are_one_line(tmp_path, content, message):
    (tmp_path / "sampling.json").write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        SamplingConfig.load(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path / "sampling.json") in str(info.value)


def test_sampling_config_round_trips_and_arguments_take_precedence(tmp_path):
    SamplingConfig(steps=3, resolution=16, composite=True, seamless=True).save(tmp_path)
    assert SamplingConfig.load(tmp_path) == SamplingConfig(steps=3, resolution=16, composite=True, seamless=True)
    assert SamplingConfig.load(tmp_path).replace(steps=7, window=None).steps == 7
    assert SamplingConfig.load(tmp_path / "missing") == SamplingConfig()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_device_without_cuda_is_refused_not_ignored():
    from vnvs.utils.device import resolve_device

    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="not a device name"):
        resolve_device("gpu0")
    with pytest.raises(InputError, match="no CUDA device"):
        get_generator("default", device="cuda:0")


def test_strength_starts_from_the_noised_frames(tiny_model):
    """SDEdit: the first step's input is (1 - sigma) encode(frames) + sigma noise at sigma of the first kept
    step; the output stays closer to the frames as strength falls; strength 1 ignores them."""
    pipe = NovelViewPipeline(tiny_model)
    control = _control(3, 16, 16, seed=4)[None]
    init = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    seen = []
    original = tiny_model.forward

    def spy(x, t, **kw):
        seen.append((x.clone(), float(t[0])))
        return original(x, t, **kw)

    tiny_model.forward = spy
    try:
        pipe(control, num_inference_steps=4, seed=0, init_frames=init, strength=0.5)
    finally:
        del tiny_model.forward
    assert len(seen) == 2  # the last round(4 * 0.5) of 4 steps
    pipe.scheduler.set_timesteps(4)
    sigma = float(pipe.scheduler.sigmas[2])
    noise = pipe.prepare_latents(seen[0][0].shape, seed=0)
    expected = (1 - sigma) * tiny_model.encode(init) + sigma * noise
    torch.testing.assert_close(seen[0][0], expected, rtol=1e-5, atol=1e-5)
    assert seen[0][1] == pytest.approx(1000 * sigma, rel=1e-4)
    dist = [float((pipe(control, num_inference_steps=4, seed=0, init_frames=init, strength=s) - init).abs().mean())
            for s in (0.25, 1.0)]
    assert dist[0] < dist[1]
    torch.testing.assert_close(pipe(control, num_inference_steps=4, seed=0, init_frames=init, strength=1.0),
                               pipe(control, num_inference_steps=4, seed=0))
    with pytest.raises(ValueError, match="strength"):
        pipe(control, num_inference_steps=4, init_frames=init, strength=0.0)


def test_refine_runs_in_windows_and_checks_its_inputs(tiny_folder):
    gen = LearnedGenerator(tiny_folder, steps=4, window=3, overlap=1, composite=False)
    control, frames = _control(5, 16, 16, seed=5), torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = gen.refine(control, frames, strength=0.25, seed=0)
    assert out.shape == (5, 3, 16, 16) and torch.equal(out, gen.refine(control, frames, strength=0.25, seed=0))
    assert float((out - frames).abs().mean()) < float((gen(control, seed=0) - frames).abs().mean())
    with pytest.raises(InputError, match="frames must be"):
        gen.refine(control, frames[:4])
    with pytest.raises(InputError, match="strength"):
        gen.refine(control, frames, strength=1.5)


def test_seamless_composite_changes_only_the_holes(tiny_model):
    control = _control(3, 16, 16, seed=6)
    control[:, MASK] = 1.0
    control[:, MASK.start, 4:12, 3:10] = 0.0  # a disocclusion
    plain = LearnedGenerator(tiny_model, steps=2, device="cpu", composite=True)(control, seed=1)
    smooth = LearnedGenerator(tiny_model, steps=2, device="cpu", composite=True, seamless=True)(control, seed=1)
    landed = control[:, MASK].expand(-1, 3, -1, -1) > 0.5
    assert torch.equal(plain[landed], smooth[landed]) and torch.equal(plain[landed], control[:, WARPED][landed])
    assert not torch.equal(plain[~landed], smooth[~landed])
