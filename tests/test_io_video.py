"""Video I/O through real files and PyAV: round trips, options, streaming, bad inputs, atomicity."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from vnvs.errors import VideoError
from vnvs.io.video import (
    VideoWriter,
    iter_video_chunks,
    plan_transform,
    probe_video,
    read_video,
    write_video,
)


def moving_pattern(T: int = 24, H: int = 48, W: int = 64) -> torch.Tensor:
    """Smooth colour pattern drifting right by 2 px per frame: ``(T, 3, H, W)`` in [0, 1]."""
    y, x = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    t = torch.arange(T).float()[:, None, None]
    r = 0.5 + 0.4 * torch.sin((x - 2 * t) / 10.0)
    g = (y / H).expand(T, H, W)
    b = 0.5 + 0.4 * torch.cos((x + y - t) / 12.0)
    return torch.stack([r, g, b], dim=1).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 24-frame 48x64 clip at 24 fps and the frames it was written from."""
    frames = moving_pattern()
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames, fps=24)
    return path, frames


def one_line_video_error(fn, *args, match: str | None = None, **kwargs) -> str:
    with pytest.raises(VideoError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg
    if match is not None:
        assert match in msg, msg
    return msg


# -- round trips -----------------------------------------------------------------------------------


def test_round_trip_psnr_fps_and_probe(clip):
    path, frames = clip
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (24, 48, 64)
    assert info.fps == pytest.approx(24.0)
    assert info.duration == pytest.approx(1.0, abs=0.05)
    video = read_video(path)
    assert video.frames.shape == (24, 3, 48, 64)
    assert video.frames.dtype == torch.float32
    assert 0.0 <= float(video.frames.min()) and float(video.frames.max()) <= 1.0
    assert video.fps == pytest.approx(24.0)
    assert video.transform.is_identity
    assert psnr(video.frames, frames) > 30.0


def test_uint8_numpy_input_and_ntsc_rate(tmp_path):
    frames = (moving_pattern(6) * 255).round().to(torch.uint8).numpy()
    path = write_video(tmp_path / "u8.mp4", frames, fps=30000 / 1001)
    assert probe_video(path).fps == pytest.approx(29.97, abs=1e-3)
    back = read_video(path).frames
    assert psnr(back, torch.from_numpy(frames).float() / 255) > 30.0


def test_stride_max_frames_start(clip):
    path, frames = clip
    v = read_video(path, stride=5)
    assert v.num_frames == 5 and v.frame_indices == [0, 5, 10, 15, 20]
    assert v.fps == pytest.approx(24 / 5)
    assert psnr(v.frames, frames[::5]) > 30.0
    v = read_video(path, stride=3, max_frames=4, start=2)
    assert v.frame_indices == [2, 5, 8, 11] and v.frames.shape[0] == 4
    assert psnr(v.frames, frames[2:12:3]) > 30.0
    one_line_video_error(read_video, path, start=100, match="start=100")
    one_line_video_error(read_video, path, stride=0, match="stride")


def test_resize_to_multiple_keeps_aspect(clip):
    path, _ = clip
    v = read_video(path, size=32)  # short side 32 -> 32x43 (aspect 4:3 up to rounding)
    assert v.size == (32, 43)
    v = read_video(path, size=(30, 40), multiple=16, fit="resize")
    assert v.size == (32, 48)
    assert v.transform.scale_y == pytest.approx(32 / 48) and v.transform.scale_x == pytest.approx(48 / 64)
    v = read_video(path, size=40, multiple=16, fit="resize_crop")  # 40x53 -> 48x48, no distortion
    assert v.size == (48, 48)
    t = v.transform
    assert t.scale_x == pytest.approx(t.scale_y, rel=0.02)
    assert t.crop_top == 0 and t.crop_left == (t.resized_size[1] - 48) // 2


def test_crop_is_exact_centre_crop(clip):
    path, _ = clip
    full = read_video(path).frames
    v = read_video(path, multiple=20, fit="crop")  # 48x64 -> 40x60, centred
    assert v.size == (40, 60)
    t = v.transform
    assert (t.crop_top, t.crop_left) == (4, 2)
    torch.testing.assert_close(v.frames, full[:, :, 4:44, 2:62])
    one_line_video_error(read_video, path, size=(64, 64), fit="crop", match="larger than the frame")


def test_transform_adapts_intrinsics():
    t = plan_transform((48, 64), (24, 24), fit="resize_crop")  # resize by 1/2 to 24x32, crop 4 cols
    assert t.resized_size == (24, 32) and (t.crop_top, t.crop_left) == (0, 4)
    K = torch.tensor([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
    K2 = t.adapt_intrinsics(K)
    # The image centre (31.5, 23.5) maps to the centre of the 24x24 output (11.5, 11.5).
    torch.testing.assert_close(K2, torch.tensor([[25.0, 0.0, 11.5], [0.0, 25.0, 11.5], [0.0, 0.0, 1.0]]))


def test_chunks_equal_full_read(clip):
    path, _ = clip
    opts = dict(stride=2, size=(32, 32), multiple=16, fit="resize_crop")
    full = read_video(path, **opts).frames
    chunks = list(iter_video_chunks(path, 5, **opts))
    assert [c.shape[0] for c in chunks] == [5, 5, 2]
    torch.testing.assert_close(torch.cat(chunks), full, rtol=0, atol=0)


def test_odd_size_padded_by_edge_replication(tmp_path):
    frames = moving_pattern(4, 33, 47)
    path = write_video(tmp_path / "odd.mp4", frames, fps=10)
    info = probe_video(path)
    assert (info.height, info.width) == (34, 48)  # padded to even
    back = read_video(path).frames
    assert psnr(back[:, :, :33, :47], frames) > 30.0
    # The extra row / column repeat the edge.
    assert psnr(back[:, :, 33, :47], frames[:, :, 32, :]) > 30.0
    assert psnr(back[:, :, :33, 47], frames[:, :, :, 46]) > 30.0
    cropped = read_video(path, size=(33, 47), fit="crop")  # the documented way back
    assert cropped.size == (33, 47)
    assert (cropped.transform.crop_top, cropped.transform.crop_left) == (0, 0)
    torch.testing.assert_close(cropped.frames, back[:, :, :33, :47])


def test_display_rotation_applied(tmp_path):
    path = tmp_path / "rot.mp4"
    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = 255  # white square top-left as stored
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.set_display_rotation(90)  # counter-clockwise
        for _ in range(2):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = probe_video(path)
    assert (info.height, info.width, info.rotation) == (48, 32, 90)
    v = read_video(path)
    assert v.size == (48, 32)
    assert float(v.frames[0, :, 44, 3].mean()) > 0.9  # top-left turned ccw -> bottom-left
    assert float(v.frames[0, :, 3, 3].mean()) < 0.1


# -- writer atomicity ------------------------------------------------------------------------------


def test_video_writer_streams_and_renames(tmp_path):
    frames = moving_pattern(10)
    out = tmp_path / "w.mp4"
    with VideoWriter(out, fps=12) as w:
        w.write(frames[:4])
        assert not out.exists()
        w.write(frames[4])  # a single (3, H, W) frame
        w.write(frames[5:])
    assert [p.name for p in tmp_path.iterdir()] == ["w.mp4"]
    assert probe_video(out).num_frames == 10
    assert read_video(out).fps == pytest.approx(12.0)


def test_video_writer_failure_leaves_nothing(tmp_path):
    frames = moving_pattern(6)
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "fail.mp4", fps=12) as w:
            w.write(frames[:3])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):  # a bad chunk mid-way also removes the temporary file
        with VideoWriter(tmp_path / "fail2.mp4", fps=12) as w:
            w.write(frames[:3])
            w.write(frames[:3, :, :10])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError):
        write_video(tmp_path / "none.mp4", frames, fps=0)
    assert list(tmp_path.iterdir()) == []


