"""Grid models (4Real-Video, SV4D 2.0, Full-4D on the built-in DiT), their sampler, windows and training."""

import json

import pytest
import torch

from vnvs.cameras import Cameras, make_preset_trajectory
from vnvs.cameras.grid import grid_cameras
from vnvs.errors import InputError
from vnvs.generators.grid import GridGenerator, anchored_windows
from vnvs.geometry.se3 import axis_angle_to_matrix, se3_fraction
from vnvs.models.grid import GridModel, GridModelConfig, grid_preset
from vnvs.models.grid.layers import reprojection_distance, training_free_weight
from vnvs.sampling.grid import GridPipeline
from vnvs.synthetic import procedural_grid

B, V, T, H, W = 1, 3, 4, 16, 16
VARIANTS = [("4real-tiny", {}), ("4real-tiny", {"arch": "sequential"}), ("4real-tiny", {"sync": "hard"}),
            ("4real-tiny", {"sync_weights": "training-free"}), ("sv4d-tiny", {}), ("full4d-tiny", {})]


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, V, T, 3, H, W, generator=g)
    known = torch.rand(B, V, T, 3, H, W, generator=g) * 2 - 1
    mask = torch.zeros(B, V, T, dtype=torch.bool)
    mask[:, 0], mask[:, :, 0] = True, True
    w2c = torch.eye(4).expand(B, V, T, 4, 4).clone()
    w2c[..., 0, 3] = torch.arange(V, dtype=torch.float32)[None, :, None] * 0.2
    K = torch.tensor([[16.0, 0, 7.5], [0, 16, 7.5], [0, 0, 1]]).expand(B, V, T, 3, 3)
    return x, known, mask, w2c, K


def _model(name, seed=0, **over):
    """A tiny grid model whose DiT looks pretrained: the random DiT's zero-initialised output layers
    (identity blocks) are perturbed, so every block does something."""
    torch.manual_seed(seed)
    model = GridModel.from_config(grid_preset(name, **over)).eval()
    with torch.no_grad():
        for p in model.dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("name,over", VARIANTS)
def test_forward_shapes_and_training_gradients(name, over):
    model = _model(name, **over)
    x, known, mask, w2c, K = _inputs()
    v = model(x, torch.tensor([600.0]), known, mask, w2c=w2c, K=K)
    assert v.shape == (B, V, T, 3, H, W) and torch.isfinite(v).all()
    v.square().mean().backward()
    assert model.dit.blocks[0].qkv_s.weight.grad.abs().sum() > 0


def test_zero_init_soft_sync_keeps_the_pretrained_streams():
    """At step 0 the learned soft sync is the identity: the time stream is the DiT run on each view's video,
    the view stream the DiT run on each time's freeze-time video."""
    model = _model("4real-tiny")
    x, known, mask, _, _ = _inputs()
    tok = model.embed(x, known, mask)
    ts = torch.tensor([400.0])
    xv, xt = model.streams(tok, ts, (H, W))
    dit = model.dit
    temb = dit.embed_time(ts, tok.dtype)
    mod = dit.time_mod(temb).unflatten(1, (9, -1))
    text = dit.embed_text(None, 1, tok.dtype)
    rows = tok.reshape(V, T * tok.shape[3], -1)
    cols = tok.transpose(1, 2).reshape(T, V * tok.shape[3], -1)
    for block in dit.blocks:
        rows, _ = block(rows, text.expand(V, -1, -1), None, mod.expand(V, -1, -1), dit.make_grid(T, H, W, "cpu", tok.dtype))
        cols, _ = block(cols, text.expand(T, -1, -1), None, mod.expand(T, -1, -1), dit.make_grid(V, H, W, "cpu", tok.dtype))
    torch.testing.assert_close(xt, rows.reshape(xt.shape))
    torch.testing.assert_close(xv, cols.reshape(T, V, *xv.shape[3:]).transpose(0, 1)[None])
    assert not torch.allclose(xv, xt)  # the two streams differ: the check above is not vacuous


