"""Training: the flow-matching objective, configs and presets, batch fitting, resumable data order,
the Accelerate trainer (exact resume, a process killed mid-save, two-process DDP), `vnvs train`."""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from vnvs.cli import main
from vnvs.data.config import PrepareConfig
from vnvs.data.dataset import ShardDataset
from vnvs.data.engine import prepare
from vnvs.data.inputs import collect_inputs
from vnvs.errors import InputError
from vnvs.geometry import build_control_signal
from vnvs.geometry.control import crop_control
from vnvs.models import ModelConfig, NovelViewModel
from vnvs.sampling import SamplingConfig
from vnvs.training import PRESETS, TrainConfig, Trainer, export_model, get_preset, load_config
from vnvs.training.adapt import fit_batch, fit_frame_count
from vnvs.training.checkpoint import list_checkpoints, read_state
from vnvs.training.data import EpochBatches, rank_positions
from vnvs.training.ema import EMA
from vnvs.training.flow_matching import (add_noise, drop_control, flow_matching_loss, loss_weights, sample_sigmas,
                                         shift_sigmas)
from vnvs.training.trainer import build_model, read_log, train
from vnvs.utils.atomic import atomic_dir, atomic_path, replace_dir

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread (and OpenMP spinning is very slow on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ENV = {**os.environ, "VNVS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """4 procedural scenes, 16x16, 3 frames: 4 synthetic-pairs, 4 synthetic-covis, 4 synthetic-grid."""
    root = tmp_path_factory.mktemp("train-data")
    cfg = PrepareConfig(size=16, clip_frames=3)
    prepare(collect_inputs("4", "synthetic", config=cfg, seed=0), root, "synthetic", cfg, seed=0, workers=1)
    return root


def tiny(**changes):
    """The tests' run: two pair kinds mixed, cosine-free schedule (max_steps may change on resume)."""
    base = dict(data={"synthetic-pairs": 0.5, "synthetic-covis": 0.5}, epoch_size=8, max_steps=6,
                checkpoint_every=2, keep_checkpoints=2, control_dropout=0.5, max_frames=2, tensorboard=False)
    return get_preset("tiny").replace(**{**base, **changes})


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """6 uninterrupted steps."""
    out = tmp_path_factory.mktemp("straight")
    result = train(tiny(), data, out)
    return out, result


def _losses(out):
    return [(e["step"], e["loss"]) for e in read_log(out)]


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- objective -------------------------------------------------------------------------------------

def test_shift_sigmas():
    u = torch.linspace(0, 1, 101)
    assert torch.equal(shift_sigmas(u, 1.0), u)
    s = shift_sigmas(u, 3.0)
    assert s[0] == 0 and s[-1] == 1 and bool((s[1:] > s[:-1]).all()) and bool((s[1:-1] > u[1:-1]).all())
    assert float(shift_sigmas(torch.tensor(0.5), 3.0)) == pytest.approx(0.75)
    assert bool((shift_sigmas(u, 1 / 3.0)[1:-1] < u[1:-1]).all())


def test_sample_sigmas_distributions():
    g = torch.Generator().manual_seed(0)
    uni = sample_sigmas(20000, sampling="uniform", generator=g)
    ln = sample_sigmas(20000, sampling="logit-normal", generator=g)
    shifted = sample_sigmas(20000, sampling="logit-normal", shift=3.0, generator=g)
    for s in (uni, ln, shifted):
        assert s.shape == (20000,) and bool(((s >= 0) & (s <= 1)).all())
    assert abs(float(uni.mean()) - 0.5) < 0.01 and abs(float(uni.std()) - (1 / 12) ** 0.5) < 0.01
    assert abs(float(ln.mean()) - 0.5) < 0.01 and float(ln.std()) < float(uni.std())  # mass in the middle
    assert float(shifted.mean()) > 0.6
    again = sample_sigmas(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, sample_sigmas(5, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError):
        sample_sigmas(2, sampling="beta")


def test_flow_matching_loss_targets_noise_minus_data():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 2, 8, 8, generator=g)
    seen = {}

    def oracle(x_t, t, control=None, text_embeds=None):
        seen["control"] = control
        sigma = (t / 1000).view(-1, 1, 1, 1, 1)
        return (x_t - x0) / sigma  # exactly noise - x0

    out = flow_matching_loss(oracle, x0, None, generator=torch.Generator().manual_seed(1))
    assert float(out.loss) < 1e-8 and out.per_sample.shape == (4,) and seen["control"] is None

    def zero(x_t, t, control=None, text_embeds=None):
        return torch.zeros_like(x_t)

    gen = torch.Generator().manual_seed(2)
    out = flow_matching_loss(zero, x0, None, generator=gen)
    gen = torch.Generator().manual_seed(2)
    sample_sigmas(4, generator=gen)  # the same draws, in the documented order
    noise = torch.randn(x0.shape, generator=gen)
    assert float(out.loss) == pytest.approx(float((noise - x0).pow(2).mean()), rel=1e-6)
    # x_sigma interpolates from the data (sigma 0) to the noise (sigma 1)
    assert torch.equal(add_noise(x0, noise, torch.zeros(4)), x0)
    assert torch.allclose(add_noise(x0, noise, torch.ones(4)), noise)


def test_control_dropout_and_weights():
    control = torch.rand(64, 2, 9, 4, 4) + 0.1
    kept_all, kept = drop_control(control, 0.0)
    assert kept_all is control and bool(kept.all())
    zeros, kept = drop_control(control, 1.0)
    assert not bool(kept.any()) and float(zeros.abs().sum()) == 0
    half, kept = drop_control(control, 0.5, torch.Generator().manual_seed(0))
    assert 16 < int(kept.sum()) < 48
    assert torch.equal(half[kept], control[kept]) and float(half[~kept].abs().sum()) == 0
    sig = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(loss_weights(sig, "none"), torch.ones(3))
    assert torch.allclose(loss_weights(sig, "cosmap"), torch.tensor([2 / math.pi, 4 / math.pi, 2 / math.pi]))


def test_ema_decay_schedule():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([("p", p)], decay=0.5)
    with torch.no_grad():
        p.fill_(1.0)
    ema.update([p])  # decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.shadow[0], torch.full((3,), 0.9))
    for _ in range(20):
        ema.update([p])
    assert ema.current_decay() == 0.5
    q = torch.nn.Linear(1, 1)
    ema2 = EMA(q.named_parameters(), 0.9)
    with torch.no_grad():
        q.weight.fill_(5.0)
    ema2.copy_to(q)
    assert float(q.weight) != 5.0


# ---- config --------------------------------------------------------------------------------------

def test_presets_and_files(tmp_path):
    for name in PRESETS:
        cfg = get_preset(name)
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert get_preset("dit-small").lr == 5e-4 and get_preset("wan-1.3b").lr == 4e-5  # scratch vs finetuning
    assert set(get_preset("dit-small-doubleproj").data) == {"covis", "synthetic-covis"}
    assert set(get_preset("dit-small-no-real").data) == {"synthetic-pairs"}
    assert set(get_preset("dit-small-no-synthetic").data) == {"flow-pairs"}
    wan = get_preset("wan-1.3b")
    assert wan.freeze_backbone and wan.gradient_checkpointing and wan.mixed_precision == "bf16"

    toml = tmp_path / "run.toml"
    toml.write_text('preset = "dit-small"\nbatch_size = 3\nbetas = [0.8, 0.95]\n\n[data]\nflow-pairs = 0.7\n'
                    'synthetic-pairs = 0.3\n\n[model]\nbackbone = "dit"\nvnvs_every = 2\n')
    cfg = load_config(toml)
    assert cfg.batch_size == 3 and cfg.betas == (0.8, 0.95) and cfg.lr == 5e-4
    assert cfg.data == {"flow-pairs": 0.7, "synthetic-pairs": 0.3} and cfg.model.vnvs_every == 2
    cfg.save(tmp_path / "run.json")
    assert load_config(tmp_path / "run.json") == cfg
    assert cfg.differences(cfg.replace(max_steps=7, num_workers=0)) == []
    assert cfg.differences(cfg.replace(lr=1e-3, seed=4)) == ["lr", "seed"]

    bad = {"lr": 0, "batch_size": 0, "data": {"synthetic-grid": 1.0}, "mixed_precision": "fp8",
           "control_dropout": 1.5, "ema_decay": 1.0, "betas": [0.9], "max_steps": 2.5, "freeze_backbone": "yes"}
    for key, value in bad.items():
        with pytest.raises(InputError, match=key.split("_")[0]):
            TrainConfig.from_dict({key: value})
    with pytest.raises(InputError, match="unknown fields 'colour'"):
        TrainConfig.from_dict({"colour": 1})
    with pytest.raises(InputError, match="neither a training preset"):
        load_config("nope")
    with pytest.raises(InputError, match="unknown training preset"):
        get_preset("nope")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="malformed"):
        load_config(tmp_path / "broken.json")


def test_model_field_is_a_name_or_a_model_config(tmp_path):
    cfg = TrainConfig(model={"backbone": "dit", "vnvs_every": 2})
    assert cfg.model == ModelConfig(vnvs_every=2)  # a table becomes a ModelConfig
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # saved as a table
    assert cfg.differences(cfg.replace(model=ModelConfig(vnvs_every=2))) == []
    assert cfg.differences(cfg.replace(model="dit-tiny")) == ["model"]
    with pytest.raises(InputError, match="unknown model config fields: 'colour'"):
        TrainConfig.from_dict({"model": {"colour": 1}})
    with pytest.raises(InputError, match="model must be"):
        TrainConfig(model="")
    assert get_preset("tiny", lr=0.5).lr == 0.5 and get_preset("tiny").lr == 1e-3
    (tmp_path / "odd.toml").write_text('preset = "tiny"\nname = 1\n')  # a key named like get_preset's argument
    with pytest.raises(InputError, match="unknown fields 'name'"):
        load_config(tmp_path / "odd.toml")


# ---- fitting batches to the model --------------------------------------------------------------------

def test_fit_frame_count():
    assert fit_frame_count(5) == 5 and fit_frame_count(7, 4) == 5 and fit_frame_count(49, 4, window=13) == 13
    assert fit_frame_count(8, 1, max_frames=3) == 3 and fit_frame_count(3, 4) == 1


def test_crop_control_equals_control_of_cropped_frames():
    g = torch.Generator().manual_seed(0)
    T, H, W, top, left, h, w = 2, 12, 16, 2, 3, 8, 10
    source, warped = torch.rand(T, 3, H, W, generator=g), torch.rand(T, 3, H, W, generator=g)
    corr = torch.stack([torch.rand(T, H, W, generator=g) * (W - 1), torch.rand(T, H, W, generator=g) * (H - 1)], 1)
    mask = torch.rand(T, H, W, generator=g) > 0.3
    cropped = crop_control(build_control_signal(source, corr, warped, mask), top, left, h, w)
    win = (..., slice(top, top + h), slice(left, left + w))
    c = corr[win] - torch.tensor([left, top]).view(1, 2, 1, 1)
    inside = (c[:, 0] >= 0) & (c[:, 0] <= w - 1) & (c[:, 1] >= 0) & (c[:, 1] <= h - 1)
    expected = build_control_signal(source[win], c, warped[win], mask[win] & inside)
    assert 0 < int((mask[win] & ~inside).sum())  # some correspondences leave the crop
    assert torch.allclose(cropped, expected, atol=1e-5)


def test_fit_batch_modes():
    control, target = torch.rand(2, 7, 9, 18, 20), torch.rand(2, 7, 3, 18, 20)
    control[:, :, 8] = (control[:, :, 8] > 0.5).float()
    c, t = fit_batch(control, target, spatial_multiple=8, temporal_multiple=4)
    assert c.shape == (2, 5, 9, 16, 16) and t.shape == (2, 5, 3, 16, 16)
    assert torch.equal(t, target[:, :5, :, 1:17, 2:18])
    c, t = fit_batch(control, target, spatial_multiple=8, temporal_multiple=4, mode="resize")
    assert c.shape == (2, 5, 9, 16, 16) and t.shape == (2, 5, 3, 16, 16)
    assert set(c[:, :, 8].unique().tolist()) <= {0.0, 1.0}  # the mask stays binary (nearest)
    same = fit_batch(control[:, :5, :, :16, :16], target[:, :5, :, :16, :16], spatial_multiple=8, temporal_multiple=4,
                     mode="none")
    assert same[1].shape == (2, 5, 3, 16, 16)
    with pytest.raises(InputError, match="do not fit"):
        fit_batch(control, target, spatial_multiple=8, mode="none")
    with pytest.raises(InputError, match="cannot fit"):
        fit_batch(control, target, spatial_multiple=32)


# ---- data order ----------------------------------------------------------------------------------------

def test_rank_positions_follow_the_dataset(data):
    for world in (1, 2, 3):
        for rank in range(world):
            ds = ShardDataset(data, weights={"synthetic-pairs": 1, "synthetic-covis": 1}, seed=5, rank=rank,
                              world_size=world, drop_last=True, fields=("mask",), epoch_size=9)
            ds.set_epoch(2)
            metas = [item["meta"] for item in ds]
            assert metas == [ds.samples[p]["meta"] for p in rank_positions(ds, 2, rank, world)]


def test_epoch_batches_resume_anywhere(data):
    ds = ShardDataset(data, weights={"synthetic-pairs": 1, "synthetic-covis": 1}, seed=1, fields=("target",),
                      epoch_size=6)
    full = EpochBatches(ds, batch_size=2)
    stream = full()
    first = [next(stream) for _ in range(7)]  # 3 batches per epoch: crosses two epoch boundaries
    assert [(e, i) for e, i, _ in first] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    plan = full.plan()
    assert [b["position"] for _, _, b in first] == [next(plan)[2] for _ in range(7)]
    assert sorted(p for _, _, b in first[:3] for p in b["position"]) == sorted(rank_positions(ds, 0, 0, 1))
    later = EpochBatches(ds, batch_size=2, num_workers=1)(1, 1)
    for e, i, b in first[4:]:
        e2, i2, b2 = next(later)
        assert (e, i) == (e2, i2) and b["position"] == b2["position"] and torch.equal(b["target"], b2["target"])


# ---- the trainer -----------------------------------------------------------------------------------------

def test_training_run_outputs(straight, data, tmp_path):
    out, result = straight
    losses = _losses(out)
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6] and all(math.isfinite(v) for _, v in losses)
    assert result.steps == 6 and result.start_step == 0 and result.samples_per_second > 0
    assert [p.name for p in list_checkpoints(out)] == ["step-00000004", "step-00000006"]  # keep 2
    state = read_state(out / "checkpoints" / "step-00000006")
    assert (state["step"], state["epoch"], state["batch"], state["samples_seen"]) == (6, 1, 2, 12)
    assert TrainConfig.from_dict(json.loads((out / "train_config.json").read_text())) == tiny()
    # the exported model is the EMA of the last checkpoint, loadable by generators
    model = NovelViewModel.from_pretrained(out / "model")
    # ... sampled as trained: 16x16 samples cut to max_frames 2, compositing seamlessly
    assert SamplingConfig.load(out / "model") == SamplingConfig(resolution=16, window=2, overlap=0, composite=True,
                                                                seamless=True, renderer="zbuffer")
    exported = {k: v for k, v in model.state_dict().items()}
    ema = load_file(str(out / "checkpoints" / "step-00000006" / "ema.safetensors"))
    raw = _weights(out / "checkpoints" / "step-00000006")
    assert ema and all(torch.equal(exported[k], ema[k]) for k in ema)
    assert any(not torch.equal(raw[k], ema[k]) for k in ema)
    export_model(out / "checkpoints" / "step-00000006", tmp_path / "again")
    assert _same_weights(_weights(tmp_path / "again"), _weights(out / "model"))
    torch.manual_seed(0)
    init = build_model("dit-tiny").state_dict()
    changed = [k for k in ema if not torch.equal(init[k], raw[k])]
    assert len(changed) == len(ema)  # every trainable tensor moved ...
    assert "backbone.text_proj.weight" not in ema and torch.equal(init["backbone.text_proj.weight"],
                                                                  raw["backbone.text_proj.weight"])  # ... not text_proj


