"""CLIP scores of generated videos (``transformers.CLIPModel``, loaded offline).

- **CLIP-V** (ReCamMaster's name; "CLIP-I" elsewhere): ``100 * cos(E(pred_t), E(ref_t))`` averaged over
  frames, where ``ref`` is a reference video of the same length (the target, or the source video).
- **CLIP-F** (frame consistency): ``100 * cos(E(pred_t), E(pred_{t+1}))`` averaged over consecutive
  frames.

``E`` is CLIP's projected image embedding (``visual_projection(vision_model(x).pooler_output)``,
the same as ``CLIPModel.get_image_features``). Frames are preprocessed as ``CLIPImageProcessor``
does, in torch: bicubic resize of the short side to the model's input size (antialiased), centre
crop, normalisation by the processor's mean and std (OpenAI's values when the folder holds no
``preprocessor_config.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vnvs.errors import MissingDependencyError

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipScorer:
    """A CLIP image encoder with its preprocessing.

    Args:
        model: a ``transformers.CLIPModel``.
        mean, std: per-channel normalisation.
        name: for reports (the folder or hub id).
    """

    def __init__(self, model, mean=OPENAI_MEAN, std=OPENAI_STD, name: str = "", device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = device
        self.size = int(model.config.vision_config.image_size)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.name = name

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> ``(N, 3, S, S)`` normalised CLIP input."""
        x = frames.to(self.device).float()
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        x = x[..., top:top + self.size, left:left + self.size]
        return (x - self.mean) / self.std

    @torch.no_grad()
    def embed(self, frames: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """Unit-norm image embeddings ``(N, D)`` of frames ``(N, 3, H, W)`` in [0, 1]."""
        out = []
        for s in range(0, frames.shape[0], batch):
            pooled = self.model.vision_model(pixel_values=self.preprocess(frames[s:s + batch])).pooler_output
            out.append(F.normalize(self.model.visual_projection(pooled).float(), dim=-1).cpu())
        return torch.cat(out)


def clip_scores(scorer: ClipScorer, video: torch.Tensor, reference: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-frame CLIP scores of a video.

    Args:
        video: ``(T, 3, H, W)`` in [0, 1].
        reference: ``(T, 3, H', W')`` in [0, 1], or None (no CLIP-V).

    Returns:
        ``{"clip_f": (T - 1,), "clip_v": (T,)}`` float64 tensors of ``100 * cosine`` ("clip_v" only
        with a reference).
    """
    e = scorer.embed(video).double()
    out = {"clip_f": 100 * (e[1:] * e[:-1]).sum(-1)}
    if reference is not None:
        if reference.shape[0] != video.shape[0]:
            raise ValueError(f"reference has {reference.shape[0]} frames, the video {video.shape[0]}")
        out["clip_v"] = 100 * (e * scorer.embed(reference).double()).sum(-1)
    return out


def load_clip(model: str | None = None, device: str = "cpu") -> ClipScorer:
    """Load a CLIP model offline: a local folder (``save_pretrained`` layout) or a Hugging Face id
    already in the cache (``local_files_only=True``). Default: env ``VNVS_CLIP_MODEL``, else
    ``openai/clip-vit-base-patch32``.

    Raises:
        OSError: the model is neither a folder nor in the cache.
        MissingDependencyError: transformers is missing.
    """
    try:
        from transformers import CLIPModel
    except ImportError:
        raise MissingDependencyError("CLIP scores need transformers: pip install transformers") from None
    ref = model or os.environ.get("VNVS_CLIP_MODEL") or DEFAULT_CLIP
    net = CLIPModel.from_pretrained(ref, local_files_only=True)
    mean, std = OPENAI_MEAN, OPENAI_STD
    config = Path(ref) / "preprocessor_config.json" if Path(ref).is_dir() else None
    if config is None:
        try:
            from huggingface_hub import hf_hub_download

            config = Path(hf_hub_download(ref, "preprocessor_config.json", local_files_only=True))
        except Exception:  # noqa: BLE001 - no processor config cached: OpenAI's normalisation
            config = None
    if config is not None and config.is_file():
        cfg = json.loads(config.read_text())
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    return ClipScorer(net, mean, std, name=f"CLIP {ref}", device=device)