def test_learned_hard_sync_starts_as_the_training_free_average():
    x, known, mask, _, _ = _inputs()
    learned = _model("4real-tiny", sync="hard")
    free = _model("4real-tiny", sync="hard", sync_weights="training-free")
    free.load_state_dict({k: v for k, v in learned.state_dict().items() if k in free.state_dict()})
    ts = torch.tensor([300.0])
    torch.testing.assert_close(learned(x, ts, known, mask), free(x, ts, known, mask))
    assert [round(training_free_weight(l, 4), 3) for l in (0, 2)] == [0.1, 0.3]


def test_save_load_round_trip(tmp_path):
    model = _model("full4d-tiny", seed=3)
    with torch.no_grad():
        for p in model.control_parameters():
            p.add_(0.01)  # not the zero init: the weights must really travel
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["grid_model"]["method"] == "full4d" and meta["grid_model"]["backbone_config"]["depth"] == 2
    back = GridModel.from_pretrained(tmp_path / "m").eval()
    x, known, mask, w2c, K = _inputs()
    ts = torch.tensor([500.0])
    torch.testing.assert_close(back(x, ts, known, mask, w2c=w2c, K=K), model(x, ts, known, mask, w2c=w2c, K=K))
    (tmp_path / "bad").mkdir()
    with pytest.raises(InputError):
        GridModel.from_pretrained(tmp_path / "bad")


def test_sampler_is_seeded_and_keeps_given_cells():
    pipe = GridPipeline(_model("sv4d-tiny"))
    _, known, mask, w2c, K = _inputs()
    known = (known + 1) / 2
    a = pipe(known, mask, w2c=w2c, K=K, num_inference_steps=2, seed=5)
    b = pipe(known, mask, w2c=w2c, K=K, num_inference_steps=2, seed=5)
    c = pipe(known, mask, w2c=w2c, K=K, num_inference_steps=2, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[mask], known[mask])


def test_reprojection_distance_is_exact_for_a_sideways_camera():
    """A camera moved 0.2 to the side sees a point at depth 2 shifted by f * 0.2 / 2 = 1.6 px = 0.4 patches."""
    _, _, _, w2c, K = _inputs()
    depth = torch.full((1, V, T, H, W), 2.0)
    d = reprojection_distance(w2c, K, H, W, 4, depth)
    N = (H // 4) * (W // 4)
    cell_v1 = T * N  # cell (1, 0)
    assert torch.allclose(d[0, 0, cell_v1], torch.tensor(0.4), atol=1e-5)
    assert float(d[0, 0, 0]) == 0.0 and float(d[0, 0, 1]) == pytest.approx(1.0)
    # without depth: the epipolar line of a sideways move is the row, so the distance is vertical only
    e = reprojection_distance(w2c, K, H, W, 4)
    assert torch.allclose(e[0, 0, cell_v1:cell_v1 + 4], torch.zeros(4), atol=1e-5)


def test_grid_cameras_match_the_procedural_grid():
    grid = procedural_grid(2, views=3, frames=4, size=32, orbit_deg=24.0)
    src = Cameras(grid.w2c[0], grid.K[0], 32, 32)
    traj = make_preset_trajectory("orbit:24", src, grid.meta["look_at_depth"], mode="direct")
    w2c, K = grid_cameras(src, traj, 3)
    torch.testing.assert_close(w2c, grid.w2c, atol=1e-4, rtol=0)
    torch.testing.assert_close(K, grid.K)
    R = torch.eye(4)
    R[:3, :3] = axis_angle_to_matrix(torch.tensor([0.0, 0.8, 0.0]))
    R[:3, 3] = torch.tensor([0.5, 0.0, -0.2])
    third = se3_fraction(R, 1 / 3)
    torch.testing.assert_close(third @ third @ third, R, atol=1e-5, rtol=0)


def test_windows_cover_the_grid_and_keep_anchors():
    assert anchored_windows(8, 4, 1) == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7]]
    assert anchored_windows(6, 3, 1) == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]]
    model = _model("4real-tiny", window_views=2, window_times=3)
    gen = GridGenerator(model, steps=1)
    Vb, Tb = 3, 6
    frames = torch.rand(Vb, Tb, 3, 12, 14)  # not a patch multiple: resized for the model and back
    known = torch.zeros(Vb, Tb, dtype=torch.bool)
    known[0], known[:, 0] = True, True
    w2c = torch.eye(4).expand(Vb, Tb, 4, 4)
    K = torch.tensor([[14.0, 0, 6.5], [0, 14, 5.5], [0, 0, 1]]).expand(Vb, Tb, 3, 3)
    counts = []
    out = gen(frames, known, w2c, K, seed=0, progress=counts.append)
    assert out.shape == frames.shape and torch.equal(out[known], frames[known])
    assert sum(counts) == int((~known).sum()) and len(counts) == 2 * 4  # view windows x time windows
    with pytest.raises(InputError):
        gen(frames, torch.zeros(Vb, Tb, dtype=torch.bool), w2c, K)