def test_trainer_resume_picks_the_newest_complete_checkpoint_and_export_writes_the_ema(straight, data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight[0], run)
    ckpts = run / "checkpoints"
    (ckpts / "step-00000009").mkdir()  # no trainer_state.json: incomplete
    (ckpts / ".step-00000008.tmp").mkdir()  # a killed save
    trainer = Trainer(tiny(max_steps=8), data, run, resume=True)
    try:
        trainer.setup()
        assert not (ckpts / ".step-00000008.tmp").exists()
        assert trainer.resume() == ckpts / "step-00000006"
        state = read_state(ckpts / "step-00000006")
        assert (trainer.steps, trainer.start_step, trainer.epoch, trainer.next_batch, trainer.samples_seen) == \
            (6, 6, state["epoch"], state["batch"], state["samples_seen"])
        ema = load_file(str(ckpts / "step-00000006" / "ema.safetensors"))
        assert _same_weights({k: v.cpu() for k, v in trainer.ema.state_dict().items()}, ema)
        live = {k: v.detach().clone() for k, v in trainer.unwrapped.state_dict().items()}
        assert _same_weights(live, _weights(ckpts / "step-00000006"))
        shutil.rmtree(run / "model")
        assert trainer.export() == run / "model"
        exported = _weights(run / "model")
        assert all(torch.equal(exported[k], ema[k]) for k in ema)  # the EMA, not the trained weights
        assert _same_weights(exported, _weights(straight[0] / "model"))
        assert _same_weights({k: v.detach() for k, v in trainer.unwrapped.state_dict().items()}, live)  # put back
        trainer.step()
        assert (trainer.steps, trainer.samples_seen) == (7, state["samples_seen"] + 2)
        assert trainer.log()["step"] == 7 and [e["step"] for e in read_log(run)] == [1, 2, 3, 4, 5, 6, 7]
        assert trainer.checkpoint() == ckpts / "step-00000007"
        assert [p.name for p in list_checkpoints(run)] == ["step-00000006", "step-00000007"]  # keep 2
    finally:
        trainer.close()


