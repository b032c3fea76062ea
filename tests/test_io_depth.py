"""Depth files: formats, shape checks, invalid values and masks, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vnvs.errors import DepthError
from vnvs.io.depth import DepthMaps, check_aspect, load_depth, save_depth


def depth_maps(T: int = 3, H: int = 8, W: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 20.0, size=(T, H, W)).astype(np.float32)


def depth_error(*args, match: str, **kwargs) -> str:
    with pytest.raises(DepthError) as info:
        load_depth(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert match in msg, msg
    return msg


def test_npy_3d_and_2d(tmp_path):
    d = depth_maps()
    np.save(tmp_path / "d.npy", d)
    out = load_depth(tmp_path / "d.npy", num_frames=3, size=(8, 10))
    assert isinstance(out, DepthMaps)
    assert out.depth.dtype == torch.float32 and out.valid.dtype == torch.bool
    assert out.depth.shape == (3, 8, 10) and out.valid.all()
    np.testing.assert_array_equal(out.depth.numpy(), d)
    np.save(tmp_path / "one.npy", d[0].astype(np.float64))
    one = load_depth(tmp_path / "one.npy")
    assert one.depth.shape == (1, 8, 10) and one.depth.dtype == torch.float32
    np.save(tmp_path / "chan.npy", d[:, None])  # (T, 1, H, W) as torch code saves it
    assert load_depth(tmp_path / "chan.npy").depth.shape == (3, 8, 10)


def test_npz_keys(tmp_path):
    d = depth_maps()
    np.savez(tmp_path / "a.npz", depth=d)
    np.savez(tmp_path / "megasam.npz", depths=d, images=np.zeros((3, 8, 10, 3), np.uint8), intrinsic=np.eye(3))
    np.savez(tmp_path / "single.npz", whatever=d)
    np.savez(tmp_path / "custom.npz", z=d, images=np.zeros(3))
    for name in ("a.npz", "megasam.npz", "single.npz"):
        np.testing.assert_array_equal(load_depth(tmp_path / name).depth.numpy(), d)
    np.testing.assert_array_equal(load_depth(tmp_path / "custom.npz", key="z").depth.numpy(), d)
    depth_error(tmp_path / "custom.npz", match="no 'depth' or 'depths'")
    depth_error(tmp_path / "a.npz", key="nope", match="no array 'nope'")


def test_disparity_not_accepted_silently(tmp_path):
    np.savez(tmp_path / "disp.npz", disparity=1.0 / depth_maps())
    depth_error(tmp_path / "disp.npz", match="holds 'disparity', not depth")
    assert load_depth(tmp_path / "disp.npz", key="disparity").depth.shape == (3, 8, 10)


def test_shape_mismatch_message(tmp_path):
    np.save(tmp_path / "d.npy", depth_maps(10, 64, 64))
    msg = depth_error(tmp_path / "d.npy", num_frames=12, size=(64, 64), match="10 frames of 64x64")
    assert "d.npy" in msg and "the video has 12 frames of 64x64" in msg
    depth_error(tmp_path / "d.npy", size=(32, 64), match="the video has 10 frames of 32x64")
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5), np.float32))
    depth_error(tmp_path / "bad.npy", match="shape (2, 3, 4, 5)")


def test_any_size_with_the_video_aspect_ratio():
    for size, video in [((360, 640), (720, 1280)), ((1080, 1920), (540, 960)), ((220, 518), (272, 640)),
                        ((720, 1280), (720, 1280)), ((641, 360), (1280, 720))]:
        check_aspect("d.npz", size, video)
    for size, video in [((368, 640), (720, 1280)), ((360, 360), (720, 1280)), ((640, 360), (720, 1280))]:
        with pytest.raises(DepthError) as info:
            check_aspect("d.npz", size, video)
        msg = f"depth file d.npz holds {size[0]}x{size[1]} maps but the video is {video[0]}x{video[1]}: the aspect ratios differ"
        assert str(info.value) == msg


def test_nan_and_non_positive_values(tmp_path):
    d = depth_maps(5)
    d[3, 0, :4] = np.nan
    d[3, 1, 0] = np.inf
    np.save(tmp_path / "nan.npy", d)
    msg = depth_error(tmp_path / "nan.npy", match="4 NaN and 1 infinite values in frame 3")
    assert "nan.npy" in msg
    d = depth_maps(5)
    d[2, 2, 2] = 0.0
    d[4, 0, 0] = -1.0
    np.save(tmp_path / "neg.npy", d)
    depth_error(tmp_path / "neg.npy", match="1 zero or negative values in frame 2 (and 1 more in later frames)")


def test_allow_invalid_marks_invalid(tmp_path):
    d = depth_maps()
    d[1, 0, 0] = np.nan
    d[2, 3, 3] = -2.0
    np.save(tmp_path / "d.npy", d)
    out = load_depth(tmp_path / "d.npy", allow_invalid=True)
    assert not out.valid[1, 0, 0] and not out.valid[2, 3, 3]
    assert int((~out.valid).sum()) == 2
    assert torch.isfinite(out.depth).all()
    assert (out.depth[out.valid] > 0).all() and (out.depth[~out.valid] == 0).all()


def test_mask_in_file(tmp_path):
    d = depth_maps()
    valid = np.ones_like(d, dtype=bool)
    d[0, 0, 0] = np.nan
    valid[0, 0, 0] = False
    valid[1, 1, 1] = False  # a finite value marked invalid stays invalid
    np.savez(tmp_path / "m.npz", depth=d, valid=valid)
    out = load_depth(tmp_path / "m.npz")
    np.testing.assert_array_equal(out.valid.numpy(), valid)
    np.savez(tmp_path / "m2.npz", depth=d, mask=valid.astype(np.uint8))
    np.testing.assert_array_equal(load_depth(tmp_path / "m2.npz").valid.numpy(), valid)
    valid[0, 0, 0] = True  # the NaN is now claimed valid -> error
    np.savez(tmp_path / "m3.npz", depth=d, valid=valid)
    depth_error(tmp_path / "m3.npz", match="1 NaN values in frame 0")
    np.savez(tmp_path / "m4.npz", depth=d, valid=valid[:2])
    depth_error(tmp_path / "m4.npz", match="mask of shape (2, 8, 10)")


def test_bad_files(tmp_path):
    depth_error(tmp_path / "missing.npz", match="does not exist")
    (tmp_path / "empty.npy").write_bytes(b"")
    depth_error(tmp_path / "empty.npy", match="empty")
    (tmp_path / "junk.npz").write_bytes(np.random.default_rng(0).bytes(100))
    depth_error(tmp_path / "junk.npz", match="not a NumPy")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04" + bytes(50))
    depth_error(tmp_path / "cut.npz", match="cannot read depth file")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    depth_error(tmp_path / "obj.npy", match="Python objects")
    np.save(tmp_path / "str.npy", np.array([["a", "b"], ["c", "d"]]))
    depth_error(tmp_path / "str.npy", match="not numbers")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_save_load_round_trip(tmp_path, dtype):
    d = torch.from_numpy(depth_maps())
    valid = torch.ones(d.shape, dtype=torch.bool)
    valid[0, :2] = False
    path = save_depth(tmp_path / "out.npz", d, valid, dtype=dtype)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
    with np.load(path) as z:
        assert z["depth"].dtype == np.dtype(dtype)
    out = load_depth(path, num_frames=3, size=(8, 10))
    tol = 0 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(out.depth[valid].numpy(), d[valid].numpy(), rtol=tol)
    assert torch.equal(out.valid, valid)


def test_save_failure_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        save_depth(tmp_path / "big.npz", np.full((1, 2, 2), 1e6, np.float32), dtype="float16")
    with pytest.raises(ValueError):
        save_depth(tmp_path / "bad.npz", np.ones((1, 2, 2)), valid=np.ones((3, 3), bool))
    assert list(tmp_path.iterdir()) == []