# -- bad inputs ------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    msg = one_line_video_error(read_video, tmp_path / "nope.mp4", match="does not exist")
    assert "nope.mp4" in msg
    one_line_video_error(probe_video, tmp_path / "nope.mp4", match="nope.mp4")
    one_line_video_error(read_video, tmp_path, match="folder")


def test_random_bytes(tmp_path):
    p = tmp_path / "random.mp4"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    one_line_video_error(read_video, p, match="random.mp4")
    one_line_video_error(probe_video, p, match="random.mp4")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    one_line_video_error(read_video, p, match="empty")


def test_text_renamed_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    one_line_video_error(read_video, p, match="not a video")


def test_no_video_stream(tmp_path):
    p = tmp_path / "sound.wav"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for pkt in s.encode(frame):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    one_line_video_error(read_video, p, match="no video stream")
    one_line_video_error(probe_video, p, match="no video stream")


def test_no_decodable_frames(clip, tmp_path):
    data = bytearray(clip[0].read_bytes())
    i = data.find(b"mdat") + 4
    data[i:] = bytes(len(data) - i)  # index intact, every frame's data zeroed
    p = tmp_path / "zeros.mp4"
    p.write_bytes(bytes(data))
    one_line_video_error(read_video, p, match="no decodable frames")


def test_truncated_half(clip, tmp_path):
    # The smooth clip's first (key) frame holds most of its bytes: half the file breaks frame 0.
    data = clip[0].read_bytes()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    one_line_video_error(read_video, p, match="truncated")
    # Noise frames all cost about the same bytes: half the file decodes about half the frames.
    noise = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    data = write_video(tmp_path / "noise.mp4", noise, fps=24, crf=30).read_bytes()
    p.write_bytes(data[: len(data) // 2])
    msg = one_line_video_error(read_video, p, match="truncated: decoded")
    assert msg.endswith(" of 24 frames"), msg
    with pytest.raises(VideoError, match="truncated"):
        list(iter_video_chunks(p, 4))
    # Streaming yields what decodes before reporting the truncation.
    got = []
    with pytest.raises(VideoError):
        for chunk in iter_video_chunks(p, 2):
            got.append(chunk)
    assert 0 < sum(c.shape[0] for c in got) < 24


def test_truncated_without_index(tmp_path):
    # Written without faststart: the index (moov) is at the end, so half the file has none.
    p = tmp_path / "noindex.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for img in (moving_pattern(8, 32, 32) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy():
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    one_line_video_error(read_video, p, match="truncated")


def test_seeking_reads_the_frames_of_sequential_decoding(real_clip, monkeypatch):
    """Start offsets and frame selections seek to a keyframe; the frames and indices equal decoding from frame 0."""
    from vnvs.io import read_frames_at
    from vnvs.io import video as video_mod

    full = read_video(real_clip, size=48).frames
    decoded = []
    real_decode = video_mod._decode

    def counting(*a, **k):
        for f in real_decode(*a, **k):
            decoded.append(1)
            yield f

    monkeypatch.setattr(video_mod, "_decode", counting)
    for start, stride, n in [(140, 1, 12), (29, 7, None), (249, 1, None), (31, 3, 5)]:
        decoded.clear()
        v = read_video(real_clip, size=48, start=start, stride=stride, max_frames=n)
        ref = full[start::stride][:n]
        assert torch.equal(v.frames, ref) and v.frame_indices == list(range(start, 250, stride))[: len(ref)]
    assert len(decoded) < 250 - 137  # the last read started at a keyframe near the end, not at frame 0
    idx = [3, 4, 100, 101, 180, 247]
    decoded.clear()
    frames, _ = read_frames_at(real_clip, idx, size=48)
    assert sorted(frames) == idx and len(decoded) < 200
    for i in idx:
        assert torch.equal(torch.from_numpy(frames[i]).permute(2, 0, 1).float() / 255, full[i])
