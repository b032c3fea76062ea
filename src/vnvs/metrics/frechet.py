"""Fréchet distances between feature distributions: FID (frames) and FVD (16-frame clips).

``d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})`` (Dowson & Landau 1982), with
``tr((S_1 S_2)^{1/2})`` computed as the sum of the square roots of the eigenvalues of the symmetric
PSD matrix ``S_1^{1/2} S_2 S_1^{1/2}`` (same spectrum as ``S_1 S_2``): real and stable where
``scipy.linalg.sqrtm`` of the non-symmetric product can return complex noise.

Feature networks (one small interface, :class:`FeatureNetwork`: ``name``, ``variant``, ``features``):

- FID: :class:`InceptionFeatures`, pytorch-fid's Inception-v3 port of the TF 2015-12-05 graph
  (file ``pt_inception-2015-12-05-6726825d.pth``, pool3 2048-d, bilinear resize to 299), statistics
  as pytorch-fid (``np.cov``: unbiased covariance); or :class:`TorchScriptFeatures` on StyleGAN's
  TorchScript ``inception-2015-12-05.pt`` (uint8 input, ``return_features=True``).
- FVD: the StyleGAN-V variant (Skorokhodov et al. 2022, ``src/metrics/frechet_video_distance.py``):
  the TorchScript I3D ``i3d_torchscript.pt`` (Kinetics-400, the tf.hub weights of the original FVD),
  clips of 16 frames as uint8 ``(B, 3, 16, H, W)``, called with ``rescale=True, resize=True``
  (to 224x224) and ``return_features=True`` (400-d logits before the softmax), statistics as
  StyleGAN's ``FeatureStats`` (biased covariance, ``1/N``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from vnvs.metrics.inception import PYTORCH_FID_FILE, FIDInception

STYLEGAN_INCEPTION_FILE = "inception-2015-12-05.pt"
I3D_FILE = "i3d_torchscript.pt"
FVD_CLIP = 16


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: ``(D,)`` means.
        sigma1, sigma2: ``(D, D)`` symmetric PSD covariances.

    Example:
        >>> I = np.eye(2)
        >>> round(frechet_distance(np.zeros(2), 4 * I, np.ones(2), I), 6)  # |1,1|^2 + 2 (2 - 1)^2
        4.0
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, {s2.shape} do not match")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def feature_stats(features: np.ndarray, unbiased: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``(N, D)`` features (``N - 1`` or ``N`` normalised)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got {f.shape}")
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - (1 if unbiased else 0))


class FeatureNetwork:
    """A feature extractor for a Fréchet distance.

    Attributes:
        name: what it is, for reports (network and weight file).
        variant: the metric variant it implements, for reports.
        unbiased: covariance normalisation of the reference implementation (``N - 1`` or ``N``).
    """

    name: str = ""
    variant: str = ""
    unbiased: bool = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` float features of a batch (frames ``(N, 3, H, W)`` or clips ``(N, T, 3, H, W)``, in [0, 1])."""
        raise NotImplementedError


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


class InceptionFeatures(FeatureNetwork):
    """pytorch-fid's Inception-v3 (plain torch, :class:`~vnvs.metrics.inception.FIDInception`)."""

    unbiased = True

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        self.net = FIDInception().load(path).to(device)
        self.device = device
        self.name = f"Inception-v3 (pytorch-fid port of TF 2015-12-05, {Path(path).name}), pool3 2048-d, bilinear 299x299"
        self.variant = "FID (pytorch-fid)"

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.device).float()).double().cpu()


class TorchScriptFeatures(FeatureNetwork):
    """A TorchScript feature network called as StyleGAN's metrics call their detectors: uint8 input,
    keyword flags (``return_features=True`` and, for video, ``rescale``/``resize``)."""

    def __init__(self, path: str | os.PathLike, *, video: bool, name: str, variant: str, unbiased: bool,
                 device: str = "cpu"):
        with warnings.catch_warnings():  # torch.jit.load is deprecated, yet it is how these files load
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location=device).eval()
        self.video, self.device = video, device
        self.name, self.variant, self.unbiased = name, variant, unbiased

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _uint8(x).to(self.device)
        if self.video:  # (N, T, 3, H, W) -> (N, 3, T, H, W)
            out = self.net(x.permute(0, 2, 1, 3, 4).contiguous(), rescale=True, resize=True, return_features=True)
        else:
            out = self.net(x, return_features=True)
        return out.double().flatten(1).cpu()


