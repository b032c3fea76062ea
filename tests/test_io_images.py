"""PNG round trip, contact sheets and side-by-side layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vnvs.errors import InputError
from vnvs.io.images import contact_sheet, read_png, side_by_side, write_contact_sheet, write_png


def solid_video(T: int, H: int, W: int, values) -> torch.Tensor:
    """``(T, 3, H, W)`` where frame ``t`` is uniformly ``values[t]`` (grey)."""
    return torch.tensor(values, dtype=torch.float32)[:T, None, None, None].expand(T, 3, H, W).clone()


def test_png_round_trip(tmp_path):
    img = torch.rand(3, 17, 23, generator=torch.Generator().manual_seed(0))
    path = write_png(tmp_path / "a.png", img)
    back = read_png(path)
    assert back.shape == (3, 17, 23) and back.dtype == torch.float32
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit quantisation only; RGB order kept
    u8 = (img * 255).round().to(torch.uint8).numpy()
    torch.testing.assert_close(read_png(write_png(tmp_path / "b.png", u8)), back)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_png_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_png(tmp_path / "none.png")
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        read_png(tmp_path / "x.png")
    with pytest.raises(ValueError):
        write_png(tmp_path / "bad.png", torch.zeros(4, 5, 5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_contact_sheet_layout_and_sampling():
    a = solid_video(9, 10, 12, [i / 10 for i in range(9)])
    b = solid_video(3, 5, 6, [0.91, 0.92, 0.93])  # half-height row: resized to height 10
    pad, h = 2, 10
    sheet = contact_sheet([a, b], columns=5, pad=pad, background=0.0)
    assert sheet.shape == (3, pad + 2 * (h + pad), pad + 5 * (12 + pad))
    # Row 0 samples frames 0, 2, 4, 6, 8 evenly; cell (r, c) sits at y = p + r (h + p), x = p + c (w + p).
    for c, t in enumerate([0, 2, 4, 6, 8]):
        x = pad + c * (12 + pad)
        assert torch.allclose(sheet[:, pad : pad + h, x : x + 12], torch.tensor(t / 10))
    # Row 1 holds all 3 frames (fewer than columns), each 10x12 after resizing.
    y = pad + h + pad
    for c, v in enumerate([0.91, 0.92, 0.93]):
        x = pad + c * (12 + pad)
        assert torch.allclose(sheet[:, y : y + h, x : x + 12], torch.tensor(v))
    assert (sheet[:, y:, pad + 3 * (12 + pad) :] == 0).all()  # unused cells stay background
    assert (sheet[:, :pad] == 0).all()


def test_contact_sheet_labels(tmp_path):
    a = solid_video(4, 24, 32, [0.5] * 4)
    plain = contact_sheet([a, a], columns=4, pad=4)
    labelled = contact_sheet([a, a], columns=4, pad=4, labels=["source", "orbit 30"])
    L = labelled.shape[-1] - plain.shape[-1]
    assert L > 20 and labelled.shape[-2] == plain.shape[-2]
    strip = labelled[:, :, :L]
    assert (strip < 0.5).any(axis=0).sum() > 20  # dark text drawn on the white strip
    # Text of row 0 stays within row 0's band; frames are shifted right by the strip.
    ink_rows = torch.nonzero((strip < 0.5).any(dim=0).any(dim=1)).flatten()
    assert ink_rows.min() >= 0 and ink_rows.max() < 4 + 2 * (24 + 4)
    torch.testing.assert_close(labelled[:, :, L:], plain)
    path = write_contact_sheet(tmp_path / "sheet.png", [a, a], columns=4, labels=["a", "b"])
    assert read_png(path).shape == (3, 4 + 2 * 28, contact_sheet([a, a], columns=4, labels=["a", "b"]).shape[-1])


def test_side_by_side():
    a = solid_video(4, 20, 30, [0.1, 0.2, 0.3, 0.4])
    b = solid_video(2, 10, 10, [0.7, 0.8])  # resized to 20x20, holds its last frame
    out = side_by_side([a, b], pad=3, background=1.0)
    assert out.shape == (4, 3, 20, 30 + 3 + 20)
    torch.testing.assert_close(out[:, :, :, :30], a)
    assert (out[:, :, :, 30:33] == 1.0).all()
    assert torch.allclose(out[1, :, :, 33:], torch.tensor(0.8))
    assert torch.allclose(out[3, :, :, 33:], torch.tensor(0.8))
    small = side_by_side([a, b], pad=0, height=10)
    assert small.shape == (4, 3, 10, 15 + 10)
    u8 = side_by_side([(a * 255).round().to(torch.uint8), np.zeros((4, 3, 20, 8), np.uint8)], pad=0)
    assert u8.dtype == torch.float32 and u8.shape == (4, 3, 20, 38)
