"""``DiffusersGridModel``: the three grid designs on a diffusers video backbone (CogVideoX, Wan).

The same wrapping as the VNVS blocks (:mod:`vnvs.models.injection`): every block of the pretrained
transformer is replaced by a :class:`GridBlock` that calls the original block, and the transformer's
own ``forward`` runs unchanged. A grid of ``V`` views x ``T`` latent times enters it as a batch of
``B V`` fixed-view videos (each view's row, encoded by the VAE as a video), so the transformer's patch
embedding, positions, timestep embedding and output layer see exactly the videos they were trained
on, and each block's tokens arrive in the *time* layout ``(B V, T N, D)``. The wrapper adds the view
axis by regrouping the same tokens:

* ``4real``: the *time stream* is the block on the time layout, the *view stream* the block on the
  view layout ``(B T, V N, D)`` (freeze-time videos, with the positions of a ``V``-frame video), then
  the block's :class:`~vnvs.models.grid.layers.SyncLayer`; the view stream is carried to the next
  block through the context, the last block returns the mean of the two. ``arch="sequential"``:
  the block over views, then over times.
* ``sv4d``: the block per frame (``(B V T, N, D)``) alpha-blended (learned alpha per block) with the
  block over all views of a time, then the block over times with its update weighted by a second
  learned alpha (starting at 0.99). On these backbones a block's attention spans the whole sequence it
  is given, so the blend is of block outputs rather than of attention outputs inside one block.
* ``full4d``: the block over all tokens of all cells ``(B, V T N, D)`` (fused time-view attention;
  every cell keeps its time position), with the reprojection prior added to the attention logits
  where the backbone's attention takes a mask (CogVideoX: through ``attention_kwargs``; Wan's blocks
  pass none, so it runs without the prior there).

Conditioning: the given cells (as latents, times their mask) and the mask are concatenated
channel-wise to the noisy latents through zero-initialised new input channels of the patch embedding
(as the CogNVS inpainting models are), and camera-conditioned methods add the Plücker rays of every
latent pixel (6 more zero-initialised channels), so an untrained model is the pretrained backbone run
along the grid's axes. Latent times: ``T`` frames of a row encode to ``T' = 1 + (T - 1) / r`` latents
(``r`` the VAE's temporal factor, rows padded with their last frame to a length the VAE takes);
latent 0 is frame 0 alone, so the given first column stays exactly given.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from vnvs.errors import InputError
from vnvs.models.backbones import ADAPTERS
from vnvs.models.config import ModelConfig
from vnvs.models.grid.config import GridModelConfig
from vnvs.models.grid.folder import load_grid_weights, write_grid_folder
from vnvs.models.grid.layers import MAX_BIAS_DIST2, SyncLayer, plucker_patches, reprojection_distance
from vnvs.models.injection import TembCapture

PLUCKER_CHANNELS = 6


@dataclass
class GridContext:
    """State of the forward pass in progress, read by the :class:`GridBlock` wrappers."""

    shape: tuple[int, int, int, int] | None = None
    """``(B, V, T, N)``: grids, views, latent times (token frames) and tokens per frame."""
    rotary_views: Any = None
    """The backbone's rotary embedding of a ``V``-frame video (None: the backbone has none)."""
    rotary_frame: Any = None
    """The same for one frame."""
    rotary_cells: Any = None
    """Every cell's tokens at its time position, cells ordered ``(v, t)`` (full4d)."""
    bias: torch.Tensor | None = None
    """full4d: ``(B, V T N, V T N)`` reprojection prior (negative squared distances), or None."""
    temb: torch.Tensor | None = None
    """Timestep embedding of backbones whose blocks do not receive it (Wan; captured by a hook)."""
    view_stream: torch.Tensor | None = None
    """4real parallel: the view stream between two blocks, in the time layout."""

    def clear(self) -> None:
        self.shape = self.rotary_views = self.rotary_frame = self.rotary_cells = None
        self.bias = self.temb = self.view_stream = None


