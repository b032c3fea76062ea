"""The training loop: flow matching on prepared pairs, through Hugging Face Accelerate.

:class:`Trainer` holds a run and its stages (setup, resume, step, log, checkpoint, export);
:func:`train` runs one from start to end. One process by default (CPU or one GPU); under
``accelerate launch`` the same code runs DDP on several GPUs or nodes (each process reads a
disjoint slice of every epoch; see :mod:`vnvs.training.data`). Per optimizer step: ``grad_accum`` micro-batches, each encoded by the
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
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vnvs.data.dataset import ShardDataset, collate
from vnvs.errors import InputError
from vnvs.models import build_model, check_model_spec
from vnvs.sampling import SamplingConfig
from vnvs.training import checkpoint as ckpt_io
from vnvs.training.adapt import fit_batch
from vnvs.training.config import TrainConfig
from vnvs.training.data import EpochBatches
from vnvs.training.ema import EMA, export_ema, load_averages
from vnvs.training.flow_matching import flow_matching_loss
from vnvs.training.memory import (
    GB,
    MemoryEstimate,
    available_bytes,
    format_bytes,
    kept_activation_bytes,
)
from vnvs.utils.atomic import atomic_dir
from vnvs.utils.outputs import check_destination
from vnvs.training.lora import add_lora, has_lora, merge_lora
from vnvs.utils.progress import progress_bar

log = logging.getLogger(__name__)
LOG_NAME = "log.jsonl"
COVIS_KINDS = {"covis", "synthetic-covis"}
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


def trained_sampling(dataset, fit: dict[str, Any]) -> SamplingConfig:
    """The sampling settings a model is exported with: the frame size (short side) and frame count it was
    trained on, seamless compositing (the warped source kept wherever a source pixel landed, the painted
    holes' colours blended into it) and the renderer whose
    conditioning matches the training pairs: ``mesh`` when they are all co-visibility pairs (their warped
    frames are whole surfaces, without splat cracks), else ``zbuffer`` (flow and synthetic pairs splat
    points), so that ``--generator OUTPUT/model`` samples as it was trained."""
    batch = collate([dataset.load(0)])
    _, target = fit_batch(batch["control"], batch["target"], **fit)
    T, _, H, W = target.shape[1:]
    renderer = "mesh" if set(dataset.kinds) <= COVIS_KINDS else "zbuffer"
    return SamplingConfig(resolution=min(H, W), window=T, overlap=max(0, min(4, T // 4)), composite=True,
                          seamless=True, renderer=renderer)


def probe_step(model, dataset, fit: dict[str, Any], device: torch.device, autocast=contextlib.nullcontext
               ) -> tuple[list[str], int]:
    """One sample of the data through a training forward and backward pass (gradients are then cleared;
    no RNG is drawn). Returns the names of the trainable parameters that got no gradient and the bytes
    of activations autograd kept for the backward pass (:func:`vnvs.training.memory.kept_activation_bytes`).

    Training never passes text embeddings, so e.g. a text projection is never used; DDP needs every
    trainable parameter to take part in each step (or the slower ``find_unused_parameters``).
    """
    batch = collate([dataset.load(0)])
    control, target = fit_batch(batch["control"], batch["target"], **fit)
    model.to(device)
    with torch.no_grad(), autocast():
        x0 = model.encode(target.to(device))
    out = []

    def forward():
        with autocast():
            out.append(model(x0, torch.full((1,), 500.0, device=device), control=control.to(device)))

    kept = kept_activation_bytes(forward, exclude=model.parameters())
    out[0].float().square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    return unused, kept


def check_memory(model, config: TrainConfig, kept_per_sample: int, device: torch.device) -> MemoryEstimate:
    """Raise :class:`InputError` (one line naming a micro-batch that fits) when a step would not fit."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(p.numel() * 4 for p in trainable) * (3 + (config.ema_decay > 0))  # grad, 2 moments, EMA (fp32)
    estimate = MemoryEstimate(weights, state, kept_per_sample, config.batch_size)
    if config.memory_limit_gb == 0:
        return estimate
    available = int(config.memory_limit_gb * GB) if config.memory_limit_gb else available_bytes(device)
    if available is not None and estimate.peak > available:
        fits = estimate.fitting_batch(available)
        hint = (f"use --batch-size {fits} (with grad_accum {-(-config.batch_size // fits)} in the config for the same "
                "effective batch)" if fits else "use smaller or fewer frames (prepare --size / --clip-frames, or "
                "max_frames in the config) or a device with more memory")
        raise InputError(f"a training step needs {estimate.describe()}, but {format_bytes(available)} are free on "
                         f"{device.type}; {hint}")
    return estimate


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


def read_log(output: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a run's ``log.jsonl``."""
    path = Path(output) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ---- the run ---------------------------------------------------------------------------------------

class Trainer:
    """One training run: holds the Accelerator, the data stream, the model, the optimizer and the EMA.

    :meth:`fit` drives the run: :meth:`setup`, :meth:`resume`, then :meth:`step` up to
    ``config.max_steps`` with :meth:`log` every ``log_every`` and :meth:`checkpoint` every
    ``checkpoint_every`` steps (and both at the last step), then :meth:`export`. Every process of
    an ``accelerate launch`` builds its own ``Trainer`` with the same arguments and calls the same
    methods in the same order. Call :meth:`close` when not using :meth:`fit` (which closes).

    Args:
        config: the run (see :class:`TrainConfig`).
        data: a folder written by ``vnvs prepare`` holding the kinds of ``config.data``.
        output: the run folder (created).
        resume: continue from the latest complete checkpoint in ``output`` (start fresh if there is
            none). Without it, an ``output`` holding checkpoints is refused.

    Attributes (after :meth:`resume`):
        steps: optimizer steps done.
        epoch, next_batch: the data position of the next micro-batch (epoch, batch index in it).
        samples_seen: training samples of all processes so far.
        start_step: ``steps`` when this run started (0, or the resumed checkpoint's step).
        resumed_from: the checkpoint :meth:`resume` loaded (None: a fresh start).
        final_loss: the mean loss of the last :meth:`log` window (None before).
    """

    def __init__(self, config: TrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
                 resume: bool = False):
        self.config, self.data, self.output, self.resume_requested = config, Path(data), Path(output), resume
        self.accelerator = None
        self.resumed_from: Path | None = None
        self._checkpoint_to_load: Path | None = None
        self.steps = self.epoch = self.next_batch = self.samples_seen = self.start_step = 0
        self.final_loss: float | None = None
        self._stream = None
        self._log: RunLog | None = None
        self._record: Path | None = None

    # ---- setup -------------------------------------------------------------------------------------
    def _check_inputs(self) -> Path | None:
        """Raise :class:`InputError` on bad inputs (before anything is built or written); return the
        checkpoint to resume from."""
        config, data, output = self.config, self.data, self.output
        self._check_model_spec(config.model)
        if not data.is_dir():
            raise InputError(f"data folder {data} does not exist")
        check_destination(output, "folder")
        if config.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise InputError("mixed_precision fp16 needs a GPU; use bf16 or no on the CPU")
        existing = ckpt_io.latest_checkpoint(output)
        if existing is not None and self.resume_requested:
            existing = ckpt_io.resume_checkpoint(output)
        if existing is not None and not self.resume_requested:
            raise InputError(f"{output} already holds checkpoints (latest {existing.name}); resume it to continue, "
                             "or choose a new output folder")
        if self.resume_requested and existing is not None:
            changed = config.differences(ckpt_io.read_config(existing))
            if changed:
                raise InputError(f"the config differs from the checkpoint's in {', '.join(changed)}; resume with the "
                                 "same config (only max_steps, checkpoint/log settings and num_workers may change)")
        return existing if self.resume_requested else None

    @staticmethod
    def _check_model_spec(spec) -> None:
        """Raise :class:`InputError` unless ``spec`` names a model this trainer builds."""
        check_model_spec(spec)

    def setup(self) -> None:
        """Check the inputs, start Accelerate, open the data, build the model (seeded by ``config.seed``,
        frozen as configured), the optimizer, the LR schedule and the EMA; choose the checkpoint that
        :meth:`resume` loads. Raises :class:`InputError` on bad inputs before writing anything."""
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.utils import DistributedType, set_seed

        config, output = self.config, self.output
        self._checkpoint_to_load = self._check_inputs()
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        # several processes on a machine without CUDA (torchrun / accelerate launch --multi_gpu): DDP over gloo
        cpu = launched > 1 and not torch.cuda.is_available()
        self.accelerator = accelerator = Accelerator(
            cpu=cpu, mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)])
        if accelerator.num_processes != launched:
            raise InputError(f"launched as {launched} processes but Accelerate runs {accelerator.num_processes}; "
                             "check the accelerate config")
        self.rank, self.world = rank, world = accelerator.process_index, accelerator.num_processes
        self.main = main = accelerator.is_main_process
        self.device = device = accelerator.device

        # data first: a bad folder fails before anything is written or built
        dataset = ShardDataset(self.data, weights=config.data, seed=config.seed, fields=("control", "target"),
                               rank=rank, world_size=world, drop_last=True, epoch_size=config.epoch_size)
        self._batches = EpochBatches(dataset, config.batch_size, rank, world, config.num_workers,
                                     pin_memory=device.type == "cuda")
        if self._batches.batches_per_epoch(0) == 0:
            raise InputError(f"{self.data} has {len(dataset.samples)} samples of {', '.join(dataset.kinds)}: fewer than "
                             f"one batch of {config.batch_size} per process x {world} process(es)")

        fit = dict(max_frames=config.max_frames, mode=config.adapt_frames)
        torch.manual_seed(config.seed)  # the same initial weights on every process
        model = build_model(config.model)
        fit.update(spatial_multiple=int(model.spatial_multiple), temporal_multiple=int(model.temporal_multiple),
                   window=model.window)
        self._fit_args = fit
        self.sampling = trained_sampling(dataset, fit)
        _freeze(model, config)
        if config.lora_rank:
            add_lora(model, config.lora_rank, config.lora_alpha)
        model.train()
        self._fsdp = accelerator.distributed_type == DistributedType.FSDP
        if self._fsdp and config.ema_decay > 0:
            raise InputError("the EMA is kept per parameter on each process and does not support FSDP; set ema_decay = 0")
        if config.gradient_checkpointing:
            model.set_gradient_checkpointing(True)
        if not self._fsdp:
            unused, kept = probe_step(model, dataset, fit, device, accelerator.autocast)
            if not config.find_unused_parameters:
                for n, p in model.named_parameters():
                    if n in unused:
                        p.requires_grad_(False)
            self.memory = check_memory(model, config, kept, device)
            if unused and main and not config.find_unused_parameters:
                log.warning("%d parameter tensors get no gradient (used only with text input) and stay frozen "
                            "(%s%s)", len(unused), ", ".join(unused[:4]), ", ..." if len(unused) > 4 else "")
        # inputs and memory checked: from here on the run writes
        if main:
            output.mkdir(parents=True, exist_ok=True)
            ckpt_io.remove_partial(output)
        accelerator.wait_for_everyone()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        set_seed(config.seed, device_specific=True)  # global RNGs: seed + process index

        self._prepare_optimization(model, trainable, world)

    def _prepare_optimization(self, model, trainable: list, world: int) -> None:
        """AdamW over the ``(name, parameter)`` pairs ``trainable``, the LR schedule, Accelerate's wrapping of the
        model and optimizer, and the EMA of the trainable weights."""
        config, accelerator = self.config, self.accelerator
        optimizer = torch.optim.AdamW([p for _, p in trainable], lr=config.lr, betas=config.betas,
                                      weight_decay=config.weight_decay, eps=config.adam_eps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.unwrapped = accelerator.unwrap_model(self.model)
        params = dict(self.unwrapped.named_parameters())
        names = [n for n, _ in trainable]
        self._trainable = [params[n] for n in names]
        self.ema = EMA(((n, params[n]) for n in names), config.ema_decay) if config.ema_decay > 0 else None
        self._per_step = config.batch_size * config.grad_accum * world

    def resume(self) -> Path | None:
        """Restore the run from the checkpoint chosen by :meth:`setup` (the newest complete one in
        ``output`` when resuming; none: a fresh start at step 0): weights, optimizer, RNG states, LR
        schedule, EMA, data position. Then cut ``log.jsonl`` (and the sample records) back to the
        start step and open the data stream there. Returns the loaded checkpoint."""
        config, accelerator, output, ckpt = self.config, self.accelerator, self.output, self._checkpoint_to_load
        if ckpt is not None:
            state = ckpt_io.read_state(ckpt)
            if state["world_size"] != self.world:
                raise InputError(f"checkpoint {ckpt} was written by {state['world_size']} process(es), this run has "
                                 f"{self.world}; resume with the same number (data order and RNG states are per process)")
            accelerator.load_state(str(ckpt))
            self.scheduler.load_state_dict(state["scheduler"])
            if self.ema is not None:
                saved = ckpt_io.load_ema(ckpt)
                if saved is None:
                    raise InputError(f"checkpoint {ckpt} has no EMA weights")
                self.ema.load_state_dict({k: v.to(self.device) for k, v in saved.items()}, state["ema_updates"])
            self.steps, self.epoch, self.next_batch = state["step"], state["epoch"], state["batch"]
            self.samples_seen = state["samples_seen"]
        self.resumed_from = ckpt
        if config.record_samples:
            self._record = output / "samples" / f"rank-{self.rank:04d}.jsonl"
            self._record.parent.mkdir(parents=True, exist_ok=True)
            kept = [ln for ln in self._record.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= self.steps] \
                if ckpt is not None and self._record.is_file() else []
            self._record.write_text("".join(f"{ln}\n" for ln in kept))
        self._log = RunLog(output, self.main, config.tensorboard, self.steps if ckpt is not None else None)
        self.start_step = self.steps
        self._stream = self._batches(self.epoch, self.next_batch)
        self._window_losses: list[torch.Tensor] = []
        self._window_steps = 0
        self._grad_norm = None
        self._t_start = self._t_window = time.perf_counter()
        return ckpt

    # ---- the loop ----------------------------------------------------------------------------------
    def step(self) -> None:
        """One optimizer step: ``grad_accum`` micro-batches (flow-matching loss, backward), gradient
        clipping, AdamW, the LR schedule, then the EMA; append to the sample records when on."""
        config, accelerator, model, device = self.config, self.accelerator, self.model, self.device
        micro_losses = []
        positions: list[int] = []
        for micro in range(config.grad_accum):
            self.epoch, index, batch = next(self._stream)
            positions.extend(batch["position"])
            control, target = fit_batch(batch["control"], batch["target"], **self._fit_args)
            control = control.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            generator = torch.Generator(device=device).manual_seed(step_seed(config.seed, self.rank, self.steps, micro))
            with accelerator.accumulate(model):
                with torch.no_grad(), accelerator.autocast():
                    x0 = self.unwrapped.encode(target)
                out = flow_matching_loss(
                    model, x0.float(), control, generator=generator, sampling=config.timestep_sampling,
                    logit_mean=config.logit_mean, logit_std=config.logit_std, shift=config.timestep_shift,
                    control_dropout=config.control_dropout, weighting=config.loss_weighting)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients:
                    if config.max_grad_norm > 0:
                        self._grad_norm = accelerator.clip_grad_norm_(self._trainable, config.max_grad_norm)
                    self.optimizer.step()
                    if not accelerator.optimizer_step_was_skipped:
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
            micro_losses.append(out.loss.detach().float())
            self.next_batch = index + 1
        if self.ema is not None and not accelerator.optimizer_step_was_skipped:
            self.ema.update(self._trainable)
        self.steps += 1
        self.samples_seen += self._per_step
        self._window_steps += 1
        self._window_losses.append(torch.stack(micro_losses).mean())
        if self._record is not None:
            with open(self._record, "a") as f:
                f.write(json.dumps({"step": self.steps, "epoch": self.epoch, "positions": positions}) + "\n")

    def log(self) -> dict[str, Any]:
        """Write one ``log.jsonl`` entry for the steps since the last one (every process calls this: the
        loss is averaged over processes) and start a new window; return the entry."""
        loss = self.accelerator.reduce(torch.stack(self._window_losses).mean(), reduction="mean")
        self.final_loss = float(loss)
        now = time.perf_counter()
        entry = {"step": self.steps, "epoch": self.epoch, "loss": self.final_loss,
                 "lr": self.scheduler.get_last_lr()[0],
                 "grad_norm": None if self._grad_norm is None else float(self._grad_norm),
                 "samples_per_s": self._window_steps * self._per_step / max(now - self._t_window, 1e-9),
                 "seconds": now - self._t_start}
        self._log.write(entry)
        self._window_losses, self._window_steps, self._t_window = [], 0, now
        return entry

    def checkpoint(self) -> Path:
        """Write the checkpoint of the current step (every process calls this; see
        :mod:`vnvs.training.checkpoint`) and prune to ``keep_checkpoints``; return its folder."""
        config, ema = self.config, self.ema
        state = {"epoch": self.epoch, "batch": self.next_batch, "samples_seen": self.samples_seen,
                 "world_size": self.world, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
                 "ema_updates": ema.updates if ema is not None else 0, "scheduler": self.scheduler.state_dict()}
        return ckpt_io.save_checkpoint(self.accelerator, self.output, self.steps, state=state,
                                       config_dict=config.to_dict(), ema_state=ema.state_dict() if ema is not None else None,
                                       keep=config.keep_checkpoints)

    def export(self) -> Path:
        """Write ``OUTPUT/model`` (the EMA weights, or the trained ones without EMA; FSDP shards are
        gathered first) and ``OUTPUT/train_config.json`` (every process calls this); return the model folder."""
        accelerator, main = self.accelerator, self.main
        accelerator.wait_for_everyone()
        model_dir = self.output / MODEL_DIR
        unwrapped = self.unwrapped
        if self._fsdp:  # gather the sharded weights into a whole model on the main process
            full = accelerator.get_state_dict(self.model)
            if main:
                unwrapped = build_model(self.config.model)
                if self.config.lora_rank:
                    add_lora(unwrapped, self.config.lora_rank, self.config.lora_alpha)
                unwrapped.load_state_dict(full)
        if main:
            with atomic_dir(model_dir) as staging:  # weights, config and sampling settings appear together
                if has_lora(unwrapped):  # the adapters folded into a copy: an ordinary model folder
                    merged = copy.deepcopy(unwrapped)
                    if self.ema is not None:
                        load_averages(merged, self.ema.state_dict())
                    merge_lora(merged)
                    merged.save_pretrained(staging)
                else:
                    export_ema(unwrapped, self.ema.state_dict() if self.ema is not None else None, staging)
                self.sampling.save(staging)
            self.config.save(self.output / "train_config.json")
        accelerator.wait_for_everyone()
        return model_dir

    def close(self) -> None:
        """Stop the data loader workers, close the logs and release Accelerate (a later run in this
        process may use other settings). :meth:`fit` closes; call this after using the steps directly."""
        self._close_inputs()
        if self.accelerator is not None:
            self.accelerator.end_training()
            _reset_accelerate()
            self.accelerator = None

    def _close_inputs(self) -> None:
        """Stop the data stream (its DataLoader workers) and close the run log."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def fit(self) -> TrainResult:
        """Run :meth:`setup`, :meth:`resume`, the steps up to ``max_steps`` (logging and checkpointing
        on schedule) and :meth:`export`, then :meth:`close`. Returns what the run did."""
        config = self.config
        created = not self.output.exists()
        try:
            self.setup()
            self.resume()
            main = self.main
            with progress_bar("train", total=config.max_steps, unit="step") if main else contextlib.nullcontext() as bar:
                if main:
                    bar.update(self.steps)
                while self.steps < config.max_steps:
                    self.step()
                    if main:
                        bar.update(1)
                    last = self.steps == config.max_steps
                    if self.steps % config.log_every == 0 or last:
                        entry = self.log()
                        if main:
                            bar.set_postfix(loss=f"{entry['loss']:.4f}")
                    if self.steps % config.checkpoint_every == 0 or last:
                        self.checkpoint()
            seconds = time.perf_counter() - self._t_start
            self._close_inputs()  # the DataLoader workers stop before the export
            model_dir = self.export()
        except BaseException:
            # a fresh run that fails before its first checkpoint (a full disk, an interrupt) leaves no run folder
            if created and self.accelerator is not None and self.main and not ckpt_io.list_checkpoints(self.output):
                shutil.rmtree(self.output, ignore_errors=True)
            raise
        finally:
            self.close()
        done = self.steps - self.start_step
        return TrainResult(output=str(self.output), model=str(model_dir), start_step=self.start_step,
                           steps=self.steps, resumed_from=None if self.resumed_from is None else str(self.resumed_from),
                           final_loss=self.final_loss, seconds=seconds,
                           samples_per_second=done * self._per_step / seconds if done and seconds > 0 else 0.0,
                           processes=self.world)


def train(config: TrainConfig, data: str | os.PathLike, output: str | os.PathLike, *, resume: bool = False) -> TrainResult:
    """Train a model on the prepared samples in ``data``; write checkpoints, logs and the model to
    ``output`` (``Trainer(config, data, output, resume=resume).fit()``; see :class:`Trainer`).

    Returns:
        :class:`TrainResult`. Run under ``accelerate launch`` for several processes (every process
        calls this with the same arguments).
    """
    return Trainer(config, data, output, resume=resume).fit()


def _reset_accelerate() -> None:
    """Forget Accelerate's process-wide singletons, so a later run in this process may use other settings."""
    from accelerate.state import AcceleratorState, GradientState

    with contextlib.suppress(Exception):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
