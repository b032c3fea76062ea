"""``GridModel``: a time x view grid denoiser on the built-in video DiT, in three designs.

A grid ``(B, V, T, 3, H, W)`` in [-1, 1] (view ``v``, time ``t``) is cut into the DiT's patches; every
cell also gets the clean given cells and their mask (a zero-initialised patch embedding of
``[frame * m, m]``) and, when the method uses cameras, Plücker rays relative to cell ``(0, 0)``'s
camera (a zero-initialised linear layer), so an untrained model is exactly the pretrained DiT applied
along the grid's axes. The blocks of the pretrained DiT are reused as they are:

* ``4real`` (4Real-Video): two token streams through every block, the *view stream* with the block's
  temporal attention running over the views of one time (a freeze-time video), the *time stream* over
  the times of one view (a fixed-view video), then a :class:`~vnvs.models.grid.layers.SyncLayer`;
  the output is the mean of the two streams. ``arch="sequential"`` runs the block over views, then
  over times, in series (the paper's baseline, eq. 5).
* ``sv4d`` (SV4D 2.0): per-frame spatial attention alpha-blended (a learned alpha per block) with 3D
  attention over the tokens of all views of one time (the same weights), camera-conditioned relative
  to the reference view; then the block's frame attention over times, its update weighted by a second
  learned alpha per block (starting at 0.99: the pretrained video attention), and its MLP.
* ``full4d`` (Full-4D): per-frame spatial attention, then fused time-view attention over all tokens
  of all cells with an additive reprojection prior ``-beta_l * min(d^2, 16)``
  (:func:`~vnvs.models.grid.layers.reprojection_distance`, from cameras and depth where given),
  Plücker-ray camera conditioning.

``forward`` returns the flow-matching velocity (the DiT's x-prediction converted as in
:class:`~vnvs.models.dit.VideoDiT`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vnvs.defaults import SHIPPED_CHECKPOINT
from vnvs.errors import InputError
from vnvs.models.dit import DiTConfig, Rope, VideoDiT, rope_angles
from vnvs.models.grid.config import CONFIG_NAME, GRID_FORMAT_VERSION, SHIPPED, WEIGHTS_NAME, GridModelConfig
from vnvs.models.grid.diffusers_model import DiffusersGridModel
from vnvs.models.grid.folder import load_grid_weights, write_grid_folder
from vnvs.models.grid.layers import MAX_BIAS_DIST2, SyncLayer, plucker_patches, reprojection_distance
from vnvs.models.model import NovelViewModel
from vnvs.models.vnvs_block import modulate, sdpa



def shipped_backbone_folder() -> Path:
    """The folder of the novel-view model shipped with vnvs (its DiT is the grid models' pretrained backbone)."""
    return Path(__file__).resolve().parents[2] / "checkpoints" / SHIPPED_CHECKPOINT


def _pretrained_backbone(spec: str) -> tuple[dict, dict]:
    """``(backbone_config, state_dict)`` of the DiT in the novel-view model folder ``spec`` (or ``"shipped"``)."""
    folder = shipped_backbone_folder() if spec == SHIPPED else Path(spec)
    model = NovelViewModel.from_pretrained(folder)
    if model.config.backbone != "dit":
        raise InputError(f"{folder}: grid models use the built-in DiT; this model's backbone is {model.config.backbone}")
    return dict(model.config.backbone_config), model.backbone_state_dict()


def _rep(x: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, ...)`` -> ``(B * n, ...)``, each sample repeated ``n`` times in a row."""
    return x[:, None].expand(x.shape[0], n, *x.shape[1:]).reshape(x.shape[0] * n, *x.shape[1:])


class GridModel(nn.Module):
    """A grid denoiser (see the module docstring). Build with :meth:`from_config`, load with :meth:`from_pretrained`."""

    def __init__(self, config: GridModelConfig, *, _load_pretrained: bool = True):
        super().__init__()
        if config.backbone != "dit":
            raise InputError(f"GridModel runs on the built-in DiT; build {config.backbone} grid models with "
                             "GridModel.from_config (a DiffusersGridModel)")
        self.config = config
        state = None
        if config.pretrained is not None:
            backbone_config, state = _pretrained_backbone(config.pretrained) if _load_pretrained else (None, None)
            if backbone_config is None:
                raise ValueError("a pretrained config needs its backbone loaded")
        else:
            backbone_config = dict(config.backbone_config)
        self.backbone_config = backbone_config
        self.dit = VideoDiT(DiTConfig.from_dict(backbone_config), null_text_tokens=config.null_text_tokens)
        if state is not None:
            missing, unexpected = self.dit.load_state_dict(state, strict=False)
            if unexpected or [k for k in missing if not k.startswith("null_text")]:
                raise InputError(f"pretrained backbone {config.pretrained} does not match the DiT "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        cfg = self.dit.cfg
        D, p, L = cfg.dim, cfg.patch, cfg.depth
        self.cond_embed = nn.Conv2d(4, D, kernel_size=p, stride=p)
        nn.init.zeros_(self.cond_embed.weight)
        nn.init.zeros_(self.cond_embed.bias)
        self.cam_embed = None
        if config.uses_camera:
            self.cam_embed = nn.Linear(6, D)
            nn.init.zeros_(self.cam_embed.weight)
            nn.init.zeros_(self.cam_embed.bias)
        self.sync = None
        if config.method == "4real" and config.arch == "parallel":
            self.sync = nn.ModuleList(SyncLayer(D, config.sync, config.sync_weights, l, L) for l in range(L))
        if config.method == "sv4d":
            def logit(a: float) -> float:
                a = min(max(float(a), 1e-4), 1 - 1e-4)
                return math.log(a / (1 - a))
            self.alpha_logit = nn.Parameter(torch.full((L,), logit(config.alpha_init)))
            self.frame_alpha_logit = nn.Parameter(torch.full((L,), logit(config.frame_alpha_init)))
        if config.method == "full4d":
            self.bias_scale = nn.Parameter(torch.full((L,), float(config.bias_scale)))

    # --- construction / persistence -------------------------------------------------------------

    @classmethod
    def from_config(cls, config: GridModelConfig) -> "GridModel":
        """Build a model (new layers from the current torch seed; the backbone from ``config.pretrained``);
        a :class:`~vnvs.models.grid.DiffusersGridModel` for the ``cogvideox`` and ``wan`` backbones."""
        if config.backbone != "dit":
            return DiffusersGridModel(config)
        return cls(config)

    def resolved_config(self) -> GridModelConfig:
        """The config with the backbone written out (what :meth:`save_pretrained` stores)."""
        return self.config.replace(pretrained=None, backbone_config=dict(self.backbone_config))

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``config.json`` (the config, backbone written out) and ``model.safetensors`` into ``path``, atomically."""
        write_grid_folder(self, path, {"grid_model": self.resolved_config().to_dict()})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "GridModel":
        """Load a folder written by :meth:`save_pretrained`; one-line :class:`InputError` on a bad folder."""
        folder = Path(path)
        if not is_grid_model_folder(folder):
            raise InputError(f"{folder} is not a grid model folder (config.json with a grid_model section + model.safetensors)")
        meta = json.loads((folder / CONFIG_NAME).read_text())
        if meta.get("format_version") != GRID_FORMAT_VERSION:
            raise InputError(f"{folder / CONFIG_NAME}: grid model format version {meta.get('format_version')!r}, "
                             f"this vnvs reads {GRID_FORMAT_VERSION}")
        if not isinstance(meta.get("grid_model"), dict):
            raise InputError(f"{folder / CONFIG_NAME}: no grid_model section")
        config = GridModelConfig.from_dict(meta["grid_model"])
        if config.backbone != "dit":
            return DiffusersGridModel.from_saved(folder, meta, device)
        return load_grid_weights(cls(config), folder, device)

    # --- contract ---------------------------------------------------------------------------------

    @property
    def patch(self) -> int:
        """Frame sides must be multiples of this."""
        return self.dit.cfg.patch

    @property
    def window(self) -> tuple[int | None, int | None]:
        """``(views, times)`` per call the model is trained for."""
        return self.config.window_views, self.config.window_times

    def sync_parameters(self):
        """4Real-Video's synchronization layers (what ``freeze_backbone`` training keeps trainable, with the
        conditioning embeddings and the sv4d alphas / full4d prior strengths)."""
        return self.control_parameters()

    def control_parameters(self):
        """Parameters that are not the pretrained DiT's."""
        dit = {id(p) for p in self.dit.parameters()}
        return (p for p in self.parameters() if id(p) not in dit)

    def backbone_parameters(self):
        """The pretrained DiT's parameters."""
        return self.dit.parameters()

    def unused_parameters(self):
        """Parameters a training step never reaches (the text projection: no text is given)."""
        return self.dit.text_proj.parameters()

    @property
    def temporal_multiple(self) -> int:
        """Any number of times works (pixel space)."""
        return 1

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The mask of the denoised grid (pixel space: the cells' own)."""
        return mask

    def encode_grid(self, frames: torch.Tensor, mask: torch.Tensor, *, w2c=None, K=None, depth=None,
                    depth_valid=None) -> dict:
        """Cells ``(B, V, T, 3, H, W)`` in [0, 1] -> the grid the model denoises: ``x0`` in [-1, 1] (zero outside
        ``mask``), with the mask, cameras and depth as given (pixel space: one latent per cell)."""
        x0 = torch.where(mask[..., None, None, None], frames.float() * 2 - 1, torch.zeros((), device=frames.device))
        return {"x0": x0, "mask": mask, "w2c": w2c, "K": K, "depth": depth, "depth_valid": depth_valid,
                "frames": frames.shape[2]}

    def decode_grid(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """The denoised grid -> cells in [0, 1]."""
        return ((x.float() + 1) / 2).clamp(0, 1)[:, :, :frames]

    # --- forward ----------------------------------------------------------------------------------

    def embed(self, x: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, w2c: torch.Tensor | None = None,
              K: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B, V, T, N, D)`` of noisy cells ``x``, the given cells ``known`` (both ``(B, V, T, 3, H, W)``
        in [-1, 1]) with their mask ``(B, V, T)`` and, for camera-conditioned methods, the cameras."""
        B, V, T, C, H, W = x.shape
        dit = self.dit
        dtype = dit.patch_embed.weight.dtype
        m = mask.to(dtype)[..., None, None, None].expand(B, V, T, 1, H, W)
        given = torch.where(mask[..., None, None, None], known.to(dtype), torch.zeros((), dtype=dtype, device=x.device))
        cond = torch.cat([given, m], 3)
        tok = dit.patch_embed(x.to(dtype).flatten(0, 2)) + self.cond_embed(cond.flatten(0, 2))
        tok = tok.flatten(2).transpose(1, 2).reshape(B, V, T, -1, dit.cfg.dim)
        if self.cam_embed is not None and w2c is not None:
            tok = tok + self.cam_embed(plucker_patches(w2c, K, H, W, self.patch).to(dtype))
        return tok

    def _along_times(self, block, tok, text, mod, size):
        B, V, T, N, D = tok.shape
        grid = self.dit.make_grid(T, *size, tok.device, tok.dtype)
        y, _ = block(tok.reshape(B * V, T * N, D), _rep(text, V), None, _rep(mod, V), grid)
        return y.reshape(B, V, T, N, D)

    def _along_views(self, block, tok, text, mod, size):
        B, V, T, N, D = tok.shape
        grid = self.dit.make_grid(V, *size, tok.device, tok.dtype)
        y, _ = block(tok.transpose(1, 2).reshape(B * T, V * N, D), _rep(text, T), None, _rep(mod, T), grid)
        return y.reshape(B, T, V, N, D).transpose(1, 2)

    def _spatial(self, block, x, text, s1, c1, size, blend: float | torch.Tensor | None):
        """Per-frame attention (+ text keys) of block ``block``, optionally alpha-blended with 3D attention
        over all views of a time (sv4d). ``x`` ``(B, V, T, N, D)`` -> attention output ``(B, V, T, N, D)``."""
        B, V, T, N, D = x.shape
        h = modulate(block.norm_s(x.reshape(B, -1, D)), s1, c1)
        q, k, v = block._qkv(block.qkv_s, h)
        _, tk, tv = block._qkv(block.qkv_s, block.norm_text(text))
        rope = self.dit.make_grid(1, *size, x.device, x.dtype).rope_space
        q = rope.apply(block.qn_s(q).reshape(B * V * T, N, *q.shape[2:]))
        k = rope.apply(block.kn_s(k).reshape(B * V * T, N, *k.shape[2:]))
        v = v.reshape(B * V * T, N, *v.shape[2:])
        tk, tv = block.kn_s(tk), tv
        out = sdpa(q, torch.cat([_rep(tk, V * T), k], 1), torch.cat([_rep(tv, V * T), v], 1))
        out = out.reshape(B, V, T, N, -1)
        if blend is not None:
            def by_time(z):  # (B V T, N, h, d) -> (B T, V N, h, d)
                return z.reshape(B, V, T, N, *z.shape[2:]).transpose(1, 2).reshape(B * T, V * N, *z.shape[2:])
            o3 = sdpa(by_time(q), torch.cat([_rep(tk, T), by_time(k)], 1), torch.cat([_rep(tv, T), by_time(v)], 1))
            o3 = o3.reshape(B, T, V, N, -1).transpose(1, 2)
            out = (1 - blend) * out + blend * o3
        return block.out_s(out)

    def _mlp(self, block, x, s3, c3, g3):
        B = x.shape[0]
        flat = x.reshape(B, -1, x.shape[-1])
        return x + (g3[:, None] * block.mlp(modulate(block.norm_m(flat), s3, c3))).reshape(x.shape)

    def _sv4d_block(self, l, block, x, text, mod, size):
        B, V, T, N, D = x.shape
        s1, c1, g1, s2, c2, g2, s3, c3, g3 = (block.table[None] + mod).unbind(1)
        alpha = torch.sigmoid(self.alpha_logit[l])
        x = x + g1[:, None, None, None] * self._spatial(block, x, text, s1, c1, size, alpha)
        # frame attention: the block's temporal attention over the times of each view, per patch
        grid = self.dit.make_grid(T, *size, x.device, x.dtype)
        flat = x.reshape(B * V, T * N, D)
        q, k, v = block._qkv(block.qkv_t, modulate(block.norm_t(flat), _rep(s2, V), _rep(c2, V)))
        rt = grid.rope_time
        q, k, v = rt.apply(block.qn_t(grid.to_tubes(q))), rt.apply(block.kn_t(grid.to_tubes(k))), grid.to_tubes(v)
        out = block.out_t(grid.from_tubes(sdpa(q, k, v), B * V).flatten(-2)).reshape(B, V, T, N, D)
        x = x + (torch.sigmoid(self.frame_alpha_logit[l]) * g2)[:, None, None, None] * out
        return self._mlp(block, x, s3, c3, g3)

    def _full4d_block(self, l, block, x, text, mod, size, bias):
        B, V, T, N, D = x.shape
        s1, c1, g1, s2, c2, g2, s3, c3, g3 = (block.table[None] + mod).unbind(1)
        x = x + g1[:, None, None, None] * self._spatial(block, x, text, s1, c1, size, None)
        flat = x.reshape(B, V * T * N, D)
        q, k, v = block._qkv(block.qkv_t, modulate(block.norm_t(flat), s2, c2))
        hd = q.shape[-1]
        t_index = torch.arange(T, device=x.device)[None, :, None].expand(V, T, N).reshape(-1, 1)
        rope = Rope(rope_angles(t_index, hd, self.dit.cfg.rope_theta), x.dtype)
        q, k = rope.apply(block.qn_t(q)), rope.apply(block.kn_t(k))
        mask = None if bias is None else (self.bias_scale[l].abs() * bias)[:, None].to(q.dtype)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=mask).transpose(1, 2)
        x = x + g2[:, None, None, None] * block.out_t(out.flatten(-2)).reshape(B, V, T, N, D)
        return self._mlp(block, x, s3, c3, g3)

    def streams(self, tok: torch.Tensor, timestep: torch.Tensor, size: tuple[int, int], *,
                w2c: torch.Tensor | None = None, K: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                depth_valid: torch.Tensor | None = None,
                text_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks on tokens ``(B, V, T, N, D)``; return the final ``(view stream, time stream)``
        (the same tensor twice for single-stream designs)."""
        dit, cfg = self.dit, self.config
        B = tok.shape[0]
        temb = dit.embed_time(timestep, tok.dtype)
        mod = dit.time_mod(temb).unflatten(1, (9, -1))
        text = dit.embed_text(text_embeds, B, tok.dtype)
        if cfg.method == "4real":
            xv = xt = tok
            for l, block in enumerate(dit.blocks):
                if self.sync is None:  # sequential interleaving
                    xv = xt = self._along_times(block, self._along_views(block, xv, text, mod, size), text, mod, size)
                else:
                    yv = self._along_views(block, xv, text, mod, size)
                    yt = self._along_times(block, xt, text, mod, size)
                    xv, xt = self.sync[l](yv, yt, temb)
            return xv, xt
        if cfg.method == "sv4d":
            x = tok
            for l, block in enumerate(dit.blocks):
                x = self._sv4d_block(l, block, x, text, mod, size)
            return x, x
        bias = None
        if w2c is not None:
            d = reprojection_distance(w2c, K, size[0], size[1], self.patch, depth, depth_valid)
            bias = -(d.square().clamp(max=MAX_BIAS_DIST2)).to(tok.dtype)
        x = tok
        for l, block in enumerate(dit.blocks):
            x = self._full4d_block(l, block, x, text, mod, size, bias)
        return x, x

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, known: torch.Tensor, mask: torch.Tensor, *,
                w2c: torch.Tensor | None = None, K: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                depth_valid: torch.Tensor | None = None, text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Flow-matching velocity of a noisy grid.

        Args:
            x: ``(B, V, T, 3, H, W)`` noisy cells ``(1 - sigma) x0 + sigma noise`` (``x0`` in [-1, 1]).
            timestep: ``(B,)`` ``1000 sigma`` (a scalar is broadcast).
            known: ``(B, V, T, 3, H, W)`` the given cells, clean, in [-1, 1] (ignored where ``mask`` is False).
            mask: ``(B, V, T)`` bool, the given cells.
            w2c, K: optional ``(B, V, T, 4, 4)``, ``(B, V, T, 3, 3)`` cameras of the cells (pixels of ``H x W``).
            depth, depth_valid: optional ``(B, V, T, H, W)`` depth of the given cells (full4d's prior).

        Returns:
            ``(B, V, T, 3, H, W)`` velocity.
        """
        if x.ndim != 6 or x.shape[3] != 3:
            raise ValueError(f"x must be (B, V, T, 3, H, W), got {tuple(x.shape)}")
        B, V, T, C, H, W = x.shape
        p = self.patch
        if H % p or W % p:
            raise ValueError(f"frame size {H}x{W} is not a multiple of the DiT patch {p}")
        if (w2c is None) != (K is None):
            raise ValueError("give both w2c and K, or neither")
        timestep = torch.as_tensor(timestep, dtype=torch.float32, device=x.device)
        timestep = timestep.expand(B) if timestep.ndim == 0 else timestep
        tok = self.embed(x, known, mask, w2c, K)
        xv, xt = self.streams(tok, timestep, (H, W), w2c=w2c, K=K, depth=depth, depth_valid=depth_valid,
                              text_embeds=text_embeds)
        return self.head(0.5 * (xv + xt), x, timestep)

    def head(self, tok: torch.Tensor, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, V, T, N, D)`` -> velocity ``(B, V, T, 3, H, W)`` (the DiT's output layer)."""
        dit = self.dit
        B, V, T, C, H, W = x.shape
        p = self.patch
        temb = dit.embed_time(timestep, tok.dtype)
        shift, scale = (dit.table_out[None] + temb[:, None]).unbind(1)
        out = dit.proj_out(modulate(dit.norm_out(tok.reshape(B, -1, tok.shape[-1])), shift, scale))
        out = out.reshape(B, V, T, H // p, W // p, C, p, p).permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(B, V, T, C, H, W)
        if dit.cfg.prediction == "v":
            return out
        sigma = (timestep.to(out.dtype) / 1000).clamp(min=dit.cfg.min_sigma).view(B, 1, 1, 1, 1, 1)
        return (x.to(out.dtype) - out) / sigma


def is_grid_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a saved grid model (``config.json`` with a ``grid_model`` section + weights)."""
    folder = Path(path)
    if not ((folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()):
        return False
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("grid_model"), dict)
