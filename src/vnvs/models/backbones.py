"""Backbone adapters: build a backbone (and VAE), wrap its blocks, run it, encode/decode frames.

One adapter per backbone kind; :class:`~vnvs.models.NovelViewModel` holds the modules and delegates
the backbone-specific parts here. diffusers is imported only by the cogvideox / wan adapters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from vnvs.errors import InputError, MissingDependencyError
from vnvs.models.config import ModelConfig
from vnvs.models.dit import DiTConfig, VideoDiT
from vnvs.models.injection import (
    BlockWrapper,
    CogVideoXBlockWrapper,
    DiTBlockWrapper,
    InjectionContext,
    TembCapture,
    WanBlockWrapper,
)
from vnvs.models.vnvs_block import VNVSBlock


@dataclass
class BackboneSpec:
    """What the rest of the model needs to know about a built backbone."""

    dim: int
    """Token width."""
    heads: int
    """Attention heads."""
    temb_dim: int
    """Width of the timestep embedding handed to VNVS blocks."""
    patch: tuple[int, int, int]
    """Patch ``(p_t, p_h, p_w)`` on the latent grid."""
    vae_spatial: int
    """Pixels per latent pixel (1 in pixel space)."""
    vae_temporal: int
    """Frames per latent frame after the first (1 in pixel space)."""
    latent_channels: int
    """Channels of the latents the backbone denoises."""
    window: int | None
    """Most frames per forward pass the backbone is meant for (None = any)."""
    temporal_multiple: int = 1
    """``(T - 1) % temporal_multiple == 0`` for frame counts ``T`` (a multiple of ``vae_temporal``)."""


def _diffusers():
    try:
        import diffusers
    except ImportError as exc:  # pragma: no cover - diffusers is a core dependency
        raise MissingDependencyError("the cogvideox / wan backbones need diffusers: pip install diffusers") from exc
    return diffusers


def _wrap(blocks: nn.ModuleList, wrapper: type[BlockWrapper], config: ModelConfig, spec: BackboneSpec, ctx: InjectionContext) -> None:
    k = config.vnvs_every
    for i, block in enumerate(list(blocks)):
        vnvs = None
        if config.control == "vnvs" and (i + 1) % k == 0:
            vnvs = VNVSBlock(
                spec.dim,
                config.vnvs_heads or spec.heads,
                spec.temb_dim,
                ffn=config.vnvs_ffn,
                text_coupled=config.vnvs_text_coupled,
            )
        blocks[i] = wrapper(block, vnvs, ctx)


class Adapter:
    """Backbone-specific behaviour (stateless; modules live on the model)."""

    kind = ""
    blocks_attr = ""

    def build(self, config: ModelConfig, arch: dict | None) -> tuple[nn.Module, nn.Module | None]:
        """Backbone and VAE (None in pixel space); ``arch`` holds saved configs (no weights loaded)."""
        raise NotImplementedError

    def arch(self, backbone: nn.Module, vae: nn.Module | None) -> dict:
        """JSON-able architecture configs to rebuild the modules without the network."""
        return {}

    def spec(self, config: ModelConfig, backbone: nn.Module, vae: nn.Module | None) -> BackboneSpec:
        raise NotImplementedError

    def wrap(self, config: ModelConfig, backbone: nn.Module, spec: BackboneSpec, ctx: InjectionContext) -> None:
        raise NotImplementedError

    def run(self, model, latents: torch.Tensor, timestep: torch.Tensor, text_embeds: torch.Tensor | None,
            cond: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity for ``latents``; ``cond`` ``(B, T', C_cond, h, w)``: inpainting conditioning (or None)."""
        raise NotImplementedError

    def cond_embedding(self, backbone: nn.Module) -> list[nn.Parameter]:
        """Parameters of the patch embedding that reads the inpainting conditioning."""
        raise NotImplementedError

    def encode(self, model, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, model, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DiTAdapter(Adapter):
    kind = "dit"
    blocks_attr = "blocks"

    def build(self, config, arch):
        cfg = DiTConfig.from_dict(config.backbone_config)
        if config.control == "inpaint":  # the warped frame (in_channels) and its mask (1)
            cfg = dataclasses.replace(cfg, cond_channels=cfg.in_channels + 1)
        return VideoDiT(cfg, config.null_text_tokens), None

    def spec(self, config, backbone, vae):
        c = backbone.cfg
        return BackboneSpec(c.dim, c.heads, c.dim, (1, c.patch, c.patch), 1, 1, c.in_channels, None, 1)

    def wrap(self, config, backbone, spec, ctx):
        _wrap(backbone.blocks, DiTBlockWrapper, config, spec, ctx)

    def run(self, model, latents, timestep, text_embeds, cond=None):
        return model.backbone(latents, timestep, text_embeds, cond)

    def cond_embedding(self, backbone):
        return list(backbone.cond_embed.parameters())

    def encode(self, model, frames):
        return frames * 2 - 1

    def decode(self, model, latents):
        return ((latents + 1) / 2).clamp(0, 1)


class _DiffusersAdapter(Adapter):
    transformer_cls = ""
    vae_cls = ""

    def build(self, config, arch):
        d = _diffusers()
        tcls, vcls = getattr(d, self.transformer_cls), getattr(d, self.vae_cls)
        if arch is not None:  # saved architecture: already widened for inpainting
            return tcls.from_config(arch["transformer"]), vcls.from_config(arch["vae"])
        if config.pretrained is not None:
            try:
                transformer = tcls.from_pretrained(config.pretrained, subfolder="transformer")
                vae = vcls.from_pretrained(config.pretrained, subfolder="vae")
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot load {config.backbone} weights from {config.pretrained!r}: {str(exc).splitlines()[0]}") from exc
        else:
            if config.vae_config is None:
                raise InputError(f"backbone {config.backbone!r} needs pretrained or vae_config")
            transformer, vae = tcls.from_config(dict(config.backbone_config)), vcls.from_config(dict(config.vae_config))
        if config.control == "inpaint":
            self._widen(transformer, self._latent_channels(transformer) + self._vae_temporal(vae))
        return transformer, vae

    @staticmethod
    def _latent_channels(transformer) -> int:
        c = transformer.config
        return int(c.out_channels or c.in_channels)

    def _vae_temporal(self, vae) -> int:
        raise NotImplementedError

    def _embed_layer(self, transformer) -> nn.Module:
        raise NotImplementedError

    def _widen(self, transformer, extra: int) -> None:
        """Give the patch embedding ``extra`` zero-initialised input channels (the inpainting conditioning,
        channel-major after the latents: ``[latents | encoded I_r | mask]``), as CogVideoX's and Wan's
        image-to-video / inpainting checkpoints do; ``in_channels`` grows, ``out_channels`` stays."""
        out_ch = self._latent_channels(transformer)
        layer = self._embed_layer(transformer)
        w = layer.weight.data
        c_in = transformer.config.in_channels
        if isinstance(layer, nn.Linear):  # CogVideoX 1.5: patches flattened channel-major (C, p_t, p, p)
            w3 = w.view(w.shape[0], c_in, -1)
            new = torch.cat([w3, w3.new_zeros(w3.shape[0], extra, w3.shape[2])], 1).flatten(1)
            widened = nn.Linear(new.shape[1], w.shape[0], bias=layer.bias is not None)
        else:
            new = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], 1)
            widened = type(layer)(c_in + extra, w.shape[0], kernel_size=layer.kernel_size, stride=layer.stride,
                                  bias=layer.bias is not None)
        widened = widened.to(device=w.device, dtype=w.dtype)
        widened.weight.data.copy_(new)
        if layer.bias is not None:
            widened.bias.data.copy_(layer.bias.data)
        self._set_embed_layer(transformer, widened)
        transformer.register_to_config(in_channels=c_in + extra, out_channels=out_ch)

    def _set_embed_layer(self, transformer, layer: nn.Module) -> None:
        raise NotImplementedError

    def cond_embedding(self, backbone):
        return list(self._embed_layer(backbone).parameters())

    def arch(self, backbone, vae):
        def plain(cfg) -> dict:
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(cfg).items() if not k.startswith("_")}

        return {"transformer": plain(backbone.config), "vae": plain(vae.config)}

    def wrap(self, config, backbone, spec, ctx):
        _wrap(getattr(backbone, self.blocks_attr), self.wrapper, config, spec, ctx)

    @staticmethod
    def _text(text_embeds, batch: int, length: int, width: int, like: torch.Tensor) -> torch.Tensor:
        if text_embeds is None:
            return like.new_zeros(batch, length, width)
        if text_embeds.ndim != 3 or text_embeds.shape[-1] != width:
            raise ValueError(f"text_embeds must be (B, L, {width}), got {tuple(text_embeds.shape)}")
        return text_embeds.to(like.dtype)

    @staticmethod
    def _vae_io(vae) -> tuple[torch.dtype, torch.device]:
        p = next(vae.parameters())
        return p.dtype, p.device


