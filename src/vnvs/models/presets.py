"""Named model configurations.

* ``dit-small``: the architecture of the checkpoint shipped with the package (pixel space).
* ``dit-tiny``: a minimal DiT for tests.
* ``cogvideox-tiny`` / ``wan-tiny``: randomly initialised tiny diffusers backbones and VAEs (tests).
* ``cogvideox-2b`` / ``wan-1.3b``: the pretrained diffusers checkpoints (downloaded on first use).
* ``*-inpaint`` (``dit-small``, ``dit-tiny``, ``cogvideox-2b``, ``wan-1.3b``): the same backbones with
  CogNVS's inpainting conditioning (``control="inpaint"``) in place of the projector and VNVS blocks.
"""

from __future__ import annotations

from typing import Any, Callable

from vnvs.errors import InputError
from vnvs.models.config import ModelConfig


def _dit_small() -> ModelConfig:
    return ModelConfig(
        backbone="dit",
        backbone_config={"dim": 128, "depth": 4, "heads": 4, "patch": 8, "mlp_ratio": 3.0, "text_dim": 256},
        vnvs_every=2,
        projector_channels=[8, 16, 32, 64],
    )


def _dit_tiny() -> ModelConfig:
    return ModelConfig(
        backbone="dit",
        backbone_config={"dim": 32, "depth": 2, "heads": 2, "patch": 4, "mlp_ratio": 2.0, "text_dim": 16, "freq_dim": 32},
        projector_channels=[8, 16],
        null_text_tokens=4,
    )


def _cogvideox_tiny() -> ModelConfig:
    return ModelConfig(
        backbone="cogvideox",
        backbone_config={
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "in_channels": 4,
            "out_channels": 4,
            "time_embed_dim": 16,
            "text_embed_dim": 16,
            "num_layers": 2,
            "sample_width": 8,
            "sample_height": 8,
            "sample_frames": 9,
            "patch_size": 2,
            "temporal_compression_ratio": 4,
            "max_text_seq_length": 8,
        },
        vae_config={
            "down_block_types": ["CogVideoXDownBlock3D"] * 3,
            "up_block_types": ["CogVideoXUpBlock3D"] * 3,
            "block_out_channels": [8, 8, 8],
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 2,
            "temporal_compression_ratio": 4,
        },
        projector_channels=[8, 16],
        null_text_tokens=8,
    )


def _wan_tiny() -> ModelConfig:
    return ModelConfig(
        backbone="wan",
        backbone_config={
            "patch_size": [1, 2, 2],
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "in_channels": 16,
            "out_channels": 16,
            "text_dim": 16,
            "freq_dim": 16,
            "ffn_dim": 32,
            "num_layers": 2,
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 32,
        },
        vae_config={
            "base_dim": 3,
            "z_dim": 16,
            "dim_mult": [1, 1, 1, 1],
            "num_res_blocks": 1,
            "temperal_downsample": [False, True, True],
        },
        projector_channels=[8, 16],
        null_text_tokens=4,
    )


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "dit-small": _dit_small,
    "dit-tiny": _dit_tiny,
    "cogvideox-tiny": _cogvideox_tiny,
    "wan-tiny": _wan_tiny,
    "dit-small-inpaint": lambda: _dit_small().replace(control="inpaint"),
    "dit-tiny-inpaint": lambda: _dit_tiny().replace(control="inpaint"),
    "cogvideox-2b": lambda: ModelConfig(backbone="cogvideox", pretrained="THUDM/CogVideoX-2b", null_text_tokens=226),
    "wan-1.3b": lambda: ModelConfig(backbone="wan", pretrained="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", null_text_tokens=512),
    "cogvideox-2b-inpaint": lambda: ModelConfig(backbone="cogvideox", pretrained="THUDM/CogVideoX-2b", null_text_tokens=226,
                                                control="inpaint"),
    "wan-1.3b-inpaint": lambda: ModelConfig(backbone="wan", pretrained="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
                                            null_text_tokens=512, control="inpaint"),
}


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The named :class:`ModelConfig`, with some fields replaced.

    Example:
        >>> get_preset("dit-tiny", vnvs_every=2).vnvs_every
        2
    """
    if name not in PRESETS:
        raise InputError(f"unknown model preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]().replace(**overrides) if overrides else PRESETS[name]()
