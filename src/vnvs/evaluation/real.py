"""The ``real`` benchmark: the self-supervised task on held-out real videos.

Each sample prepared by ``vnvs prepare --kind flow-pairs`` (Scaling4D's training pairs) holds a
source clip, a later target clip of the same video, and the source carried to the target by
optical flow (the control signal). A method predicts the target clip from the control signal;
PSNR / SSIM are measured over the full frame, over ``M`` (target pixels a source pixel reached,
mostly co-visible content) and outside ``M`` (content the source does not show), plus seconds
per frame. Use videos that no training run saw, prepared into their own folder.
"""

from __future__ import annotations

import os

from vnvs.data.dataset import ShardDataset
from vnvs.data.schema import PAIR_KINDS
from vnvs.errors import InputError
from vnvs.evaluation.synthetic import score, timed, warm_up
from vnvs.geometry.control import control_mask
from vnvs.utils.progress import progress_bar

METRICS = ["psnr", "ssim", "psnr_mask", "ssim_mask", "psnr_nonmask", "ssim_nonmask", "seconds_per_frame"]


def run_real(generators: dict[str, object], specs: dict[str, str], data: str | os.PathLike, *,
             kind: str = "flow-pairs", limit: int | None = None, seed: int = 0) -> tuple[list[dict], dict[str, dict]]:
    """Score every generator on the pair samples of kind ``kind`` in a prepared folder.

    Args:
        generators: ``{label: generator}``; specs: ``{label: name given}``.
        data: folder written by ``vnvs prepare`` (``index.json`` + shards).
        kind: sample kind to use (default ``flow-pairs``).
        limit: use at most this many samples, in index order (default: all).
        seed: generator seed.

    Returns:
        Sample descriptions and ``{label: {"spec", "generator", "items": [metrics per sample]}}``.
    """
    if kind not in PAIR_KINDS:
        raise InputError(f"kind must be a pair kind ({', '.join(PAIR_KINDS)}), got {kind!r}")
    if data is None:
        raise InputError("the real benchmark needs data: a folder of flow pairs made by prepare (kind flow-pairs)")
    ds = ShardDataset(data, kinds=[kind], shuffle=False, fields=["control", "target"])
    n = len(ds.samples) if limit is None else min(len(ds.samples), int(limit))
    if n == 0:
        raise InputError(f"no {kind} samples in {data}")
    items: list[dict] = []
    results = {label: {"spec": specs[label], "generator": str(getattr(g, "name", label)), "items": []}
               for label, g in generators.items()}
    with progress_bar("eval real", total=n * len(generators), unit="run") as bar:
        for i in range(n):
            sample = ds.load(i)
            control, target = sample["control"], sample["target"]
            mask = control_mask(control)
            meta = sample["meta"]
            first = (meta.get("target_frames") or [None])[0]
            name = f"{meta.get('source', 'clip')}@{first}" if first is not None else f"{meta.get('source', 'clip')}#{i}"
            items.append({"index": i, "name": name, "source": meta.get("source"),
                          "source_frames": meta.get("source_frames"), "target_frames": meta.get("target_frames"),
                          "frames": int(target.shape[0]),
                          "height": int(target.shape[-2]), "width": int(target.shape[-1]),
                          "mask_fraction": float(mask.float().mean())})
            regions = {"": None, "mask": mask, "nonmask": ~mask}
            if i == 0:
                warm_up(generators, control)
            for label, gen in generators.items():
                bar.set_postfix_str(f"clip {i + 1}/{n}: {label}")
                pred, spf = timed(gen, control, seed)
                results[label]["items"].append({**score(pred, target, regions), "seconds_per_frame": spf})
                bar.update()
    return items, results