class CogVideoXAdapter(_DiffusersAdapter):
    kind = "cogvideox"
    blocks_attr = "transformer_blocks"
    transformer_cls = "CogVideoXTransformer3DModel"
    vae_cls = "AutoencoderKLCogVideoX"
    wrapper = CogVideoXBlockWrapper

    def spec(self, config, backbone, vae):
        c = backbone.config
        spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        temporal = int(vae.config.temporal_compression_ratio)
        # the CogVideoX VAE decodes an odd number of latent frames only (its temporal upsampler keeps
        # the first frame of an odd-length chunk): T' odd, so (T - 1) % (2 * temporal) == 0
        return BackboneSpec(
            dim=c.num_attention_heads * c.attention_head_dim,
            heads=c.num_attention_heads,
            temb_dim=c.time_embed_dim,
            patch=(c.patch_size_t or 1, c.patch_size, c.patch_size),
            vae_spatial=spatial,
            vae_temporal=temporal,
            latent_channels=self._latent_channels(backbone),
            window=c.sample_frames or None,
            temporal_multiple=2 * temporal,
        )

    def _rotary(self, model, latents):
        from diffusers.models.embeddings import get_3d_rotary_pos_embed
        from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

        c = model.backbone.config
        _, T, _, h, w = latents.shape
        gh, gw = h // c.patch_size, w // c.patch_size
        base_w, base_h = c.sample_width // c.patch_size, c.sample_height // c.patch_size
        if c.patch_size_t is None:
            crops = get_resize_crop_region_for_grid((gh, gw), base_w, base_h)
            return get_3d_rotary_pos_embed(c.attention_head_dim, crops, (gh, gw), T, device=latents.device)
        return get_3d_rotary_pos_embed(
            c.attention_head_dim, None, (gh, gw), (T + c.patch_size_t - 1) // c.patch_size_t,
            grid_type="slice", max_size=(base_h, base_w), device=latents.device,
        )

    def _vae_temporal(self, vae):
        return int(vae.config.temporal_compression_ratio)

    def _embed_layer(self, transformer):
        return transformer.patch_embed.proj

    def _set_embed_layer(self, transformer, layer):
        transformer.patch_embed.proj = layer

    def run(self, model, latents, timestep, text_embeds, cond=None):
        c = model.backbone.config
        text = self._text(text_embeds, latents.shape[0], c.max_text_seq_length, c.text_embed_dim, latents)
        if text_embeds is not None and not c.use_rotary_positional_embeddings and text.shape[1] != c.max_text_seq_length:
            raise ValueError(f"this CogVideoX takes exactly {c.max_text_seq_length} text tokens, got {text.shape[1]}")
        rotary = self._rotary(model, latents) if c.use_rotary_positional_embeddings else None
        if cond is not None:
            latents = torch.cat([latents, cond.to(latents.dtype)], dim=2)
        return model.backbone(latents, text, timestep, image_rotary_emb=rotary, return_dict=False)[0]

    def encode(self, model, frames):
        dtype, device = self._vae_io(model.vae)
        x = (frames * 2 - 1).to(device=device, dtype=dtype).transpose(1, 2)  # (B, 3, T, H, W)
        z = model.vae.encode(x).latent_dist.mode() * model.vae.config.scaling_factor
        return z.transpose(1, 2)

    def decode(self, model, latents):
        dtype, device = self._vae_io(model.vae)
        z = latents.to(device=device, dtype=dtype).transpose(1, 2) / model.vae.config.scaling_factor
        x = model.vae.decode(z).sample.transpose(1, 2)
        return ((x.float() + 1) / 2).clamp(0, 1)


