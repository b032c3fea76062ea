"""The learned metrics run end to end on real (small, randomly initialised) networks saved to a
folder and loaded back the way users' weights are: LPIPS, FID, FVD, CLIP. Nothing is downloaded."""

import numpy as np
import pytest
import scipy.linalg
import torch

from vnvs.metrics import (
    LPIPS,
    MetricOptions,
    Unavailable,
    frechet_distance,
    load_lpips,
    load_metric_networks,
    lpips_per_frame,
    per_video_metrics,
    set_metrics,
    to_json,
)
from vnvs.metrics.frechet import (
    I3D_FILE,
    STYLEGAN_INCEPTION_FILE,
    feature_stats,
    video_clips,
)
from vnvs.metrics.inception import PYTORCH_FID_FILE, FIDInception
from vnvs.metrics.lpips import save_lpips

# torchvision's alexnet().features / vgg16().features parameter names and shapes (the official
# checkpoints load by these names)
ALEX_LAYOUT = {"0": (64, 3, 11, 11), "3": (192, 64, 5, 5), "6": (384, 192, 3, 3), "8": (256, 384, 3, 3), "10": (256, 256, 3, 3)}
VGG_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def _video(seed, T=3, size=48):
    return torch.rand(T, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_lpips_layouts_match_torchvision():
    alex = LPIPS("alex").features.state_dict()
    assert {k: tuple(v.shape) for k, v in alex.items() if k.endswith("weight")} == {f"{i}.weight": s for i, s in ALEX_LAYOUT.items()}
    vgg = LPIPS("vgg").features.state_dict()
    assert sorted(int(k.split(".")[0]) for k in vgg if k.endswith("weight")) == VGG_CONVS
    assert tuple(vgg["28.weight"].shape) == (512, 512, 3, 3)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_saved_and_loaded_back(tmp_path, net):
    torch.manual_seed(0)
    model = LPIPS(net).eval()
    for lin in model.lins:  # the real lin weights are non-negative
        lin.weight.data.abs_()
    save_lpips(model, tmp_path)
    loaded = load_lpips(net, str(tmp_path))
    x, y = _video(1, 2, 40), _video(2, 2, 40)
    assert torch.equal(model(x, y), loaded(x, y))
    d = loaded(x, y)
    assert (d > 0).all() and torch.equal(loaded(x, x), torch.zeros(2))


def test_lpips_grows_with_noise_and_masked_lpips_follows_dycheck(tmp_path):
    torch.manual_seed(0)
    model = LPIPS("alex").eval()
    for lin in model.lins:
        lin.weight.data.abs_()
    save_lpips(model, tmp_path)
    model = load_lpips("alex", str(tmp_path))
    x = _video(3, 2, 64)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=g)
    values = [lpips_per_frame(model, x, (x + s * noise).clamp(0, 1)).mean().item() for s in (0.0, 0.05, 0.2, 0.5)]
    assert values[0] == 0 and values == sorted(values) and values[1] > 0
    # masked: images multiplied by the mask, spatial map averaged inside it
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[:, 8:40, 16:56] = True
    y = (x + 0.2 * noise).clamp(0, 1)
    smap = model.spatial(x * mask[:, None], y * mask[:, None])
    expected = (smap * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
    assert torch.allclose(lpips_per_frame(model, x, y, mask).float(), expected, atol=1e-6)
    outside_only = torch.where(mask[:, None], x, y)  # differs from x only outside the mask
    assert lpips_per_frame(model, x, outside_only, mask).abs().max() == 0
    # the spatial map's mean is close to (not equal to) the plain distance: upsampling reweights the border
    assert torch.allclose(smap.mean((1, 2)), model(x * mask[:, None], y * mask[:, None]), rtol=0.2)


def test_lpips_in_the_suite(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LPIPS("alex")
    for lin in model.lins:
        lin.weight.data.abs_()
    save_lpips(model, tmp_path)
    monkeypatch.setenv("VNVS_LPIPS_WEIGHTS", str(tmp_path))
    opts = MetricOptions(clip_model="")
    nets = load_metric_networks(opts, which=("lpips", "clip"))
    assert isinstance(nets["lpips"], LPIPS) and isinstance(nets["clip"], Unavailable)
    x, y = _video(7, 3, 40), _video(8, 3, 40)
    r = per_video_metrics(x, y, options=opts, nets=nets)
    assert r["lpips"] > 0 and r["mlpips"] == r["lpips"] and len(r["per_frame"]["lpips"]) == 3
    mask = torch.ones(3, 40, 40, dtype=torch.bool)
    r2 = per_video_metrics(x, y, mask, options=opts, nets=nets)
    assert r2["mlpips"] == pytest.approx(r["lpips"], rel=0.2) and r2["mlpips"] != r["lpips"]


def test_frechet_distance_closed_form_and_scipy():
    rng = np.random.default_rng(0)
    # commuting (diagonal) covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-10)
    # rotated into a common non-diagonal basis: the same value
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert frechet_distance(Q @ mu1, Q @ np.diag(a) @ Q.T, Q @ mu2, Q @ np.diag(b) @ Q.T) == pytest.approx(closed, rel=1e-9)
    # general SPD pair: the formula with scipy's sqrtm (pytorch-fid's computation)
    A, B = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = A @ A.T + 0.1 * np.eye(8), B @ B.T + 0.1 * np.eye(8)
    ref = np.sum((mu1[:1] - mu2[:1]) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(np.full(8, mu1[0]), s1, np.full(8, mu2[0]), s2) == pytest.approx(
        ref + 7 * (mu1[0] - mu2[0]) ** 2, rel=1e-8)
    # samples of two Gaussians with known covariance: the estimate approaches the closed form
    x = rng.normal(size=(20000, 3)) * np.sqrt([1.0, 2.0, 0.5])
    y = rng.normal(size=(20000, 3)) * np.sqrt([4.0, 2.0, 0.5]) + [1.0, 0.0, 0.0]
    est = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert est == pytest.approx(1.0 + (2 - 1) ** 2, abs=0.06)
    assert frechet_distance(*feature_stats(x), *feature_stats(x)) == pytest.approx(0, abs=1e-9)


@pytest.fixture(scope="module")
def fid_fvd_folder(tiny_metric_networks):
    return tiny_metric_networks["fid_fvd"]


def test_fid_and_fvd_end_to_end(fid_fvd_folder):
    opts = MetricOptions(lpips=None, fid_weights=str(fid_fvd_folder), fvd_weights=str(fid_fvd_folder))
    nets = load_metric_networks(opts, which=("fid", "fvd"))
    assert not isinstance(nets["fid"], Unavailable) and not isinstance(nets["fvd"], Unavailable)
    g = torch.Generator().manual_seed(1)
    # FID: every frame is a sample
    real = [torch.rand(2, 3, 40, 48, generator=g) * 0.6 for _ in range(2)]
    other = [torch.rand(2, 3, 40, 48, generator=g) * 0.6 + 0.4 for _ in range(2)]
    only_fid = {"fid": nets["fid"]}
    r_same = set_metrics([v.clone() for v in real], real, options=opts, nets=only_fid)
    assert r_same["fid"] == pytest.approx(0, abs=1e-6) and r_same["fid_samples"] == [4, 4]
    assert isinstance(r_same["fvd"], Unavailable) and r_same["fvd_samples"] == [0, 0]
    r_fid = set_metrics(other, real, options=opts, nets=only_fid)
    assert r_fid["fid"] > 0 and STYLEGAN_INCEPTION_FILE in r_fid["fid_network"]
    # FVD: non-overlapping 16-frame clips are the samples; 2-frame videos give none
    only_fvd = {"fvd": nets["fvd"]}
    assert isinstance(set_metrics(other, real, options=opts, nets=only_fvd)["fvd"], Unavailable)
    real = [torch.rand(33, 3, 40, 48, generator=g) * 0.6 for _ in range(2)]
    other = [torch.rand(17, 3, 40, 48, generator=g) * 0.6 + 0.4 for _ in range(2)]
    r = set_metrics(other, real, options=opts, nets=only_fvd)
    assert r["fvd"] > 0 and r["fvd_samples"] == [2, 4]
    assert "I3D" in r["fvd_variant"] and "16" in r["fvd_variant"]
    assert set_metrics([v.clone() for v in real], real, options=opts, nets=only_fvd)["fvd"] == pytest.approx(0, abs=1e-9)
    assert to_json(r)["fvd"] == r["fvd"]


def test_pytorch_fid_inception_saved_and_loaded_back(tmp_path):
    # the full-size network (24 M parameters): one frame through it, loaded the way pytorch-fid's file is
    torch.manual_seed(0)
    reference = FIDInception().eval()
    state = reference.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # absent from converted files
    torch.save(state, tmp_path / PYTORCH_FID_FILE)
    nets = load_metric_networks(MetricOptions(fid_weights=str(tmp_path)), which=("fid",))
    assert nets["fid"].unbiased and "pt_inception-2015-12-05" in nets["fid"].name
    x = torch.rand(1, 3, 50, 60, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        direct = reference(x)
    assert direct.shape == (1, 2048)
    assert torch.allclose(nets["fid"].features(x).float(), direct, atol=1e-6)
    torch.save({"fc.weight": state["fc.weight"]}, tmp_path / PYTORCH_FID_FILE)
    assert "not an FID Inception weight file" in load_metric_networks(MetricOptions(fid_weights=str(tmp_path)), which=("fid",))["fid"].reason


def test_fvd_clips_are_non_overlapping_from_the_start():
    v = torch.arange(40.0).view(40, 1, 1, 1).expand(40, 3, 2, 2)
    clips = video_clips(v)
    assert clips.shape == (2, 16, 3, 2, 2) and clips[1, 0, 0, 0, 0] == 16 and clips[1, -1, 0, 0, 0] == 31


def test_missing_weights_are_unavailable_with_the_reason(tmp_path, monkeypatch):
    for env in ("VNVS_FID_WEIGHTS", "VNVS_FVD_WEIGHTS", "VNVS_LPIPS_WEIGHTS"):
        monkeypatch.delenv(env, raising=False)
    (tmp_path / I3D_FILE).write_bytes(b"not a torchscript file")
    opts = MetricOptions(lpips_weights=str(tmp_path), fid_weights=None, fvd_weights=str(tmp_path), clip_model=str(tmp_path))
    nets = load_metric_networks(opts)
    assert all(isinstance(v, Unavailable) for v in nets.values())
    assert "VNVS_FID_WEIGHTS" in nets["fid"].reason
    assert "FVD" in nets["fvd"].reason
    r = set_metrics([_video(0, 16, 32)] * 2, [_video(1, 16, 32)] * 2, options=opts, nets=nets)
    assert to_json(r)["fid"] == {"unavailable": nets["fid"].reason} and r["fvd_variant"] == "none"


def test_clip_scores_with_a_tiny_random_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 64},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                       "image_size": 32, "patch_size": 8},
        projection_dim=8)
    transformers.CLIPModel(config).save_pretrained(tmp_path)
    opts = MetricOptions(lpips=None, clip_model=str(tmp_path))
    nets = load_metric_networks(opts, which=("clip",))
    scorer = nets["clip"]
    assert not isinstance(scorer, Unavailable) and scorer.size == 32
    still = _video(0, 1, 48).expand(4, 3, 48, 48)
    r = per_video_metrics(still, still, options=opts, nets=nets)
    assert r["clip_f"] == pytest.approx(100, abs=1e-3) and r["clip_v"] == pytest.approx(100, abs=1e-3)
    assert len(r["per_frame"]["clip_f"]) == 3 and len(r["per_frame"]["clip_v"]) == 4
    moving = _video(1, 4, 48)
    r2 = per_video_metrics(moving, still, options=opts, nets=nets)
    assert r2["clip_f"] < 100 - 1e-3 and r2["clip_v"] < 100 - 1e-3
    # embeddings equal those of the model's own forward on the same pixels
    x = scorer.preprocess(moving)
    with torch.no_grad():
        out = scorer.model(pixel_values=x, input_ids=torch.zeros(1, 3, dtype=torch.long))
    assert torch.allclose(scorer.embed(moving), torch.nn.functional.normalize(out.image_embeds, dim=-1), atol=1e-5)


def test_lpips_on_frames_too_small_is_unavailable_not_an_error(tiny_metric_networks):
    opts = MetricOptions(lpips="alex", lpips_weights=str(tiny_metric_networks["lpips"]), clip_model="")
    nets = load_metric_networks(opts, which=("lpips",))
    r = per_video_metrics(_video(0, 2, 16), _video(1, 2, 16), options=opts, nets=nets)
    assert isinstance(r["lpips"], Unavailable) and "31 pixels" in r["lpips"].reason
    assert isinstance(r["psnr"], float)
    assert isinstance(per_video_metrics(_video(0, 2, 40), _video(1, 2, 40), options=opts, nets=nets)["lpips"], float)