def _rep(x: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, ...)`` -> ``(B * n, ...)``, each sample repeated ``n`` times in a row."""
    return x[:, None].expand(x.shape[0], n, *x.shape[1:]).reshape(x.shape[0] * n, *x.shape[1:])


def _logit(a: float) -> float:
    a = min(max(float(a), 1e-4), 1 - 1e-4)
    return math.log(a / (1 - a))


class GridBlock(nn.Module):
    """One backbone block run along the grid's axes (module docstring); holds the block's grid layers."""

    def __init__(self, block: nn.Module, layer: int, layers: int, config: GridModelConfig, dim: int, temb_dim: int,
                 ctx: GridContext):
        super().__init__()
        self.block, self.layer, self.layers, self.ctx = block, layer, layers, ctx
        self.method = config.method
        self.checkpointing = False
        self.sync = None
        self.parallel = config.method == "4real" and config.arch == "parallel"
        if self.parallel:
            self.sync = SyncLayer(dim, config.sync, config.sync_weights, layer, layers, temb_dim=temb_dim)
        if config.method == "sv4d":
            self.alpha_logit = nn.Parameter(torch.tensor(_logit(config.alpha_init)))
            self.frame_alpha_logit = nn.Parameter(torch.tensor(_logit(config.frame_alpha_init)))
        if config.method == "full4d":
            self.bias_scale = nn.Parameter(torch.tensor(float(config.bias_scale)))

    # backbone-specific: one call of the wrapped block on tokens (B', S, D) with per-sample text / temb;
    # returns the tokens and the updated text (None for blocks that do not update it)
    def _call(self, x, text, temb, rotary, bias=None):
        raise NotImplementedError

    def _block(self, *args, **kwargs):
        """The wrapped block, recomputed in the backward pass when checkpointing."""
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(self.block, *args, use_reentrant=False, **kwargs)
        return self.block(*args, **kwargs)

    def _sync_temb(self, temb):
        raise NotImplementedError

    # layouts: the time layout (B V, T N, D) is the one the transformer passes between blocks
    def _per_sample(self, z: torch.Tensor, groups: int) -> torch.Tensor:
        """``(B groups, ...)`` whose groups repeat one sample's value -> ``(B, ...)``."""
        return z.reshape(-1, groups, *z.shape[1:])[:, 0]

    def _text_per_sample(self, text: torch.Tensor, groups: int) -> torch.Tensor:
        """``(B groups, L, D)`` text, updated per row by the blocks -> ``(B, L, D)``: the mean over the rows."""
        return text.reshape(-1, groups, *text.shape[1:]).mean(1)

    def _views(self, x, text, temb):
        B, V, T, N = self.ctx.shape
        D = x.shape[-1]
        xv = x.reshape(B, V, T, N, D).transpose(1, 2).reshape(B * T, V * N, D)
        tv = None if text is None else _rep(self._text_per_sample(text, V), T)
        y, ty = self._call(xv, tv, _rep(self._per_sample(temb, V), T), self.ctx.rotary_views)
        y = y.reshape(B, T, V, N, D).transpose(1, 2).reshape(B * V, T * N, D)
        if ty is not None:
            ty = _rep(ty.reshape(B, T, *ty.shape[1:]).mean(1), V)
        return y, ty

    def _frames(self, x, text, temb):
        B, V, T, N = self.ctx.shape
        D = x.shape[-1]
        tf = None if text is None else _rep(text, T)
        y, ty = self._call(x.reshape(B * V * T, N, D), tf, _rep(temb, T), self.ctx.rotary_frame)
        if ty is not None:
            ty = ty.reshape(B * V, T, *ty.shape[1:]).mean(1)
        return y.reshape(B * V, T * N, D), ty

    def _cells(self, x, text, temb):
        B, V, T, N = self.ctx.shape
        D = x.shape[-1]
        tc = None if text is None else self._text_per_sample(text, V)
        bias = None
        if self.ctx.bias is not None:
            bias = self.bias_scale.abs() * self.ctx.bias
        y, ty = self._call(x.reshape(B, V * T * N, D), tc, self._per_sample(temb, V), self.ctx.rotary_cells, bias)
        return y.reshape(B * V, T * N, D), (None if ty is None else _rep(ty, V))

    def grid_step(self, x, text, temb, rotary_times):
        """``x`` ``(B V, T N, D)`` -> the block's grid update, and the updated text (or None)."""
        def mean(a, b):
            return None if a is None else 0.5 * (a + b)

        if self.method == "full4d":
            return self._cells(x, text, temb)
        if self.method == "sv4d":
            a = torch.sigmoid(self.alpha_logit)
            yf, tf = self._frames(x, text, temb)
            yv, tv = self._views(x, text, temb)
            y = (1 - a) * yf + a * yv
            text = text if tf is None else (1 - a) * tf + a * tv
            yt, tt = self._call(y, text, temb, rotary_times)
            b = torch.sigmoid(self.frame_alpha_logit)
            return y + b * (yt - y), (None if tt is None else text + b * (tt - text))
        if not self.parallel:  # 4real sequential: over views, then over times
            y, ty = self._views(x, text, temb)
            return self._call(y, ty if ty is not None else text, temb, rotary_times)
        xv = self.ctx.view_stream if self.ctx.view_stream is not None else x
        yt, tt = self._call(x, text, temb, rotary_times)
        yv, tv = self._views(xv, text, temb)
        xv, xt = self.sync(yv, yt, self._sync_temb(temb))
        if self.layer == self.layers - 1:
            self.ctx.view_stream = None
            return 0.5 * (xv + xt), mean(tt, tv)
        self.ctx.view_stream = xv
        return xt, mean(tt, tv)


