"""Training of time x view grid models (:mod:`vnvs.models.grid`) with the :class:`~vnvs.training.trainer.Trainer`.

:class:`GridTrainer` is the Trainer (Accelerate, checkpoints, resume, EMA, logs, export) with the grid
parts swapped in: samples of the grid kinds (``synthetic-grid``: exact grids with cameras;
``affine4d``: 4Real-Video's pseudo-4D affine grids, no cameras) stored as ``(T, V, 3, H, W)``, cut
to the model's window (the first views and times) and centre-cropped to its patch multiple. Per
micro-batch: row 0 and column 0 are the given cells (SV4D 2.0: the reference views of column 0
are hidden with ``reference_mask_prob``), every cell is noised at one sampled ``sigma``, and the loss
is the flow-matching MSE over the generated cells only. ``freeze_backbone`` trains only the layers
that are not the pretrained DiT's (4Real-Video: the synchronization layers, with the conditioning
embeddings). ``vnvs train --config grid-4real`` (see :mod:`vnvs.training.presets`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from vnvs.cameras.camera import crop_intrinsics
from vnvs.data.dataset import ShardDataset
from vnvs.errors import InputError
from vnvs.models.grid import GRID_PRESETS, GridModel, GridModelConfig, grid_preset, is_grid_model_folder
from vnvs.training import checkpoint as ckpt_io
from vnvs.training.config import TrainConfig
from vnvs.training.data import EpochBatches
from vnvs.training.ema import export_ema
from vnvs.training.flow_matching import TIMESTEP_SCALE, loss_weights, sample_sigmas
from vnvs.training.trainer import MODEL_DIR, Trainer, TrainResult, step_seed

log = logging.getLogger(__name__)


def check_grid_model_spec(spec: Any) -> None:
    """Raise :class:`InputError` unless ``spec`` is a GridModelConfig, a grid preset or a grid model folder."""
    if isinstance(spec, GridModelConfig):
        return
    path = Path(str(spec))
    if path.is_dir() and not (str(spec) in GRID_PRESETS and not is_grid_model_folder(path)):
        if not is_grid_model_folder(path):
            raise InputError(f"{path} is not a grid model folder (config.json with a grid_model section)")
    elif str(spec) not in GRID_PRESETS:
        raise InputError(f"unknown grid model {spec!r}: neither a grid preset ({', '.join(GRID_PRESETS)}) nor a folder")


def build_grid_model(spec: Any) -> GridModel:
    """The grid model ``spec`` names (random new layers from the current torch seed; a folder: its weights)."""
    check_grid_model_spec(spec)
    if isinstance(spec, GridModelConfig):
        return GridModel.from_config(spec)
    if is_grid_model_folder(str(spec)):
        return GridModel.from_pretrained(spec)
    return GridModel.from_config(grid_preset(str(spec)))


class GridShardDataset(ShardDataset):
    """Grid samples with one set of fields for every kind: ``grid`` ``(T, V, 3, H, W)``, ``w2c`` ``(V, 4, 4)``,
    ``K`` ``(V, 3, 3)`` and ``has_camera`` (False for ``affine4d``: identity cameras stand in)."""

    def load(self, position: int) -> dict[str, Any]:
        out = super().load(position)
        if "grid" not in out:
            raise InputError(f"sample {position} ({out.get('kind')}) holds no grid; train grid models on "
                             "synthetic-grid or affine4d samples")
        T, V, _, H, W = out["grid"].shape
        has = "w2c" in out and "K" in out
        if not has:
            f = float(max(H, W))
            out["w2c"] = torch.eye(4).expand(V, 4, 4).clone()
            out["K"] = torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]]).expand(V, 3, 3).clone()
        out.pop("affine", None)
        out["has_camera"] = torch.tensor(has)
        return out


def fit_grid_batch(batch: dict[str, Any], model: GridModel) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(frames (B, V, T, 3, H, W) in [0, 1], w2c (B, V, T, 4, 4) | None, K | None)`` cut to the model's
    window (first views and times; for latent models, a number of times the VAE takes whole) and
    centre-cropped to its patch multiple; cameras None unless every sample has them."""
    grid = batch["grid"].transpose(1, 2)  # (B, V, T, 3, H, W)
    B, V, T, _, H, W = grid.shape
    wv, wt = model.window
    V2, T2 = min(V, wv or V), min(T, wt or T)
    m = model.temporal_multiple
    if T2 > m:
        T2 = 1 + (T2 - 1) // m * m
    p = model.patch
    h, w = H // p * p, W // p * p
    if h == 0 or w == 0 or V2 < 2 or T2 < 2:
        raise InputError(f"grid samples of {V} views x {T} times of {H}x{W} are too small for this model "
                         f"(at least 2 x 2 cells of {p}x{p})")
    top, left = (H - h) // 2, (W - w) // 2
    frames = grid[:, :V2, :T2, :, top:top + h, left:left + w]
    if not bool(batch["has_camera"].all()):
        return frames, None, None
    w2c = batch["w2c"][:, :V2, None].expand(B, V2, T2, 4, 4)
    K = crop_intrinsics(batch["K"][:, :V2], left, top)[:, :, None].expand(B, V2, T2, 3, 3)
    return frames, w2c, K


