"""The training loop: flow matching on prepared pairs, through Hugging Face Accelerate.

One process by default (CPU or one GPU); under ``accelerate launch`` the same code runs DDP on
several GPUs or nodes (each process reads a disjoint slice of every epoch; see
:mod:`vnvs.training.data`). Per optimizer step: ``grad_accum`` micro-batches, each encoded by the
model, noised at a sampled ``sigma``, with a fraction of its control signals dropped, through the
network, MSE on the velocity; then gradient clipping, AdamW, the LR schedule and the EMA.

Randomness: the model is initialised from ``seed`` (identically on every process); the noise,
sigmas and control dropout of micro-batch ``m`` of step ``n`` on rank ``r`` come from a generator
seeded by ``(seed, r, n, m)``; the data order from ``(seed, epoch)``. The global RNGs (used only by
layers such as dropout) are saved and restored per process. So a resumed run reproduces the
uninterrupted one exactly on the CPU.

Outputs in ``OUTPUT/``: ``log.jsonl`` (one JSON line per ``log_every`` steps: ``step``, ``epoch``,
``loss``, ``lr``, ``grad_norm``, ``samples_per_s``, ``seconds``), ``tensorboard/`` (when installed),
``checkpoints/step-XXXXXXXX/`` (:mod:`vnvs.training.checkpoint`), and at the end ``model/`` (the EMA
weights, ``NovelViewModel.save_pretrained``) and ``train_config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vnvs.errors import InputError
from vnvs.training.config import TrainConfig

LOG_NAME = "log.jsonl"
MODEL_DIR = "model"


@dataclass
class TrainResult:
    """What a training run did."""

    output: str
    """The run folder."""
    model: str
    """Folder of the exported (EMA) model."""
    start_step: int
    """Optimizer steps already done when this call started (0, or the resumed checkpoint's step)."""
    steps: int
    """Optimizer steps done at the end."""
    resumed_from: str | None
    """The checkpoint this call resumed from."""
    final_loss: float | None
    """Mean loss of the last logged window."""
    seconds: float
    """Wall time of the training steps of this call."""
    samples_per_second: float
    """Training samples (all processes) per second over this call's steps."""
    processes: int
    """Number of training processes."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        start = f" (resumed at step {self.start_step})" if self.resumed_from else ""
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        return (f"trained to step {self.steps}{start} on {self.processes} process(es) in {self.seconds:.1f} s "
                f"({self.samples_per_second:.2f} samples/s); final loss {loss}; model in {self.model}")


# ---- model ---------------------------------------------------------------------------------------

def build_model(spec: str | dict):
    """A :class:`~vnvs.models.NovelViewModel` from a model preset name, a ``ModelConfig`` dict, or a
    folder written by ``save_pretrained`` (its weights are loaded: finetuning)."""
    from vnvs.models import PRESETS, ModelConfig, NovelViewModel, get_preset

    if isinstance(spec, dict):
        return NovelViewModel.from_config(ModelConfig.from_dict(spec))
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"model folder {path} has no config.json (expected a NovelViewModel.save_pretrained folder)")
        return NovelViewModel.from_pretrained(path)
    if str(spec) not in PRESETS:
        raise InputError(f"unknown model {str(spec)!r}: neither a model preset ({', '.join(PRESETS)}) nor a model folder")
    return NovelViewModel.from_config(get_preset(str(spec)))


def check_model_spec(spec: str | dict) -> None:
    """Raise :class:`InputError` unless ``spec`` names a model preset or folder, or is a valid ModelConfig dict."""
    from vnvs.models import PRESETS, ModelConfig

    if isinstance(spec, dict):
        ModelConfig.from_dict(spec)
    elif not (str(spec) in PRESETS or (Path(spec) / "config.json").is_file()):
        raise InputError(f"unknown model {str(spec)!r}: neither a model preset ({', '.join(PRESETS)}) "
                         "nor a folder written by save_pretrained")


def _freeze(model, config: TrainConfig) -> None:
    """Apply ``freeze_backbone`` (and keep any autoencoder frozen)."""
    vae = getattr(model, "vae", None)
    if isinstance(vae, torch.nn.Module):
        vae.requires_grad_(False)  # the autoencoder is never trained here
    if config.freeze_backbone:
        for p in model.backbone_parameters():
            p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise InputError("the model has no trainable parameters with this config")


def freeze_unused(model, dataset, fit: dict[str, Any], device: torch.device) -> list[str]:
    """Freeze the trainable parameters that get no gradient from a training forward pass; return their names.

    Training never passes text embeddings, so e.g. a text projection is never used; DDP needs every
    trainable parameter to take part in each step (or the slower ``find_unused_parameters``). One
    sample of the data goes through the model once (gradients are then cleared; no RNG is drawn).
    """
    from vnvs.data.dataset import collate
    from vnvs.training.adapt import fit_batch

    batch = collate([dataset.load(0)])
    control, target = fit_batch(batch["control"], batch["target"], **fit)
    model.to(device)
    with torch.no_grad():
        x0 = model.encode(target.to(device))
    v = model(x0, torch.full((1,), 500.0, device=device), control=control.to(device))
    v.float().square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    for n, p in model.named_parameters():
        if n in unused:
            p.requires_grad_(False)
    return unused


def lr_lambda(config: TrainConfig):
    """Multiplier of the peak LR after ``step`` optimizer steps: linear warmup, then the schedule."""
    warmup, total, kind = config.warmup_steps, config.max_steps, config.lr_schedule

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress

    return f


def step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    """Seed of the noise / sigma / dropout generator of one micro-batch (63 bits)."""
    text = f"vnvs-train:{int(seed)}:{int(rank)}:{int(step)}:{int(micro)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % 2**63


# ---- logs ------------------------------------------------------------------------------------------

class RunLog:
    """``log.jsonl`` (append, one line per entry) and TensorBoard when installed (main process only)."""

    def __init__(self, output: Path, enabled: bool, tensorboard: bool, resume_step: int | None):
        self.path = output / LOG_NAME
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self._truncate(resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the JSON log is enough
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(log_dir=str(output / "tensorboard"), purge_step=resume_step)

    def _truncate(self, resume_step: int | None) -> None:
        """Fresh run: start an empty log; resumed run: keep only the lines up to the resumed step."""
        keep = []
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if entry.get("step", math.inf) <= resume_step:
                    keep.append(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(f"{line}\n" for line in keep))

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.writer is not None:
            for k, v in entry.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)) and v is not None:
                    self.writer.add_scalar(f"train/{k}", v, entry["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def export_ema(model, ema, path: Path) -> None:
    """``model.save_pretrained(path)`` with the EMA weights in place of the trained ones (the model is
    left as it was)."""
    if ema is None:
        model.save_pretrained(path)
        return
    params = dict(model.named_parameters())
    backup = {n: params[n].detach().to("cpu", copy=True) for n in ema.names}
    try:
        ema.copy_to(model)
        model.save_pretrained(path)
    finally:
        with torch.no_grad():
            for n, t in backup.items():
                params[n].copy_(t)


def read_log(output: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a run's ``log.jsonl``."""
    path = Path(output) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ---- the run ---------------------------------------------------------------------------------------

def _check_inputs(config: TrainConfig, data: Path, output: Path, resume: bool):
    from vnvs.training.checkpoint import latest_checkpoint, read_config

    check_model_spec(config.model)
    if not data.is_dir():
        raise InputError(f"data folder {data} does not exist")
    if not (data / "index.json").is_file():
        raise InputError(f"{data} has no index.json; build training data with `vnvs prepare` first")
    if output.exists() and not output.is_dir():
        raise InputError(f"output {output} exists and is not a folder")
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise InputError("mixed_precision fp16 needs a GPU; use bf16 or no on the CPU")
    existing = latest_checkpoint(output)
    if existing is not None and not resume:
        raise InputError(f"{output} already holds checkpoints (latest {existing.name}); pass --resume to continue, "
                         "or choose a new output folder")
    if resume and existing is not None:
        saved = read_config(existing)
        changed = config.differences(saved)
        if changed:
            raise InputError(f"the config differs from the checkpoint's in {', '.join(changed)}; resume with the "
                             "same config (only max_steps, checkpoint/log settings and num_workers may change)")
    return existing if resume else None


def train(config: TrainConfig, data: str | os.PathLike, output: str | os.PathLike, *, resume: bool = False) -> TrainResult:
    """Train a model on the prepared samples in ``data``; write checkpoints, logs and the model to ``output``.

    Args:
        config: the run (see :class:`TrainConfig`).
        data: a folder written by ``vnvs prepare`` holding the kinds of ``config.data``.
        output: the run folder (created).
        resume: continue from the latest complete checkpoint in ``output`` (start fresh if there is
            none). Without it, an ``output`` holding checkpoints is refused.

    Returns:
        :class:`TrainResult`. Run under ``accelerate launch`` for several processes (every process
        calls this with the same arguments).
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs

    data, output = Path(data), Path(output)
    ckpt = _check_inputs(config, data, output, resume)

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    # several processes on a machine without CUDA (torchrun / accelerate launch --multi_gpu): DDP over gloo
    cpu = launched > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=cpu, mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)])
    try:
        if accelerator.num_processes != launched:
            raise InputError(f"launched as {launched} processes but Accelerate runs {accelerator.num_processes}; "
                             "check the accelerate config")
        return _run(config, data, output, ckpt, accelerator)
    finally:
        accelerator.end_training()
        _reset_accelerate()


def _reset_accelerate() -> None:
    """Forget Accelerate's process-wide singletons, so a later run in this process may use other settings."""
    from accelerate.state import AcceleratorState, GradientState

    with contextlib.suppress(Exception):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def _run(config: TrainConfig, data: Path, output: Path, ckpt: Path | None, accelerator) -> TrainResult:
    from accelerate.utils import DistributedType, set_seed

    from vnvs.data.dataset import ShardDataset
    from vnvs.training import checkpoint as ckpt_io
    from vnvs.training.adapt import fit_batch
    from vnvs.training.data import EpochBatches
    from vnvs.training.ema import EMA
    from vnvs.training.flow_matching import flow_matching_loss
    from vnvs.utils.progress import progress_bar

    rank, world = accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    device = accelerator.device

    # data first: a bad folder fails before anything is written or built
    dataset = ShardDataset(data, weights=config.data, seed=config.seed, fields=("control", "target"), rank=rank,
                           world_size=world, drop_last=True, epoch_size=config.epoch_size)
    batches = EpochBatches(dataset, config.batch_size, rank, world, config.num_workers,
                           pin_memory=device.type == "cuda")
    if batches.batches_per_epoch(0) == 0:
        raise InputError(f"{data} has {len(dataset.samples)} samples of {', '.join(dataset.kinds)}: fewer than one batch "
                         f"of {config.batch_size} per process x {world} process(es)")
    if main:
        output.mkdir(parents=True, exist_ok=True)
        ckpt_io.remove_partial(output)
    accelerator.wait_for_everyone()

    fit = dict(max_frames=config.max_frames, mode=config.adapt_frames)
    torch.manual_seed(config.seed)  # the same initial weights on every process
    model = build_model(config.model)
    fit.update(spatial_multiple=int(model.spatial_multiple), temporal_multiple=int(model.temporal_multiple),
               window=model.window)
    _freeze(model, config)
    model.train()
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    if fsdp and config.ema_decay > 0:
        raise InputError("the EMA is kept per parameter on each process and does not support FSDP; set ema_decay = 0")
    if not fsdp and not config.find_unused_parameters:
        unused = freeze_unused(model, dataset, fit, device)
        if unused and main:
            print(f"vnvs train: {len(unused)} parameter tensors get no gradient (used only with text input) and stay frozen "
                  f"({', '.join(unused[:4])}{', ...' if len(unused) > 4 else ''})", file=sys.stderr)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if config.gradient_checkpointing:
        model.set_gradient_checkpointing(True)
    set_seed(config.seed, device_specific=True)  # global RNGs: seed + process index

    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay, eps=config.adam_eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    params = dict(unwrapped.named_parameters())
    names = [n for n, _ in trainable]
    trainable_params = [params[n] for n in names]
    ema = EMA(((n, params[n]) for n in names), config.ema_decay) if config.ema_decay > 0 else None

    step, epoch, start_batch, samples_seen = 0, 0, 0, 0
    if ckpt is not None:
        state = ckpt_io.read_state(ckpt)
        if state["world_size"] != world:
            raise InputError(f"checkpoint {ckpt} was written by {state['world_size']} process(es), this run has {world}; "
                             "resume with the same number (data order and RNG states are per process)")
        accelerator.load_state(str(ckpt))
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            saved = ckpt_io.load_ema(ckpt)
            if saved is None:
                raise InputError(f"checkpoint {ckpt} has no EMA weights")
            ema.load_state_dict({k: v.to(device) for k, v in saved.items()}, state["ema_updates"])
        step, epoch, start_batch, samples_seen = state["step"], state["epoch"], state["batch"], state["samples_seen"]
    if config.record_samples:
        record = output / "samples" / f"rank-{rank:04d}.jsonl"
        record.parent.mkdir(parents=True, exist_ok=True)
        kept = [ln for ln in record.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step] \
            if ckpt is not None and record.is_file() else []
        record.write_text("".join(f"{ln}\n" for ln in kept))

    log = RunLog(output, main, config.tensorboard, step if ckpt is not None else None)
    start_step = step
    stream = batches(epoch, start_batch)
    per_step = config.batch_size * config.grad_accum * world
    window_losses: list[torch.Tensor] = []
    grad_norm = None
    final_loss = None
    t_start = t_window = time.perf_counter()
    window_steps = 0
    bar = progress_bar("train", total=config.max_steps, unit="step") if main else contextlib.nullcontext()
    try:
        with bar:
            if main:
                bar.update(step)
            while step < config.max_steps:
                micro_losses = []
                positions: list[int] = []
                for micro in range(config.grad_accum):
                    epoch, index, batch = next(stream)
                    positions.extend(batch["position"])
                    control, target = fit_batch(batch["control"], batch["target"], **fit)
                    control = control.to(device, non_blocking=True)
                    target = target.to(device, non_blocking=True)
                    generator = torch.Generator(device=device).manual_seed(step_seed(config.seed, rank, step, micro))
                    with accelerator.accumulate(model):
                        with torch.no_grad(), accelerator.autocast():
                            x0 = unwrapped.encode(target)
                        out = flow_matching_loss(
                            model, x0.float(), control, generator=generator, sampling=config.timestep_sampling,
                            logit_mean=config.logit_mean, logit_std=config.logit_std, shift=config.timestep_shift,
                            control_dropout=config.control_dropout, weighting=config.loss_weighting)
                        accelerator.backward(out.loss)
                        if accelerator.sync_gradients:
                            if config.max_grad_norm > 0:
                                grad_norm = accelerator.clip_grad_norm_(trainable_params, config.max_grad_norm)
                            optimizer.step()
                            if not accelerator.optimizer_step_was_skipped:
                                scheduler.step()
                            optimizer.zero_grad(set_to_none=True)
                    micro_losses.append(out.loss.detach().float())
                    start_batch = index + 1
                if ema is not None and not accelerator.optimizer_step_was_skipped:
                    ema.update(trainable_params)
                step += 1
                samples_seen += per_step
                window_steps += 1
                window_losses.append(torch.stack(micro_losses).mean())
                if config.record_samples:
                    with open(record, "a") as f:
                        f.write(json.dumps({"step": step, "epoch": epoch, "positions": positions}) + "\n")
                if main:
                    bar.update(1)
                if step % config.log_every == 0 or step == config.max_steps:
                    loss = accelerator.reduce(torch.stack(window_losses).mean(), reduction="mean")
                    final_loss = float(loss)
                    now = time.perf_counter()
                    entry = {"step": step, "epoch": epoch, "loss": final_loss, "lr": scheduler.get_last_lr()[0],
                             "grad_norm": None if grad_norm is None else float(grad_norm),
                             "samples_per_s": window_steps * per_step / max(now - t_window, 1e-9),
                             "seconds": now - t_start}
                    log.write(entry)
                    if main:
                        bar.set_postfix(loss=f"{final_loss:.4f}")
                    window_losses, window_steps, t_window = [], 0, now
                if step % config.checkpoint_every == 0 or step == config.max_steps:
                    state = {"epoch": epoch, "batch": start_batch, "samples_seen": samples_seen, "world_size": world,
                             "batch_size": config.batch_size, "grad_accum": config.grad_accum,
                             "ema_updates": ema.updates if ema is not None else 0,
                             "scheduler": scheduler.state_dict()}
                    ckpt_io.save_checkpoint(accelerator, output, step, state=state, config_dict=config.to_dict(),
                                            ema_state=ema.state_dict() if ema is not None else None,
                                            keep=config.keep_checkpoints)
        seconds = time.perf_counter() - t_start
    finally:
        stream.close()  # stops the DataLoader workers
        log.close()

    accelerator.wait_for_everyone()
    model_dir = output / MODEL_DIR
    if fsdp:  # gather the sharded weights into a whole model on the main process
        full = accelerator.get_state_dict(model)
        if main:
            unwrapped = build_model(config.model)
            unwrapped.load_state_dict(full)
    if main:
        export_ema(unwrapped, ema, model_dir)
        config.save(output / "train_config.json")
    accelerator.wait_for_everyone()
    done = step - start_step
    return TrainResult(output=str(output), model=str(model_dir), start_step=start_step, steps=step,
                       resumed_from=str(ckpt) if ckpt is not None else None, final_loss=final_loss, seconds=seconds,
                       samples_per_second=done * per_step / seconds if done and seconds > 0 else 0.0,
                       processes=world)
