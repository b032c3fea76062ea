"""Builders of ``vnvs prepare``: schema, determinism and geometric correctness on tiny procedural videos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vnvs.data.builders import _sampling, affine4d, covis, flow_pairs, get_builder
from vnvs.data.config import PrepareConfig
from vnvs.data.schema import GRID_FIELDS, PAIR_FIELDS, PAIR_KINDS, WorkItem
from vnvs.geometry import pixel_grid
from vnvs.io import read_video, write_video
from vnvs.synthetic import SceneConfig, correspondence, generate_scene, render_source_video

S = 64  # frame size of the test videos (already square: the builders' resize is the identity)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("builders")
    scene = generate_scene(3, SceneConfig(static=True))
    video = render_source_video(scene, 10, size=(S, S), seed=1, motion="orbit")
    write_video(root / "v.mp4", video.frames, 10, crf=8)
    depth = video.depth.clone()
    depth[:, :, :6] = 0  # invalid stripe: never co-visible
    np.save(root / "d.npy", depth.numpy())
    write_video(root / "short.mp4", video.frames[:3], 10)
    small = render_source_video(scene, 60, size=(32, 32), seed=2, motion="gentle")
    write_video(root / "long.mp4", small.frames, 30, preset="ultrafast")
    return {"root": root, "scene": scene, "video": video, "v": str(root / "v.mp4"), "d": str(root / "d.npy"),
            "depth": depth, "short": str(root / "short.mp4"), "long": str(root / "long.mp4")}


def cfg(**kw) -> PrepareConfig:
    base = dict(size=S, clip_frames=3, pairs_per_video=2, min_offset=1, max_offset=4, views=3,
                covis_trajectories=1, min_coverage=0.05)
    base.update(kw)
    return PrepareConfig(**base)


def check_schema(sample: dict, meta: dict, T: int, V: int, size: int = S) -> None:
    S_ = size
    kind = meta["kind"]
    if kind in PAIR_KINDS:
        assert set(sample) == set(PAIR_FIELDS)
        shapes = {"source": (T, 3, S_, S_), "target": (T, 3, S_, S_), "warped": (T, 3, S_, S_), "mask": (T, S_, S_),
                  "corr": (T, 2, S_, S_)}
        fields = PAIR_FIELDS
    else:
        extra = {"affine4d": {"affine": torch.float32}, "synthetic-grid": {"w2c": torch.float32, "K": torch.float32}}
        fields = {**GRID_FIELDS, **extra[kind]}
        assert set(sample) == set(fields)
        shapes = {"grid": (T, V, 3, S_, S_), "affine": (V, 2, 3), "w2c": (V, 4, 4), "K": (V, 3, 3)}
    for name, dtype in fields.items():
        assert sample[name].dtype == dtype, (kind, name)
        assert tuple(sample[name].shape) == shapes[name], (kind, name, tuple(sample[name].shape))
    assert meta["source"] and "seed" in meta
    if "mask" in sample:
        assert int(sample["mask"].max()) <= 1
        assert torch.all(sample["corr"][(sample["mask"] == 0)[:, None].expand(-1, 2, -1, -1)] == 0)


def same(a, b) -> bool:
    return len(a.samples) == len(b.samples) and a.meta == b.meta and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a.samples, b.samples))


# --------------------------------------------------------------------------------------------------
# flow pairs


def test_flow_pairs_schema_determinism_and_exact_corr(media):
    item = WorkItem("v", path=media["v"])
    c = cfg(max_offset=2)  # the orbit moves ~4 deg a frame: keep DIS within its accurate range at 64 px
    a, b, other = (flow_pairs.build(item, c, s) for s in (7, 7, 8))
    assert len(a.samples) == 2 and not a.dropped
    for s, m in zip(a.samples, a.meta):
        check_schema(s, m, 3, 0)
        assert m["kind"] == "flow-pairs" and m["source"] == "v.mp4"
        assert [t - o for t, o in zip(m["target_frames"], [m["offset"]] * 3)] == m["source_frames"]
        assert c.min_offset <= m["offset"] <= c.max_offset
    assert same(a, b)
    windows = lambda r: [(m["source_frames"], m["offset"]) for m in r.meta]  # noqa: E731
    assert windows(a) != windows(other)

    # the stored correspondence agrees with the scene's exact one (flow + consistency + splat chain)
    v, scene = media["video"], media["scene"]
    errs = []
    for s, m in zip(a.samples, a.meta):
        si, ti = m["source_frames"], m["target_frames"]
        exact, vis = correspondence(scene, v.w2c[si], v.K[si], v.times[si], v.w2c[ti], v.K[ti], v.times[ti], S, S)
        sel = (s["mask"] > 0) & vis
        assert sel.float().mean() > 0.3
        errs.append((s["corr"] - exact).norm(dim=1)[sel])
        # warped is the source frame at the stored corr
        ii = s["corr"].round().long()
        t, y, x = torch.nonzero(s["mask"] > 0, as_tuple=True)
        assert torch.equal(s["warped"][t, :, y, x], s["source"][t, :, ii[t, 1, y, x], ii[t, 0, y, x]])
    assert float(torch.cat(errs).median()) < 1.5


def _flow_pairs_float_reference(item, config, seed):
    """The flow-pairs builder as it was written on float frames (flow and splat of u / 255, warped frames
    rounded back with to_uint8): the stored samples must not change."""
    from vnvs.data.schema import BuildResult, to_uint8
    from vnvs.estimators.flow import flow_with_consistency, get_flow_estimator
    from vnvs.geometry import forward_splat_flow

    result = BuildResult()
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    num_frames, _ = _sampling.video_transform(item.path, config.size)
    windows = flow_pairs.draw_windows(num_frames, config, rng)
    T, stride = int(config.clip_frames), int(config.frame_stride)
    plans = [(_sampling.clip_indices(s, T, stride), _sampling.clip_indices(s + o, T, stride), o) for s, o in windows]
    frames = _sampling.gather_frames(item.path, [i for a, b, _ in plans for i in a + b], config.size)
    estimator = get_flow_estimator(config.flow)
    for src_idx, tgt_idx, offset in plans:
        src, tgt = _sampling.stack_frames(frames, src_idx), _sampling.stack_frames(frames, tgt_idx)
        flow_fw, _, consistent = flow_with_consistency(estimator, src, tgt)
        splat = forward_splat_flow(src, flow_fw, valid=consistent, mode="random", generator=gen)
        consistency, coverage = float(consistent.float().mean()), float(splat.mask.float().mean())
        if consistency < config.min_consistency:
            result.drop("inconsistent_flow")
            continue
        if coverage < config.min_coverage:
            result.drop("low_coverage")
            continue
        result.add({"source": to_uint8(src), "target": to_uint8(tgt), "warped": to_uint8(splat.warped),
                    "mask": splat.mask.to(torch.uint8), "corr": splat.corr.to(torch.float32).contiguous()},
                   {"kind": "flow-pairs", "source": "v.mp4", "source_frames": src_idx, "target_frames": tgt_idx,
                    "offset": offset, "seed": int(seed), "coverage": coverage, "consistency": consistency,
                    "flow": config.flow})
    return result


@pytest.mark.parametrize("flow", ["dis", "farneback"])
def test_flow_pairs_store_what_the_float_route_stored(media, flow):
    """The builder runs flow and splat on the stored uint8 frames; the samples are those of the float route."""
    item = WorkItem("v", path=media["v"])
    c = cfg(max_offset=2, pairs_per_video=3, flow=flow, min_coverage=0.0, min_consistency=0.0)
    new, reference = flow_pairs.build(item, c, 11), _flow_pairs_float_reference(item, c, 11)
    assert len(new.samples) == 3 and same(new, reference)
    assert all(s["warped"].dtype == torch.uint8 for s in new.samples)


def test_flow_pairs_drops(media):
    short = flow_pairs.build(WorkItem("s", path=media["short"]), cfg(), 0)
    assert not short.samples and short.dropped == {"too_short": 2}
    strict = flow_pairs.build(WorkItem("v", path=media["v"]), cfg(min_coverage=0.99), 0)
    assert not strict.samples and strict.dropped == {"low_coverage": 2}


def test_flow_pairs_stream_only_needed_frames(media, monkeypatch):
    def no_read(*a, **k):
        raise AssertionError("read_video must not be used")

    monkeypatch.setattr("vnvs.io.read_video", no_read)
    monkeypatch.setattr("vnvs.io.video.read_video", no_read)
    read_calls, kept = [], []
    real_read, real_gather = _sampling.read_frames_at, flow_pairs.gather_frames

    def spy_read(path, indices, **k):
        read_calls.append(list(indices))
        return real_read(path, indices, **k)

    def spy_gather(*a, **k):
        out = real_gather(*a, **k)
        kept.append(set(out))
        return out

    monkeypatch.setattr(_sampling, "read_frames_at", spy_read)
    monkeypatch.setattr(flow_pairs, "gather_frames", spy_gather)
    r = flow_pairs.build(WorkItem("l", path=media["long"]), cfg(size=32, pairs_per_video=1, max_offset=3), 3)
    assert len(r.samples) == 1 and len(read_calls) == 1
    m = r.meta[0]
    needed = set(m["source_frames"]) | set(m["target_frames"])
    assert kept == [needed]  # <= 6 of 60 frames held
    assert read_calls[0] == sorted(needed)  # one pass that decodes up to the last needed frame only


# --------------------------------------------------------------------------------------------------
# covis


def test_covis_no_depth_and_masks(media):
    none = covis.build(WorkItem("v", path=media["v"]), cfg(), 0)
    assert not none.samples and none.dropped == {"no_depth": 1}

    item = WorkItem("v", path=media["v"], depth=media["d"])
    a, b, other = (covis.build(item, cfg(covis_trajectories=2, pairs_per_video=1), s) for s in (1, 1, 2))
    assert len(a.samples) == 2
    assert same(a, b)
    assert [m["trajectory"] for m in a.meta] != [m["trajectory"] for m in other.meta]
    grid = pixel_grid(S, S)
    for s, m in zip(a.samples, a.meta):
        check_schema(s, m, 3, 0)
        assert m["kind"] == "covis" and "orbit:" in m["trajectory"]
        mask = s["mask"] > 0
        assert 0 < mask.float().mean() < 1
        assert not (mask & ~(media["depth"][m["frames"]] > 0)).any()  # subset of valid depth
        assert torch.equal(s["source"], s["target"])
        assert torch.equal(s["warped"], s["source"] * mask[:, None])
        assert torch.equal(s["corr"], grid * mask[:, None])


# --------------------------------------------------------------------------------------------------
# affine4d


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """img (C, H, W) float at float pixel coords -> (C, N)."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    g = lambda yy, xx: img[:, yy, xx]  # noqa: E731
    return (g(y0, x0) * (1 - fx) * (1 - fy) + g(y0, x0 + 1) * fx * (1 - fy) + g(y0 + 1, x0) * (1 - fx) * fy
            + g(y0 + 1, x0 + 1) * fx * fy)


