"""Fit a deformable Gaussian scene to a time x view grid.

One grid cell per step: the Gaussians are deformed to the cell's time (with the cell's view
compensation), rendered from its camera, and compared to its frame with the visibility-weighted
``L1 + (1 - SSIM)`` loss (:mod:`vnvs.recon.losses`). The canonical Gaussians come from the grid's
depth at the middle column (:func:`vnvs.recon.scene.init_points_from_grid`); the first
``deform_warmup`` steps fit them on the canonical columns alone. Every ``densify_every`` steps
Gaussians with a large mean view-space gradient are cloned (small ones) or split in two (large ones),
and Gaussians that are nearly transparent, larger than a tenth of the scene, or outside every
training camera (boundary floaters) are removed; Adam's moments follow the rows they belong to.

Everything random (cell order, splits, MLP initialisation) comes from the seed: the same seed gives
the same scene on the CPU. Checkpoints (atomic, the last two kept) let a run resume where it stopped.

A second stage (SV4D 2.0, Full-4D) can refine the targets: ``stage2`` receives the renders of all
training cells after stage 1 and returns new targets (e.g. the renders noised and denoised by a
generator); optimisation then continues on them for ``stage2_steps`` steps.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vnvs.errors import InputError
from vnvs.io.grid import Grid
from vnvs.recon.config import ReconSettings
from vnvs.recon.losses import photometric_loss, visibility_weights
from vnvs.recon.rasterize import quat_to_rotmat
from vnvs.recon.scene import DeformableGaussians, init_points_from_grid
from vnvs.utils.atomic import atomic_path
from vnvs.utils.device import resolve_device
from vnvs.utils.progress import progress_bar
from vnvs.utils.threads import serial

log = logging.getLogger(__name__)

CHECKPOINT_GLOB = "recon_step_*.pt"


@dataclass
class ReconResult:
    """A fitted scene and how it got there."""

    scene: DeformableGaussians
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    """``{"step", "loss", "psnr", "gaussians"}`` every 50 steps."""
    train_views: list[int] = field(default_factory=list)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.detach() - b) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _lrs(settings: ReconSettings, extent: float) -> dict[str, float]:
    return {"means": settings.lr_means * extent, "log_scales": 0.005, "quats": 0.001, "opacity_logits": 0.05,
            "f_dc": 0.0025, "deform": settings.lr_mlp}


def _make_optimizer(scene: DeformableGaussians, lrs: dict[str, float]) -> torch.optim.Adam:
    groups = [{"params": [getattr(scene, k)], "lr": lrs[k], "name": k} for k in DeformableGaussians.GAUSSIAN_PARAMS]
    groups.append({"params": list(scene.deform.parameters()), "lr": lrs["deform"], "name": "deform"})
    return torch.optim.Adam(groups, eps=1e-15)


def _replace_rows(optimizer: torch.optim.Adam, scene: DeformableGaussians, keep: torch.Tensor,
                  new: dict[str, torch.Tensor]) -> None:
    """Keep rows ``keep`` (bool) of every Gaussian parameter and append ``new``; Adam's moments follow
    (zeros for new rows)."""
    for group in optimizer.param_groups:
        name = group["name"]
        if name == "deform":
            continue
        old = group["params"][0]
        value = torch.cat([old.detach()[keep], new[name].to(old)])
        param = torch.nn.Parameter(value)
        state = optimizer.state.pop(old, None)
        if state:
            for k in ("exp_avg", "exp_avg_sq"):
                m = state[k][keep]
                state[k] = torch.cat([m, m.new_zeros((new[name].shape[0], *m.shape[1:]))])
            optimizer.state[param] = state
        group["params"][0] = param
        setattr(scene, name, param)


def _in_any_frustum(means: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, H: int, W: int,
                    margin: float = 0.05) -> torch.Tensor:
    """``(N,)`` True where a point projects inside (a margin around) at least one of the cameras ``(n, ...)``."""
    pc = means[None] @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    z = pc[..., 2]
    u = K[:, None, 0, 0] * pc[..., 0] / z.clamp_min(1e-6) + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pc[..., 1] / z.clamp_min(1e-6) + K[:, None, 1, 2]
    mu, mv = margin * W, margin * H
    ok = (z > 1e-3) & (u > -mu) & (u < W - 1 + mu) & (v > -mv) & (v < H - 1 + mv)
    return ok.any(0)


@torch.no_grad()
def _densify(scene: DeformableGaussians, optimizer, grad_sum, grad_count, settings: ReconSettings, extent: float,
             frustum: tuple, generator: torch.Generator, allow_growth: bool) -> None:
    n = len(scene)
    avg = grad_sum / grad_count.clamp_min(1)
    scales = torch.exp(scene.log_scales)
    smax = scales.max(1).values
    opac = torch.sigmoid(scene.opacity_logits)
    prune = (opac < settings.prune_opacity) | (smax > 0.1 * extent) | ~_in_any_frustum(scene.means, *frustum)
    big = (avg >= settings.densify_grad) & ~prune
    if not allow_growth:
        big[:] = False
    room = settings.max_gaussians - int((~prune).sum())
    if int(big.sum()) > max(room, 0):  # the largest gradients first
        order = torch.argsort(avg.masked_fill(~big, -1), descending=True)
        big[:] = False
        big[order[:max(room, 0)]] = True
    small = smax <= 0.01 * extent
    clone, split = big & small, big & ~small
    new = {k: [] for k in DeformableGaussians.GAUSSIAN_PARAMS}
    if clone.any():
        for k in new:
            new[k].append(getattr(scene, k).detach()[clone])
    if split.any():
        idx = split.nonzero().squeeze(1).repeat(2)
        R = quat_to_rotmat(scene.quats.detach()[idx])
        noise = torch.randn(idx.numel(), 3, 1, generator=generator).to(R.device)  # the seeded CPU stream on every device
        offset = (R @ (noise * scales[idx, :, None])).squeeze(-1)
        new["means"].append(scene.means.detach()[idx] + offset)
        new["log_scales"].append(scene.log_scales.detach()[idx] - math.log(1.6))
        for k in ("quats", "opacity_logits", "f_dc"):
            new[k].append(getattr(scene, k).detach()[idx])
    empty = {k: getattr(scene, k).new_zeros((0, *getattr(scene, k).shape[1:])) for k in new}
    new = {k: torch.cat(v) if v else empty[k] for k, v in new.items()}
    _replace_rows(optimizer, scene, ~(prune | split), new)
    log.debug("densify: %d -> %d Gaussians (clone %d, split %d, prune %d)", n, len(scene), int(clone.sum()),
              int(split.sum()), int(prune.sum()))


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob(CHECKPOINT_GLOB))


def _save_checkpoint(folder: Path, step: int, scene: DeformableGaussians, optimizer, generator, grad_sum,
                     grad_count, stage: int, keep: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"recon_step_{step:07d}.pt"
    state = {"step": step, "stage": stage, "gaussians": scene.gaussian_state_dict(),
             "deformation": scene.deformation_state_dict(), "hparams": scene.hparams,
             "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
             "grad_sum": grad_sum, "grad_count": grad_count}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in _checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def grid_targets(grid: Grid, settings: ReconSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames (V, T, 3, H, W), weights (V, T, H, W))``: the targets and their visibility weights."""
    if grid.depth is None:
        raise InputError("reconstruction needs the grid's depth (depth.npz in the grid folder) to place the Gaussians")
    V, T, _, H, W = grid.frames.shape
    weights = visibility_weights(grid.depth.reshape(V * T, H, W), grid.K.reshape(V * T, 3, 3),
                                 grid.valid.reshape(V * T, H, W), floor=settings.visibility_floor).reshape(V, T, H, W)
    # a cell without any depth (a generated row of a `vnvs grid` folder) has no visibility to weigh by:
    # every pixel counts fully, rather than not at all
    no_depth = ~grid.valid.reshape(V, T, -1).any(-1)
    weights[no_depth] = 1.0
    return grid.frames.float(), weights