def test_config_rejects_bad_values():
    with pytest.raises(InputError):
        GridModelConfig(method="cat4d")
    with pytest.raises(InputError):
        GridModelConfig(sync="medium")
    with pytest.raises(InputError):
        grid_preset("nope")
    with pytest.raises(InputError, match="resolution"):
        GridModelConfig(resolution=0)


def test_train_config_pairs_grid_models_with_grid_kinds():
    from vnvs.training import TrainConfig
    from vnvs.training.presets import get_preset

    assert get_preset("grid-sv4d").is_grid and not get_preset("tiny").is_grid
    cfg = TrainConfig.from_dict(get_preset("grid-tiny").replace(model=grid_preset("sv4d-tiny")).to_dict())
    assert isinstance(cfg.model, GridModelConfig) and cfg.model.method == "sv4d"  # a table round trip
    with pytest.raises(InputError, match="grid kinds"):
        TrainConfig(model="4real-tiny", data={"synthetic-pairs": 1.0})
    with pytest.raises(InputError, match="pair kinds"):
        TrainConfig(model="dit-tiny", data={"synthetic-grid": 1.0})


def test_cells_that_are_not_given_do_not_leak_into_the_model():
    """Whatever the unknown cells hold (here NaN), the sampled grid is the same."""
    pipe = GridPipeline(_model("4real-tiny"))
    _, known, mask, _, _ = _inputs()
    known = (known + 1) / 2
    poisoned = known.clone()
    poisoned[~mask] = float("nan")
    a = pipe(known, mask, num_inference_steps=1, seed=2)
    b = pipe(poisoned, mask, num_inference_steps=1, seed=2)
    assert torch.isfinite(b).all() and torch.equal(a[~mask], b[~mask])


def test_command_line_method_names_are_grid_presets():
    from vnvs.apps.grid_config import GRID_METHODS
    from vnvs.models.grid import GRID_PRESETS

    assert set(GRID_METHODS) - {"independent", "4real-trained"} <= set(GRID_PRESETS)


def test_the_shipped_trained_grid_model_loads_and_fills_a_grid():
    from vnvs.generators.grid import get_grid_generator

    gen = get_grid_generator("4real-trained", steps=2)
    assert gen.name == "4real-trained" and gen.model.config.method == "4real"
    V, T, S = 3, 4, 32
    frames = torch.rand(V, T, 3, S, S, generator=torch.Generator().manual_seed(0))
    known = torch.zeros(V, T, dtype=torch.bool)
    known[0], known[:, 0] = True, True
    K = torch.tensor([[32.0, 0, 15.5], [0, 32, 15.5], [0, 0, 1]]).expand(V, T, 3, 3)
    w2c = torch.eye(4).expand(V, T, 4, 4).clone()
    w2c[1, :, 0, 3], w2c[2, :, 0, 3] = 0.05, 0.1
    out = gen(frames, known, w2c, K, seed=0)
    assert out.shape == frames.shape and torch.equal(out[known], frames[known])
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and float(out[~known].std()) > 0.01