def test_affine4d(media):
    item = WorkItem("v", path=media["v"])
    a, b, other = (affine4d.build(item, cfg(views=3, affine_strength=1.5), s) for s in (4, 4, 5))
    assert same(a, b) and len(a.samples) == 2
    assert not torch.equal(a.samples[0]["affine"], other.samples[0]["affine"])
    frames = (read_video(media["v"], size=(S, S), fit="resize_crop").frames * 255).round().to(torch.uint8)
    for s, m in zip(a.samples, a.meta):
        check_schema(s, m, 3, 3)
        assert m["kind"] == "affine4d"
        assert torch.equal(s["grid"][:, 0], frames[m["frames"]])
        assert torch.equal(s["affine"][0], torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
        for v in (1, 2):
            A = s["affine"][v].double().numpy()
            assert not np.allclose(A, [[1, 0, 0], [0, 1, 0]], atol=1e-3)
            # dst pixel q holds the clip at p = A^{-1} q (p interior)
            Af = np.vstack([A, [0, 0, 1]])
            qy, qx = np.mgrid[0:S, 0:S]
            q = np.stack([qx.ravel(), qy.ravel(), np.ones(S * S)])
            p = np.linalg.inv(Af) @ q
            inside = (p[0] > 1) & (p[0] < S - 2) & (p[1] > 1) & (p[1] < S - 2)
            assert inside.mean() > 0.5
            for t in range(3):
                src = s["grid"][t, 0].double().numpy()
                expect = _bilinear(src, p[0, inside], p[1, inside])
                got = s["grid"][t, v].double().numpy().reshape(3, -1)[:, inside]
                assert np.quantile(np.abs(got - expect), 0.99) <= 2.0
            # the source pixel at the centre moves where the matrix says
            c = np.array([S / 2 - 0.5, S / 2 - 0.5, 1.0])
            assert np.linalg.norm((Af @ c)[:2] - c[:2]) > 0.5


# --------------------------------------------------------------------------------------------------
# synthetic


def test_synthetic(media):
    c = cfg(size=48, clip_frames=3, views=3, max_orbit_deg=20)
    item = WorkItem("scene-5", scene=5)
    build = get_builder("synthetic")
    a, b, other = (build(item, c, s) for s in (0, 0, 1))
    assert same(a, b)
    kinds = [m["kind"] for m in a.meta]
    assert kinds == ["synthetic-pairs", "synthetic-covis", "synthetic-grid"]
    assert [m["trajectory"] for m in a.meta[:2]] != [m["trajectory"] for m in other.meta[:2]]
    for s, m in zip(a.samples, a.meta):
        check_schema(s, m, 3, 3, size=48)
        assert m["scene"] == 5 and m["source"]
    pair = a.samples[0]
    mask = (pair["mask"] > 0)[:, None].expand(-1, 3, -1, -1)
    assert mask.float().mean() > 0.2
    mse = ((pair["warped"].float() - pair["target"].float())[mask] / 255).pow(2).mean()
    assert 10 * math.log10(1 / float(mse)) >= 30
    cov = a.samples[1]
    assert torch.equal(cov["warped"], cov["source"] * cov["mask"][:, None])
    grid = a.samples[2]
    assert torch.allclose(grid["K"][0], grid["K"][1])
    assert not torch.allclose(grid["w2c"][0], grid["w2c"][-1])


def test_covis_camera_file(media):
    from vnvs.cameras import Trajectory
    from vnvs.cameras.converters import write_megasam_npz
    from vnvs.cameras.source import source_cameras

    v = media["video"]
    path = write_megasam_npz(Trajectory(v.w2c, v.K, S, S), media["root"] / "cams.npz")
    item = WorkItem("v", path=media["v"], depth=media["d"], cameras=str(path))
    n, tf = _sampling.video_transform(item.path, S)
    cams = source_cameras(n, range(n), n, tf.source_size, tf, cameras=item.cameras)
    assert torch.allclose(cams.w2c, v.w2c, atol=1e-5) and torch.allclose(cams.K, v.K, atol=1e-5)
    static = source_cameras(n, range(n), n, tf.source_size, tf, fov=60.0)
    assert torch.equal(static.w2c, torch.eye(4).expand(n, 4, 4))
    r = covis.build(item, cfg(pairs_per_video=1), 0)
    assert len(r.samples) == 1 and r.meta[0]["kind"] == "covis"
