"""vnvs's flow-matching Euler scheduler against diffusers' FlowMatchEulerDiscreteScheduler (bit for bit), and
the learned generators sampling without importing diffusers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vnvs.generators.grid import GridGenerator
from vnvs.generators.learned import LearnedGenerator, model_shift
from vnvs.geometry import build_control_signal
from vnvs.models import NovelViewModel, get_preset
from vnvs.models.flow_scheduler import FlowMatchEulerScheduler
from vnvs.models.grid import GridModel, grid_preset
from vnvs.sampling import DEFAULT_SHIFT, NovelViewPipeline, make_scheduler
from vnvs.sampling.grid import GridPipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 2.5, 0.7])
def test_schedule_and_steps_are_diffusers_bit_for_bit(shift):
    ours, theirs = FlowMatchEulerScheduler(shift=shift), make_scheduler(shift)
    assert torch.equal(ours.timesteps, theirs.timesteps) and torch.equal(ours.sigmas, theirs.sigmas)
    assert (ours.sigma_min, ours.sigma_max) == (theirs.sigma_min, theirs.sigma_max)
    for steps in (1, 2, 4, 20, 50, 1000):
        ours.set_timesteps(steps)
        theirs.set_timesteps(steps)
        assert torch.equal(ours.timesteps, theirs.timesteps) and torch.equal(ours.sigmas, theirs.sigmas)
        g = torch.Generator().manual_seed(steps)
        a = b = torch.randn(2, 3, 5, generator=g)
        for ta, tb in zip(ours.timesteps, theirs.timesteps):
            v = torch.randn(2, 3, 5, generator=g)
            a = ours.step(v, ta, a, return_dict=False)[0]
            b = theirs.step(v, tb, b, return_dict=False)[0]
        assert torch.equal(a, b)
    other, other_d = FlowMatchEulerScheduler.from_config(ours.config, shift=4.0), type(theirs).from_config(theirs.config, shift=4.0)
    assert other.config.shift == float(other_d.config.shift) == 4.0 and ours.config.shift == shift
    other.set_timesteps(7)
    other_d.set_timesteps(7)
    assert torch.equal(other.sigmas, other_d.sigmas)


def test_step_rejects_integer_indices_and_returns_diffusers_forms():
    s = FlowMatchEulerScheduler(shift=3.0)
    s.set_timesteps(3)
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="timestep"):
        s.step(torch.ones(2), 0, x)
    out = s.step(torch.ones(2), s.timesteps[0], x)
    assert torch.equal(out.prev_sample, x + (s.sigmas[1] - s.sigmas[0]))


def _control(T: int, H: int, W: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(T, H, W, generator=g) < 0.7
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    corr = torch.stack([xs, ys]).expand(T, 2, H, W)
    return build_control_signal(torch.rand(T, 3, H, W, generator=g), corr, torch.rand(T, 3, H, W, generator=g), mask)


def test_learned_generator_samples_as_with_diffusers_scheduler():
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset("dit-tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():  # control layers start at zero: give them values so the control matters
            if float(p.abs().max()) == 0:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.2)
    assert model_shift(model) == DEFAULT_SHIFT
    control = _control(5, 16, 24)
    for shift in (None, 2.0):
        gen = LearnedGenerator(model, steps=4, shift=shift, device="cpu", composite=False)
        assert isinstance(gen.pipeline.scheduler, FlowMatchEulerScheduler)
        reference = NovelViewPipeline(model)  # diffusers' scheduler
        expected = reference(control[None], num_inference_steps=4, shift=shift, seed=3)[0]
        assert torch.equal(gen(control, seed=3), expected.clamp(0, 1))


def test_shipped_generator_loads_and_samples_without_diffusers_or_scipy():
    code = ("import sys, torch\n"
            "from vnvs.generators import get_generator\n"
            "gen = get_generator('default')\n"
            "gen(torch.zeros(3, 9, 32, 32), seed=0)\n"
            "print('heavy=' + ','.join(sorted(m for m in ('accelerate', 'diffusers', 'scipy', 'torch._dynamo') if m in sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "heavy="


def test_grid_generator_samples_as_with_diffusers_scheduler():
    torch.manual_seed(0)
    model = GridModel.from_config(grid_preset("sv4d-tiny")).eval()
    with torch.no_grad():
        for p in model.dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    gen = GridGenerator(model, steps=3)
    assert isinstance(gen.pipeline.scheduler, FlowMatchEulerScheduler)
    g = torch.Generator().manual_seed(0)
    known = torch.rand(1, 2, 3, 3, 16, 16, generator=g)
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[:, 0], mask[:, :, 0] = True, True
    ours = gen.pipeline(known, mask, num_inference_steps=3, seed=4)
    theirs = GridPipeline(model)(known, mask, num_inference_steps=3, seed=4)  # diffusers' scheduler
    assert torch.equal(ours, theirs)
