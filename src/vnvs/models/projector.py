"""Correspondence Projector: the 9-channel control signal -> control tokens aligned with video tokens.

The signal ``(B, T, 9, H, W)`` is brought to the backbone's token grid in three steps:

1. temporal grouping like a causal video VAE with temporal factor ``r``: frame 0 alone (repeated
   ``r`` times, as causal VAEs pad it), then groups of ``r`` frames, stacked on channels:
   ``(B, T', 9 r, H, W)`` with ``T' = 1 + (T - 1) / r`` (``r = 1``: one frame per group);
2. a 3x3 stem conv and ``n_down`` stride-2 3x3 convs (the VAE's spatial factor ``2 ** n_down``);
3. a patchify conv with kernel = stride = the backbone's patch ``(p_t, p_h, p_w)``, flattened in
   the backbone's token order ``(t, h, w)``.

So token ``i`` of the output describes the same space-time box as video token ``i`` of the backbone.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vnvs.geometry.control import CONTROL_CHANNELS


def group_frames(control: torch.Tensor, temporal_factor: int) -> torch.Tensor:
    """``(B, T, C, H, W)`` -> ``(B, T', r C, H, W)``: frame 0 repeated ``r`` times, then groups of ``r``.

    Example:
        >>> group_frames(torch.zeros(1, 9, 9, 4, 4), 4).shape
        torch.Size([1, 3, 36, 4, 4])
    """
    r = temporal_factor
    B, T, C, H, W = control.shape
    if (T - 1) % r:
        raise ValueError(f"frame count {T} does not fit the temporal factor {r}: (T - 1) must be a multiple of {r}")
    if r == 1:
        return control
    first = control[:, :1].expand(B, r, C, H, W)
    frames = torch.cat([first, control[:, 1:]], dim=1)
    return frames.reshape(B, (T - 1) // r + 1, r * C, H, W)


class CorrespondenceProjector(nn.Module):
    """Convs + patchify turning the control signal into control tokens.

    Args:
        dim: token width of the backbone.
        channels: stem width, then the width after each stride-2 conv (the last entry repeats).
        temporal_factor: frames per latent frame (VAE temporal compression; 1 in pixel space).
        n_down: number of stride-2 convs (log2 of the VAE's spatial factor).
        patch: the backbone's patch size ``(p_t, p_h, p_w)`` on the latent grid.
    """

    def __init__(self, dim: int, channels: list[int], *, temporal_factor: int, n_down: int, patch: tuple[int, int, int]):
        super().__init__()
        self.temporal_factor, self.n_down, self.patch = temporal_factor, n_down, tuple(patch)
        widths = [channels[min(i, len(channels) - 1)] for i in range(n_down + 1)]
        layers: list[nn.Module] = [nn.Conv2d(CONTROL_CHANNELS * temporal_factor, widths[0], 3, padding=1), nn.SiLU()]
        for i in range(n_down):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        self.patchify = nn.Conv3d(widths[-1], dim, kernel_size=self.patch, stride=self.patch)

    @property
    def spatial_factor(self) -> int:
        """Pixels per token side: ``2 ** n_down * p_h``."""
        return 2**self.n_down * self.patch[1]

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid ``(t, h, w)`` of a ``frames x height x width`` signal."""
        r, f = self.temporal_factor, 2**self.n_down
        pt, ph, pw = self.patch
        return ((frames - 1) // r + 1) // pt, height // f // ph, width // f // pw

    def forward(self, control: torch.Tensor) -> torch.Tensor:
        """``(B, T, 9, H, W)`` control signal -> ``(B, N, dim)`` tokens, ``N = t * h * w`` in (t, h, w) order."""
        if control.ndim != 5 or control.shape[2] != CONTROL_CHANNELS:
            raise ValueError(f"control must be (B, T, {CONTROL_CHANNELS}, H, W), got {tuple(control.shape)}")
        B, T, _, H, W = control.shape
        if H % self.spatial_factor or W % self.spatial_factor:
            raise ValueError(f"control frame size {H}x{W} is not a multiple of {self.spatial_factor}")
        x = group_frames(control.to(self.patchify.weight.dtype), self.temporal_factor)
        Tl = x.shape[1]
        if Tl % self.patch[0]:
            raise ValueError(f"{Tl} latent frames are not a multiple of the temporal patch {self.patch[0]}")
        x = self.convs(x.flatten(0, 1))
        x = x.unflatten(0, (B, Tl)).transpose(1, 2)  # (B, C, T', h, w)
        x = self.patchify(x)
        return x.flatten(2).transpose(1, 2)