def grid_loss(model, frames: torch.Tensor, w2c, K, config: TrainConfig, generator: torch.Generator,
              reference_mask_prob: float = 0.0):
    """Flow-matching loss of one grid batch over the generated cells (row 0 and column 0 given); latent
    models (``model.encode_grid``) over the latents of the generated cells."""
    B, V, T = frames.shape[:3]
    device = frames.device
    mask = torch.zeros(B, V, T, dtype=torch.bool, device=device)
    mask[:, 0] = True
    mask[:, :, 0] = True
    if reference_mask_prob > 0:  # SV4D 2.0: hide the reference views (column 0 below row 0)
        hide = torch.rand(B, generator=generator, device=device) < reference_mask_prob
        mask[:, 1:, 0] &= ~hide[:, None]
    unwrapped = getattr(model, "module", model)
    lat = unwrapped.encode_grid(frames, torch.ones_like(mask), w2c=w2c, K=K)  # every cell is a target
    x0, w2c, K, mask = lat["x0"], lat["w2c"], lat["K"], unwrapped.latent_mask(mask)
    sigmas = sample_sigmas(B, sampling=config.timestep_sampling, logit_mean=config.logit_mean,
                           logit_std=config.logit_std, shift=config.timestep_shift, generator=generator, device=device)
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    s = sigmas.view(B, 1, 1, 1, 1, 1)
    x_t = (1 - s) * x0 + s * noise
    v = model(x_t, sigmas * TIMESTEP_SCALE, x0, mask, w2c=w2c, K=K)
    err = (v.float() - (noise - x0).float()).pow(2).mean(dim=(3, 4, 5))  # (B, V, T)
    gen = (~mask).float()
    per_sample = (err * gen).sum(dim=(1, 2)) / gen.sum(dim=(1, 2)).clamp_min(1)
    return (loss_weights(sigmas, config.loss_weighting) * per_sample).mean()


class GridTrainer(Trainer):
    """The :class:`~vnvs.training.trainer.Trainer` for grid models (module docstring)."""

    @staticmethod
    def _check_model_spec(spec) -> None:
        check_grid_model_spec(spec)

    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        config, output = self.config, self.output
        self._checkpoint_to_load = self._check_inputs()
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = launched > 1 and not torch.cuda.is_available()
        self.accelerator = accelerator = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision,
                                                     gradient_accumulation_steps=config.grad_accum)
        self.rank, self.world = rank, world = accelerator.process_index, accelerator.num_processes
        self.main = main = accelerator.is_main_process
        self.device = device = accelerator.device
        dataset = GridShardDataset(self.data, weights=config.data, seed=config.seed, fields=("grid", "w2c", "K"),
                                   rank=rank, world_size=world, drop_last=True, epoch_size=config.epoch_size)
        self._batches = EpochBatches(dataset, config.batch_size, rank, world, config.num_workers,
                                     pin_memory=device.type == "cuda")
        if self._batches.batches_per_epoch(0) == 0:
            raise InputError(f"{self.data} has {len(dataset.samples)} samples: fewer than one batch of "
                             f"{config.batch_size} per process")
        if main:
            output.mkdir(parents=True, exist_ok=True)
            ckpt_io.remove_partial(output)
        accelerator.wait_for_everyone()
        torch.manual_seed(config.seed)
        model = build_grid_model(config.model)
        if config.freeze_backbone:
            for p in model.backbone_parameters():
                p.requires_grad_(False)
        if config.gradient_checkpointing:
            if not hasattr(model, "set_gradient_checkpointing"):
                raise InputError("gradient_checkpointing needs a diffusers grid backbone (cogvideox or wan)")
            model.set_gradient_checkpointing(True)
        model.train()
        for p in model.unused_parameters():  # a training step never reaches them (no text is given)
            p.requires_grad_(False)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            raise InputError("the model has no trainable parameters with this config")
        set_seed(config.seed, device_specific=True)
        self._prepare_optimization(model, trainable, world)
        self._fsdp = False

    def step(self) -> None:
        config, accelerator, model, device = self.config, self.accelerator, self.model, self.device
        losses = []
        prob = float(self.unwrapped.config.reference_mask_prob) if self.unwrapped.config.method == "sv4d" else 0.0
        for micro in range(config.grad_accum):
            self.epoch, index, batch = next(self._stream)
            frames, w2c, K = fit_grid_batch(batch, self.unwrapped)
            short = int(min(frames.shape[-2:]))
            if self.unwrapped.config.resolution != short:  # sampling runs at the size the model learned
                self.unwrapped.config = self.unwrapped.config.replace(resolution=short)
            frames = frames.to(device)
            w2c = None if w2c is None else w2c.to(device)
            K = None if K is None else K.to(device)
            generator = torch.Generator(device=device).manual_seed(step_seed(config.seed, self.rank, self.steps, micro))
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = grid_loss(model, frames, w2c, K, config, generator, prob)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if config.max_grad_norm > 0:
                        self._grad_norm = accelerator.clip_grad_norm_(self._trainable, config.max_grad_norm)
                    self.optimizer.step()
                    if not accelerator.optimizer_step_was_skipped:
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().float())
            self.next_batch = index + 1
        if self.ema is not None and not accelerator.optimizer_step_was_skipped:
            self.ema.update(self._trainable)
        self.steps += 1
        self.samples_seen += self._per_step
        self._window_steps += 1
        self._window_losses.append(torch.stack(losses).mean())

    def export(self) -> Path:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        model_dir = self.output / MODEL_DIR
        if self.main:
            export_ema(self.unwrapped, self.ema.state_dict() if self.ema is not None else None, model_dir)
            self.config.save(self.output / "train_config.json")
        accelerator.wait_for_everyone()
        return model_dir


def train_grid(config: TrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
               resume: bool = False) -> TrainResult:
    """Train a grid model (``GridTrainer(config, data, output, resume=resume).fit()``)."""
    return GridTrainer(config, data, output, resume=resume).fit()
