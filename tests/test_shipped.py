"""The models that ship with the package: present, small, loadable offline, and they use their control signal."""

from __future__ import annotations

import json

import torch

from vnvs.defaults import SHIPPED_INPAINT_CHECKPOINT
from vnvs.generators import get_generator, shipped_checkpoint
from vnvs.generators.learned import LearnedGenerator
from vnvs.geometry import build_control_signal, forward_splat
from vnvs.metrics import psnr
from vnvs.cameras import Cameras
from vnvs.cameras.resolve import resolve_trajectory
from vnvs.synthetic import generate_scene, render_source_video, render_views


def _held_out_case(size=64, frames=9):
    """A procedural scene with a number far from the training range, its control signal and ground truth."""
    scene = generate_scene(2**41 + 5)
    src = render_source_video(scene, num_frames=frames, size=(size, size), seed=5)
    traj = resolve_trajectory("orbit:20", Cameras(src.w2c, src.K, size, size), float(src.depth.median()))
    w2c, K = traj.w2c, traj.K
    gt = render_views(scene, w2c, K, size, size, src.times)
    splat = forward_splat(src.frames, src.depth, src.K, src.w2c, K, w2c, target_size=(size, size))
    return build_control_signal(src.frames, splat.corr, splat.warped, splat.mask), gt.rgb, splat.mask


def test_shipped_model_is_there_and_small():
    path = shipped_checkpoint()
    assert path is not None
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 25 * 2**20, size
    sampling = json.loads((path / "sampling.json").read_text())
    assert sampling["composite"] is True and sampling["resolution"] == 64
    gen = get_generator("default")
    assert isinstance(gen, LearnedGenerator) and gen.name == "vnvs-dit-small"


def test_shipped_model_follows_the_control_signal():
    control, target, mask = _held_out_case()
    raw = LearnedGenerator(shipped_checkpoint(), composite=False, device="cpu")
    with_control = raw(control, seed=0)
    blind = raw(torch.zeros_like(control), seed=0)
    seen = psnr(with_control, target, mask)
    unseen = psnr(blind, target, mask)
    assert seen > unseen + 4.0, (seen, unseen)  # it draws the warped source, not a generic picture (24.3 vs 18.3 dB)
    assert torch.equal(raw(control, seed=0), with_control)  # seeded


def test_shipped_inpainting_model_is_there_small_and_follows_the_partial_video():
    path = shipped_checkpoint(SHIPPED_INPAINT_CHECKPOINT)
    assert path is not None
    assert sum(f.stat().st_size for f in path.iterdir()) <= 25 * 2**20
    gen = get_generator("cognvs")
    assert isinstance(gen, LearnedGenerator) and gen.name == SHIPPED_INPAINT_CHECKPOINT
    assert gen.model.config.control == "inpaint" and gen.sampling.seamless and gen.composite
    control, target, mask = _held_out_case()
    raw = LearnedGenerator(path, composite=False, device="cpu")
    seen = psnr(raw(control, seed=0), target, mask)
    blind = psnr(raw(torch.zeros_like(control), seed=0), target, mask)
    assert seen > blind + 4.0, (seen, blind)  # it keeps the visible part of the video, not a generic picture