def test_replace_dir_swaps_whole_folders(tmp_path):
    new, dest = tmp_path / "new", tmp_path / "dest"
    new.mkdir()
    (new / "a.txt").write_text("new")
    replace_dir(new, dest)
    assert not new.exists() and [p.name for p in dest.iterdir()] == ["a.txt"]
    new.mkdir()
    (new / "b.txt").write_text("newer")
    (tmp_path / ".dest.old").mkdir()  # left by a crash between the renames
    replace_dir(new, dest)
    assert [p.name for p in dest.iterdir()] == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    with atomic_dir(dest) as tmp:
        (tmp / "c.txt").write_text("again")
    assert [p.name for p in dest.iterdir()] == ["c.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "d.txt").write_text("half")
        raise RuntimeError
    assert [p.name for p in dest.iterdir()] == ["c.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_resume_reproduces_the_uninterrupted_run(straight, data, tmp_path):
    out, _ = straight
    first = train(tiny(max_steps=3), data, tmp_path)
    assert first.steps == 3
    with pytest.raises(InputError, match="resume it to continue"):
        train(tiny(), data, tmp_path)
    with pytest.raises(InputError, match="differs from the checkpoint's in lr"):
        train(tiny(lr=1e-2), data, tmp_path, resume=True)
    second = train(tiny(num_workers=2), data, tmp_path, resume=True)  # batches do not depend on workers
    assert second.start_step == 3 and second.resumed_from.endswith("step-00000003")
    assert _losses(tmp_path) == _losses(out)  # bitwise: JSON floats round-trip
    assert _same_weights(_weights(tmp_path / "model"), _weights(out / "model"))
    assert _same_weights(_weights(tmp_path / "checkpoints" / "step-00000006"), _weights(out / "checkpoints" / "step-00000006"))


CRASH = textwrap.dedent("""
    import json, os, sys
    import vnvs.training.checkpoint as ck
    from vnvs.training import TrainConfig
    from vnvs.training.trainer import train

    original = ck.write_extras

    def crash(folder, ema_state, state, config_dict):
        if state["step"] == 4:
            (folder / ck.EMA_NAME).write_bytes(b"half a file")
            os._exit(17)
        original(folder, ema_state, state, config_dict)

    ck.write_extras = crash
    train(TrainConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3])
""")


def test_process_killed_while_saving(straight, data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CRASH, json.dumps(tiny().to_dict()), str(data), str(out)],
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 17, proc.stderr[-2000:]
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [".step-00000004.tmp", "step-00000002"]
    assert [p.name for p in list_checkpoints(out)] == ["step-00000002"]  # the half checkpoint is not picked up
    assert [s for s, _ in _losses(out)] == [1, 2, 3, 4]
    result = train(tiny(), data, out, resume=True)
    assert result.start_step == 2
    assert not (ckpts / ".step-00000004.tmp").exists()
    assert _losses(out) == _losses(straight[0])
    assert _same_weights(_weights(out / "model"), _weights(straight[0] / "model"))


def test_finetune_frozen_backbone_bf16_accumulation(straight, data, tmp_path):
    pretrained = straight[0] / "model"
    cfg = tiny(model=str(pretrained), freeze_backbone=True, mixed_precision="bf16", grad_accum=2, batch_size=1,
               max_steps=2, checkpoint_every=5, ema_decay=0.0, adapt_frames="resize")
    result = train(cfg, data, tmp_path)
    assert result.steps == 2 and math.isfinite(result.final_loss)
    before, after = _weights(pretrained), _weights(tmp_path / "model")
    model = NovelViewModel.from_pretrained(pretrained)
    control = {n for n, p in model.named_parameters() if any(p is q for q in model.control_parameters())}
    assert control and all(not torch.equal(before[k], after[k]) for k in control)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in control)
    assert read_state(tmp_path / "checkpoints" / "step-00000002")["samples_seen"] == 4


DDP = textwrap.dedent("""
    import json, os, sys
    from safetensors.torch import save_file
    import vnvs.training.trainer as tr
    from vnvs.training import TrainConfig

    built = []
    original = tr.build_model
    tr.build_model = lambda spec: built.append(original(spec)) or built[-1]
    tr.train(TrainConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], sys.argv[3])
    state = {k: v.contiguous() for k, v in built[0].state_dict().items()}
    save_file(state, os.path.join(sys.argv[3], f"rank-{os.environ['RANK']}.safetensors"))
""")


def test_two_processes_ddp(data, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    out = tmp_path / "run"
    cfg = tiny(max_steps=3, checkpoint_every=3, record_samples=True, ema_decay=0.0, data={"synthetic-pairs": 1.0},
               epoch_size=None)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29571",
           str(script), json.dumps(cfg.to_dict()), str(data), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = load_file(str(out / "rank-0.safetensors")), load_file(str(out / "rank-1.safetensors"))
    assert _same_weights(w0, w1)  # replicated
    torch.manual_seed(cfg.seed)
    init = build_model(cfg.model).state_dict()
    assert any(not torch.equal(init[k], w0[k]) for k in w0)  # and trained
    assert _same_weights(w0, _weights(out / "checkpoints" / "step-00000003"))
    assert _same_weights(w0, _weights(out / "model"))  # no EMA: the export is the trained weights
    state = read_state(out / "checkpoints" / "step-00000003")
    assert state["world_size"] == 2 and state["samples_seen"] == 12
    assert (out / "checkpoints" / "step-00000003" / "random_states_1.pkl").is_file()
    # disjoint data: per step, the two ranks read different samples of the same epoch
    records = [[json.loads(ln) for ln in (out / "samples" / f"rank-{r:04d}.jsonl").read_text().splitlines()]
               for r in (0, 1)]
    assert [len(r) for r in records] == [3, 3]
    for a, b in zip(*records):
        assert a["step"] == b["step"] and a["epoch"] == b["epoch"] and len(a["positions"]) == 2
    ds = ShardDataset(data, weights=cfg.data, seed=cfg.seed)
    pairs = {i for i, s in enumerate(ds.samples) if s["kind"] == "synthetic-pairs"}
    assert [r["epoch"] for r in records[0]] == [0, 1, 2]  # 4 samples = one step of 2 x 2 per epoch
    for a, b in zip(*records):
        assert set(a["positions"]).isdisjoint(b["positions"]) and set(a["positions"]) | set(b["positions"]) == pairs
        order = ds.order(a["epoch"])
        assert a["positions"] == order[0::2] and b["positions"] == order[1::2]
    assert [e["step"] for e in read_log(out)] == [1, 2, 3]


# ---- the command -------------------------------------------------------------------------------------------

def _cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_and_errors(data, tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    tiny(max_steps=2, checkpoint_every=1, tensorboard=True).save(cfg)
    out = tmp_path / "run"
    code, stdout, err = _cli(["train", "--config", cfg, "--data", data, "--output", out, "--lr", "0.002"], capsys)
    assert code == 0, err
    summary = json.loads(stdout.splitlines()[0])
    assert summary["steps"] == 2 and (out / "model" / "config.json").is_file()
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((out / "train_config.json").read_text())["lr"] == 0.002
    # resuming without --config takes the checkpoint's; --max-steps extends the run
    code, stdout, err = _cli(["train", "--data", data, "--output", out, "--resume", "--max-steps", 3], capsys)
    assert code == 0, err
    assert json.loads(stdout.splitlines()[0])["start_step"] == 2
    assert [e["step"] for e in read_log(out)] == [1, 2, 3]

    cases = [
        (["--config", "nope", "--data", data], "neither a training preset"),
        (["--config", cfg, "--data", tmp_path / "missing"], "does not exist"),
        (["--config", "dit-small", "--data", data], "no flow-pairs samples in"),
        (["--data", data], "--config is required"),
    ]
    (tmp_path / "bad.toml").write_text("lr = [")
    cases.append((["--config", tmp_path / "bad.toml", "--data", data], "malformed"))
    for args, message in cases:
        code, _, err = _cli(["train", *args, "--output", tmp_path / "other"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "other").exists()
    code, _, err = _cli(["train", "--config", cfg, "--data", data, "--output", out], capsys)
    assert code == 2 and "resume it to continue" in err


def test_a_folder_of_prepared_folders_is_one_dataset(data, tmp_path):
    parent = tmp_path / "data"
    for name in ("a", "b"):
        shutil.copytree(data, parent / name)
    one, both = ShardDataset(data), ShardDataset(parent)
    assert len(both.samples) == 2 * len(one.samples)
    assert [s["shard"] for s in both.samples] == [f"{n}/{s['shard']}" for n in ("a", "b") for s in one.samples]
    assert torch.equal(both.load(len(one.samples))["target"], one.load(0)["target"])
    with pytest.raises(InputError, match="no flow-pairs samples in .*; prepare kind flow-pairs builds flow-pairs"):
        ShardDataset(parent, kinds=["flow-pairs"])
    with pytest.raises(InputError, match="holds no prepared samples"):
        ShardDataset(tmp_path / "a")  # neither an index nor prepared folders inside


def test_atomic_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as folder:
            (folder / "a").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_memory_estimate_refuses_a_step_that_does_not_fit(data, tmp_path, capsys):
    from vnvs.training.memory import kept_activation_bytes

    lin = torch.nn.Linear(32, 32)
    x = torch.randn(4, 32, requires_grad=True)
    # saved for backward: x (for the weight gradient) and tanh's output, 4 x 32 float32 each
    assert kept_activation_bytes(lambda: torch.tanh(lin(x)).sum(), exclude=lin.parameters()) == 2 * 4 * 32 * 4

    cfg = tmp_path / "tiny.json"
    tiny(max_steps=1, memory_limit_gb=1e-4).save(cfg)
    out = tmp_path / "run"
    code, _, err = _cli(["train", "--config", cfg, "--data", data, "--output", out], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "a training step needs about" in err and "kB are free on cpu" in err
    assert not out.exists()
    # the same run with the check off trains; its estimate grows with the micro-batch
    small = Trainer(tiny(max_steps=1, batch_size=1, memory_limit_gb=0), data, tmp_path / "a")
    big = Trainer(tiny(max_steps=1, batch_size=4, memory_limit_gb=0), data, tmp_path / "b")
    small.setup(), big.setup()
    assert small.memory.activations_per_sample > 0
    assert big.memory.peak > small.memory.peak
    assert small.memory.fitting_batch(small.memory.peak) >= 1
