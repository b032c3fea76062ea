"""Test-time finetuning (CogNVS): adapt a learned generator to one video with self-supervised pairs cut
from that video, then render it with the adapted model.

``finetune(config)``:

1. the model to start from (``default`` = the shipped one, or a model folder) decides the pairs:
   **co-visibility pairs** (``covis``) for inpainting models (``control = "inpaint"``; they need depth:
   a depth file or a depth model), **flow pairs** (``flow-pairs``) for the others (Scaling4D);
2. the video's frames (``stride``, ``max_frames``), centre-cropped square at the size the model samples
   at (its ``sampling.json`` ``resolution``), and their depth are written to the work folder, and the
   pairs are cut from them by the same builders as ``vnvs prepare`` (:mod:`vnvs.data.builders`);
3. :class:`vnvs.training.Trainer` trains from the model's weights with AdamW (every weight of a built-in
   DiT; LoRA adapters plus the control parameters of a diffusers backbone), checkpointing in the work
   folder, so an interrupted or extended run (more ``steps``) resumes exactly;
4. the result (adapters merged) goes to ``output`` through a temporary folder renamed into place, with
   the starting model's ``sampling.json`` (so ``vnvs render --generator OUTPUT`` samples it the same way)
   and ``finetune.json`` (what was done).

The work folder (default ``OUTPUT.work``) records its inputs in ``inputs.json``; a rerun with other
inputs is refused rather than mixed.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vnvs.apps.config import FinetuneConfig, RenderConfig
from vnvs.apps.render import run_render
from vnvs.data.config import PrepareConfig
from vnvs.data.engine import prepare
from vnvs.data.shards import read_index
from vnvs.data.schema import WorkItem
from vnvs.defaults import DEFAULT_DEPTH_MODEL, DEFAULT_GENERATOR, REFINE_GENERATOR
from vnvs.errors import InputError
from vnvs.estimators.video_depth import VideoDepth
from vnvs.generators import SHIPPED_MODELS, shipped_checkpoint
from vnvs.generators.learned import is_model_folder
from vnvs.io.transform import plan_transform
from vnvs.io.video import probe_video, read_video, write_video
from vnvs.models import NovelViewModel
from vnvs.sampling import SamplingConfig
from vnvs.training import TrainConfig, Trainer
from vnvs.training.checkpoint import latest_checkpoint
from vnvs.utils.atomic import atomic_dir

log = logging.getLogger(__name__)

INPUTS_NAME = "inputs.json"
DEFAULT_SIZE = 64
"""Training frame size when the starting model's sampling.json names none."""
DEFAULT_FRAMES = 9
"""Clip length when neither sampling.json nor the model fixes one."""


def resolve_model(spec: str) -> Path:
    """The model folder of a generator name: ``default`` or ``cognvs`` (the shipped models) or a saved model folder."""
    if spec in SHIPPED_MODELS:
        path = shipped_checkpoint(SHIPPED_MODELS[spec])
        if path is None:
            raise InputError(f"the shipped model {spec!r} is not installed; give a model folder as generator")
        return path
    path = Path(spec).expanduser()
    if not is_model_folder(path):
        raise InputError(f"generator {spec!r} is not a saved model folder (config.json + model.safetensors); "
                         "test-time finetuning needs a learned model")
    return path