class CogVideoXGridBlock(GridBlock):
    """Wraps ``CogVideoXBlock``: ``(hidden, text, temb, rotary, attention_kwargs) -> (hidden, text)``."""

    def forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None, attention_kwargs=None):
        return self.grid_step(hidden_states, encoder_hidden_states, temb, image_rotary_emb)

    def _call(self, x, text, temb, rotary, bias=None):
        kwargs = {}
        if bias is not None:  # the text tokens come first in CogVideoX's joint attention; they get no prior
            L = text.shape[1]
            full = bias.new_zeros(bias.shape[0], L + bias.shape[1], L + bias.shape[2])
            full[:, L:, L:] = bias
            kwargs["attention_mask"] = full[:, None].to(x.dtype)
        return self._block(hidden_states=x, encoder_hidden_states=text, temb=temb, image_rotary_emb=rotary,
                           attention_kwargs=kwargs)

    def _sync_temb(self, temb):
        return temb


class WanGridBlock(GridBlock):
    """Wraps ``WanTransformerBlock``: ``(hidden, text, timestep_proj, rotary) -> hidden``."""

    def forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb):
        return self.grid_step(hidden_states, encoder_hidden_states, temb, rotary_emb)[0]

    def _call(self, x, text, temb, rotary, bias=None):
        return self._block(x, text, temb, rotary), None  # Wan's blocks leave the text as it is

    def _sync_temb(self, temb):
        return self.ctx.temb


_GRID_BLOCKS = {"cogvideox": CogVideoXGridBlock, "wan": WanGridBlock}


