"""Camera accuracy: poses estimated from a procedural scene rendered along a known trajectory come
back within a few degrees; a textureless video is reported as failures, not skipped."""

import pytest
import torch

from vnvs.geometry.se3 import axis_angle_to_matrix
from vnvs.metrics import Unavailable, camera_accuracy, to_json
from vnvs.synthetic import generate_scene
from vnvs.synthetic.paths import render_views, source_camera_path

SIZE, FRAMES = 128, 9


@pytest.fixture(scope="module")
def orbit():
    scene = generate_scene(3)
    w2c, K = source_camera_path(scene, FRAMES, SIZE, SIZE, seed=1, motion="orbit")
    return render_views(scene, w2c, K, SIZE, SIZE, torch.zeros(FRAMES)).rgb, K, w2c


@pytest.mark.parametrize("reference", ["first", "consecutive"])
def test_orbit_poses_are_recovered(orbit, reference):
    video, K, w2c = orbit
    r = camera_accuracy(video, K, w2c, reference=reference)
    assert r["frames"] == FRAMES - 1 and r["failures"] == 0 and r["failure_rate"] == 0
    assert r["rot_err_deg"] < 3 and r["trans_dir_err_deg"] < 6, r
    assert len(r["per_frame"]["rot_err_deg"]) == FRAMES - 1
    assert camera_accuracy(video, K[0], w2c, reference=reference)["rot_err_deg"] == r["rot_err_deg"]  # one K for all frames


def test_a_wrong_trajectory_scores_badly(orbit):
    video, K, w2c = orbit
    spin = torch.eye(4).expand(FRAMES, 4, 4).clone()
    spin[:, :3, :3] = axis_angle_to_matrix(torch.linspace(0, 0.6, FRAMES)[:, None] * torch.tensor([0.0, 0.0, 1.0]))
    swapped = spin @ w2c  # the camera also rolls up to ~34 degrees
    good = camera_accuracy(video, K, w2c)["rot_err_deg"]
    bad = camera_accuracy(video, K, swapped)["rot_err_deg"]
    assert bad > good + 10
    reversed_path = camera_accuracy(video.flip(0), K, w2c)  # the same frames played backwards
    assert reversed_path["trans_dir_err_deg"] > 90


def test_textureless_video_reports_failures():
    video = torch.full((6, 3, 64, 64), 0.4)
    w2c = torch.eye(4).expand(6, 4, 4).clone()
    w2c[:, 0, 3] = torch.linspace(0, 0.5, 6)
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    r = camera_accuracy(video, K, w2c)
    assert r["failures"] == 5 and r["frames"] == 5 and r["failure_rate"] == 1.0
    assert isinstance(r["rot_err_deg"], Unavailable) and "failed on all 5" in r["rot_err_deg"].reason
    assert to_json(r)["per_frame"]["rot_err_deg"] == [None] * 5
    half = video.clone()
    with pytest.raises(ValueError):
        camera_accuracy(half, K, w2c[:5])


def test_partial_failures_are_counted(orbit):
    video, K, w2c = orbit
    blanked = video.clone()
    blanked[4] = 0.4  # one textureless frame breaks pairs that need it
    r = camera_accuracy(blanked, K, w2c, reference="consecutive")
    assert r["failures"] == 2 and r["per_frame"]["rot_err_deg"][3] is None and r["per_frame"]["rot_err_deg"][4] is None
    assert r["failure_rate"] == pytest.approx(2 / (FRAMES - 1)) and r["rot_err_deg"] < 3
