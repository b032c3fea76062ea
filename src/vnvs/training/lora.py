"""LoRA adapters (``peft``) on a model's backbone attention, for test-time finetuning of large backbones.

``add_lora(model, rank)`` puts low-rank adapters ``W + (alpha / r) B A`` (``B`` zero-initialised, so the
model is unchanged at first) on the attention projections of the backbone blocks (diffusers
CogVideoX / Wan: ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of every attention; the built-in DiT:
``qkv_s``, ``qkv_t``, ``out_s``, ``out_t``), never inside the VNVS blocks, and leaves trainable
only the adapters and the control parameters (projector and VNVS blocks, or the inpainting
conditioning channels). ``merge_lora(model)`` folds the adapters into the weights and restores the
original modules, so the exported model is an ordinary ``NovelViewModel`` folder.

peft is an optional dependency (``pip install 'vnvs[lora]'``), imported only here, when LoRA is used.
"""

from __future__ import annotations

import torch

from vnvs.errors import MissingDependencyError

TARGETS = {
    "dit": ("qkv_s", "qkv_t", "out_s", "out_t"),
    "cogvideox": ("to_q", "to_k", "to_v", "to_out.0"),
    "wan": ("to_q", "to_k", "to_v", "to_out.0"),
}
"""Attention projections that get adapters, by backbone kind (module name suffixes)."""


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise MissingDependencyError("LoRA finetuning needs peft: pip install 'vnvs[lora]' (or pip install peft)") from exc
    return peft


def target_pattern(backbone: str) -> str:
    """A regular expression (peft matches it against whole module names) for the adapted layers."""
    names = "|".join(t.replace(".", r"\.") for t in TARGETS[backbone])
    return rf"^(?!.*(?:^|\.)vnvs\.).*(?:^|\.)(?:{names})$"


def add_lora(model, rank: int, alpha: float | None = None) -> list[str]:
    """Put rank-``rank`` adapters on ``model.backbone``'s attention projections (scale ``alpha / rank``,
    ``alpha`` defaults to ``rank``); freeze every other parameter except the control parameters.
    Returns the names of the adapted modules."""
    peft = _peft()
    config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha if alpha is not None else rank), lora_dropout=0.0,
                             target_modules=target_pattern(model.config.backbone), init_lora_weights=True)
    peft.inject_adapter_in_model(config, model.backbone)
    control = {id(p) for p in model.control_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or id(p) in control)
    return [n for n, m in model.backbone.named_modules() if _is_lora(m)]


def _is_lora(module: torch.nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def has_lora(model) -> bool:
    """Whether ``model`` carries LoRA adapters (without importing peft when it has none)."""
    return any("lora_" in n for n, _ in model.named_parameters())


@torch.no_grad()
def merge_lora(model) -> None:
    """Fold every adapter into its base weight and put the base layer back in place (in place)."""
    if not has_lora(model):
        return
    _peft()
    for name, module in list(model.backbone.named_modules()):
        if not _is_lora(module):
            continue
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.backbone.get_submodule(parent_name) if parent_name else model.backbone
        setattr(parent, child, module.get_base_layer())
