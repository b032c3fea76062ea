"""CogNVS training pairs: co-visibility through the crack-free depth mesh, and random 2-D masks (ablation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vnvs.cameras import Cameras, make_preset_trajectory
from vnvs.data.builders import covis, get_builder
from vnvs.data.builders._sampling import covis_sample, random_masks_2d
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import WorkItem
from vnvs.errors import InputError
from vnvs.geometry import covisibility
from vnvs.io import write_video
from vnvs.synthetic import generate_scene, look_at_depth, render_source_video, render_views

S = 64


@pytest.mark.parametrize("scene_id", [3, 7])
def test_mesh_covisibility_is_closer_to_the_exact_one_than_the_point_zbuffer(scene_id):
    """Without the novel view's depth, the source depth mesh rendered there decides what is hidden; the
    z-buffer of splatted points has cracks through which hidden background points pass as co-visible."""
    scene = generate_scene(scene_id)
    video = render_source_video(scene, 4, size=(S, S), seed=scene_id, motion="gentle")
    look = look_at_depth(scene, video)
    valid = video.depth > 0
    spec = "orbit:25+dolly:0.3"

    def exact(w2c, K):
        return render_views(scene, w2c, K, S, S, video.times, rgb=False, local_points=False).depth

    truth, *_ = covis_sample(video.frames, video.depth, valid, video.K, video.w2c, spec, "direct", look,
                             novel_depth_fn=exact)
    mesh, *_ = covis_sample(video.frames, video.depth, valid, video.K, video.w2c, spec, "direct", look)
    traj = make_preset_trajectory(spec, Cameras(video.w2c, video.K, S, S), look, mode="direct")
    points = covisibility(video.depth, video.K, video.w2c, traj.K, traj.w2c, size_b=(S, S), valid_a=valid)
    t = truth["mask"].bool()
    err_mesh, err_points = (t ^ mesh["mask"].bool()).float().mean(), (t ^ points).float().mean()
    assert 0.2 < t.float().mean() < 0.8
    assert err_mesh < 0.75 * err_points, (float(err_mesh), float(err_points))


def test_random_masks_2d_coverage_smoothness_and_seed():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a, b, c = random_masks_2d(5, 48, 40, 0.4, g(1)), random_masks_2d(5, 48, 40, 0.4, g(1)), random_masks_2d(5, 48, 40, 0.4, g(2))
    assert a.shape == (5, 48, 40) and a.dtype == torch.bool
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert ((a.float().mean((1, 2)) - 0.4).abs() < 0.02).all()
    # blobs, not salt and pepper: few label changes between horizontal neighbours; frames change smoothly
    assert (a[:, :, 1:] != a[:, :, :-1]).float().mean() < 0.1
    assert (a[1:] != a[:-1]).float().mean() < 0.2
    assert not random_masks_2d(2, 8, 8, 0.0, g(0)).any()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("covis2d")
    video = render_source_video(generate_scene(4), 8, size=(S, S), seed=4, motion="orbit")
    write_video(root / "v.mp4", video.frames, 10, crf=8)
    np.save(root / "d.npy", video.depth.numpy())
    return root


def test_covis_2d_masks_keep_coverage_and_the_pair_layout(clip):
    item = WorkItem("v", path=str(clip / "v.mp4"), depth=str(clip / "d.npy"))
    base = dict(size=S, clip_frames=3, pairs_per_video=1, covis_trajectories=2, min_coverage=0.05)
    three = covis.build(item, PrepareConfig(**base), 0)
    two, again = (covis.build(item, PrepareConfig(**base, covis_masks="2d"), 0) for _ in range(2))
    assert len(three.samples) == len(two.samples) == 2
    assert [m["trajectory"] for m in three.meta] == [m["trajectory"] for m in two.meta]  # same clips and cameras
    for s3, m3, s2, m2 in zip(three.samples, three.meta, two.samples, two.meta):
        assert (m3["masks"], m2["masks"]) == ("3d", "2d")
        assert abs(m2["coverage"] - m3["coverage"]) < 0.02
        assert not torch.equal(s2["mask"], s3["mask"])
        assert torch.equal(s2["warped"], s2["source"] * s2["mask"][:, None])
        assert torch.equal(s2["source"], s3["source"])
    assert all(torch.equal(x["mask"], y["mask"]) for x, y in zip(two.samples, again.samples))


def test_synthetic_covis_2d_and_a_bad_option():
    build = get_builder("synthetic")
    item = WorkItem("scene-5", scene=5)
    c3 = PrepareConfig(size=32, clip_frames=3, views=2, min_coverage=0.05)
    a, b = build(item, c3, 0), build(item, PrepareConfig(size=32, clip_frames=3, views=2, min_coverage=0.05,
                                                          covis_masks="2d"), 0)
    ia, ib = ([m["kind"] for m in r.meta].index("synthetic-covis") for r in (a, b))
    assert b.meta[ib]["masks"] == "2d" and a.meta[ia]["masks"] == "3d"
    assert not torch.equal(a.samples[ia]["mask"], b.samples[ib]["mask"])
    # the other samples are those of 3-D masks
    assert torch.equal(a.samples[0]["target"], b.samples[0]["target"])
    with pytest.raises(InputError, match="covis_masks"):
        PrepareConfig(covis_masks="random")
