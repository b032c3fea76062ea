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
