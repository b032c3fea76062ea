"""One entry point for the evaluation harness: every metric the seed papers report.

The API (see ``docs/metrics.md`` for formulas, variants and where weights go)::

    options = MetricOptions(lpips="alex", lpips_weights=None, fid_weights=None, fvd_weights=None,
                            clip_model=None, device="cpu")
    nets = load_metric_networks(options)        # once: {"lpips", "fid", "fvd", "clip"} -> network or Unavailable
                                                # (which=(...) loads a subset)
    per_video_metrics(pred, target, mask, options=options, nets=nets)
        # pred/target (T, 3, H, W) float in [0, 1]; mask (T, H, W) bool or None
        # -> {"psnr", "ssim", "lpips", "mpsnr", "mssim", "mlpips", "clip_v", "clip_f": float | Unavailable,
        #     "per_frame": {name: [T floats]}}
    set_metrics(preds, targets, options=options, nets=nets)
        # lists of (T, 3, H, W) videos -> {"fid", "fvd": float | Unavailable, "fid_network", "fvd_variant": str}
    camera_accuracy(video, K, w2c_target)
        # -> {"rot_err_deg", "trans_dir_err_deg", "failures", "frames", "failure_rate", "per_frame": {...}}
    to_json(result)                              # Unavailable -> {"unavailable": reason}, NaN -> None

A metric that cannot be computed (its network's weights are absent, a set too small for a
covariance) is an :class:`Unavailable` with the reason, never an exception: a report shows it as
such. Wrong inputs (shapes, ranges) are bugs of the caller and raise ``ValueError``.

Conventions: ``psnr`` / ``ssim`` / ``lpips`` are over the whole frame; ``mpsnr`` / ``mssim`` /
``mlpips`` are DyCheck's masked versions (``mask=None``: equal to the unmasked values). Per-video
values are means over frames; frames whose mask is empty are left out of masked means (their
per-frame value is NaN, JSON null). SSIM here is DyCheck's / scikit-image's (valid-mode window:
the 5-pixel border does not count), which differs slightly from :func:`vnvs.metrics.ssim` (padded
borders counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vnvs.errors import InputError
from vnvs.metrics.camera import camera_errors
from vnvs.metrics.clip import clip_scores, load_clip
from vnvs.metrics.dycheck import dycheck_ssim_per_frame
from vnvs.metrics.frechet import (
    FVD_CLIP,
    clip_features,
    fid_from_features,
    frame_features,
    load_fid_network,
    load_fvd_network,
)
from vnvs.metrics.image import nanmean, psnr_per_frame
from vnvs.metrics.lpips import MIN_SIZE, load_lpips, lpips_per_frame


@dataclass
class Unavailable:
    """A metric that could not be computed, with the reason (JSON: ``{"unavailable": reason}``)."""

    reason: str

    def to_json(self) -> dict[str, str]:
        return {"unavailable": self.reason}


LPIPS_NETS = ("alex", "vgg")


@dataclass
class MetricOptions:
    """Which learned metrics to compute and where their networks live."""

    lpips: str | None = "alex"
    """LPIPS backbone: "alex", "vgg", or None (LPIPS off)."""
    lpips_weights: str | None = None
    """Folder with the LPIPS backbone and lin weights; default: env VNVS_LPIPS_WEIGHTS, then the caches."""
    fid_weights: str | None = None
    """Folder (or file) with the FID Inception weights; default: env VNVS_FID_WEIGHTS."""
    fvd_weights: str | None = None
    """Folder (or file) with the I3D TorchScript ``i3d_torchscript.pt``; default: env VNVS_FVD_WEIGHTS."""
    clip_model: str | None = None
    """CLIP model: a local folder or a Hugging Face id already in the cache; default: env VNVS_CLIP_MODEL,
    then openai/clip-vit-base-patch32 if cached; "" switches CLIP scores off."""
    device: str = "cpu"
    """Device the metric networks run on."""

    def __post_init__(self):
        if self.lpips is not None and self.lpips not in LPIPS_NETS:
            raise InputError(f"lpips must be one of {', '.join(LPIPS_NETS)} or None, got {self.lpips!r}")


def _check_video(name: str, v: torch.Tensor) -> None:
    if not isinstance(v, torch.Tensor) or v.dim() != 4 or v.shape[1] != 3:
        raise ValueError(f"{name} must be a (T, 3, H, W) tensor, got {getattr(v, 'shape', type(v))}")


NETWORKS = ("lpips", "fid", "fvd", "clip")


def _try(load, what: str):
    try:
        return load()
    except (OSError, ValueError, RuntimeError, ImportError) as e:  # missing / unreadable weights, or no package
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Unavailable(f"{what}: {first}")


def load_metric_networks(options: MetricOptions, which: tuple[str, ...] = NETWORKS) -> dict[str, Any]:
    """Load the networks the options ask for, once; nothing is downloaded.

    Args:
        options: where the weights are.
        which: a subset of ``("lpips", "fid", "fvd", "clip")``.

    Returns:
        ``{name: network or Unavailable}`` for each name in ``which``: an :class:`Unavailable`
        says why (weights absent, unreadable, metric switched off).

    Example:
        >>> nets = load_metric_networks(MetricOptions(lpips=None), which=("lpips",))
        >>> nets["lpips"]
        Unavailable(reason='LPIPS switched off (lpips=None)')
    """
    unknown = set(which) - set(NETWORKS)
    if unknown:
        raise ValueError(f"unknown metric networks {sorted(unknown)}; choose from {NETWORKS}")
    dev = options.device
    nets: dict[str, Any] = {}
    if "lpips" in which:
        nets["lpips"] = (_try(lambda: load_lpips(options.lpips, options.lpips_weights, dev), f"LPIPS-{options.lpips} unavailable")
                         if options.lpips else Unavailable("LPIPS switched off (lpips=None)"))
    if "fid" in which:
        nets["fid"] = _try(lambda: load_fid_network(options.fid_weights, dev), "FID network unavailable")
    if "fvd" in which:
        nets["fvd"] = _try(lambda: load_fvd_network(options.fvd_weights, dev), "FVD network unavailable")
    if "clip" in which:
        nets["clip"] = (_try(lambda: load_clip(options.clip_model, dev), "CLIP model unavailable")
                        if options.clip_model != "" else Unavailable("CLIP switched off (clip_model='')"))
    return nets


def per_video_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, *,
                      options: MetricOptions, nets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Frame metrics of one predicted video against its target, averaged over frames.

    Args:
        pred, target: ``(T, 3, H, W)`` float in [0, 1].
        mask: ``(T, H, W)`` bool (e.g. DyCheck's co-visibility); None: masked metrics = unmasked.
        options: which learned metrics to compute.
        nets: from :func:`load_metric_networks` (loaded here when None: pass them to load once).

    Returns:
        ``{"psnr", "ssim", "lpips", "mpsnr", "mssim", "mlpips", "clip_v", "clip_f"}`` -> float or
        :class:`Unavailable`, and ``"per_frame"``: ``{name: list}`` for the computed ones
        (``T`` values; ``T - 1`` for ``clip_f``; NaN for frames with an empty mask).

    Example:
        >>> x = torch.full((2, 3, 16, 16), 0.5); y = x + 0.1
        >>> r = per_video_metrics(x, y, options=MetricOptions(lpips=None), nets={})
        >>> round(r["psnr"], 2), round(r["mpsnr"], 2), isinstance(r["lpips"], Unavailable)
        (20.0, 20.0, True)
    """
    _check_video("pred", pred)
    _check_video("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} and {tuple(target.shape)}")
    T, _, H, W = pred.shape
    if mask is not None and tuple(mask.shape) != (T, H, W):
        raise ValueError(f"mask must be (T, H, W) = {(T, H, W)}, got {tuple(mask.shape)}")
    if nets is None:
        nets = load_metric_networks(options, which=("lpips", "clip"))
    mask = None if mask is None else mask.bool()
    per_frame: dict[str, torch.Tensor] = {}
    per_frame["psnr"] = psnr_per_frame(pred, target)
    per_frame["ssim"] = dycheck_ssim_per_frame(pred, target)
    if mask is None:
        per_frame["mpsnr"], per_frame["mssim"] = per_frame["psnr"], per_frame["ssim"]
    else:
        per_frame["mpsnr"] = psnr_per_frame(pred, target, mask)
        per_frame["mssim"] = dycheck_ssim_per_frame(pred, target, mask)
    result: dict[str, Any] = {}
    lp = nets.get("lpips", Unavailable("LPIPS network not loaded")) if options.lpips else Unavailable("LPIPS switched off (lpips=None)")
    if not isinstance(lp, Unavailable) and min(pred.shape[-2:]) < MIN_SIZE[lp.net_name]:
        lp = Unavailable(f"LPIPS-{lp.net_name} needs frames of at least {MIN_SIZE[lp.net_name]} pixels a side, "
                         f"got {tuple(pred.shape[-2:])}")
    if isinstance(lp, Unavailable):
        result["lpips"] = result["mlpips"] = lp
    else:
        per_frame["lpips"] = lpips_per_frame(lp, pred, target)
        per_frame["mlpips"] = per_frame["lpips"] if mask is None else lpips_per_frame(lp, pred, target, mask)
    clip = nets.get("clip", Unavailable("CLIP model not loaded"))
    if isinstance(clip, Unavailable):
        result["clip_v"] = result["clip_f"] = clip
    else:
        per_frame.update(clip_scores(clip, pred, target))
    result.update({name: nanmean(v) for name, v in per_frame.items()})
    result["per_frame"] = {k: [float(x) for x in v.tolist()] for k, v in per_frame.items()}
    return {k: result[k] for k in ("psnr", "ssim", "lpips", "mpsnr", "mssim", "mlpips", "clip_v", "clip_f", "per_frame")}


