"""A small pixel-space video DiT with factorised space/time attention (the built-in backbone).

Frames ``(B, T, 3, H, W)`` in [-1, 1] are cut into ``(1, p, p)`` patches; tokens are ordered
``(t, h, w)``. Each block runs

* spatial attention within each frame, jointly with the text tokens (video queries attend to the
  frame's tokens and the text tokens; text tokens are keys/values only and are not updated),
* temporal attention across frames at the same patch location,
* an MLP,

each pre-normed and modulated by the timestep (adaLN-single: one shared projection of the timestep
embedding plus a learned per-block table, as in PixArt-alpha). Positions are rotary (2-D axial in
the spatial step, 1-D in the temporal step) and computed for the actual grid, so any frame size that
is a multiple of ``p`` and any frame count works; there is no fixed-size position table.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from vnvs.errors import InputError
from vnvs.models.vnvs_block import Attend, HeadRMSNorm, modulate, sdpa


@dataclass
class DiTConfig:
    """Size of the built-in DiT."""

    dim: int = 192
    """Token width."""
    depth: int = 6
    """Number of blocks (each: spatial attention, temporal attention, MLP)."""
    heads: int = 6
    """Attention heads (``dim % heads == 0``, ``dim / heads`` divisible by 4 for the 2-D rotary code)."""
    patch: int = 16
    """Square patch side in pixels; frame sides must be multiples of it."""
    mlp_ratio: float = 4.0
    """MLP hidden width / dim."""
    in_channels: int = 3
    """Channels of a frame."""
    text_dim: int = 256
    """Width of ``text_embeds`` accepted by the model (projected to ``dim``)."""
    freq_dim: int = 256
    """Sinusoidal timestep features before the timestep MLP."""
    rope_theta: float = 10000.0
    """Rotary base period."""
    prediction: str = "x"
    """What the network outputs: ``"x"`` clean frames, turned into the velocity ``(x_sigma - x) / sigma``
    (JiT, Li & He 2025: a patch of 3 p^2 pixel values is wider than a token, and noise is not
    compressible, so the network should predict the clean image); ``"v"`` the velocity directly."""
    min_sigma: float = 0.05
    """x-prediction: ``sigma`` is clamped to at least this in the velocity conversion."""
    cond_channels: int = 0
    """Extra input channels concatenated to the frames (inpainting conditioning: the warped frame and
    its mask); their patch-embedding weights start at zero. Set by the model for ``control="inpaint"``."""

    def __post_init__(self) -> None:
        if self.dim % self.heads or (self.dim // self.heads) % 4:
            raise InputError(f"DiT dim {self.dim} / heads {self.heads} must give a head width divisible by 4")
        if self.cond_channels < 0:
            raise InputError(f"DiT cond_channels must be >= 0, got {self.cond_channels}")
        if self.patch < 1 or self.depth < 1:
            raise InputError("DiT patch and depth must be >= 1")
        if self.prediction not in ("x", "v"):
            raise InputError(f"DiT prediction must be 'x' or 'v', got {self.prediction!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "DiTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown DiT config fields: {', '.join(map(repr, unknown))}")
        return cls(**data)


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``(B, dim)`` of timesteps ``(B,)`` (in [0, 1000])."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """Rotary angles ``(N, head_dim / 2)`` for ``positions`` ``(N, A)`` on ``A`` axes (axial split)."""
    n_axes = positions.shape[1]
    per_axis = head_dim // 2 // n_axes
    freqs = theta ** (-torch.arange(per_axis, dtype=torch.float32, device=positions.device) / per_axis)
    return torch.cat([positions[:, a : a + 1].float() * freqs[None] for a in range(n_axes)], dim=-1)


class Rope:
    """Precomputed rotary tables; ``apply(x)`` rotates ``(..., N, heads, head_dim)`` tensors."""

    def __init__(self, angles: torch.Tensor, dtype: torch.dtype):
        ang = torch.cat([angles, angles], dim=-1)[:, None, :]  # (N, 1, head_dim)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x * self.cos + torch.cat([-x2, x1], dim=-1) * self.sin


@dataclass
class Grid:
    """Token grid of one forward pass and its rotary tables."""

    frames: int
    height: int
    width: int
    rope_space: Rope
    """Over the ``height * width`` tokens of a frame (row-major)."""
    rope_time: Rope
    """Over the ``frames`` tokens of a location."""

    @property
    def spatial(self) -> int:
        return self.height * self.width

    def to_frames(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T*h*w, ...)`` -> ``(B*T, h*w, ...)``."""
        return x.reshape(x.shape[0] * self.frames, self.spatial, *x.shape[2:])

    def from_frames(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        return x.reshape(batch, self.frames * self.spatial, *x.shape[2:])

    def to_tubes(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T*h*w, ...)`` -> ``(B*h*w, T, ...)``."""
        B = x.shape[0]
        x = x.reshape(B, self.frames, self.spatial, *x.shape[2:]).transpose(1, 2)
        return x.reshape(B * self.spatial, self.frames, *x.shape[3:])

    def from_tubes(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        x = x.reshape(batch, self.spatial, self.frames, *x.shape[2:]).transpose(1, 2)
        return x.reshape(batch, self.frames * self.spatial, *x.shape[3:])


def spatial_attention(grid: Grid, batch: int) -> Attend:
    """Per-frame attention with 2-D rotary positions; text tokens are extra keys/values of every frame.

    Text queries (coupled VNVS ablation) attend to the text and to all video tokens of all frames.
    """

    def attend(q, k, v, tq=None, tk=None, tv=None):
        q, k = grid.to_frames(q), grid.to_frames(k)
        q, k, vf = grid.rope_space.apply(q), grid.rope_space.apply(k), grid.to_frames(v)
        if tk is None:
            return grid.from_frames(sdpa(q, k, vf), batch), None
        T = grid.frames
        tkf = tk[:, None].expand(batch, T, *tk.shape[1:]).flatten(0, 1)
        tvf = tv[:, None].expand(batch, T, *tv.shape[1:]).flatten(0, 1)
        out = grid.from_frames(sdpa(q, torch.cat([tkf, k], 1), torch.cat([tvf, vf], 1)), batch)
        tout = None
        if tq is not None:
            keys = torch.cat([tk, grid.from_frames(k, batch)], 1)
            tout = sdpa(tq, keys, torch.cat([tv, v], 1))
        return out, tout

    return attend


class DiTBlock(nn.Module):
    """Spatial attention (+ text) -> temporal attention -> MLP, adaLN-single modulated."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        D, self.heads = cfg.dim, cfg.heads
        hd = D // cfg.heads
        self.table = nn.Parameter(torch.randn(9, D) / D**0.5)
        self.norm_s = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.norm_text = nn.LayerNorm(D, eps=1e-6)
        self.qkv_s, self.out_s = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.qn_s, self.kn_s = HeadRMSNorm(hd), HeadRMSNorm(hd)
        self.norm_t = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.qkv_t, self.out_t = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.qn_t, self.kn_t = HeadRMSNorm(hd), HeadRMSNorm(hd)
        self.norm_m = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(D, hidden), nn.GELU(), nn.Linear(hidden, D))
        for lin in (self.out_s, self.out_t, self.mlp[2]):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _qkv(self, lin: nn.Linear, x: torch.Tensor):
        return lin(x).unflatten(-1, (3, self.heads, -1)).unbind(-3)

    def forward(
        self, x: torch.Tensor, text: torch.Tensor, temb: torch.Tensor, mod: torch.Tensor, grid: Grid
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, N, D)`` video tokens, ``text`` ``(B, L, D)``, ``temb`` ``(B, D)`` (unused here),
        ``mod`` ``(B, 9, D)`` shared modulation -> ``(x, text)``."""
        B = x.shape[0]
        s1, c1, g1, s2, c2, g2, s3, c3, g3 = (self.table[None] + mod).unbind(1)
        q, k, v = self._qkv(self.qkv_s, modulate(self.norm_s(x), s1, c1))
        _, tk, tv = self._qkv(self.qkv_s, self.norm_text(text))
        out, _ = spatial_attention(grid, B)(self.qn_s(q), self.kn_s(k), v, None, self.kn_s(tk), tv)
        x = x + g1[:, None] * self.out_s(out.flatten(-2))

        q, k, v = self._qkv(self.qkv_t, modulate(self.norm_t(x), s2, c2))
        rt = grid.rope_time
        q, k, v = rt.apply(self.qn_t(grid.to_tubes(q))), rt.apply(self.kn_t(grid.to_tubes(k))), grid.to_tubes(v)
        out = grid.from_tubes(sdpa(q, k, v), B)
        x = x + g2[:, None] * self.out_t(out.flatten(-2))

        x = x + g3[:, None] * self.mlp(modulate(self.norm_m(x), s3, c3))
        return x, text


class VideoDiT(nn.Module):
    """The built-in backbone. ``forward(x (B, T, C, H, W), timestep (B,), text (B, L, D) ) -> (B, T, C, H, W)``.

    Returns the flow-matching velocity for ``timestep = sigma * 1000``; with ``prediction="x"`` the
    network's output is the clean frame and the velocity is ``(x - x_hat) / max(sigma, min_sigma)``.

    ``text`` is already in the model width (see :meth:`embed_text`). Blocks are called as
    ``block(x, text, temb, mod, grid) -> (x, text)``, so wrappers (VNVS injection) can replace them.
    """

    def __init__(self, cfg: DiTConfig, null_text_tokens: int = 8):
        super().__init__()
        self.cfg = cfg
        D, p = cfg.dim, cfg.patch
        self.patch_embed = nn.Conv2d(cfg.in_channels, D, kernel_size=p, stride=p)
        # the patch embedding's input channels for the conditioning, split off so x-prediction reads
        # the noisy frames alone; zero-initialised: a new conditioning changes nothing at first
        self.cond_embed = nn.Conv2d(cfg.cond_channels, D, kernel_size=p, stride=p, bias=False) if cfg.cond_channels else None
        if self.cond_embed is not None:
            nn.init.zeros_(self.cond_embed.weight)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.time_mod = nn.Sequential(nn.SiLU(), nn.Linear(D, 9 * D))
        self.text_proj = nn.Linear(cfg.text_dim, D)
        self.null_text = nn.Parameter(torch.randn(null_text_tokens, D) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.table_out = nn.Parameter(torch.randn(2, D) / D**0.5)
        self.proj_out = nn.Linear(D, p * p * cfg.in_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def make_grid(self, frames: int, height: int, width: int, device, dtype) -> Grid:
        """Token grid and rotary tables for ``frames`` frames of ``height x width`` pixels."""
        p, hd, theta = self.cfg.patch, self.cfg.dim // self.cfg.heads, self.cfg.rope_theta
        h, w = height // p, width // p
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        space = rope_angles(torch.stack([ys.flatten(), xs.flatten()], -1), hd, theta)
        time = rope_angles(torch.arange(frames, device=device)[:, None], hd, theta)
        return Grid(frames, h, w, Rope(space, dtype), Rope(time, dtype))

    def embed_time(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``(B,)`` timesteps -> ``(B, D)`` embedding."""
        return self.time_mlp(timestep_features(timestep, self.cfg.freq_dim).to(dtype))

    def embed_text(self, text_embeds: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """``(B, L, text_dim)`` or None (learned null tokens) -> ``(B, L, D)``."""
        if text_embeds is None:
            return self.null_text.to(dtype)[None].expand(batch, -1, -1)
        if text_embeds.ndim != 3 or text_embeds.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"text_embeds must be (B, L, {self.cfg.text_dim}), got {tuple(text_embeds.shape)}")
        return self.text_proj(text_embeds.to(dtype))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """``cond`` ``(B, T, cond_channels, H, W)``: required when ``cond_channels > 0``, else None."""
        B, T, C, H, W = x.shape
        p = self.cfg.patch
        if H % p or W % p:
            raise ValueError(f"frame size {H}x{W} is not a multiple of the DiT patch {p}")
        if (cond is None) != (self.cond_embed is None):
            raise ValueError(f"this DiT takes {self.cfg.cond_channels} conditioning channels; cond is {'missing' if cond is None else 'unexpected'}")
        dtype = self.patch_embed.weight.dtype
        tokens = self.patch_embed(x.to(dtype).flatten(0, 1))  # (B*T, D, h, w)
        if cond is not None:
            if cond.shape != (B, T, self.cfg.cond_channels, H, W):
                raise ValueError(f"cond must be {(B, T, self.cfg.cond_channels, H, W)}, got {tuple(cond.shape)}")
            tokens = tokens + self.cond_embed(cond.to(dtype).flatten(0, 1))
        tokens = tokens.flatten(2).transpose(1, 2).reshape(B, -1, self.cfg.dim)  # (t, h, w) order
        grid = self.make_grid(T, H, W, x.device, dtype)
        temb = self.embed_time(timestep, dtype)
        mod = self.time_mod(temb).unflatten(1, (9, -1))
        text = self.embed_text(text_embeds, B, dtype)
        for block in self.blocks:
            tokens, text = block(tokens, text, temb, mod, grid)
        shift, scale = (self.table_out[None] + temb[:, None]).unbind(1)
        out = self.proj_out(modulate(self.norm_out(tokens), shift, scale))
        out = out.reshape(B, T, grid.height, grid.width, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(B, T, C, H, W)
        if self.cfg.prediction == "v":
            return out
        sigma = (timestep.to(out.dtype) / 1000).clamp(min=self.cfg.min_sigma).view(B, 1, 1, 1, 1)
        return (x.to(out.dtype) - out) / sigma