class WanAdapter(_DiffusersAdapter):
    kind = "wan"
    blocks_attr = "blocks"
    transformer_cls = "WanTransformer3DModel"
    vae_cls = "AutoencoderKLWan"
    wrapper = WanBlockWrapper

    def spec(self, config, backbone, vae):
        c = backbone.config
        return BackboneSpec(
            dim=c.num_attention_heads * c.attention_head_dim,
            heads=c.num_attention_heads,
            temb_dim=c.num_attention_heads * c.attention_head_dim,
            patch=tuple(c.patch_size),
            vae_spatial=int(vae.config.scale_factor_spatial),
            vae_temporal=int(vae.config.scale_factor_temporal),
            latent_channels=self._latent_channels(backbone),
            window=None,
            temporal_multiple=int(vae.config.scale_factor_temporal),
        )

    def wrap(self, config, backbone, spec, ctx):
        super().wrap(config, backbone, spec, ctx)
        backbone.condition_embedder.register_forward_hook(TembCapture(ctx))

    def _vae_temporal(self, vae):
        return int(vae.config.scale_factor_temporal)

    def _embed_layer(self, transformer):
        return transformer.patch_embedding

    def _set_embed_layer(self, transformer, layer):
        transformer.patch_embedding = layer

    def run(self, model, latents, timestep, text_embeds, cond=None):
        c = model.backbone.config
        text = self._text(text_embeds, latents.shape[0], model.config.null_text_tokens, c.text_dim, latents)
        if cond is not None:
            latents = torch.cat([latents, cond.to(latents.dtype)], dim=2)
        out = model.backbone(latents.transpose(1, 2), timestep, text, return_dict=False)[0]
        return out.transpose(1, 2)

    def _stats(self, model, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = model.vae.config
        shape = (1, 1, cfg.z_dim, 1, 1)
        mean = torch.tensor(cfg.latents_mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(cfg.latents_std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def encode(self, model, frames):
        dtype, device = self._vae_io(model.vae)
        x = (frames * 2 - 1).to(device=device, dtype=dtype).transpose(1, 2)
        z = model.vae.encode(x).latent_dist.mode().transpose(1, 2)
        mean, std = self._stats(model, z)
        return (z - mean) / std

    def decode(self, model, latents):
        dtype, device = self._vae_io(model.vae)
        z = latents.to(device=device, dtype=dtype)
        mean, std = self._stats(model, z)
        x = model.vae.decode((z * std + mean).transpose(1, 2)).sample.transpose(1, 2)
        return ((x.float() + 1) / 2).clamp(0, 1)


ADAPTERS: dict[str, Adapter] = {a.kind: a for a in (DiTAdapter(), CogVideoXAdapter(), WanAdapter())}


def log2_int(value: int, what: str) -> int:
    n = int(round(math.log2(value))) if value > 0 else -1
    if n < 0 or 2**n != value:
        raise InputError(f"{what} must be a power of two, got {value}")
    return n

