"""``warp+inpaint+refine``: OpenCV's fill redrawn by the shipped model (SDEdit), the default of `vnvs render`."""

import json

import numpy as np
import pytest
import torch

from vnvs.cli import main
from vnvs.defaults import DEFAULT_RENDER_GENERATOR
from vnvs.errors import InputError
from vnvs.generators import InpaintGenerator, RefinedGenerator, get_generator
from vnvs.geometry import render_control
from vnvs.geometry.control import MASK, WARPED
from vnvs.io import write_video
from vnvs.synthetic import generate_scene, render_source_video


@pytest.fixture(scope="module")
def control():
    video = render_source_video(generate_scene(4), num_frames=5, size=(32, 32), seed=4)
    w2t = video.w2c.clone()
    w2t[:, 0, 3] += 0.6  # sideways: disocclusions to fill
    return render_control(video.frames, video.depth, video.K, video.w2c, video.K, w2t, (32, 32))


def test_refine_keeps_the_warp_and_redraws_the_inpainted_holes(control):
    gen = get_generator("warp+inpaint+refine")
    assert isinstance(gen, RefinedGenerator) and gen.name == "warp+inpaint+refine" and gen.window == 9
    a, b = gen(control, seed=0), gen(control, seed=0)
    assert a.shape == (5, 3, 32, 32) and torch.equal(a, b)  # seeded
    landed = control[:, MASK][:, 0] > 0.5
    assert 0.05 < float((~landed).float().mean()) < 0.6
    warped = control[:, WARPED]
    # composited: the warped source stays where it landed, away from the blended hole borders
    inner = torch.nn.functional.max_pool2d((~landed).float()[:, None], 7, 1, 3)[:, 0] == 0
    assert (a - warped).abs().amax(1)[inner].max() < 1e-5
    inpainted = InpaintGenerator()(control)
    holes = (a - inpainted).abs().amax(1)[~landed]
    assert holes.mean() > 0.01  # the holes are redrawn, not OpenCV's fill
    assert not torch.equal(a, gen(control, seed=1))


def test_refine_with_another_model_and_bad_refiners(control):
    gen = get_generator("warp+inpaint+refine:cognvs")
    assert gen.name == "warp+inpaint+refine:vnvs-dit-small-inpaint"
    assert gen(control, seed=0).shape == (5, 3, 32, 32)
    with pytest.raises(InputError, match="learned model"):
        get_generator("warp+inpaint+refine:warp")
    with pytest.raises(InputError, match="unknown generator"):
        get_generator("warp+inpaint+refine:nothing-here")
    with pytest.raises(ValueError, match="strength"):
        RefinedGenerator(get_generator("default"), strength=0.0)


def test_vnvs_render_uses_it_by_default(tmp_path, capsys):
    assert DEFAULT_RENDER_GENERATOR == "warp+inpaint+refine"
    video = render_source_video(generate_scene(5), num_frames=4, size=(32, 32), seed=5)
    write_video(tmp_path / "clip.mp4", video.frames, fps=8)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    code = main(["render", str(tmp_path / "clip.mp4"), "--depth", str(tmp_path / "depth.npy"), "--trajectory",
                 "orbit:20", "-o", str(tmp_path / "out"), "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["generator"] == "warp+inpaint+refine"