def test_grid_generator_samples_at_the_trained_resolution():
    """A model trained at 8 px samples 16 x 24 cells at 8 x 12 and the grid comes back at 16 x 24."""
    model = _model("4real-tiny")
    model.config = model.config.replace(resolution=8)
    seen = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape[-2:])))
    V2, T2 = 2, 3
    frames = torch.rand(V2, T2, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    known = torch.zeros(V2, T2, dtype=torch.bool)
    known[0], known[:, 0] = True, True
    K = torch.tensor([[16.0, 0, 11.5], [0, 16, 7.5], [0, 0, 1]]).expand(V2, T2, 3, 3)
    w2c = torch.eye(4).expand(V2, T2, 4, 4)
    out = GridGenerator(model, steps=1)(frames, known, w2c, K)
    assert seen == [(8, 12)] and out.shape == frames.shape and torch.equal(out[known], frames[known])
    seen.clear()
    GridGenerator(model, steps=1, resolution=16)(frames, known, w2c, K)  # an explicit resolution wins
    assert seen == [(16, 24)]


def test_grid_generator_composite_keeps_the_warp_where_it_landed():
    model = _model("4real-tiny")
    V2, T2, S = 3, 3, 16
    g = torch.Generator().manual_seed(2)
    frames = torch.rand(V2, T2, 3, S, S, generator=g)
    known = torch.zeros(V2, T2, dtype=torch.bool)
    known[0], known[:, 0] = True, True
    K = torch.tensor([[16.0, 0, 7.5], [0, 16, 7.5], [0, 0, 1]]).expand(V2, T2, 3, 3)
    w2c = torch.eye(4).expand(V2, T2, 4, 4)
    warped = torch.rand(V2, T2, 3, S, S, generator=g)
    landed = torch.ones(V2, T2, S, S, dtype=torch.bool)
    landed[..., 4:12, 3:9] = False  # a hole too large for crack filling
    gen = GridGenerator(model, steps=2, seamless=False)
    raw = gen(frames, known, w2c, K, seed=3)
    comp = gen(frames, known, w2c, K, warped=warped, warped_mask=landed, seed=3)
    cells = ~known[..., None, None] & landed
    assert torch.equal(comp.permute(0, 1, 3, 4, 2)[cells], warped.permute(0, 1, 3, 4, 2)[cells])
    core = torch.zeros_like(landed)
    core[..., 6:10, 5:7] = True  # the hole away from its rim (crack filling may close rim corners)
    hole = ~known[..., None, None] & core
    assert torch.equal(comp.permute(0, 1, 3, 4, 2)[hole], raw.permute(0, 1, 3, 4, 2)[hole])  # the model's pixels
    assert torch.equal(comp[known], frames[known])
    smooth = GridGenerator(model, steps=2)(frames, known, w2c, K, warped=warped, warped_mask=landed, seed=3)
    assert torch.equal(smooth.permute(0, 1, 3, 4, 2)[cells], warped.permute(0, 1, 3, 4, 2)[cells])
    assert not torch.equal(smooth.permute(0, 1, 3, 4, 2)[hole], raw.permute(0, 1, 3, 4, 2)[hole])  # seamless: shifted
    with pytest.raises(InputError, match="together"):
        gen(frames, known, w2c, K, warped=warped)
    with pytest.raises(InputError, match="warped must be"):
        gen(frames, known, w2c, K, warped=warped[:, :, :, :8], warped_mask=landed)


def test_config_resolution_is_validated_and_saved(tmp_path):
    for bad in (0, -4, 2.5, True, 10**6):
        with pytest.raises(InputError, match="resolution"):
            GridModelConfig(resolution=bad)
    model = _model("4real-tiny")
    model.config = model.config.replace(resolution=24)
    model.save_pretrained(tmp_path / "m")
    assert GridModel.from_pretrained(tmp_path / "m").config.resolution == 24
    assert GridModel.from_pretrained(tmp_path / "m").config.to_dict() == model.resolved_config().to_dict()


def test_the_shipped_grid_model_samples_at_its_training_size():
    from vnvs.generators.grid import get_grid_generator

    assert get_grid_generator("4real-trained").resolution == 32  # trained on 32 px grids (scripts/gpu_grid.sh)
