"""Grid folders (vnvs.io.grid): round trip, exact procedural grids, and one-line errors for bad folders."""

import json

import numpy as np
import pytest
import torch

from vnvs.errors import InputError
from vnvs.io.grid import Grid, read_grid, read_grid_json, write_grid
from vnvs.metrics import psnr
from vnvs.synthetic import procedural_grid


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    grid = procedural_grid(5, views=3, frames=5, size=32, orbit_deg=20)
    path = tmp_path_factory.mktemp("grids") / "g"
    write_grid(path, grid)
    return grid, path


def test_round_trip_keeps_frames_cameras_and_depth(grid_dir):
    grid, path = grid_dir
    back = read_grid(path)
    assert back.frames.shape == grid.frames.shape
    assert float(psnr(back.frames.flatten(0, 1), grid.frames.flatten(0, 1))) > 25  # H.264 4:2:0 of 32 px textures
    assert torch.allclose(back.w2c, grid.w2c, atol=1e-6) and torch.allclose(back.K, grid.K, atol=1e-5)
    assert torch.equal(back.depth, grid.depth) and torch.equal(back.valid, grid.valid)
    assert back.meta["scene"] == 5 and back.time_index.tolist() == list(range(5))
    assert (path / "contact_sheet.png").stat().st_size > 0


def test_procedural_grid_row0_is_source_path_and_views_differ(grid_dir):
    grid, _ = grid_dir
    # rows follow the same path orbited further and further: camera centres move away from row 0
    centres = -(grid.w2c[..., :3, :3].transpose(-1, -2) @ grid.w2c[..., :3, 3:]).squeeze(-1)
    d1 = (centres[1] - centres[0]).norm(dim=-1)
    d2 = (centres[2] - centres[0]).norm(dim=-1)
    assert (d1 > 1e-3).all() and (d2 > d1).all()
    assert (grid.depth > 0).float().mean() > 0.9


def _corrupt(path, tmp_path, edit):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    edit(bad)
    return bad


@pytest.mark.parametrize("edit, message", [
    (lambda p: (p / "grid.json").unlink(), "grid.json is missing"),
    (lambda p: (p / "grid.json").write_bytes(b"\xff\xfe{"), "not UTF-8"),
    (lambda p: (p / "grid.json").write_text("{"), "not valid JSON"),
    (lambda p: (p / "grid.json").write_text("[]"), "expected a JSON object"),
    (lambda p: _set(p, "version", 99), "unsupported grid version"),
    (lambda p: _set(p, "views", "3"), "'views' must be a positive integer"),
    (lambda p: _set(p, "fps", -1), "'fps' must be a positive number"),
    (lambda p: _set(p, "w2c", [[0]]), "'w2c' must have shape"),
    (lambda p: _set(p, "videos", ["../x.mp4", "view_001.mp4", "view_002.mp4"]), "plain name"),
    (lambda p: (p / "view_001.mp4").unlink(), "view_001.mp4 is missing"),
    (lambda p: (p / "view_001.mp4").write_bytes(b"not a video"), "view_001.mp4"),
    (lambda p: (p / "depth.npz").write_bytes(b"PK\x03\x04junk"), "depth.npz"),
    (lambda p: _set(p, "w2c", (np.ones((3, 5, 4, 4))).tolist()), "[0, 0, 0, 1]"),
    (lambda p: (p / "grid.json").write_text((p / "grid.json").read_text().replace('"fps": 12.0', '"fps": NaN')), "not valid JSON"),
])
def test_bad_folders_give_one_line_errors(grid_dir, tmp_path, edit, message):
    _, path = grid_dir
    bad = _corrupt(path, tmp_path, edit)
    with pytest.raises(InputError) as e:
        read_grid(bad)
    assert message in str(e.value) and "\n" not in str(e.value)


def _set(p, key, value):
    doc = json.loads((p / "grid.json").read_text())
    doc[key] = value
    (p / "grid.json").write_text(json.dumps(doc))


def test_missing_folder_and_wrong_shapes(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_grid_json(tmp_path / "nope")
    with pytest.raises(InputError, match="grid w2c must have shape"):
        Grid(torch.rand(2, 3, 3, 8, 8), torch.eye(4).expand(2, 2, 4, 4), torch.eye(3).expand(2, 3, 3, 3))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="a file exists there"):
        write_grid(tmp_path / "file", procedural_grid(1, views=2, frames=2, size=16))