class DiffusersGridModel(nn.Module):
    """A grid denoiser on a diffusers backbone (module docstring); built by :meth:`GridModel.from_config`
    when ``config.backbone`` is ``cogvideox`` or ``wan``. Works on latent grids: :meth:`encode_grid` and
    :meth:`decode_grid` convert."""

    def __init__(self, config: GridModelConfig, *, arch: dict | None = None):
        super().__init__()
        if config.backbone not in _GRID_BLOCKS:
            raise InputError(f"DiffusersGridModel runs on cogvideox or wan backbones, not {config.backbone!r}")
        self.config = config
        self._adapter = ADAPTERS[config.backbone]
        mc = self._model_config()
        backbone, vae = self._adapter.build(mc, arch)
        self.backbone, self.vae = backbone, vae
        vae.requires_grad_(False)
        vae.eval()
        spec = self._spec = self._adapter.spec(mc, backbone, vae)
        if spec.patch[0] != 1:
            raise InputError("grid models need a backbone without temporal patching (patch_size_t of 1)")
        if arch is None:
            self._adapter._widen(backbone, self.cond_channels)
        self.ctx = GridContext()
        blocks = getattr(backbone, self._adapter.blocks_attr)
        wrapper = _GRID_BLOCKS[config.backbone]
        for i, block in enumerate(list(blocks)):
            blocks[i] = wrapper(block, i, len(blocks), config, spec.dim, spec.temb_dim, self.ctx)
        if config.backbone == "wan":
            backbone.condition_embedder.register_forward_hook(TembCapture(self.ctx))

    def _model_config(self) -> ModelConfig:
        c = self.config
        return ModelConfig(backbone=c.backbone, pretrained=c.pretrained, backbone_config=dict(c.backbone_config),
                           vae_config=None if c.vae_config is None else dict(c.vae_config),
                           null_text_tokens=c.null_text_tokens)

    # --- contract (as GridModel) -------------------------------------------------------------------

    @property
    def latent_channels(self) -> int:
        return self._spec.latent_channels

    @property
    def cond_channels(self) -> int:
        """Input channels added to the patch embedding: given latents, mask, and Plücker rays with cameras."""
        return self.latent_channels + 1 + (PLUCKER_CHANNELS if self.config.uses_camera else 0)

    @property
    def patch(self) -> int:
        """Frame sides must be multiples of this (VAE factor times the backbone's patch)."""
        return self._spec.vae_spatial * self._spec.patch[1]

    @property
    def temporal_multiple(self) -> int:
        """Rows of ``T`` frames with ``(T - 1) % temporal_multiple == 0`` encode without padding."""
        return self._spec.temporal_multiple

    @property
    def window(self) -> tuple[int | None, int | None]:
        return self.config.window_views, self.config.window_times

    def control_parameters(self):
        """Parameters that are not the pretrained transformer's: the grid layers and the widened embedding."""
        own = {id(p) for p in self.backbone_parameters()}
        return (p for p in self.parameters() if p.requires_grad and id(p) not in own)

    def sync_parameters(self):
        return self.control_parameters()

    def backbone_parameters(self):
        """The pretrained transformer's parameters (not the patch embedding that reads the conditioning)."""
        wrappers = [m for m in self.backbone.modules() if isinstance(m, GridBlock)]
        grid = {id(p) for m in wrappers for p in m.parameters()} - {id(p) for m in wrappers for p in m.block.parameters()}
        embed = {id(p) for p in self._adapter.cond_embedding(self.backbone)}
        return (p for p in self.backbone.parameters() if id(p) not in grid and id(p) not in embed)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute every block call in the backward pass (the activations of ~2-3 block calls per layer)."""
        for m in self.backbone.modules():
            if isinstance(m, GridBlock):
                m.checkpointing = bool(enabled)

    def unused_parameters(self):
        """Parameters a training step never reaches (none: the null text still flows through the text layers)."""
        return iter(())

    # --- latents ------------------------------------------------------------------------------------

    def _latent_times(self, T: int) -> tuple[int, list[int]]:
        """``(padded frames, frame of each latent time)``: latent ``t`` stands for frame ``min(r t, T - 1)``."""
        m, r = self.temporal_multiple, self._spec.vae_temporal
        Tp = 1 + m * math.ceil((T - 1) / m)
        return Tp, [min(r * t, T - 1) for t in range((Tp - 1) // r + 1)]

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """``(B, V, T)`` given cells -> ``(B, V, T')`` given latents: those all of whose frames are given."""
        T = mask.shape[2]
        n = len(self._latent_times(T)[1])
        r = self._spec.vae_temporal
        groups = [[0]] + [list(range(r * (t - 1) + 1, min(r * t, T - 1) + 1)) or [T - 1] for t in range(1, n)]
        return torch.stack([mask[:, :, g].all(2) for g in groups], 2)

    def encode_grid(self, frames: torch.Tensor, mask: torch.Tensor, *, w2c=None, K=None, depth=None,
                    depth_valid=None) -> dict[str, Any]:
        """Cells ``(B, V, T, 3, H, W)`` in [0, 1] and their mask ``(B, V, T)`` -> the latent grid.

        Each row is encoded as a video (padded with its last frame to a length the VAE takes). A latent
        time is given when all frames it encodes are; cameras and depth are taken at the latent time's
        frame. Returns ``x0 (B, V, T', C, h, w)`` in the backbone's latent scale, ``mask (B, V, T')`` and
        the cameras / depth indexed to latent times.
        """
        B, V, T = frames.shape[:3]
        Tp, index = self._latent_times(T)
        if Tp > T:
            frames = torch.cat([frames, frames[:, :, -1:].expand(B, V, Tp - T, *frames.shape[3:])], 2)
        with torch.no_grad():
            z = self._adapter.encode(self, frames.flatten(0, 1).float()).float()
        z = z.reshape(B, V, *z.shape[1:])
        idx = torch.tensor(index, device=frames.device)

        def pick(a):
            return None if a is None else a.index_select(2, idx.to(a.device))

        return {"x0": z, "mask": self.latent_mask(mask), "w2c": pick(w2c), "K": pick(K), "depth": pick(depth),
                "depth_valid": pick(depth_valid), "frames": T}

    def decode_grid(self, latents: torch.Tensor, frames: int) -> torch.Tensor:
        """Latents ``(B, V, T', C, h, w)`` -> cells ``(B, V, frames, 3, H, W)`` in [0, 1]."""
        B, V = latents.shape[:2]
        with torch.no_grad():
            x = self._adapter.decode(self, latents.flatten(0, 1)).float()
        return x.reshape(B, V, *x.shape[1:])[:, :, :frames]

    # --- forward ----------------------------------------------------------------------------------

    def _rotary(self, frames: int, like: torch.Tensor):
        """The backbone's rotary embedding of a ``frames``-frame latent video of ``like``'s size (or None)."""
        h, w = like.shape[-2:]
        if self.config.backbone == "wan":
            return self.backbone.rope(like.new_empty(1, 1, frames, h, w))
        if not self.backbone.config.use_rotary_positional_embeddings:
            return None
        return self._adapter._rotary(self, like.new_empty(1, frames, 1, h, w))

    def _rotary_cells(self, V: int, T: int, like: torch.Tensor):
        """Each cell's tokens at its time position: the ``T``-frame embedding repeated for every view."""
        rot = self._rotary(T, like)
        if rot is None:
            return None
        if self.config.backbone == "wan":
            return tuple(r.repeat(1, V, 1, 1) for r in rot)
        return tuple(r.repeat(V, 1) for r in rot)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, *,
                w2c: torch.Tensor | None = None, K: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                depth_valid: torch.Tensor | None = None, text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Flow-matching velocity of a noisy latent grid.

        Args:
            x: ``(B, V, T', C, h, w)`` noisy latents ``(1 - sigma) x0 + sigma noise``.
            timestep: ``(B,)`` ``1000 sigma`` (a scalar is broadcast).
            known: ``(B, V, T', C, h, w)`` the given latents (ignored where ``mask`` is False).
            mask: ``(B, V, T')`` bool.
            w2c, K: optional ``(B, V, T', 4, 4)``, ``(B, V, T', 3, 3)`` cameras (pixels of the decoded cells).
            depth, depth_valid: optional ``(B, V, T', H, W)`` depth of the given cells (full4d's prior).
            text_embeds: optional ``(B, L, D_text)``.

        Returns:
            ``(B, V, T', C, h, w)`` velocity.
        """
        if x.ndim != 6 or x.shape[3] != self.latent_channels:
            raise ValueError(f"x must be latents (B, V, T', {self.latent_channels}, h, w), got {tuple(x.shape)}")
        if (w2c is None) != (K is None):
            raise ValueError("give both w2c and K, or neither")
        B, V, T, C, h, w = x.shape
        p = self._spec.patch[1]
        if h % p or w % p:
            raise ValueError(f"latent size {h}x{w} is not a multiple of the backbone patch {p}")
        dtype = next(self.backbone.parameters()).dtype
        timestep = torch.as_tensor(timestep, dtype=torch.float32, device=x.device)
        timestep = timestep.expand(B) if timestep.ndim == 0 else timestep
        m = mask.to(dtype)[..., None, None, None].expand(B, V, T, 1, h, w)
        given = torch.where(mask[..., None, None, None], known.to(dtype), torch.zeros((), dtype=dtype, device=x.device))
        cond = [given, m]
        if self.config.uses_camera:
            f = self._spec.vae_spatial
            rays = torch.zeros(B, V, T, h * w, PLUCKER_CHANNELS, device=x.device)
            if w2c is not None:
                rays = plucker_patches(w2c, K, h * f, w * f, f)
            cond.append(rays.to(dtype).transpose(-1, -2).reshape(B, V, T, PLUCKER_CHANNELS, h, w))
        cond = torch.cat(cond, 3)
        ctx = self.ctx
        ctx.clear()
        ctx.shape = (B, V, T, (h // p) * (w // p))
        try:
            method = self.config.method
            if method != "full4d":
                ctx.rotary_views = self._rotary(V, x)
            if method == "sv4d":
                ctx.rotary_frame = self._rotary(1, x)
            if method == "full4d":
                ctx.rotary_cells = self._rotary_cells(V, T, x)
                if w2c is not None and self.config.backbone == "cogvideox":
                    d = reprojection_distance(w2c, K, h * self._spec.vae_spatial, w * self._spec.vae_spatial,
                                              self.patch, depth, depth_valid)
                    ctx.bias = -(d.square().clamp(max=MAX_BIAS_DIST2))
            text = None if text_embeds is None else _rep(text_embeds, V)
            out = self._adapter.run(self, x.flatten(0, 1).to(dtype), _rep(timestep, V), text, cond.flatten(0, 1))
        finally:
            ctx.clear()
        return out.reshape(B, V, T, C, h, w)

    # --- persistence ------------------------------------------------------------------------------

    def resolved_config(self) -> GridModelConfig:
        """The config as saved: no ``pretrained`` reference (the weights are in the folder)."""
        return self.config.replace(pretrained=None)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """``config.json`` (the grid config and the backbone's and VAE's architecture) and ``model.safetensors``."""
        write_grid_folder(self, path, {"grid_model": self.resolved_config().to_dict(),
                                       "architecture": self._adapter.arch(self.backbone, self.vae)})

    @classmethod
    def from_saved(cls, folder: Path, meta: dict, device) -> "DiffusersGridModel":
        """The model of a grid model folder whose ``config.json`` (``meta``) names a diffusers backbone."""
        if not isinstance(meta.get("architecture"), dict):
            raise InputError(f"{folder}: a {meta['grid_model'].get('backbone')} grid model needs its architecture "
                             "in config.json")
        model = cls(GridModelConfig.from_dict(meta["grid_model"]), arch=meta["architecture"])
        return load_grid_weights(model, folder, device)