def reconstruct(grid: Grid, settings: ReconSettings | None = None, *, train_views: list[int] | None = None,
                seed: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = False,
                stage2: Callable[[torch.Tensor, list[tuple[int, int]]], torch.Tensor] | None = None,
                stage2_steps: int = 0) -> ReconResult:
    """Fit a :class:`DeformableGaussians` to ``grid`` (which must carry depth).

    Args:
        grid: the time x view grid.
        settings: optimisation settings (defaults: :class:`ReconSettings`).
        train_views: the views fitted (default all); the others can be held out for evaluation.
        seed: seed of everything random.
        checkpoint_dir: folder of resumable checkpoints (none written when None).
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        stage2: optional target refinement (see the module docstring): ``(renders (n, 3, H, W), cells)``
            -> new targets ``(n, 3, H, W)``, ``cells`` the ``(view, column)`` of each render.
        stage2_steps: steps fitted on the refined targets.
    """
    settings = settings or ReconSettings()
    with serial():
        return _reconstruct(grid, settings, train_views, seed, checkpoint_dir, resume, stage2, stage2_steps)


def _reconstruct(grid, settings, train_views, seed, checkpoint_dir, resume, stage2, stage2_steps) -> ReconResult:
    start_time = time.perf_counter()
    device = resolve_device(settings.device)
    V, T, _, H, W = grid.frames.shape
    views = list(range(V)) if train_views is None else sorted({int(v) for v in train_views})
    if not views or min(views) < 0 or max(views) >= V:
        raise InputError(f"train views must be between 0 and {V - 1}, got {train_views}")
    targets, weights = grid_targets(grid, settings)
    times = grid.time.float()
    generator = torch.Generator().manual_seed(int(seed))
    mid = T // 2
    cols = [mid] + [int(c) for c in torch.linspace(0, T - 1, settings.init_times).round().long().tolist() if int(c) != mid]
    cols = cols[:settings.init_times]
    vi = torch.tensor(views)
    ci = torch.tensor(cols)
    sel = (vi[:, None].expand(-1, len(cols)).reshape(-1), ci[None].expand(len(views), -1).reshape(-1))
    means, colors, scales = init_points_from_grid(
        targets[sel], grid.depth[sel], grid.valid[sel], grid.K[sel], grid.w2c[sel], settings.init_stride,
        max(settings.max_gaussians // 2, 1), generator)
    if means.shape[0] == 0:
        raise InputError("the grid's depth has no valid pixel to place Gaussians on")
    targets, weights = targets.to(device), weights.to(device)
    cam_w2c, cam_K = grid.w2c.float().to(device), grid.K.float().to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        scene = DeformableGaussians(means, colors, scales, views=V, width=settings.mlp_width,
                                    layers=settings.mlp_layers, pos_octaves=settings.pos_octaves,
                                    time_octaves=settings.time_octaves).to(device)
    extent = float(scene.deform.extent)
    lrs = _lrs(settings, extent)
    optimizer = _make_optimizer(scene, lrs)
    bg = (torch.ones(3) if settings.background == "white" else torch.zeros(3)).to(device)
    grad_sum = torch.zeros(len(scene), device=device)
    grad_count = torch.zeros(len(scene), device=device)
    pixel_scale = torch.tensor([W / 2, H / 2], device=device)
    step, stage = 0, 1
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt_dir is not None and _checkpoints(ckpt_dir):
        path = _checkpoints(ckpt_dir)[-1]
        state = torch.load(path, weights_only=False, map_location="cpu")  # the generator's state stays a CPU tensor
        scene = DeformableGaussians.from_state(state["gaussians"], state["deformation"], state["hparams"]).to(device)
        optimizer = _make_optimizer(scene, lrs)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        grad_sum, grad_count = state["grad_sum"].to(device), state["grad_count"].to(device)
        step, stage = int(state["step"]), int(state["stage"])
        log.info("resumed reconstruction from %s (step %d)", path, step)
    cam_sel = (vi, torch.full_like(vi, mid))
    frustum = (cam_w2c[cam_sel], cam_K[cam_sel], H, W)
    cells = [(v, t) for v in views for t in range(T)]
    warm_cells = [(v, t) for v in views for t in cols]
    total = settings.steps + (stage2_steps if stage2 is not None else 0)
    history: list[dict] = []
    ema_loss = ema_psnr = None
    with progress_bar("reconstruct", total=total, unit="step") as bar:
        bar.update(step)
        while step < total:
            if stage == 1 and step >= settings.steps:
                if stage2 is None:
                    break
                targets = _refine_targets(scene, grid, targets, cells, stage2, bg, settings.backend, device)
                stage = 2
            frac = min(step / max(settings.steps, 1), 1.0)
            for group in optimizer.param_groups:  # exponential decay to 1% (positions) / 10% (MLP)
                if group["name"] == "means":
                    group["lr"] = lrs["means"] * 0.01 ** frac
                elif group["name"] == "deform":
                    group["lr"] = lrs["deform"] * 0.1 ** frac
            warm = step < settings.deform_warmup
            pool = warm_cells if warm else cells
            v, t = pool[int(torch.randint(len(pool), (1,), generator=generator))]
            if warm:
                gauss, view_dx = scene.canonical(), None
            else:
                gauss, view_dx = scene.deformed(float(times[t]), v if settings.view_compensation else None)
            out = gauss.render(cam_w2c[v, t], cam_K[v, t], W, H, background=bg, backend=settings.backend)
            loss = photometric_loss(out.image, targets[v, t], weights[v, t], settings.ssim_weight)
            if view_dx is not None and settings.view_reg > 0:
                loss = loss + settings.view_reg * (view_dx / extent).pow(2).sum(1).mean()
            loss.backward()
            with torch.no_grad():
                grad2d = out.means2d_grad()
                if grad2d is not None:
                    g = grad2d * pixel_scale
                    vis = out.radii > 0
                    grad_sum[vis] += g[vis].norm(dim=1)
                    grad_count[vis] += 1
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            p = _psnr(out.image, targets[v, t])
            lv = float(loss.detach())
            ema_loss = lv if ema_loss is None else 0.9 * ema_loss + 0.1 * lv
            ema_psnr = p if ema_psnr is None else 0.9 * ema_psnr + 0.1 * p
            bar.set_postfix(loss=f"{ema_loss:.4f}", psnr=f"{ema_psnr:.2f}", n=len(scene), refresh=False)
            bar.update(1)
            if step % 50 == 0:
                history.append({"step": step, "loss": ema_loss, "psnr": ema_psnr, "gaussians": len(scene)})
            if stage == 1 and step % settings.densify_every == 0 and step < settings.steps:
                grow = settings.deform_warmup <= step <= settings.densify_until * settings.steps
                _densify(scene, optimizer, grad_sum, grad_count, settings, extent, frustum, generator, grow)
                grad_sum = torch.zeros(len(scene), device=device)
                grad_count = torch.zeros(len(scene), device=device)
            if ckpt_dir is not None and step % settings.checkpoint_every == 0:
                _save_checkpoint(ckpt_dir, step, scene, optimizer, generator, grad_sum, grad_count, stage)
    return ReconResult(scene, step, time.perf_counter() - start_time, history, views)


@torch.no_grad()
def _refine_targets(scene, grid, targets, cells, stage2, bg, backend, device) -> torch.Tensor:
    H, W = grid.size
    w2c, K = grid.w2c.float().to(device), grid.K.float().to(device)
    renders = torch.stack([scene.at(float(grid.time[t]), None).render(w2c[v, t], K[v, t], W, H, bg, backend).image
                           for v, t in cells]).cpu()
    refined = stage2(renders, cells).to(device)
    if tuple(refined.shape) != tuple(renders.shape):
        raise ValueError(f"stage2 must return {tuple(renders.shape)} targets, got {tuple(refined.shape)}")
    out = targets.clone()
    for i, (v, t) in enumerate(cells):
        out[v, t] = refined[i].clamp(0, 1)
    return out


@torch.no_grad()
def render_views(scene: DeformableGaussians, w2c: torch.Tensor, K: torch.Tensor, times: torch.Tensor, height: int,
                 width: int, background: torch.Tensor | None = None, backend: str = "auto",
                 desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render the scene (no view compensation) from cameras ``(n, 4, 4)`` / ``(n, 3, 3)`` at normalised
    times ``(n,)``: ``(images (n, 3, H, W), alpha (n, H, W), depth (n, H, W))``."""
    imgs, alphas, depths = [], [], []
    device = scene.means.device
    if background is not None:
        background = background.to(device)
    with serial():
        frames = range(w2c.shape[0])
        if desc:
            from_bar = progress_bar(desc, total=len(frames), unit="frame")
        else:
            from_bar = None
        for i in frames:
            out = scene.at(float(times[i])).render(w2c[i].to(device), K[i].to(device), width, height, background, backend)
            imgs.append(out.image.clamp(0, 1).cpu())
            alphas.append(out.alpha.cpu())
            depths.append(out.depth.cpu())
            if from_bar is not None:
                from_bar.update(1)
        if from_bar is not None:
            from_bar.close()
    return torch.stack(imgs), torch.stack(alphas), torch.stack(depths)