def set_metrics(preds: list[torch.Tensor], targets: list[torch.Tensor], *, options: MetricOptions,
                nets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Distribution metrics over a set of videos: FID (all frames) and FVD (16-frame clips).

    Args:
        preds, targets: lists of ``(T, 3, H, W)`` float videos in [0, 1] (sizes may differ).
        options, nets: as for :func:`per_video_metrics` (``fid`` and ``fvd`` networks).

    Returns:
        ``{"fid", "fvd"}`` -> float or :class:`Unavailable`; ``"fid_network"``, ``"fvd_variant"``: the
        feature network / variant each was measured with (for the report); ``"fid_samples"``,
        ``"fvd_samples"``: ``[predicted, target]`` counts of frames / clips. Fewer than 2 samples on a
        side makes the metric unavailable. Both are biased upwards on small sets: compare methods on
        the same set only.
    """
    for i, v in enumerate(list(preds) + list(targets)):
        _check_video(f"video {i}", v)
    if nets is None:
        nets = load_metric_networks(options, which=("fid", "fvd"))
    out: dict[str, Any] = {}
    for key, extract, unit in (("fid", frame_features, "frames"), ("fvd", clip_features, f"{FVD_CLIP}-frame clips")):
        net = nets.get(key, Unavailable(f"{key.upper()} network not loaded"))
        label = "fid_network" if key == "fid" else "fvd_variant"
        if isinstance(net, Unavailable):
            out[key], out[label], out[f"{key}_samples"] = net, "none", [0, 0]
            continue
        a, b = extract(net, list(preds)), extract(net, list(targets))
        out[f"{key}_samples"] = [len(a), len(b)]
        out[label] = net.name if key == "fid" else f"{net.variant}; {net.name}"
        if min(len(a), len(b)) < 2:
            out[key] = Unavailable(f"{key.upper()} needs at least 2 {unit} per side, got {len(a)} and {len(b)}")
        else:
            out[key] = fid_from_features(a, b, unbiased=net.unbiased)
    return {k: out[k] for k in ("fid", "fvd", "fid_network", "fvd_variant", "fid_samples", "fvd_samples")}


def camera_accuracy(video: torch.Tensor, K: torch.Tensor, w2c_target: torch.Tensor, *, reference: str = "first") -> dict[str, Any]:
    """Camera accuracy of a generated video against its requested trajectory (method:
    :mod:`vnvs.metrics.camera`).

    Args:
        video: ``(T, 3, H, W)`` in [0, 1]; K: ``(3, 3)`` or ``(T, 3, 3)`` pixels; w2c_target: ``(T, 4, 4)``.
        reference: pairs ``(0, t)`` ("first") or ``(t - 1, t)`` ("consecutive").

    Returns:
        ``{"rot_err_deg", "trans_dir_err_deg"}`` (float or :class:`Unavailable` when no pair was
        estimated), ``"failures"``, ``"frames"`` (pairs), ``"failure_rate"``, ``"trans_undefined"``,
        ``"reference"``, ``"per_frame"``.
    """
    _check_video("video", video)
    r = camera_errors(video, K, w2c_target, reference=reference)
    for key in ("rot_err_deg", "trans_dir_err_deg"):
        if r[key] is None:
            why = (f"pose estimation failed on all {r['frames']} frame pairs" if r["failures"] == r["frames"]
                   else "the target translation is zero on every estimated pair (pure rotation)")
            r[key] = Unavailable(why)
    return r


def to_json(value: Any) -> Any:
    """A result of this module as JSON values: :class:`Unavailable` -> ``{"unavailable": reason}``,
    NaN / inf -> None, tensors -> lists, recursively through dicts and lists.

    Example:
        >>> to_json({"a": Unavailable("no weights"), "b": [1.0, float("nan")]})
        {'a': {'unavailable': 'no weights'}, 'b': [1.0, None]}
    """
    if isinstance(value, Unavailable):
        return value.to_json()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
