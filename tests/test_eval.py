"""``vnvs eval``: the synthetic benchmark (held-out scenes, exact regions), the real benchmark, reports, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vnvs.cli import main
from vnvs.data.config import PrepareConfig
from vnvs.data.inputs import collect_inputs
from vnvs.errors import InputError
from vnvs.evaluation.methods import parse_methods
from vnvs.evaluation.synthetic import EVAL_SCENE_BASE, MAX_EVAL_SEED, eval_scene_numbers
from vnvs.models import NovelViewModel, get_preset
from vnvs.synthetic import generate_scene


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("VNVS_PROGRESS", "0")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    NovelViewModel.from_config(get_preset("dit-tiny")).save_pretrained(path)
    return path


def _finite(report: dict) -> bool:
    return all(v is not None and math.isfinite(v) for m in report["methods"].values() for v in m["mean"].values())


def test_synthetic_benchmark_writes_reports(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--benchmark", "synthetic", "--methods", f"warp,warp+inpaint,tiny={tiny_checkpoint}",
                 "--scenes", "2", "--seed", "0", "--frames", "4", "--size", "32", "--steps", "2", "--device", "cpu",
                 "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [".vnvs-output.json", "items.csv", "plots", "report.json",
                                                     "report.md"]  # no temporaries
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == ["warp", "warp+inpaint", "tiny"]
    assert report["methods"]["tiny"]["generator"] == "tiny"
    assert _finite(report)
    assert [it["scene"] for it in report["items"]] == eval_scene_numbers(2, 0)
    for m in report["methods"].values():
        assert len(m["items"]) == 2 and m["mean"]["seconds_per_frame"] > 0
        assert m["mean"]["psnr"] == pytest.approx(sum(i["psnr"] for i in m["items"]) / 2)
    items = report["items"]
    assert all(0.3 < it["covisible_fraction"] < 1 for it in items)  # both regions are present
    warp, inpaint = report["methods"]["warp"]["mean"], report["methods"]["warp+inpaint"]["mean"]
    # filling holes beats leaving them black where the source sees nothing
    assert inpaint["psnr_disoccluded"] > warp["psnr_disoccluded"] + 3
    assert inpaint["psnr_covisible"] > inpaint["psnr_disoccluded"]
    assert report["machine"]["torch"] == torch.__version__ and report["machine"]["cpu"]
    assert report["settings"]["frames"] == 4 and report["settings"]["scenes"] == 2
    md = (out / "report.md").read_text()
    assert "| warp+inpaint |" in md and "PSNR disocc" in md and "| tiny |" in md
    assert "| warp+inpaint |" in captured.out


def test_synthetic_benchmark_fixed_trajectory_is_reproducible_and_cached(tmp_path):
    args = ["eval", "--methods", "warp+inpaint", "--scenes", "1", "--seed", "3", "--frames", "3", "--size", "24",
            "--trajectory", "orbit:20"]
    assert main(args + ["--output", str(tmp_path / "a")]) == 0
    assert main(args + ["--output", str(tmp_path / "b"), "--cache", str(tmp_path / "cache")]) == 0  # renders, stores
    assert len(list((tmp_path / "cache").glob("scene-*.safetensors"))) == 1
    assert main(args + ["--output", str(tmp_path / "c"), "--cache", str(tmp_path / "cache")]) == 0  # reads the cache
    a, b, c = (json.loads((tmp_path / d / "report.json").read_text()) for d in "abc")
    assert a["items"][0]["trajectory"] == "orbit:20" and a["items"][0]["scene"] == EVAL_SCENE_BASE + 3 * 2**20

    def scores(r):
        return [{k: v for k, v in i.items() if k != "seconds_per_frame"} for i in r["methods"]["warp+inpaint"]["items"]]

    assert scores(a) == scores(b) == scores(c) and a["items"] == b["items"] == c["items"]


def test_eval_scenes_are_disjoint_from_training_scenes():
    # the synthetic builder numbers training scenes 0..N-1 (vnvs prepare --kind synthetic --input N)
    train = [item.scene for item in collect_inputs("500", "synthetic", config=PrepareConfig())]
    assert train == list(range(500))
    numbers = eval_scene_numbers(50, 0) + eval_scene_numbers(50, MAX_EVAL_SEED - 1)
    assert min(numbers) >= EVAL_SCENE_BASE > 10**12 and not set(train) & set(numbers)
    assert len(set(numbers)) == 100  # different eval seeds give different scenes
    # and the scenes themselves differ: no eval scene has the object layout of a training scene

    def layout(n):
        _, p = generate_scene(n).poses(torch.zeros(1))
        return tuple(p.flatten().round(decimals=4).tolist())

    train_layouts = {layout(n) for n in range(20)}
    assert len(train_layouts) == 20 and not train_layouts & {layout(n) for n in numbers[:5]}
    with pytest.raises(InputError):
        eval_scene_numbers(2, -1)
    with pytest.raises(InputError):
        eval_scene_numbers(2, MAX_EVAL_SEED)


def test_method_parsing_and_errors(tmp_path, capsys):
    assert [(m.label, m.spec) for m in parse_methods("warp, a=warp+inpaint")] == [("warp", "warp"), ("a", "warp+inpaint")]
    with pytest.raises(InputError, match="more than once"):
        parse_methods("warp,warp")
    code = main(["eval", "--methods", "warp,nonsense", "--scenes", "1", "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nonsense" in err and "warp+inpaint" in err
    assert not (tmp_path / "x").exists()
    code = main(["eval", "--benchmark", "real", "--output", str(tmp_path / "y")])
    assert code == 2 and "the real benchmark needs data" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flow_pairs(real_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("flow-pairs")
    code = main(["prepare", "--input", str(real_clip), "--output", str(root), "--kind", "flow-pairs", "--size", "32",
                 "--clip-frames", "3", "--pairs-per-video", "2", "--max-offset", "6", "--workers", "1"])
    assert code == 0
    return root


def test_real_benchmark_on_prepared_flow_pairs(flow_pairs, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "real"
    code = main(["eval", "--benchmark", "real", "--data", str(flow_pairs), "--methods", "warp,warp+inpaint",
                 "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "real" and len(report["items"]) >= 1
    assert all(0 < it["mask_fraction"] < 1 and it["frames"] == 3 for it in report["items"])
    assert _finite(report)
    warp, inpaint = report["methods"]["warp"]["mean"], report["methods"]["warp+inpaint"]["mean"]
    assert inpaint["psnr_nonmask"] > warp["psnr_nonmask"]
    # inside M both show the same flow-warped pixels
    assert inpaint["psnr_mask"] == pytest.approx(warp["psnr_mask"], abs=1e-6)
    assert "PSNR not M" in (out / "report.md").read_text()


def test_real_benchmark_without_samples(real_clip, tmp_path, capsys):
    empty = tmp_path / "empty"
    # offsets longer than the clip: every candidate is dropped; prepare says so (exit 2) and the folder's index
    # holds no samples
    assert main(["prepare", "--input", str(real_clip), "--output", str(empty), "--kind", "flow-pairs", "--size", "32",
                 "--clip-frames", "3", "--min-offset", "400", "--max-offset", "400", "--workers", "1"]) == 2
    assert "no samples were kept" in capsys.readouterr().err and (empty / "index.json").is_file()
    code = main(["eval", "--benchmark", "real", "--data", str(empty), "--methods", "warp", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "flow-pairs" in err