def _clip_frames(sampling: SamplingConfig, model: NovelViewModel) -> int:
    """Frames per training clip: the window the model samples with, fitted to its temporal multiple."""
    T = sampling.window or model.window or DEFAULT_FRAMES
    r = model.temporal_multiple
    return max(1 + r, ((T - 1) // r) * r + 1)


def _train_config(config: FinetuneConfig, base: Path, model: NovelViewModel, kind: str, frames: int) -> TrainConfig:
    diffusers = model.config.backbone != "dit"
    rank = config.lora_rank if config.lora_rank is not None else (16 if diffusers else 0)
    lr = config.lr if config.lr is not None else (2e-5 if rank else 1e-4)
    x_pred = not diffusers and model.backbone.cfg.prediction == "x"
    cuda = torch.cuda.is_available()
    return TrainConfig(
        model=str(base.resolve()), data={kind: 1.0}, batch_size=config.batch_size, lr=lr, warmup_steps=0,
        ema_decay=0.0, control_dropout=0.0, timestep_shift=3.0, loss_weighting="x0" if x_pred else "none",
        max_steps=config.steps, checkpoint_every=min(config.checkpoint_every, config.steps), keep_checkpoints=1,
        log_every=max(1, min(10, config.steps)), seed=config.seed, num_workers=0, tensorboard=False,
        lora_rank=rank, gradient_checkpointing=diffusers, max_frames=frames,
        mixed_precision="bf16" if diffusers and cuda else "no")


def _read_frames(config: FinetuneConfig, size: int) -> tuple[torch.Tensor, float]:
    """The used frames (``stride``, ``max_frames``), centre-cropped square at ``size`` px, and the frame rate."""
    try:
        video = read_video(config.video, stride=config.stride, max_frames=config.max_frames, size=(size, size),
                           fit="resize_crop")
    except InputError:
        raise
    except Exception as exc:  # a decoder error on a damaged file
        raise InputError(f"cannot decode {config.video}: {' '.join(str(exc).split())}") from None
    if video.frames.shape[0] < 2:
        raise InputError(f"{config.video} has {video.frames.shape[0]} usable frame(s); test-time finetuning needs at least 2")
    return video.frames, float(video.fps or 10)


def _write_inputs(config: FinetuneConfig, work: Path, frames: torch.Tensor, fps: float, size: int,
                  needs_depth: bool) -> Path:
    """Write the used frames and (for co-visibility pairs) their depth into ``work``; return the video file."""
    clip = work / "video.mp4"
    if needs_depth:
        spec = config.depth or DEFAULT_DEPTH_MODEL
        info = probe_video(config.video)
        indices = [i * config.stride for i in range(frames.shape[0])]
        transform = plan_transform(info.size, (size, size), fit="resize_crop")
        depth = VideoDepth(spec, num_frames=frames.shape[0], frame_indices=indices, total_frames=info.num_frames,
                           transform=transform, device=config.device)
        try:
            maps, valid = depth(0, frames)
        finally:
            depth.close()
        d = torch.where(valid, maps, torch.zeros_like(maps))
        np.save(work / "depth.npy", d.numpy().astype(np.float32))
    write_video(clip, frames, fps=max(1.0, fps), crf=10)
    return clip


def _fit_clip(frames: int, available: int, temporal_multiple: int, flow: bool) -> int:
    """Clip length that fits the video: flow pairs need a second clip at least one frame later."""
    limit = available - 1 if flow else available
    r = temporal_multiple
    T = min(frames, limit)
    T = ((T - 1) // r) * r + 1
    if T < 1 + r and r > 1 or T < 2:
        need = 1 + r + (1 if flow else 0)
        raise InputError(f"the video gives {available} frames; this model's pairs need at least {need}")
    return T


def _check_work(work: Path, record: dict) -> None:
    path = work / INPUTS_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old != record:
            raise InputError(f"work folder {work} holds a finetune of other inputs; remove it or choose another work folder")


def finetune(config: FinetuneConfig, *, warn_unused_depth: bool = True) -> dict:
    """Finetune the generator of ``config`` on its video and write the adapted model to ``config.output``.

    Returns:
        A summary: ``output``, ``base``, ``kind`` (pair kind), ``pairs``, ``steps``, ``resumed_from``,
        ``final_loss``, ``lora_rank``, ``seconds``.
    """
    start = time.perf_counter()
    if not config.video.is_file():
        raise InputError(f"video {config.video} does not exist")
    if config.output.exists() and not config.output.is_dir():
        raise InputError(f"output {config.output} exists and is not a folder")
    base = resolve_model(config.generator)
    model = NovelViewModel.from_pretrained(base)
    sampling = SamplingConfig.load(base)
    inpaint = model.config.control == "inpaint"
    kind = "covis" if inpaint else "flow-pairs"
    if config.depth is not None and not inpaint and warn_unused_depth:
        log.warning("depth is not used: %s trains on flow pairs (only inpainting models use depth)", base.name)
    size = sampling.resolution or DEFAULT_SIZE
    m = model.spatial_multiple
    size = max(m, (size // m) * m)
    video_frames, fps = _read_frames(config, size)
    frames = _fit_clip(_clip_frames(sampling, model), video_frames.shape[0], model.temporal_multiple, not inpaint)
    train_config = _train_config(config, base, model, kind, frames)
    del model

    work = config.work or config.output.with_name(config.output.name + ".work")
    record = {"video": str(config.video.resolve()), "generator": str(base.resolve()), "depth": config.depth,
              "stride": config.stride, "max_frames": config.max_frames, "pairs": config.pairs, "seed": config.seed,
              "size": size, "frames": frames, "kind": kind}
    _check_work(work, record)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not (data / "index.json").is_file():
        clip = _write_inputs(config, work, video_frames, fps, size, inpaint)
        trajectories = 2
        max_offset = max(1, min(8, video_frames.shape[0] - frames))
        prep = PrepareConfig(size=size, clip_frames=frames, pairs_per_video=math.ceil(config.pairs / trajectories) if inpaint
                             else config.pairs, covis_trajectories=trajectories, min_coverage=0.2, max_offset=max_offset)
        item = WorkItem("video", path=str(clip), depth=str(work / "depth.npy") if inpaint else None)
        summary = prepare([item], data, kind, prep, seed=config.seed, workers=1)
        if summary.samples == 0:
            shutil.rmtree(data, ignore_errors=True)
            raise InputError(f"no training pairs could be cut from {config.video} ({summary.line()}); "
                             "a longer video or more camera or scene motion helps")
        (work / INPUTS_NAME).write_text(json.dumps(record, indent=2) + "\n")

    run = work / "run"
    resume_from = latest_checkpoint(run)
    result = Trainer(train_config, data, run, resume=resume_from is not None).fit()
    with atomic_dir(config.output) as tmp:
        for f in Path(result.model).iterdir():
            shutil.copy2(f, tmp / f.name)
        if (base / "sampling.json").is_file():  # sample as the starting model does
            shutil.copy2(base / "sampling.json", tmp / "sampling.json")
        info = {"base": str(base.resolve()), "video": str(config.video), "kind": kind, "steps": result.steps,
                "lr": train_config.lr, "lora_rank": train_config.lora_rank, "batch_size": config.batch_size,
                "size": size, "frames": frames, "seed": config.seed, "final_loss": result.final_loss}
        (tmp / "finetune.json").write_text(json.dumps(info, indent=2) + "\n")
    pairs = int(read_index(data)["totals"]["samples"])
    return {"output": str(config.output), "base": str(base), "kind": kind, "steps": result.steps,
            "start_step": result.start_step, "resumed_from": result.resumed_from, "final_loss": result.final_loss,
            "lora_rank": train_config.lora_rank, "lr": train_config.lr, "pairs": pairs,
            "seconds": time.perf_counter() - start}


def refiner_spec(generator: str) -> str | None:
    """The model a ``warp+inpaint+refine[:MODEL]`` generator redraws with (None for other generators)."""
    if generator == REFINE_GENERATOR:
        return DEFAULT_GENERATOR
    if generator.startswith(REFINE_GENERATOR + ":"):
        return generator[len(REFINE_GENERATOR) + 1:]
    return None


def finetune_for_render(config: RenderConfig, folder: Path, base: str | None = None) -> Path:
    """``vnvs render --ttf N``: finetune the render's generator (or the model ``base``) on its video into
    ``folder``/model."""
    base = base or config.generator
    name = f"{resolve_model(base).resolve().name}-ttf{config.ttf}"
    ft = FinetuneConfig(video=config.video, output=folder / name, generator=base,
                        depth=config.depth,
                        steps=config.ttf, stride=config.stride, max_frames=config.max_frames, seed=config.seed,
                        checkpoint_every=config.ttf, work=folder / "work", device=config.device)
    finetune(ft, warn_unused_depth=False)
    return folder / name


def render_with_ttf(config: RenderConfig) -> dict:
    """Finetune for ``config.ttf`` steps in a temporary folder, then render with the adapted model
    (``warp+inpaint+refine``: its refiner is finetuned and redraws the inpainting)."""
    if config.generator in ("warp", "warp+inpaint"):
        raise InputError(f"ttf needs a learned generator; {config.generator} has nothing to finetune")
    refiner = refiner_spec(config.generator)
    with tempfile.TemporaryDirectory(prefix="vnvs-ttf-") as tmp:
        model = finetune_for_render(config, Path(tmp), refiner)
        generator = str(model) if refiner is None else f"{REFINE_GENERATOR}:{model}"
        summary = run_render(replace(config, generator=generator, ttf=0))
    summary["ttf_steps"] = config.ttf
    return summary
