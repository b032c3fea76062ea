"""``NovelViewModel``: a video backbone + Correspondence Projector + VNVS blocks (Scaling4D), or a
video backbone with inpainting conditioning (CogNVS: ``ModelConfig.control = "inpaint"``).

Flow-matching convention (diffusers ``FlowMatchEulerDiscreteScheduler``): ``x_sigma = (1 - sigma) x0
+ sigma noise``, the model predicts the velocity ``noise - x0`` from ``timestep = sigma * 1000``.
``control=None`` means the all-zero control signal (classifier-free guidance / control dropout).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vnvs.errors import InputError
from vnvs.models.backbones import ADAPTERS, log2_int
from vnvs.models.config import ModelConfig
from vnvs.models.injection import BlockWrapper, InjectionContext
from vnvs.geometry.control import CONTROL_CHANNELS, MASK, WARPED
from vnvs.models.projector import CorrespondenceProjector, group_frames
from vnvs.models.vnvs_block import VNVSBlock
from vnvs.utils.atomic import atomic_dir
from vnvs.utils.jsonfile import read_json

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Parameters registered in this block live on the meta device (no memory, no initialisation work);
    ``load_state_dict(..., assign=True)`` then puts the stored weights in their place. Buffers stay
    where they are made. This is accelerate's ``init_empty_weights(include_buffers=False)``, line for
    line, without importing accelerate (a fifth of a second of a fresh process)."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        register(module, name, param)
        if param is not None:
            param_cls = type(module._parameters[name])
            kwargs = module._parameters[name].__dict__
            kwargs["requires_grad"] = param.requires_grad
            hf_initialized = kwargs.pop("_is_hf_initialized", None)
            module._parameters[name] = param_cls(module._parameters[name].to("meta"), **kwargs)
            if hf_initialized is not None:
                module._parameters[name]._is_hf_initialized = hf_initialized

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


class NovelViewModel(nn.Module):
    """Correspondence-guided novel-view video generator (see ``docs/models.md``).

    Attributes:
        config: the :class:`ModelConfig` it was built from.
        spatial_multiple: frame height and width must be multiples of this (patch x VAE factor).
        temporal_multiple: frame count ``T`` must satisfy ``(T - 1) % temporal_multiple == 0``.
        window: most frames per forward pass the model is meant for (None = any).
        latent_channels: channels of the latents returned by :meth:`encode`.
    """

    def __init__(self, config: ModelConfig, *, _arch: dict | None = None):
        super().__init__()
        self.config = config
        self._adapter = ADAPTERS[config.backbone]
        backbone, vae = self._adapter.build(config, _arch)
        self.backbone = backbone
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            vae.eval()
        spec = self._adapter.spec(config, backbone, vae)
        self._spec = spec
        self._ctx = InjectionContext()
        self._adapter.wrap(config, backbone, spec, self._ctx)
        self.projector = None
        self._token_cache: list[tuple] = []
        if config.control == "inpaint":
            return
        if config.backbone == "dit":
            # pixel space: stride-2 convs take over part of the patch, the patchify does the rest
            p = spec.patch[1]
            n_down = 0
            while n_down < len(config.projector_channels) - 1 and p % 2 ** (n_down + 1) == 0:
                n_down += 1
            patch = (1, p // 2**n_down, p // 2**n_down)
        else:
            n_down = log2_int(spec.vae_spatial, "VAE spatial factor")
            patch = spec.patch
        self.projector = CorrespondenceProjector(
            spec.dim, config.projector_channels, temporal_factor=spec.vae_temporal, n_down=n_down, patch=patch
        )

    # --- construction / persistence -------------------------------------------------------------

    @classmethod
    def from_config(cls, config: ModelConfig) -> "NovelViewModel":
        """Build a model (random control modules; backbone random or from ``config.pretrained``)."""
        return cls(config)

    def save_pretrained(self, path: str | os.PathLike, *, dtype: torch.dtype | None = None) -> None:
        """Write ``config.json`` and ``model.safetensors`` (every weight) into the folder ``path``, atomically.

        ``dtype`` (e.g. ``torch.float16``) casts floating-point weights before writing.
        """
        state = {}
        for key, value in self.state_dict().items():
            value = value.detach()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            state[key] = value.contiguous().cpu()
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.config.to_dict(),
            "architecture": self._adapter.arch(self.backbone, self.vae),
        }
        with atomic_dir(path) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "vnvs_format_version": str(FORMAT_VERSION)})

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, dtype: torch.dtype | None = torch.float32, device: str | torch.device = "cpu"
    ) -> "NovelViewModel":
        """Load a folder written by :meth:`save_pretrained` (no network access).

        ``dtype`` casts floating-point weights (None keeps the stored dtype).
        """
        folder = Path(path)
        if not folder.is_dir():
            raise InputError(f"model folder {folder} does not exist")
        missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
        if missing:
            raise InputError(f"model folder {folder} lacks {', '.join(missing)}")
        meta = read_json(folder / CONFIG_NAME, "model config")
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
            raise InputError(f"{folder / CONFIG_NAME} lacks the 'model' section")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise InputError(f"{folder / CONFIG_NAME} has format version {version!r}; this vnvs reads {FORMAT_VERSION}")
        config = ModelConfig.from_dict(meta["model"])
        arch = meta.get("architecture") or None
        if config.backbone != "dit" and not arch:
            raise InputError(f"{folder / CONFIG_NAME} lacks the 'architecture' section of the {config.backbone} backbone")
        with _parameters_on_meta():
            model = cls(config, _arch=arch)
        try:
            state = load_file(str(folder / WEIGHTS_NAME), device=str(device))
        except Exception as exc:  # safetensors raises its own error types
            raise InputError(f"cannot read {folder / WEIGHTS_NAME}: {exc}") from exc
        if dtype is not None:
            state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
        expected = set(model.state_dict())
        absent, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if absent or extra:
            detail = f"missing {len(absent)} weights (e.g. {absent[:3]})" if absent else f"unexpected weights {extra[:3]}"
            raise InputError(f"{folder / WEIGHTS_NAME} does not match its config: {detail}")
        shapes = model.state_dict()
        wrong = [k for k in sorted(state) if tuple(state[k].shape) != tuple(shapes[k].shape)]
        if wrong:
            k = wrong[0]
            raise InputError(f"{folder / WEIGHTS_NAME} does not match its config: {len(wrong)} weights have other shapes "
                             f"(e.g. {k}: {tuple(state[k].shape)} stored, {tuple(shapes[k].shape)} in the config)")
        model.load_state_dict(state, strict=True, assign=True)
        model.to(device)
        if model.vae is not None:
            model.vae.requires_grad_(False)
        return model

    # --- properties of the contract -------------------------------------------------------------

    @property
    def spatial_multiple(self) -> int:
        return self._spec.vae_spatial * self._spec.patch[1]

    @property
    def temporal_multiple(self) -> int:
        return self._spec.temporal_multiple

    @property
    def window(self) -> int | None:
        return self._spec.window

    @property
    def latent_channels(self) -> int:
        return self._spec.latent_channels

    @property
    def cond_channels(self) -> int:
        """Channels of the inpainting conditioning (encoded ``I_r`` + mask per latent frame; 0 for ``vnvs``)."""
        if self.config.control != "inpaint":
            return 0
        return self.latent_channels + self._spec.vae_temporal

    @property
    def dtype(self) -> torch.dtype:
        return self._reference_weight().dtype

    @property
    def device(self) -> torch.device:
        return self._reference_weight().device

    def _reference_weight(self) -> torch.Tensor:
        if self.projector is not None:
            return self.projector.patchify.weight
        return self._adapter.cond_embedding(self.backbone)[0]

    # --- frames <-> latents ---------------------------------------------------------------------

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        T, H, W = frames.shape[1], frames.shape[3], frames.shape[4]
        m, r = self.spatial_multiple, self.temporal_multiple
        if H % m or W % m:
            raise ValueError(f"frame size {H}x{W} must be a multiple of {m} for the {self.config.backbone} model")
        if (T - 1) % r:
            raise ValueError(f"{T} frames do not fit this model: (T - 1) must be a multiple of {r}")

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` in [0, 1] -> latents ``(B, T', C, h, w)`` (pixel space: [-1, 1] frames)."""
        self._check_frames(frames)
        return self._adapter.encode(self, frames)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, T', C, h, w)`` -> ``(B, T, 3, H, W)`` in [0, 1] (clamped)."""
        if latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise ValueError(f"latents must be (B, T', {self.latent_channels}, h, w), got {tuple(latents.shape)}")
        return self._adapter.decode(self, latents)

    def frame_shape(self, latent_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(T, H, W)`` of the frames that latents ``(B, T', C, h, w)`` stand for."""
        _, Tl, _, h, w = latent_shape
        f = self._spec.vae_spatial
        return (Tl - 1) * self._spec.vae_temporal + 1, h * f, w * f

    # --- forward --------------------------------------------------------------------------------

    def _check_control(self, control: torch.Tensor | None, latent_shape: tuple[int, ...]) -> None:
        B = latent_shape[0]
        T, H, W = self.frame_shape(latent_shape)
        if control is not None:
            if control.ndim != 5 or control.shape[0] != B or tuple(control.shape[1:2] + control.shape[3:]) != (T, H, W):
                raise ValueError(
                    f"control must be ({B}, {T}, {CONTROL_CHANNELS}, {H}, {W}) for latents {tuple(latent_shape)}, "
                    f"got {tuple(control.shape)}"
                )

    def _cached(self, control: torch.Tensor | None, latent_shape: tuple[int, ...], compute) -> torch.Tensor:
        """``compute(signal)`` of the control signal (zeros for None); outside autograd the last two results
        are cached (compared by tensor identity and in-place version, and the weights' versions)."""
        self._check_control(control, latent_shape)
        B = latent_shape[0]
        T, H, W = self.frame_shape(latent_shape)
        cacheable = not torch.is_grad_enabled()
        key = None
        if cacheable:
            weights = self.projector.parameters() if self.projector is not None else self._adapter.cond_embedding(self.backbone)
            versions = tuple(_version(p) for p in weights)
            ident = (control, _version(control)) if control is not None else ("null", B, T, H, W)
            key = (ident, versions, self.dtype, self.device)
            for entry in self._token_cache:
                if _same_key(entry[0], key):
                    return entry[1]
        signal = control if control is not None else torch.zeros(B, T, CONTROL_CHANNELS, H, W, device=self.device, dtype=self.dtype)
        out = compute(signal.to(device=self.device))
        if cacheable:
            # two entries: a guided sampler alternates the control and the null control
            self._token_cache = [(key, out)] + self._token_cache[:1]
        return out

    def control_tokens(self, control: torch.Tensor | None, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """Control tokens ``(B, N, dim)`` for ``control`` ``(B, T, 9, H, W)`` or None (all-zero signal).

        Outside autograd the result is cached (the last two control tensors, compared by identity and
        in-place version, and the projector's weight versions), so a sampling loop, guided or not,
        projects the control signal once.
        """
        if self.projector is None:
            raise ValueError("an inpainting model has no control tokens; use inpaint_condition")
        return self._cached(control, latent_shape, self.projector)

    def inpaint_condition(self, control: torch.Tensor | None, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """Inpainting conditioning ``(B, T', C + r, h, w)`` for ``control`` ``(B, T, 9, H, W)`` or None.

        The warped frames ``I_r`` (control channels ``WARPED``) encoded like the video (:meth:`encode`,
        no gradient: the VAE is frozen), then the mask ``M`` in the latent grid: frames grouped like the
        causal VAE groups them (frame 0 repeated ``r`` times, then groups of ``r``, one channel per
        frame of a group, as Wan's image-to-video mask) and averaged over each ``f x f`` pixel block
        (the fraction of the block a source pixel reached). Pixel space: ``[I_r in [-1, 1] | M]``.
        Cached outside autograd like :meth:`control_tokens`.
        """

        def compute(signal: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                z = self._adapter.encode(self, signal[:, :, WARPED].to(self.dtype))
            r, f = self._spec.vae_temporal, self._spec.vae_spatial
            m = group_frames(signal[:, :, MASK].to(z.dtype), r)  # (B, T', r, H, W)
            if f > 1:
                B, Tl = m.shape[:2]
                m = F.avg_pool2d(m.flatten(0, 1), f).unflatten(0, (B, Tl))
            return torch.cat([z.to(m.device), m], dim=2)

        return self._cached(control, latent_shape, compute)

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        control: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity.

        Args:
            latents: ``(B, T', C, h, w)`` noisy latents.
            timestep: ``(B,)`` float, ``sigma * 1000`` (a scalar or a 0-d tensor is broadcast).
            control: ``(B, T, 9, H, W)`` control signal at frame resolution, or None (all zeros).
            text_embeds: ``(B, L, D)`` text embeddings, or None (the null text tokens).

        Returns:
            ``(B, T', C, h, w)`` velocity.
        """
        if latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise ValueError(f"latents must be (B, T', {self.latent_channels}, h, w), got {tuple(latents.shape)}")
        B = latents.shape[0]
        timestep = torch.as_tensor(timestep, device=latents.device, dtype=torch.float32)
        if timestep.ndim == 0:
            timestep = timestep.expand(B)
        if timestep.shape != (B,):
            raise ValueError(f"timestep must be ({B},), got {tuple(timestep.shape)}")
        p_t, p_h, p_w = self._spec.patch
        if latents.shape[-2] % p_h or latents.shape[-1] % p_w or latents.shape[1] % p_t:
            raise ValueError(f"latent grid {tuple(latents.shape[1:])} is not a multiple of the patch {self._spec.patch}")
        if self.config.control == "inpaint":
            cond = self.inpaint_condition(control, tuple(latents.shape))
            return self._adapter.run(self, latents.to(self.dtype), timestep, text_embeds, cond.to(self.dtype))
        tokens = self.control_tokens(control, tuple(latents.shape))
        self._ctx.clear()
        self._ctx.control = tokens.to(self.dtype)
        try:
            return self._adapter.run(self, latents.to(self.dtype), timestep, text_embeds)
        finally:
            self._ctx.clear()

    # --- training helpers -----------------------------------------------------------------------

    def _wrappers(self) -> Iterator[BlockWrapper]:
        return (m for m in self.backbone.modules() if isinstance(m, BlockWrapper))

    def vnvs_blocks(self) -> list[VNVSBlock]:
        """The inserted VNVS blocks, in order."""
        return [w.vnvs for w in self._wrappers() if w.vnvs is not None]

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone's weights under its own (unwrapped) names, without VNVS blocks.

        Loads into a plain ``VideoDiT`` / diffusers transformer of the same config, e.g. to export a
        fine-tuned backbone.
        """
        rename: dict[str, str | None] = {}
        for name, module in self.backbone.named_modules():
            if isinstance(module, BlockWrapper):
                rename[f"{name}.block."] = f"{name}."
                rename[f"{name}.vnvs."] = None
        out = {}
        for key, value in self.backbone.state_dict().items():
            for old, new in rename.items():
                if key.startswith(old):
                    key = None if new is None else new + key[len(old):]
                    break
            if key is not None:
                out[key] = value
        return out

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each backbone block (with its VNVS block) in the backward pass to save memory."""
        for wrapper in self._wrappers():
            wrapper.checkpointing = bool(enabled)

    def control_parameters(self) -> Iterator[nn.Parameter]:
        """Projector and VNVS block parameters (what is trained with a frozen backbone); for an inpainting
        model, the patch embedding that reads the conditioning (diffusers: the whole widened patch
        embedding; DiT: its conditioning channels)."""
        if self.projector is None:
            yield from self._adapter.cond_embedding(self.backbone)
            return
        yield from self.projector.parameters()
        for block in self.vnvs_blocks():
            yield from block.parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Backbone parameters without the control parameters (the VAE is never trained and not included)."""
        control = {id(p) for p in self.control_parameters()}
        return (p for p in self.backbone.parameters() if id(p) not in control)

    def train(self, mode: bool = True) -> "NovelViewModel":
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()
        return self


def _version(t: torch.Tensor):
    """In-place version counter of ``t``; inference tensors have none, so their contents are summarised."""
    try:
        return t._version
    except RuntimeError:
        flat = t.detach().flatten().double()
        ramp = torch.linspace(-1, 1, flat.numel(), dtype=torch.float64, device=flat.device)
        return ("sums", float(flat.sum()), float((flat * flat).sum()), float((flat * ramp).sum()))


def _same_key(a: tuple, b: tuple) -> bool:
    (ia, va, da, dva), (ib, vb, db, dvb) = a, b
    if va != vb or da != db or dva != dvb or len(ia) != len(ib):
        return False
    if isinstance(ia[0], torch.Tensor) or isinstance(ib[0], torch.Tensor):
        return ia[0] is ib[0] and ia[1] == ib[1]
    return ia == ib
