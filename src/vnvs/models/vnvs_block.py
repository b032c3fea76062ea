"""The VNVS block (Scaling4D): joint attention of video and control tokens by adding their Q/K/V.

    F_vid <- F_vid + Attn(Q_vid + Q_cor, K_vid + K_cor, V_vid + V_cor)

Video and control tokens have separate q/k/v projections whose outputs are added (the tokens are
aligned one-to-one, so a sum is meaningful). There is no FFN (``ffn=True`` adds one, for the
ablation) and text tokens pass through unchanged (``text_coupled=True`` lets them join the attention
and be updated, for the ablation). Shift/scale/gate of the pre-norm come from the backbone's
timestep embedding; the output projection is zero-initialised, so at initialisation the block is the
identity and the backbone's output is unchanged.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attend(Protocol):
    """Attention pattern of a backbone, applied to already projected heads.

    ``q, k, v``: ``(B, N, heads, head_dim)`` video queries/keys/values (token order of the backbone);
    ``tq, tk, tv``: ``(B, L, heads, head_dim)`` text queries/keys/values or None.
    Returns ``(video_out (B, N, heads, head_dim), text_out (B, L, heads, head_dim) or None)``; text
    output is returned when ``tq`` is given.
    """

    def __call__(self, q, k, v, tq=None, tk=None, tv=None) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention on ``(B, N, heads, head_dim)`` tensors (any sequence lengths)."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def joint_attention(rope: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Attend:
    """Full attention over ``[text, video]`` tokens; ``rope`` (if given) rotates video queries and keys."""

    def attend(q, k, v, tq=None, tk=None, tv=None):
        if rope is not None:
            q, k = rope(q), rope(k)
        if tk is None:
            return sdpa(q, k, v), None
        keys, values = torch.cat([tk, k], dim=1), torch.cat([tv, v], dim=1)
        out = sdpa(q, keys, values)
        return out, (sdpa(tq, keys, values) if tq is not None else None)

    return attend


class HeadRMSNorm(nn.Module):
    """RMS norm over the head dimension of ``(..., heads, head_dim)`` (query/key norm)."""

    def __init__(self, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` with per-sample ``(B, D)`` or per-token ``(B, N, D)`` modulation."""
    if shift.ndim == 2:
        shift, scale = shift[:, None], scale[:, None]
    return x * (1 + scale) + shift


def _gated(gate: torch.Tensor) -> torch.Tensor:
    return (1 + gate)[:, None] if gate.ndim == 2 else 1 + gate


class VNVSBlock(nn.Module):
    """Control injection block.

    Args:
        dim: token width of the backbone.
        heads: attention heads (``dim % heads == 0``).
        temb_dim: width of the backbone's timestep embedding.
        ffn: add a feed-forward layer after the attention (ablation).
        text_coupled: text tokens join the attention and are updated (ablation).
    """

    def __init__(self, dim: int, heads: int, temb_dim: int, *, ffn: bool = False, text_coupled: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.text_coupled = dim, heads, text_coupled
        n_mod = 6 if ffn else 3
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(temb_dim, n_mod * dim))
        # shift = scale = gate = 0 at init: a plain LayerNorm and a unit gate
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm_cor = nn.LayerNorm(dim, eps=1e-6)
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim) for _ in range(3))
        self.cor_q, self.cor_k, self.cor_v = (nn.Linear(dim, dim) for _ in range(3))
        head_dim = dim // heads
        self.norm_q, self.norm_k = HeadRMSNorm(head_dim), HeadRMSNorm(head_dim)
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        self.ffn: nn.Module | None = None
        if ffn:
            self.norm_ffn = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
            nn.init.zeros_(self.ffn[2].weight)
            nn.init.zeros_(self.ffn[2].bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1))

    def forward(
        self,
        x: torch.Tensor,
        control: torch.Tensor,
        temb: torch.Tensor,
        text: torch.Tensor | None = None,
        attend: Attend | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Update video tokens (and text tokens when coupled).

        Args:
            x: ``(B, N, dim)`` video tokens.
            control: ``(B, N, dim)`` control tokens aligned one-to-one with ``x``.
            temb: ``(B, temb_dim)`` (or per-token ``(B, N, temb_dim)``) timestep embedding.
            text: ``(B, L, dim)`` text tokens or None; used only when the block is text-coupled.
            attend: the backbone's attention pattern (default: full attention, no positions).

        Returns:
            ``(x, text)``; ``text`` is returned unchanged unless the block is text-coupled.
        """
        attend = attend or joint_attention()
        mod = self.modulation(temb.to(self.modulation[1].weight.dtype)).chunk(6 if self.ffn is not None else 3, dim=-1)
        shift, scale, gate = mod[:3]
        h = modulate(self.norm(x), shift, scale).to(x.dtype)
        c = self.norm_cor(control.to(x.dtype))
        q = self.norm_q(self._heads(self.to_q(h) + self.cor_q(c)))
        k = self.norm_k(self._heads(self.to_k(h) + self.cor_k(c)))
        v = self._heads(self.to_v(h) + self.cor_v(c))
        use_text = self.text_coupled and text is not None
        if use_text:
            ht = modulate(self.norm(text), shift, scale).to(text.dtype) if shift.ndim == 2 else self.norm(text)
            tq, tk, tv = self.norm_q(self._heads(self.to_q(ht))), self.norm_k(self._heads(self.to_k(ht))), self._heads(self.to_v(ht))
            out, tout = attend(q, k, v, tq, tk, tv)
        else:
            out, tout = attend(q, k, v)
        g = _gated(gate)
        x = x + (g * self.to_out(out.flatten(-2))).to(x.dtype)
        if use_text:
            tg = (1 + gate)[:, None] if gate.ndim == 2 else 1.0
            text = text + (tg * self.to_out(tout.flatten(-2))).to(text.dtype)
        if self.ffn is not None:
            f_shift, f_scale, f_gate = mod[3:]
            x = x + (_gated(f_gate) * self.ffn(modulate(self.norm_ffn(x), f_shift, f_scale).to(x.dtype))).to(x.dtype)
        return x, text
