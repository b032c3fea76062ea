"""A real camera-shot clip through the command line: decoding, rendering and training-pair preparation."""

import json

import numpy as np

from vnvs.cli import main
from vnvs.data.dataset import ShardDataset
from vnvs.io import probe_video, read_video


def test_real_clip_decodes(real_clip):
    info = probe_video(real_clip)
    assert (info.height, info.width, info.num_frames) == (272, 640, 250) and abs(info.fps - 25) < 1e-6
    video = read_video(real_clip, stride=5, max_frames=8, size=128, multiple=16)
    assert video.frames.shape == (8, 3, 128, 304) and video.frame_indices == list(range(0, 40, 5))
    assert 0.05 < float(video.frames.std()) < 0.5  # real content, not a blank frame


def test_render_real_clip(real_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")
    # no depth model yet: a ground-plane-like depth (far at the top, near at the bottom) per source frame
    rows = np.linspace(8.0, 2.0, 272, dtype=np.float32)[:, None].repeat(640, 1)
    np.save(tmp_path / "depth.npy", np.broadcast_to(rows, (250, 272, 640)).copy())
    code = main(["render", str(real_clip), "--depth", str(tmp_path / "depth.npy"), "--stride", "10", "--size", "96",
                 "--trajectory", "orbit:10", "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    novel = read_video(tmp_path / "out" / "novel.mp4").frames
    assert novel.shape == (25, 3, 96, 226)
    src = read_video(real_clip, stride=10, size=96).frames
    assert (novel[0] - src[0, :, :, :226]).abs().mean() < 0.05  # frame 0 of a gradual orbit is the source view


def test_prepare_flow_pairs_from_real_clip(real_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")
    code = main(["prepare", "--input", str(real_clip), "--output", str(tmp_path), "--kind", "flow-pairs",
                 "--size", "64", "--clip-frames", "4", "--pairs-per-video", "3", "--max-offset", "6", "--workers", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out.splitlines()[0])
    # every candidate is either kept or dropped with a counted reason
    assert summary["samples"] >= 1 and summary["samples"] + sum(summary["dropped"].values()) == 3
    item = next(iter(ShardDataset(tmp_path)))
    assert item["control"].shape == (4, 9, 64, 64)
    assert float(item["control"][:, 8].mean()) > 0.3  # most target pixels receive a source pixel


def _render_with_depth(real_clip, depth, out, capsys):
    code = main(["render", str(real_clip), "--depth", str(depth), "--stride", "5", "--max-frames", "6", "--size", "48",
                 "--generator", "warp", "--trajectory", "orbit:10", "--output", str(out)])
    return code, capsys.readouterr().err


def test_render_real_clip_with_half_size_depth(real_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")
    # a ground-plane-like depth at half the video's 272x640, as depth models often give, and the same at full size
    rows = np.linspace(8.0, 2.0, 136, dtype=np.float32)[:, None].repeat(320, 1)
    half = np.broadcast_to(rows, (6, 136, 320)).copy()
    np.save(tmp_path / "half.npy", half)
    np.save(tmp_path / "full.npy", half.repeat(2, axis=1).repeat(2, axis=2))
    for name in ("half", "full"):
        code, err = _render_with_depth(real_clip, tmp_path / f"{name}.npy", tmp_path / name, capsys)
        assert code == 0, err
    novel = read_video(tmp_path / "half" / "novel.mp4").frames
    assert novel.shape == (6, 3, 48, 114)  # 272x640 -> 48x113, padded to even by the encoder
    # resampled with nearest sampling to the decoded frames: the same depth as the full-size file
    assert (tmp_path / "half" / "novel.mp4").read_bytes() == (tmp_path / "full" / "novel.mp4").read_bytes()


def test_render_refuses_depth_of_another_aspect_ratio(real_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")
    np.save(tmp_path / "depth.npy", np.ones((6, 140, 320), np.float32))
    code, err = _render_with_depth(real_clip, tmp_path / "depth.npy", tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "depth.npy holds 140x320 maps but the video is 272x640: the aspect ratios differ" in err, err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
