"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1 of the ``lpips`` package, in plain torch (no torchvision).

The distance between images ``x`` and ``y`` in [0, 1]:

1. scale to [-1, 1], then ``ScalingLayer``: ``(v - shift) / scale`` with
   ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448, 0.450)``;
2. features at five ReLU taps of the backbone (AlexNet: ``features[0:2], [2:5], [5:8], [8:10],
   [10:12]``; VGG16: ``features[0:4], [4:9], [9:16], [16:23], [23:30]``), with torchvision's layer
   layout so torchvision's ImageNet checkpoints load by name;
3. each feature unit-normalized over channels (``f / (||f||_2 + 1e-10)``), squared difference;
4. a learned 1x1 convolution per tap without bias (the "lin" layers, ``lin{k}.model.1.weight`` in the
   lpips checkpoints), then the spatial mean, summed over taps.

DyCheck's masked LPIPS (mLPIPS) multiplies both images by the mask, computes the *spatial* LPIPS map
(each tap's map bilinearly upsampled to the input size, ``align_corners=False``, summed), and
averages it over the mask.

Weights: a folder holding the backbone as torchvision saves it (``alexnet-owt-7be5be79.pth`` /
``vgg16-397923af.pth``, or any ``alexnet*.pth`` / ``vgg16*.pth``) and the lin weights as lpips ships
them (``alex.pth`` / ``vgg.pth`` from ``lpips/weights/v0.1``). See :func:`find_lpips_weights`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# index of the last layer of each tap in torchvision's ``features`` Sequential
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
MIN_SIZE = {"alex": 31, "vgg": 16}


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet or VGG16 backbone (randomly initialised until weights are loaded).

    Args:
        net: "alex" or "vgg".

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = LPIPS("alex").eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> model(x, x).tolist()
        [0.0, 0.0]
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.net_name = net
        self.features = _alexnet_features() if net == "alex" else _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, last = [], TAPS[self.net_name][-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS[self.net_name]:
                out.append(x)
            if i == last:
                break
        return out

    def layer_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-tap LPIPS maps ``(N, 1, h_k, w_k)`` of images ``(N, 3, H, W)`` in [0, 1]."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (N, 3, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE[self.net_name]:
            raise ValueError(f"LPIPS-{self.net_name} needs images of at least {MIN_SIZE[self.net_name]} pixels a side, got {tuple(x.shape[-2:])}")
        both = torch.cat([x, y]).to(self.shift.dtype)
        both = ((2 * both - 1) - self.shift) / self.scale
        maps = []
        for lin, f in zip(self.lins, self._taps(both)):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fx, fy = f.chunk(2)
            maps.append(lin((fx - fy).pow(2)))
        return maps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS distance ``(N,)`` between image batches ``(N, 3, H, W)`` in [0, 1] (spatial mean per tap)."""
        return sum(m.mean((1, 2, 3)) for m in self.layer_maps(x, y))

    def spatial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The spatial LPIPS map ``(N, H, W)``: each tap's map bilinearly upsampled to the input size, summed."""
        size = x.shape[-2:]
        return sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in self.layer_maps(x, y))[:, 0]


@torch.no_grad()
def lpips_per_frame(model: LPIPS, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                    chunk: int = 8) -> torch.Tensor:
    """LPIPS of each frame; with a mask, DyCheck's mLPIPS (masked images, masked mean of the spatial map).

    Args:
        model: a loaded :class:`LPIPS`.
        pred, target: ``(T, 3, H, W)`` in [0, 1].
        mask: ``(T, H, W)`` bool, or None for plain LPIPS.
        chunk: frames per forward pass.

    Returns:
        ``(T,)`` float64; NaN for frames whose mask is empty.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> lpips_per_frame(LPIPS("alex"), x, x, torch.ones(2, 32, 32, dtype=torch.bool)).tolist()
        [0.0, 0.0]
    """
    dev = model.shift.device
    out = []
    for s in range(0, pred.shape[0], chunk):
        x, y = pred[s:s + chunk].to(dev).float(), target[s:s + chunk].to(dev).float()
        if mask is None:
            out.append(model(x, y).double().cpu())
            continue
        m = mask[s:s + chunk].to(dev).float()
        smap = model.spatial(x * m[:, None], y * m[:, None]).double()
        count = m.double().flatten(1).sum(1)
        val = (smap * m.double()).flatten(1).sum(1) / count.clamp(min=1)
        out.append(torch.where(count > 0, val, torch.full_like(val, float("nan"))).cpu())
    return torch.cat(out)


def _first(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def _backbone_patterns(net: str) -> tuple[str, ...]:
    return (f"{BACKBONES[net]}-*.pth", f"{BACKBONES[net]}*.pth", f"{BACKBONES[net]}*.safetensors")


def find_lpips_weights(net: str, folder: str | None = None) -> tuple[Path | None, Path | None, list[str]]:
    """Locate the backbone and lin weight files of LPIPS-``net``.

    Looks in ``folder`` when given (a local folder, or a Hugging Face repo id already in the cache),
    else in env ``VNVS_LPIPS_WEIGHTS``, else where the ``lpips`` package and torchvision keep them
    (the lin files inside an installed ``lpips`` package, the backbone in torch hub's
    ``checkpoints`` folder). Nothing is downloaded.

    Returns:
        (backbone file or None, lin file or None, the places searched).
    """
    places: list[Path] = []
    chosen = folder or os.environ.get("VNVS_LPIPS_WEIGHTS")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_dir() and "/" in chosen and not path.exists():
            path = _hf_snapshot(chosen) or path
        places.append(path)
    else:
        spec = importlib.util.find_spec("lpips")
        if spec is not None and spec.origin:
            places.append(Path(spec.origin).parent / "weights" / "v0.1")
        places.append(Path(torch.hub.get_dir()) / "checkpoints")
    backbone = lin = None
    for place in places:
        if place.is_dir():
            backbone = backbone or _first(place, _backbone_patterns(net))
            lin = lin or _first(place, (f"{net}.pth", f"lpips_{net}*.pth", f"{net}_lin*.pth"))
    return backbone, lin, [str(p) for p in places]


def _hf_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache, not a repo id: not found
        return None


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_lpips(net: str = "alex", folder: str | None = None, device: str = "cpu") -> LPIPS:
    """Load LPIPS-``net`` from its backbone and lin weight files (see :func:`find_lpips_weights`).

    Raises:
        FileNotFoundError: a file is missing (the message names what and where).
        ValueError: a file does not hold the expected tensors.
    """
    backbone, lin, places = find_lpips_weights(net, folder)
    missing = [what for what, f in (("backbone " + _backbone_patterns(net)[0], backbone), (f"lin weights {net}.pth", lin)) if f is None]
    if missing:
        raise FileNotFoundError(f"LPIPS-{net} weights not found ({' and '.join(missing)}) in {', '.join(places)}")
    model = LPIPS(net)
    state = {k: v for k, v in _load_state(backbone).items() if k.startswith("features.")}
    lins = _load_state(lin)
    for k in range(len(CHANNELS[net])):
        key = next((name for name in (f"lin{k}.model.1.weight", f"lins.{k}.model.1.weight", f"lins.{k}.weight") if name in lins), None)
        if key is None:
            raise ValueError(f"{lin} holds no weight for LPIPS lin layer {k} (expected lin{k}.model.1.weight)")
        state[f"lins.{k}.weight"] = lins[key]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{backbone} / {lin} do not fit LPIPS-{net}: {str(e).splitlines()[0]}") from None
    return model.eval().to(device)


def save_lpips(model: LPIPS, folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write a model as the two files :func:`load_lpips` reads (torchvision's backbone names and the
    lpips package's lin names): for tests and for converted weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbone = folder / f"{BACKBONES[model.net_name]}-random.pth"
    lin = folder / f"{model.net_name}.pth"
    torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()}, backbone)
    torch.save({f"lin{k}.model.1.weight": m.weight.detach().clone() for k, m in enumerate(model.lins)}, lin)
    return backbone, lin
