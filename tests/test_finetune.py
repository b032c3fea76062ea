"""Test-time finetuning: `vnvs finetune` (pairs from the video itself, resumable, LoRA) and `vnvs render --ttf`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from vnvs.apps.config import FinetuneConfig
from vnvs.apps.finetune import finetune
from vnvs.cli import main
from vnvs.io import read_video
from vnvs.models import NovelViewModel, get_preset
from vnvs.sampling import SamplingConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_model(folder, preset: str, resolution: int, window: int, **overrides):
    """A random tiny model saved with a sampling.json, as a trained one would be."""
    torch.manual_seed(0)
    model = NovelViewModel.from_config(get_preset(preset, **overrides))
    with torch.no_grad():  # as after training: the zero-initialised layers carry weights
        for p in model.parameters():
            if p.requires_grad and not p.any():
                p.normal_(0, 0.02)
    model.save_pretrained(folder)
    SamplingConfig(steps=2, resolution=resolution, window=window, overlap=1, composite=True).save(folder)
    return folder


@pytest.fixture(scope="module")
def inpaint_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("base") / "inpaint", "dit-tiny-inpaint", 16, 3)


def changed(a, b) -> set[str]:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return {k for k in wa if not torch.equal(wa[k], wb[k])}


def test_finetune_inpaint_model_on_a_real_clip_then_resume(real_clip, tiny_depth_model, inpaint_dir, tmp_path):
    base = dict(video=real_clip, generator=str(inpaint_dir), depth=str(tiny_depth_model), max_frames=10, pairs=4,
                batch_size=2, seed=3, checkpoint_every=1)
    out = tmp_path / "ft"
    summary = finetune(FinetuneConfig(output=out, steps=2, **base))
    assert (summary["kind"], summary["steps"], summary["start_step"], summary["lora_rank"]) == ("covis", 2, 0, 0)
    assert summary["pairs"] >= 2
    model = NovelViewModel.from_pretrained(out)
    assert model.config.control == "inpaint"
    assert changed(inpaint_dir, out)  # the weights moved
    assert SamplingConfig.load(out) == SamplingConfig.load(inpaint_dir)  # samples as the starting model
    info = json.loads((out / "finetune.json").read_text())
    assert info["steps"] == 2 and info["kind"] == "covis" and info["size"] == 16
    assert json.loads((tmp_path / "ft.work" / "inputs.json").read_text())["kind"] == "covis"
    assert not list(tmp_path.glob(".ft.*"))  # no temporary folder left beside the output

    # resumed to 3 steps == 3 steps at once
    more = finetune(FinetuneConfig(output=out, steps=3, **base))
    assert more["start_step"] == 2 and more["resumed_from"] and more["steps"] == 3
    straight = finetune(FinetuneConfig(output=tmp_path / "straight", steps=3, **base))
    assert straight["start_step"] == 0
    assert not changed(out, tmp_path / "straight")
    # other inputs in the same work folder are refused
    with pytest.raises(Exception, match="other inputs"):
        finetune(FinetuneConfig(output=out, steps=3, **{**base, "seed": 4}))


def test_finetune_vnvs_model_uses_flow_pairs_and_cli(real_clip, tmp_path, capsys):
    model = save_model(tmp_path / "vnvs", "dit-tiny", 16, 3)
    code = main(["finetune", str(real_clip), "--generator", str(model), "--steps", "2", "--max-frames", "12",
                 "--pairs", "4", "--batch-size", "2", "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[0])
    assert summary["kind"] == "flow-pairs" and summary["steps"] == 2
    assert changed(model, tmp_path / "out")


def test_finetune_diffusers_backbone_with_lora(tmp_path):
    pytest.importorskip("peft")
    import numpy as np

    from vnvs.io import write_video
    from vnvs.synthetic import generate_scene, render_source_video

    video = render_source_video(generate_scene(2), num_frames=12, size=(16, 16), seed=2, motion="orbit")
    write_video(tmp_path / "clip.mp4", video.frames, fps=8)
    np.save(tmp_path / "depth.npy", video.depth.numpy())
    base = save_model(tmp_path / "cog", "cogvideox-tiny", 16, 9, control="inpaint")
    summary = finetune(FinetuneConfig(video=tmp_path / "clip.mp4", output=tmp_path / "out", generator=str(base),
                                      depth=str(tmp_path / "depth.npy"), steps=2, pairs=2, batch_size=1, lr=1e-2))
    assert summary["lora_rank"] == 16 and summary["kind"] == "covis"
    moved = changed(base, tmp_path / "out")  # adapters merged: the same keys, attention weights and conditioning moved
    assert moved and all(".attn1.to_" in k or "patch_embed.proj" in k for k in moved), sorted(moved)
    assert any(".attn1.to_q." in k for k in moved)
    NovelViewModel.from_pretrained(tmp_path / "out")
    # a LoRA checkpoint exports to the same merged model
    from vnvs.training import export_model
    from vnvs.training.checkpoint import latest_checkpoint

    export_model(latest_checkpoint(tmp_path / "out.work" / "run"), tmp_path / "exported")
    assert not changed(tmp_path / "out", tmp_path / "exported")


def test_render_ttf_end_to_end(real_clip, tiny_depth_model, inpaint_dir, tmp_path, capsys):
    code = main(["render", str(real_clip), "--depth", str(tiny_depth_model), "--generator", str(inpaint_dir),
                 "--max-frames", "6", "--size", "16", "--trajectory", "orbit:10", "--ttf", "1",
                 "--output", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[0])
    assert summary["ttf_steps"] == 1 and summary["generator"] == "inpaint-ttf1"
    assert read_video(tmp_path / "r" / "novel.mp4").frames.shape[0] == 6


@pytest.mark.parametrize("args, message", [
    (["finetune", "missing.mp4", "-o", "OUT"], "does not exist"),
    (["finetune", "VIDEO", "-o", "OUT", "--generator", "warp"], "not a saved model folder"),
    (["finetune", "VIDEO", "-o", "OUT", "--steps", "0"], "steps"),
    (["render", "VIDEO", "--generator", "warp", "--ttf", "2", "-o", "OUT"], "ttf needs a learned generator"),
])
def test_bad_finetune_inputs_are_one_line_errors(args, message, real_clip, tmp_path, capsys):
    args = [str(real_clip) if a == "VIDEO" else str(tmp_path / "o") if a == "OUT" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_shipped_generator_names_resolve_to_their_model_folders(tmp_path):
    from vnvs.apps.finetune import resolve_model
    from vnvs.errors import InputError

    assert resolve_model("default").name == "vnvs-dit-small"
    inpaint = resolve_model("cognvs")
    assert inpaint.name == "vnvs-dit-small-inpaint"
    assert NovelViewModel.from_pretrained(inpaint).config.control == "inpaint"  # finetunes on co-visibility pairs
    with pytest.raises(InputError, match="not a saved model folder"):
        resolve_model(str(tmp_path))


def test_render_ttf_finetunes_the_refiner_of_warp_inpaint_refine(real_clip, tiny_depth_model, inpaint_dir, tmp_path,
                                                                   capsys):
    code = main(["render", str(real_clip), "--depth", str(tiny_depth_model),
                 "--generator", f"warp+inpaint+refine:{inpaint_dir}", "--max-frames", "6", "--size", "16",
                 "--trajectory", "orbit:10", "--ttf", "1", "--output", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[0])
    assert summary["ttf_steps"] == 1 and summary["generator"] == "warp+inpaint+refine:inpaint-ttf1"
