"""VNVS injection into an existing backbone by wrapping its blocks (no copy of its forward code).

Every block of the backbone's block list is replaced by a wrapper that runs the original block and
then, for every k-th block, a :class:`~vnvs.models.vnvs_block.VNVSBlock` on the video tokens. The
control tokens and anything the block call does not carry (Wan's timestep embedding, coupled text)
come through a :class:`InjectionContext` that :class:`~vnvs.models.NovelViewModel` fills for the
duration of one forward pass. The wrappers also do gradient checkpointing themselves, passing the
control tokens as explicit inputs, so recomputation never reads stale context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from vnvs.models.dit import spatial_attention
from vnvs.models.vnvs_block import VNVSBlock, joint_attention


@dataclass
class InjectionContext:
    """State of the forward pass in progress, read by the block wrappers."""

    control: torch.Tensor | None = None
    """``(B, N, dim)`` control tokens aligned with the backbone's video tokens."""
    temb: torch.Tensor | None = None
    """Timestep embedding for backbones whose blocks do not receive it (Wan)."""
    text: torch.Tensor | None = None
    """Text tokens updated by a coupled VNVS block (Wan passes the same text to every block)."""

    def clear(self) -> None:
        self.control = self.temb = self.text = None


class BlockWrapper(nn.Module):
    """A backbone block followed by an optional VNVS block."""

    def __init__(self, block: nn.Module, vnvs: VNVSBlock | None, ctx: InjectionContext):
        super().__init__()
        self.block = block
        self.vnvs = vnvs
        self.ctx = ctx
        self.checkpointing = False

    def _call(self, fn, *args):
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _control(self) -> torch.Tensor | None:
        if self.vnvs is not None and self.ctx.control is None:
            raise RuntimeError("VNVS block called outside NovelViewModel.forward (no control tokens)")
        return self.ctx.control if self.vnvs is not None else None


class DiTBlockWrapper(BlockWrapper):
    """Wraps :class:`~vnvs.models.dit.DiTBlock`; VNVS attention is per-frame with 2-D rotary positions."""

    def forward(self, x, text, temb, mod, grid):
        return self._call(self._run, x, text, temb, mod, grid, self._control())

    def _run(self, x, text, temb, mod, grid, control):
        x, text = self.block(x, text, temb, mod, grid)
        if self.vnvs is not None:
            x, text = self.vnvs(x, control, temb, text, spatial_attention(grid, x.shape[0]))
        return x, text


class CogVideoXBlockWrapper(BlockWrapper):
    """Wraps ``CogVideoXBlock``: ``(hidden, text, temb, rotary, attention_kwargs) -> (hidden, text)``."""

    def forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None, attention_kwargs=None):
        return self._call(self._run, hidden_states, encoder_hidden_states, temb, image_rotary_emb, attention_kwargs, self._control())

    def _run(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb, attention_kwargs, control):
        hidden_states, encoder_hidden_states = self.block(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            temb=temb,
            image_rotary_emb=image_rotary_emb,
            attention_kwargs=attention_kwargs,
        )
        if self.vnvs is not None:
            rope = _cogvideox_rope(image_rotary_emb) if image_rotary_emb is not None else None
            hidden_states, encoder_hidden_states = self.vnvs(
                hidden_states, control, temb, encoder_hidden_states, joint_attention(rope)
            )
        return hidden_states, encoder_hidden_states


def _cogvideox_rope(freqs):
    """CogVideoX's rotary rotation (``image_rotary_emb``) for ``(B, N, heads, head_dim)`` tensors."""
    from diffusers.models.embeddings import apply_rotary_emb

    def rope(t: torch.Tensor) -> torch.Tensor:
        return apply_rotary_emb(t, freqs, sequence_dim=1).to(t.dtype)

    return rope


def wan_rope(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary rotation of ``(B, N, heads, head_dim)`` (interleaved pairs), as its attention applies it."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = freqs_cos[..., 0::2], freqs_sin[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.type_as(x)


class WanBlockWrapper(BlockWrapper):
    """Wraps ``WanTransformerBlock``: ``(hidden, text, timestep_proj, rotary) -> hidden``.

    The VNVS modulation uses Wan's timestep embedding ``temb`` (captured from ``condition_embedder``).
    """

    def forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb):
        if self.ctx.text is not None:
            encoder_hidden_states = self.ctx.text
        hidden_states, text = self._call(
            self._run, hidden_states, encoder_hidden_states, temb, rotary_emb, self._control(), self.ctx.temb
        )
        if self.vnvs is not None and self.vnvs.text_coupled:
            self.ctx.text = text
        return hidden_states

    def _run(self, hidden_states, encoder_hidden_states, temb, rotary_emb, control, vnvs_temb):
        hidden_states = self.block(hidden_states, encoder_hidden_states, temb, rotary_emb)
        text = encoder_hidden_states
        if self.vnvs is not None:
            def rope(t):
                return wan_rope(t, *rotary_emb)

            hidden_states, text = self.vnvs(hidden_states, control, vnvs_temb, text, joint_attention(rope))
        return hidden_states, text


class TembCapture:
    """Forward hook storing the first output of a module (Wan's ``temb``) in the context."""

    def __init__(self, ctx: InjectionContext):
        self.ctx = ctx

    def __call__(self, module, args, output):
        self.ctx.temb = output[0]