def _locate(path: str | None, env: str, names: tuple[str, ...]) -> tuple[Path | None, str]:
    chosen = path or os.environ.get(env)
    if not chosen:
        return None, f"no weights given (set the option or env {env} to a folder holding {' or '.join(names)})"
    p = Path(chosen).expanduser()
    if p.is_file():
        return p, ""
    for name in names:
        if (p / name).is_file():
            return p / name, ""
    return None, f"{' or '.join(names)} not found in {p}"


def load_fid_network(path: str | None = None, device: str = "cpu") -> FeatureNetwork:
    """The FID feature network from a folder (or file; default env ``VNVS_FID_WEIGHTS``) holding
    pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (preferred) or StyleGAN's TorchScript
    ``inception-2015-12-05.pt``.

    Raises:
        FileNotFoundError: neither file is there (the message says where it looked).
    """
    found, why = _locate(path, "VNVS_FID_WEIGHTS", (PYTORCH_FID_FILE, STYLEGAN_INCEPTION_FILE))
    if found is None:
        raise FileNotFoundError(why)
    if found.suffix == ".pth":
        return InceptionFeatures(found, device)
    return TorchScriptFeatures(found, video=False, device=device, unbiased=False, variant="FID (StyleGAN TorchScript Inception)",
                               name=f"Inception-v3 TorchScript ({found.name}), pool3 2048-d")


def load_fvd_network(path: str | None = None, device: str = "cpu") -> FeatureNetwork:
    """The FVD feature network: StyleGAN-V's TorchScript I3D ``i3d_torchscript.pt`` from a folder
    (or the file; default env ``VNVS_FVD_WEIGHTS``).

    Raises:
        FileNotFoundError: the file is not there.
    """
    found, why = _locate(path, "VNVS_FVD_WEIGHTS", (I3D_FILE,))
    if found is None:
        raise FileNotFoundError(why)
    return TorchScriptFeatures(found, video=True, device=device, unbiased=False,
                               variant=f"FVD_{FVD_CLIP} (StyleGAN-V: I3D Kinetics-400 TorchScript, {FVD_CLIP}-frame clips resized to 224, "
                                       "400-d logits, biased covariance)",
                               name=f"I3D Kinetics-400 ({found.name})")


def frame_features(net: FeatureNetwork, videos: list[torch.Tensor], batch: int = 16) -> np.ndarray:
    """``(sum T, D)`` features of every frame of every ``(T, 3, H, W)`` video."""
    out = []
    for v in videos:
        for s in range(0, v.shape[0], batch):
            out.append(net.features(v[s:s + batch]).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def video_clips(video: torch.Tensor, length: int = FVD_CLIP) -> torch.Tensor:
    """Non-overlapping ``length``-frame clips from the start of a ``(T, 3, H, W)`` video:
    ``(T // length, length, 3, H, W)`` (the remainder is dropped; shorter videos give none).

    Example:
        >>> video_clips(torch.zeros(40, 3, 4, 4)).shape
        torch.Size([2, 16, 3, 4, 4])
    """
    n = video.shape[0] // length
    return video[:n * length].reshape(n, length, *video.shape[1:])


def clip_features(net: FeatureNetwork, videos: list[torch.Tensor], length: int = FVD_CLIP, batch: int = 2) -> np.ndarray:
    """``(clips, D)`` features of the non-overlapping ``length``-frame clips of the videos."""
    out = []
    for v in videos:
        clips = video_clips(v, length)
        for s in range(0, clips.shape[0], batch):
            out.append(net.features(clips[s:s + batch]).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def fid_from_features(a: np.ndarray, b: np.ndarray, unbiased: bool = True) -> float:
    """Fréchet distance between the Gaussians fitted to two ``(N, D)`` feature sets."""
    return frechet_distance(*feature_stats(a, unbiased), *feature_stats(b, unbiased))
