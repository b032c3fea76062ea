"""``vnvs view`` without a browser: viser <-> OpenCV cameras, keyframes -> a trajectory the readers accept,
loading grid folders, scene folders, PLY files and ``vnvs render`` outputs, and bad inputs.
(tests/test_view_browser.py serves them to headless Chromium.)"""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch

from vnvs.apps.view import VISER_HINT
from vnvs.apps.view_data import (
    Keyframe,
    Points,
    Splats,
    keyframe_from_viser,
    keyframes_to_trajectory,
    load_viewable,
    opencv_to_viser,
    save_keyframes,
    viser_to_opencv,
)
from vnvs.cameras import Cameras, look_at, resolve_trajectory
from vnvs.cameras.trajectory import Trajectory
from vnvs.cli import main
from vnvs.errors import InputError
from vnvs.io import write_video
from vnvs.io.grid import read_grid, write_grid
from vnvs.recon.formats import read_scene, write_ply
from vnvs.synthetic import generate_scene, render_source_video
from vnvs.synthetic.grids import procedural_grid

HAS_VISER = importlib.util.find_spec("viser") is not None


def _project(points: np.ndarray, w2c: torch.Tensor, K: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(N, 2)`` and depths ``(N,)`` of world points in an OpenCV camera."""
    p = torch.as_tensor(points, dtype=torch.float64)
    cam = p @ w2c[:3, :3].double().T + w2c[:3, 3].double()
    uv = cam @ K.double().T
    return (uv[:, :2] / uv[:, 2:]).numpy(), cam[:, 2].numpy()


# ---------------------------------------------------------------------------------------------- cameras


def test_viser_camera_looking_down_world_x_projects_as_opencv():
    # A camera at (3, 0, 0) looking at the origin, image down = world +y: its rotation (camera axes in world
    # columns) is x=(0,0,1), y=(0,1,0), z=(-1,0,0), a -90 degree turn about y.
    wxyz = (math.cos(-math.pi / 4), 0.0, math.sin(-math.pi / 4), 0.0)
    w2c, K = viser_to_opencv((3.0, 0.0, 0.0), wxyz, math.radians(60), 40, 80)
    assert K[1, 1].item() == pytest.approx(20 / math.tan(math.radians(30)))
    assert K[0, 0].item() == K[1, 1].item() and (K[0, 2].item(), K[1, 2].item()) == (39.5, 19.5)
    uv, z = _project(np.array([[0.0, 0, 0], [0, -1, 0], [0, 0, 1], [0, 1, 0]]), w2c, K)
    np.testing.assert_allclose(uv[0], [39.5, 19.5], atol=1e-9)  # the look-at point: the image centre
    np.testing.assert_allclose(z, [3, 3, 3, 3], atol=1e-9)  # all four lie in the plane x = 0, 3 in front
    assert uv[1, 1] < 19.5 and uv[3, 1] > 19.5  # world -y (up in OpenCV worlds) is up in the image
    assert uv[2, 0] > 39.5  # world +z is the camera's right
    # the same pose from vnvs's look_at (world up -y)
    expected = look_at(torch.tensor([3.0, 0, 0]), torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]))
    torch.testing.assert_close(w2c.float(), expected.float(), atol=1e-6, rtol=0)


def test_identity_viser_camera_is_the_identity_rotation():
    w2c, K = viser_to_opencv((0.0, 0.0, -5.0), (1.0, 0.0, 0.0, 0.0), math.radians(90), 100, 200)
    torch.testing.assert_close(w2c[:3, :3], torch.eye(3, dtype=torch.float64))
    assert w2c[:3, 3].tolist() == [0.0, 0.0, 5.0] and K[1, 1].item() == pytest.approx(50.0)


def test_opencv_to_viser_inverts_viser_to_opencv():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q = torch.randn(4, generator=g, dtype=torch.float64)
        q = q / q.norm()
        pos = torch.randn(3, generator=g, dtype=torch.float64) * 3
        fov = float(torch.rand(1, generator=g)) * 2.0 + 0.3
        w2c, K = viser_to_opencv(pos.numpy(), q.numpy(), fov, 48, 64)
        position, wxyz, fov2 = opencv_to_viser(w2c, K, 48)
        np.testing.assert_allclose(position, pos.numpy(), atol=1e-9)
        np.testing.assert_allclose(abs(np.dot(wxyz, q.numpy())), 1.0, atol=1e-9)  # q and -q: one rotation
        assert fov2 == pytest.approx(fov)


@pytest.mark.skipif(not HAS_VISER, reason="viser is not installed (pip install 'vnvs[viewer]')")
def test_rotation_matches_viser_own_transform():
    from viser import transforms as vtf

    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        q = torch.randn(4, generator=g, dtype=torch.float64)
        q = (q / q.norm()).numpy()
        w2c, _ = viser_to_opencv((1.0, 2.0, 3.0), q, 1.0, 10, 10)
        R_world_camera = vtf.SO3(q).as_matrix()  # viser: P_world = R p_camera + position
        np.testing.assert_allclose(w2c[:3, :3].numpy(), R_world_camera.T, atol=1e-9)
        p_cam = np.array([0.3, -0.2, 2.0])
        p_world = R_world_camera @ p_cam + np.array([1.0, 2.0, 3.0])
        np.testing.assert_allclose((w2c[:3, :3].numpy() @ p_world + w2c[:3, 3].numpy()), p_cam, atol=1e-9)


def test_bad_field_of_view_is_refused():
    with pytest.raises(InputError, match="field of view"):
        viser_to_opencv((0, 0, 0), (1, 0, 0, 0), 0.0, 10, 10)


# ---------------------------------------------------------------------------------------------- keyframes


def _orbit_keyframes(n: int = 3, times=(0, 3, 1)) -> list[Keyframe]:
    keys = []
    for i in range(n):
        angle = math.radians(-20 + 20 * i)
        eye = torch.tensor([4 * math.sin(angle), -0.5, -4 * math.cos(angle)], dtype=torch.float64)
        w2c = look_at(eye, torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
        position, wxyz, _ = opencv_to_viser(w2c, torch.eye(3), 2)
        keys.append(keyframe_from_viser(position, wxyz, math.radians(50 + 5 * i), times[i]))
    return keys


def test_keyframes_are_interpolated_and_read_back(tmp_path):
    keys = _orbit_keyframes()
    path = tmp_path / "sub" / "path.json"
    path.parent.mkdir()
    traj = save_keyframes(path, keys, 9, (32, 48), meta={"tool": "vnvs view"})
    assert not list(tmp_path.rglob("*.tmp*")) and path.is_file()
    doc = json.loads(path.read_text())
    assert doc["format"] == "vnvs-trajectory" and "preset" not in doc["meta"] and "time" not in doc["frames"][0]
    back = Trajectory.load(path)
    assert len(back) == 9 and (back.height, back.width) == (32, 48) and back.time_index is None
    for frame, key in ((0, 0), (4, 1), (8, 2)):  # keyframes spread evenly: frames 0, 4, 8
        torch.testing.assert_close(back.w2c[frame].double(), keys[key].w2c, atol=1e-5, rtol=0)
        assert back.K[frame, 1, 1].item() == pytest.approx(16 / math.tan(keys[key].fov / 2), rel=1e-5)
    # between keyframes: the camera centre on the segment, as Trajectory.resample puts it
    centres = torch.linalg.inv(back.w2c.double())[:, :3, 3]
    torch.testing.assert_close(centres[2], (centres[0] + centres[4]) / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.w2c, traj.w2c)

    # what `vnvs render --trajectory` / `render-scene --trajectory` do with it
    source = Cameras.static(9, 32, 48)
    same = resolve_trajectory(path, source, look_at_depth=2.0)
    torch.testing.assert_close(same.w2c, back.w2c)
    assert same.time_index is None
    longer = resolve_trajectory(path, Cameras.static(17, 32, 48), look_at_depth=2.0)
    assert len(longer) == 17
    torch.testing.assert_close(longer.w2c[[0, 8, 16]].double(), torch.stack([k.w2c for k in keys]), atol=1e-5, rtol=0)


def test_keyframe_times_give_every_frame_a_time():
    keys = _orbit_keyframes(times=(0, 4, 2))
    traj = keyframes_to_trajectory(keys, 5, (16, 16), keyframe_times=True)
    assert traj.time_index.tolist() == [0, 2, 4, 3, 2]
    single = keyframes_to_trajectory(keys[:1], 4, (16, 16))
    assert len(single) == 4 and torch.allclose(single.w2c[3].double(), keys[0].w2c, atol=1e-6)
    with pytest.raises(InputError, match="no keyframes"):
        keyframes_to_trajectory([], 5, (16, 16))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A grid folder (3 views x 4 times, 32 px) and a scene folder fitted to it in a few steps."""
    root = tmp_path_factory.mktemp("view")
    write_grid(root / "grid", procedural_grid(2, views=3, frames=4, size=32))
    fast = ["--steps", "4", "--deform-warmup", "2", "--densify-every", "100", "--mlp-width", "16", "--mlp-layers", "2"]
    assert main(["reconstruct", str(root / "grid"), "-o", str(root / "scene"), *fast]) == 0
    return root


def test_saved_keyframes_render_with_render_scene(folders, tmp_path, capsys):
    doc = json.loads((folders / "scene" / "scene.json").read_text())
    w2c = torch.tensor(doc["cameras"]["w2c"], dtype=torch.float64)
    keys = [Keyframe(w2c[0, 0], 1.0, 0), Keyframe(w2c[2, 3], 1.0, 3)]
    save_keyframes(tmp_path / "t.json", keys, 4, (32, 32), keyframe_times=True)
    code = main(["render-scene", str(folders / "scene"), "--trajectory", str(tmp_path / "t.json"), "-o",
                 str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    written = Trajectory.load(tmp_path / "r" / "trajectory.json")
    assert written.time_index.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(written.w2c[-1].double(), w2c[2, 3], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- loading


def test_grid_points_land_on_their_pixels(folders):
    v = load_viewable(folders / "grid")
    grid = read_grid(folders / "grid")
    assert v.kind == "grid" and v.num_times == 4 and v.fps == grid.fps and v.size == (32, 32)
    assert [(p.name, p.role) for p in v.paths] == [("source", "source"), ("view_1", "target"), ("view_2", "target")]
    assert v.paths[1].frustum_indices() == [0, 1, 2, 3]
    both = v.frame(2)
    assert isinstance(both, Points) and len(both.points) == int(grid.valid[:, 2].sum())
    v.set_views([1])
    pts = v.frame(2)
    assert len(pts.points) == int(grid.valid[1, 2].sum())
    uv, z = _project(pts.points, grid.w2c[1, 2], grid.K[1, 2])
    ys, xs = torch.nonzero(grid.valid[1, 2], as_tuple=True)
    np.testing.assert_allclose(uv, np.stack([xs.numpy(), ys.numpy()], 1), atol=1e-3)
    np.testing.assert_allclose(z, grid.depth[1, 2][grid.valid[1, 2]].numpy(), rtol=1e-5)
    colours = (grid.frames[1, 2].permute(1, 2, 0)[grid.valid[1, 2]] * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(pts.colors, colours)
    # one view from the command line; a point budget takes pixels at a stride
    one = load_viewable(folders / "grid", view=2, max_points=100)
    assert 25 <= len(one.frame(0).points) <= 100
    with pytest.raises(InputError, match="outside the grid's views 0..2"):
        load_viewable(folders / "grid", view=3)


def test_scene_and_ply(folders, tmp_path):
    v = load_viewable(folders / "scene")
    scene, doc = read_scene(folders / "scene")
    assert v.kind == "scene" and v.num_times == 4 and v.times == doc["time"] and len(v.paths) == 3
    s = v.frame(3)
    g = scene.at(doc["time"][3])
    assert isinstance(s, Splats) and s.centers.shape == (g.means.shape[0], 3) and s.opacities.shape[1] == 1
    np.testing.assert_allclose(s.centers, g.means.detach().numpy(), atol=1e-6)
    assert np.all(np.linalg.eigvalsh(s.covariances.astype(np.float64)) > 0)
    ply = folders / "scene" / "ply" / "time_002.ply"
    p = load_viewable(ply)
    assert p.kind == "ply" and p.num_times == 1 and not p.paths and p.notes
    write_ply(tmp_path / "empty.ply", *(torch.zeros(0, k) for k in (3, 3, 4)), torch.zeros(0), torch.zeros(0, 3))
    with pytest.raises(InputError, match="no Gaussians"):
        load_viewable(tmp_path / "empty.ply")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("view_clip")
    video = render_source_video(generate_scene(5), num_frames=6, size=(24, 32), seed=5)
    write_video(root / "clip.mp4", video.frames, fps=6)
    np.save(root / "depth.npy", video.depth.numpy())
    Trajectory(video.w2c, video.K, 24, 32).save(root / "cameras.json")
    return root, video


def test_render_output_with_and_without_depth(clip, tmp_path, capsys):
    root, video = clip
    base = ["render", str(root / "clip.mp4"), "--depth", str(root / "depth.npy"), "--cameras", str(root / "cameras.json"),
            "--generator", "warp", "--trajectory", "orbit:10"]
    assert main(base + ["--save-depth", "-o", str(tmp_path / "d")]) == 0, capsys.readouterr().err
    v = load_viewable(tmp_path / "d")
    assert v.kind == "render" and v.num_times == 6 and v.size == (24, 32) and not v.notes
    assert [p.role for p in v.paths] == ["source", "target"]
    torch.testing.assert_close(v.paths[0].w2c, video.w2c.float(), atol=1e-5, rtol=0)
    pts = v.frame(3)
    uv, z = _project(pts.points, video.w2c[3], video.K[3])
    valid = video.depth[3] > 0
    np.testing.assert_allclose(z, video.depth[3][valid].numpy(), rtol=1e-4)
    ys, xs = torch.nonzero(valid, as_tuple=True)
    np.testing.assert_allclose(uv, np.stack([xs.numpy(), ys.numpy()], 1), atol=1e-3)
    # colours: the source frame (cut from side_by_side.mp4, so within H.264's error)
    colours = video.frames[3].permute(1, 2, 0)[valid].numpy() * 255
    assert np.abs(pts.colors.astype(np.float64) - colours).mean() < 12

    assert main(base + ["-o", str(tmp_path / "nd")]) == 0
    nd = load_viewable(tmp_path / "nd")
    assert nd.frame(0) is None and len(nd.paths) == 2 and "--save-depth" in nd.notes[0]
    (tmp_path / "nd" / "cameras.json").unlink()  # an output of an older vnvs
    old = load_viewable(tmp_path / "nd")
    assert [p.role for p in old.paths] == ["target"] and "cameras.json" in old.notes[0]


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make,needle", [
    (lambda t: t / "missing", "does not exist"),
    (lambda t: t, "is not a scene folder"),
    (lambda t: (t / "a.txt").write_text("x") and t / "a.txt", "not a .ply"),
])
def test_bad_paths(tmp_path, make, needle):
    with pytest.raises(InputError, match=needle):
        load_viewable(make(tmp_path))


def test_command_line_errors_are_one_line_before_viser(folders, tmp_path, capsys):
    for argv, needle in ([["view", str(tmp_path / "nope")], "does not exist"],
                         [["view", str(folders / "grid"), "--view", "3"], "outside the grid's views"],
                         [["view", str(folders / "scene"), "--view", "1"], "grid folders only"],
                         [["view", str(folders / "grid"), "--trajectory-out", str(tmp_path)], "is a folder"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and needle in err, err


def test_missing_viser_is_one_line(folders, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # `import viser` fails as it does where it is not installed
    code = main(["view", str(folders / "grid")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: {VISER_HINT}", err
