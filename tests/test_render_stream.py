"""`vnvs render` on user videos: streamed depth files, depth models, camera inputs, chunking and errors."""

from __future__ import annotations

import json
import logging

import av
import numpy as np
import pytest
import torch

import vnvs.apps.render as render_video
from vnvs.apps import source_stream
from vnvs.cameras import Cameras
from vnvs.cameras.source import read_intrinsics, source_cameras
from vnvs.cameras.trajectory import Trajectory
from vnvs.cli import main
from vnvs.errors import DepthError, InputError
from vnvs.estimators.depth import DepthScaleAligner, align_depth_scale
from vnvs.generators.windows import StreamWindows, run_windows, window_starts
from vnvs.io import load_depth, plan_transform, read_video, write_video
from vnvs.io.depth import DepthReader
from vnvs.synthetic import generate_scene, render_source_video
from vnvs.utils.oom import OomHalving

PRESETS = ["orbit:20", "arc:-10", "dolly:0.3", "pan:10", "tilt:-5", "zoom:1.5", "translate:0.1,0,0.05",
           "spiral:10", "bullet:20"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame H.264 file of a procedural scene (moving camera) with its exact depth and cameras."""
    root = tmp_path_factory.mktemp("stream_clip")
    video = render_source_video(generate_scene(5), num_frames=12, size=(40, 56), seed=5)
    write_video(root / "clip.mp4", video.frames, fps=12)
    np.save(root / "depth.npy", video.depth.numpy())
    Trajectory(video.w2c, video.K, 40, 56).save(root / "cameras.json")
    return root, video


def run(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def expect_error(args, capsys, pattern, out):
    code, _, err = run(args, capsys)
    assert code == 2, err
    # a warning may come first (the default renderer is not the shipped model's training renderer)
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("warning: "))
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert pattern in err, err
    assert not out.exists(), "a failed run left output behind"
    assert not list(out.parent.glob(f".{out.name}.*")), "a failed run left a temporary folder behind"


# ---- depth files read in pieces -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["npy", "npz", "npz_compressed", "npz_mask_4d"])
def test_depth_reader_matches_load_depth(tmp_path, layout):
    rng = np.random.default_rng(0)
    depth = (rng.random((11, 6, 9)) + 0.5).astype(np.float32)
    mask = rng.random((11, 6, 9)) > 0.3
    path = tmp_path / ("d.npy" if layout == "npy" else "d.npz")
    if layout == "npy":
        np.save(path, depth)
    elif layout == "npz":
        np.savez(path, depth=depth)
    elif layout == "npz_compressed":
        np.savez_compressed(path, depths=depth)
    else:
        np.savez_compressed(path, depth=depth[:, None], valid=mask)
    full = load_depth(path)
    with DepthReader(path) as reader:
        assert reader.num_frames == 11 and reader.size == (6, 9)
        parts = [reader.read(a, min(a + 4, 11)) for a in range(0, 11, 4)]
        assert torch.equal(torch.cat([p.depth for p in parts]), full.depth)
        assert torch.equal(torch.cat([p.valid for p in parts]), full.valid)
        back = reader.read(1, 3)  # going back restarts a compressed stream
        assert torch.equal(back.depth, full.depth[1:3])
        with pytest.raises(DepthError, match="frames 10:12"):
            reader.read(10, 12)


def test_depth_reader_reports_the_bad_frame(tmp_path):
    depth = np.ones((6, 4, 4), np.float32)
    depth[4, 1, 1] = np.inf
    np.savez_compressed(tmp_path / "d.npz", depth=depth)
    with DepthReader(tmp_path / "d.npz") as reader:
        reader.read(0, 3)
        with pytest.raises(DepthError, match="infinite values in frame 4"):
            reader.read(3, 6)
    with pytest.raises(DepthError, match="not a NumPy"):
        (tmp_path / "x.npz").write_text("hello")
        DepthReader(tmp_path / "x.npz")


def test_streamed_alignment_equals_one_call():
    video = render_source_video(generate_scene(2, ), num_frames=9, size=(48, 48), seed=2, motion="gentle")
    scale = torch.exp(torch.randn(9, generator=torch.Generator().manual_seed(0)) * 0.3)
    noisy = video.depth * scale[:, None, None]
    whole, s_whole, _ = align_depth_scale(noisy, None, video.frames)
    aligner = DepthScaleAligner()
    parts = [aligner(noisy[a:a + 4], None, video.frames[a:a + 4]) for a in range(0, 9, 4)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), s_whole)


# ---- cameras --------------------------------------------------------------------------------------


def test_intrinsics_files(tmp_path):
    (tmp_path / "k.txt").write_text("100 0 50\n0 90 20\n0 0 1\n")
    K = read_intrinsics(tmp_path / "k.txt", (40, 100))
    assert K.tolist() == [[100, 0, 50], [0, 90, 20], [0, 0, 1]]
    (tmp_path / "k4.txt").write_text("100 90 50 20")
    assert torch.equal(read_intrinsics(tmp_path / "k4.txt", (40, 100)), K)
    (tmp_path / "k.json").write_text(json.dumps({"K": K.tolist(), "width": 50, "height": 20}))
    assert read_intrinsics(tmp_path / "k.json", (40, 100))[0, 0] == 200
    for bad in ('{"fx": 1}', "1 2 3", '{"fx": -5, "fy": 5, "cx": 1, "cy": 1}'):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(InputError, match="bad.json"):
            read_intrinsics(tmp_path / "bad.json", (40, 100))


def test_source_cameras_from_file_follow_stride_and_resize(clip):
    root, video = clip
    tf = plan_transform((40, 56), 20)
    cams = source_cameras(6, [0, 2, 4, 6, 8, 10], 12, (40, 56), tf, cameras=root / "cameras.json")
    torch.testing.assert_close(cams.w2c, video.w2c[::2].float())
    torch.testing.assert_close(cams.K, tf.adapt_intrinsics(video.K[::2].float()))
    static = source_cameras(6, range(6), 12, (40, 56), tf, fov=90)
    assert torch.equal(static.w2c, torch.eye(4).expand(6, 4, 4))
    assert abs(float(static.K[0, 0, 0]) - (56 / 2) * 20 / 40) < 1e-4  # f = W/2 at 90 degrees, then resized
    with pytest.raises(InputError, match="12 cameras but the video has 13 frames"):
        source_cameras(5, range(5), 13, (40, 56), tf, cameras=root / "cameras.json")


# ---- rendering ------------------------------------------------------------------------------------


def _novel(path):
    return read_video(path).frames


def test_chunk_size_does_not_change_the_result(clip, tmp_path, capsys):
    root, _ = clip
    outs = []
    for chunk in (3, 5, 64):
        out = tmp_path / f"c{chunk}"
        code, _, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory", "orbit:15",
                            "--generator", "warp", "--chunk-frames", chunk, "--output", out], capsys)
        assert code == 0, err
        outs.append(_novel(out / "novel.mp4"))
    assert outs[0].shape == (12, 3, 40, 56)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_source_frames_are_released_as_rendering_moves_on(clip, tmp_path, capsys, monkeypatch):
    root, video = clip
    long = video.frames.repeat(4, 1, 1, 1)  # 48 frames
    write_video(tmp_path / "long.mp4", long, fps=12)
    np.save(tmp_path / "long.npy", video.depth.repeat(4, 1, 1).numpy())
    held = []
    put = source_stream._SourceBuffer.put

    def spy(self, start, frames, depth, valid):
        put(self, start, frames, depth, valid)
        held.append(len(self.items))

    monkeypatch.setattr(source_stream._SourceBuffer, "put", spy)
    for spec in ("orbit:10", "bullet:10@30"):
        held.clear()
        code, out, err = run(["render", tmp_path / "long.mp4", "--depth", tmp_path / "long.npy", "--trajectory", spec,
                              "--generator", "warp", "--chunk-frames", 4, "--output", tmp_path / "o"], capsys)
        assert code == 0, err
        assert json.loads(out.splitlines()[0])["frames"] == 48
        assert max(held) <= 8, (spec, held)  # never more than two chunks, whatever the length


def test_time_going_back_uses_spilled_frames(clip, tmp_path, capsys):
    root, video = clip
    src = Cameras(torch.eye(4).repeat(12, 1, 1), video.K.float(), 40, 56)
    traj = Trajectory(src.w2c, src.K, 40, 56, time_index=torch.arange(11, -1, -1))
    traj.save(tmp_path / "reverse.json")
    code, _, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--trajectory",
                        tmp_path / "reverse.json", "--generator", "warp", "--chunk-frames", 4,
                        "--intrinsics", _k_file(tmp_path, video.K[0]), "--output", tmp_path / "o"], capsys)
    assert code == 0, err
    novel = _novel(tmp_path / "o" / "novel.mp4")
    source = _novel(root / "clip.mp4")
    # Target camera == source camera: frame i is source frame 11 - i, up to splatting and encoding.
    err_rev = (novel - source.flip(0)).abs().mean()
    err_fwd = (novel - source).abs().mean()
    assert err_rev < 0.03 and err_rev < err_fwd / 2, (err_rev, err_fwd)
    # the spilled buffers are working files: they stay out of the output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".vnvs-output.json", "cameras.json", "conditioning.mp4",
                                                                  "novel.mp4", "side_by_side.mp4", "trajectory.json"]


def _k_file(tmp_path, K):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"K": K.tolist()}))
    return path


def test_cameras_file_places_the_trajectory(clip, tmp_path, capsys):
    root, video = clip
    code, _, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--cameras", root / "cameras.json",
                        "--trajectory", "translate:0,0,0", "--generator", "warp", "--output", tmp_path], capsys)
    assert code == 0, err
    traj = Trajectory.load(tmp_path / "trajectory.json")
    torch.testing.assert_close(traj.w2c, video.w2c.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(traj.K, video.K.float(), atol=1e-3, rtol=0)
    novel, source = _novel(tmp_path / "novel.mp4"), _novel(root / "clip.mp4")
    assert (novel - source).abs().mean() < 0.03


def test_five_frame_clip_and_saved_depth(clip, tmp_path, capsys):
    root, video = clip
    code, out, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--max-frames", 5,
                          "--save-depth", "--output", tmp_path], capsys)
    assert code == 0, err
    summary = json.loads(out.splitlines()[0])
    assert summary["frames"] == 5 and "depth.npz" in summary["files"]
    saved = load_depth(tmp_path / "depth.npz")
    torch.testing.assert_close(saved.depth, video.depth[:5])
    assert read_video(tmp_path / "side_by_side.mp4").frames.shape[0] == 5


def _register(monkeypatch, name, cls):
    original = render_video.get_generator
    monkeypatch.setattr(render_video, "get_generator", lambda n=None, **kw: cls() if n == name else original(n, **kw))


def test_windowed_generator_is_blended_and_covers_every_frame(clip, tmp_path, capsys, monkeypatch):
    root, _ = clip
    calls = []

    class Windowed:
        name = "windowed"
        window = 5

        def __call__(self, control, *, seed=0):
            calls.append(control.shape[0])
            assert control.shape[0] <= 5
            return control[:, 5:8]  # the warped frame: consistent across windows, so blending is exact

    _register(monkeypatch, "windowed", Windowed)
    outs = {}
    for gen in ("windowed", "warp"):
        code, _, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--generator", gen,
                            "--output", tmp_path / gen], capsys)
        assert code == 0, err
        outs[gen] = _novel(tmp_path / gen / "novel.mp4")
    assert len(calls) > 2 and sum(calls) > 12  # overlapping windows
    assert (outs["windowed"] - outs["warp"]).abs().max() < 2 / 255


def test_out_of_memory_halves_the_chunk(clip, tmp_path, capsys, monkeypatch, caplog):
    root, _ = clip
    sizes = []

    class Hungry:
        name = "hungry"

        def __call__(self, control, *, seed=0):
            sizes.append(control.shape[0])
            if control.shape[0] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return control[:, 5:8]

    _register(monkeypatch, "hungry", Hungry)
    code, out, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--generator", "hungry",
                          "--chunk-frames", 12, "--output", tmp_path], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["frames"] == 12
    assert sizes == [12, 6, 3, 3, 3, 3]  # the halved size stays for the rest of the run
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "vnvs.utils.oom", caplog.records
    assert "generator hungry ran out of GPU memory on 12 frames; retrying 6 frames" in warnings[0].getMessage()


@pytest.mark.parametrize("window,overlap", [(4, 1), (9, 2), (6, 3), (5, 0)])
def test_streamed_windows_blend_as_run_windows_does(window, overlap):
    T = window + 3 * (window - overlap)  # the windows of run_windows start where the stream's do
    x = torch.randn(T, 2, generator=torch.Generator().manual_seed(0))

    def fn(chunk, seed):  # windows disagree on their shared frames
        return chunk + seed

    windows = StreamWindows(T, window, overlap)
    parts, starts = [], []
    while (span := windows.next()) is not None:
        s, e = span
        starts.append(s)
        out = windows.blend(fn(x[s:e], s))
        assert out.shape[0] <= e - s
        parts.append(out)
    assert starts == window_starts(T, window, overlap)
    assert torch.equal(torch.cat(parts), run_windows(fn, x, window, overlap))


def test_streamed_windows_end_early():
    windows = StreamWindows(20, window=8, overlap=2)
    assert windows.next() == (0, 8) and windows.blend(torch.zeros(8)).shape[0] == 6
    windows.end_at(9)  # the stream ends inside the next window's shared frames
    assert windows.next() == (6, 9)
    assert torch.equal(windows.blend(torch.zeros(3)), torch.zeros(3)) and windows.next() is None
    with pytest.raises(ValueError, match="overlap"):
        StreamWindows(10, window=4, overlap=3)


def test_out_of_memory_retries_do_not_nest():
    calls = []

    def inner(a, b):
        calls.append(b - a)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    inner_retry, outer_retry = OomHalving(what="inner"), OomHalving(what="outer")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        outer_retry.run_pieces(lambda a, b: inner_retry.run_pieces(inner, a, b), 0, 8)
    assert calls == [8, 4, 2, 1]  # the inner retry halved down to one frame; the outer one gave up at once
    assert outer_retry.size is None and inner_retry.size == 1


# ---- a real camera-shot clip with a depth model and with depth files ------------------------------


@pytest.fixture(scope="module")
def real_with_model_depth(real_clip, tiny_depth_model, tmp_path_factory):
    """The real clip rendered once with the tiny random depth model, keeping the depth it used."""
    out = tmp_path_factory.mktemp("real_model")
    code = main(["render", str(real_clip), "--depth", str(tiny_depth_model), "--depth-size", "56", "--max-frames", "6",
                 "--stride", "5", "--size", "48", "--save-depth", "--trajectory", "orbit:10", "--output", str(out)])
    assert code == 0
    return out


def test_real_clip_with_depth_model(real_with_model_depth):
    out = real_with_model_depth
    summary = read_video(out / "novel.mp4")
    assert summary.frames.shape == (6, 3, 48, 114)  # 272x640 -> 48 x 113, padded to even by the encoder
    depth = load_depth(out / "depth.npz")
    assert depth.depth.shape == (6, 48, 113) and depth.valid.float().mean() > 0.5


@pytest.mark.parametrize("spec", PRESETS)
def test_real_clip_every_preset(real_clip, tiny_depth_model, real_with_model_depth, tmp_path, spec, capsys):
    depth_file = real_with_model_depth / "depth.npz"
    for i, depth in enumerate((depth_file, tiny_depth_model)):
        out = tmp_path / str(i)
        code, stdout, err = run(["render", real_clip, "--depth", depth, "--depth-size", 56, "--max-frames", 6,
                                 "--stride", 5, "--size", 48, "--trajectory", spec, "--output", out], capsys)
        assert code == 0, err
        summary = json.loads(stdout.splitlines()[0])
        assert summary["frames"] == 6 and 0.2 < summary["coverage"] <= 1.0, summary
        assert summary["depth_kind"] == ("metric" if i == 0 else "relative")
        assert read_video(out / "novel.mp4").frames.shape[0] == 6


# ---- errors ---------------------------------------------------------------------------------------


def test_errors(clip, tmp_path, capsys, monkeypatch):
    root, video = clip
    out = tmp_path / "out"
    base = ["render", root / "clip.mp4", "--output", out]
    depth = ["--depth", root / "depth.npy"]
    expect_error(base + depth + ["--trajectory", "orbit:120"], capsys, "behind the scene", out)
    expect_error(base + depth + ["--trajectory", "dolly:1.5"], capsys, "behind the scene", out)
    expect_error(base + depth + ["--trajectory", "pan:100"], capsys, "away from the scene", out)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expect_error(base + ["--depth", "no-such-org/no-such-depth-model"], capsys, "no-such-org/no-such-depth-model", out)
    expect_error(base + ["--depth", "no-such-org/no-such-depth-model"], capsys, "a depth file with one map per frame", out)
    np.save(tmp_path / "short.npy", video.depth[:7].numpy())
    expect_error(base + ["--depth", tmp_path / "short.npy"], capsys, "holds 7 maps", out)
    bad = video.depth.clone()
    bad[9, 3, 3] = float("nan")
    np.savez_compressed(tmp_path / "nan.npz", depth=bad.numpy())
    expect_error(base + ["--depth", tmp_path / "nan.npz", "--chunk-frames", 4], capsys, "NaN values in frame 9", out)
    expect_error(base + depth + ["--intrinsics", tmp_path / "none.json"], capsys, "none.json", out)
    expect_error(base + depth + ["--fov", "200"], capsys, "fov must be between 1 and 179", out)
    empty = tmp_path / "noframes.mp4"
    with av.open(str(empty), "w") as container:
        container.add_stream("h264", rate=10)
    expect_error(["render", empty, "--output", out] + depth, capsys, "noframes.mp4", out)


def test_failure_keeps_existing_output_untouched(clip, tmp_path, capsys):
    root, video = clip
    out = tmp_path / "out"
    out.mkdir()
    (out / "novel.mp4").write_text("an earlier result")
    bad = video.depth.clone()
    bad[11] = -1.0
    np.save(tmp_path / "neg.npy", bad.numpy())
    code, _, err = run(["render", root / "clip.mp4", "--depth", tmp_path / "neg.npy", "--chunk-frames", 4,
                        "--output", out], capsys)
    assert code == 2 and "frame 11" in err
    assert sorted(p.name for p in out.iterdir()) == ["novel.mp4"] and (out / "novel.mp4").read_text() == "an earlier result"
    assert not list(tmp_path.glob(".out.*"))
    # a folder holding files vnvs did not write is never replaced: refused before any work
    (out / "keep.txt").write_text("mine")
    code, _, err = run(["render", root / "clip.mp4", "--depth", root / "depth.npy", "--output", out], capsys)
    assert code == 2 and "holds files vnvs did not write (keep.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "novel.mp4"]
