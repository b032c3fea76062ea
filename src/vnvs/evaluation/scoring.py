"""Scoring the dataset benchmarks (``dycheck``, ``kubric4d``, ``videos``): one loop for all three.

For each item (:class:`~vnvs.evaluation.datasets.EvalItem`) the control signal of its target
cameras is rendered once (:func:`vnvs.geometry.control.render_control`) and every method completes
it; frame metrics come from :func:`vnvs.metrics.suite.per_video_metrics` (with the item's mask, if
any), set metrics (FID, FVD) from :func:`vnvs.metrics.suite.set_metrics` over all items of a
method, camera accuracy (``videos``) from :func:`vnvs.metrics.suite.camera_accuracy`. A metric that
cannot be computed is reported as ``{"unavailable": reason}`` and the rest runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from vnvs.evaluation.datasets.base import ItemRef
from vnvs.evaluation.synthetic import timed, warm_up
from vnvs.geometry.control import WARPED, control_mask, render_control
from vnvs.metrics.suite import (
    MetricOptions,
    Unavailable,
    camera_accuracy,
    per_video_metrics,
    set_metrics,
    to_json,
)
from vnvs.utils.progress import progress_bar

FRAME_METRICS = ["psnr", "ssim", "lpips"]
MASKED_METRICS = ["mpsnr", "mssim", "mlpips"]
CAMERA_METRICS = ["rot_err_deg", "trans_dir_err_deg"]
SET_METRICS = ["fid", "fvd"]
SHEET_FRAMES = 6
"""Frames across a contact sheet."""


def benchmark_metrics(benchmark: str) -> list[str]:
    """The report columns of a dataset benchmark."""
    keys = list(FRAME_METRICS)
    if benchmark == "dycheck":
        keys += MASKED_METRICS
    if benchmark == "videos":
        keys += CAMERA_METRICS
    return keys + ["seconds_per_frame"] + SET_METRICS


@dataclass
class Sheet:
    """What a contact sheet of one item shows: labelled rows of the same few frames."""

    name: str
    rows: list[torch.Tensor] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def _to_u8(video: torch.Tensor) -> torch.Tensor:
    return (video.clamp(0, 1) * 255).round().to(torch.uint8)


def _set_available(nets: dict) -> bool:
    return any(not isinstance(nets.get(k), Unavailable) and nets.get(k) is not None for k in ("fid", "fvd"))


def run_items(refs: list[ItemRef], generators: dict[str, object], specs: dict[str, str], *, benchmark: str, seed: int,
              options: MetricOptions, nets: dict, renderer: str = "zbuffer", sheets: int = 4
              ) -> tuple[list[dict], dict[str, dict], dict, list[Sheet]]:
    """Score every generator on every item.

    Returns:
        item descriptions, ``{label: {"spec", "generator", "items": [metrics per item], "set": {...}}}``,
        the protocol facts measured on the way (sizes, frames, masks), and the contact sheets' rows.
    """
    keys = [k for k in benchmark_metrics(benchmark) if k not in SET_METRICS and k != "seconds_per_frame"]
    items: list[dict] = []
    results = {label: {"spec": specs[label], "generator": str(getattr(g, "name", label)), "items": []}
               for label, g in generators.items()}
    keep = _set_available(nets)
    preds: dict[str, list[torch.Tensor]] = {label: [] for label in generators}
    refs_set: list[torch.Tensor] = []
    facts = {"sizes": set(), "frames": 0, "masked_items": 0, "items_with_truth": 0}
    out_sheets: list[Sheet] = []
    with progress_bar(f"eval {benchmark}", total=len(refs) * (1 + len(generators)), unit="run") as bar:
        for i, ref in enumerate(refs):
            bar.set_postfix_str(f"item {i + 1}/{len(refs)}: loading")
            it = ref.load()
            control = render_control(it.frames, it.depth, it.K_src, it.w2c_src, it.K_tgt, it.w2c_tgt, it.size,
                                     times=it.times, valid=it.valid, renderer=renderer)
            N = control.shape[0]
            items.append({"index": i, **it.info, "frames": N, "height": it.size[0], "width": it.size[1],
                          "warp_coverage": float(control_mask(control).float().mean()),
                          "mask_fraction": None if it.mask is None else float(it.mask.float().mean())})
            facts["sizes"].add(tuple(it.size))
            facts["frames"] += N
            facts["masked_items"] += it.mask is not None
            facts["items_with_truth"] += it.target is not None
            if i == 0:
                warm_up({k: g for k, g in generators.items() if not getattr(g, "needs_item", False)}, control)
            bar.update()
            sheet = None
            if i < sheets:
                cols = torch.linspace(0, N - 1, min(SHEET_FRAMES, N)).round().long()
                truth = it.target if it.target is not None else it.frames[it.times]
                sheet = Sheet(it.name, [truth[cols], control[cols, WARPED]],
                              ["truth" if it.target is not None else "source", "input (warp)"])
            if keep:
                refs_set.append(_to_u8(it.target if it.target is not None else it.frames))
            for label, gen in generators.items():
                bar.set_postfix_str(f"item {i + 1}/{len(refs)}: {label}")
                call = functools.partial(gen, item=it) if getattr(gen, "needs_item", False) else gen
                pred, spf = timed(call, control, seed)
                row: dict = {}
                if it.target is not None:
                    m = per_video_metrics(pred, it.target, it.mask, options=options, nets=nets)
                    row.update({k: m[k] for k in keys if k in m})
                    row["per_frame"] = {k: v for k, v in m["per_frame"].items() if k in keys}
                else:
                    row.update({k: Unavailable("no ground-truth target video") for k in keys if k not in CAMERA_METRICS})
                if benchmark == "videos":
                    acc = camera_accuracy(pred, it.K_tgt, it.w2c_tgt)
                    row.update({k: acc.get(k, Unavailable("not measured")) for k in CAMERA_METRICS})
                    row["camera_failures"] = acc.get("failures")
                row["seconds_per_frame"] = spf
                results[label]["items"].append(to_json(row))
                if keep:
                    preds[label].append(_to_u8(pred))
                if sheet is not None:
                    sheet.rows.append(pred[cols])
                    sheet.labels.append(label)
                bar.update()
            if sheet is not None:
                out_sheets.append(sheet)
    for label in generators:
        if keep:
            s = set_metrics([p.float() / 255 for p in preds[label]], [r.float() / 255 for r in refs_set],
                            options=options, nets=nets)
        else:
            s = {"fid": nets.get("fid", Unavailable("not loaded")), "fvd": nets.get("fvd", Unavailable("not loaded")),
                 "fid_network": "none", "fvd_variant": "none"}
        results[label]["set"] = to_json(s)
    facts["sizes"] = sorted(facts["sizes"])
    return items, results, facts, out_sheets
