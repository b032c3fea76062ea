"""Monocular depth for videos: one interface, two backends, and temporal scale alignment.

An estimator maps frames ``(T, 3, H, W)`` in [0, 1] to a :class:`DepthPrediction`: depth ``(T, H, W)``
float32, > 0 at valid pixels, a ``(T, H, W)`` validity mask, and its ``kind``: ``"metric"`` (scene
units) or ``"relative"`` (an arbitrary, possibly per-frame, scale).

* :class:`TransformersDepth`: any Hugging Face ``AutoModelForDepthEstimation`` model (Depth Anything,
  DPT, ...) from a local folder or a hub id. See ``docs/depth.md`` for the pre- and post-processing.
* :class:`FileDepth`: depth precomputed by another tool, read with :func:`vnvs.io.load_depth`.

Relative depth flickers in scale from frame to frame; :func:`align_depth_scale` fits each frame to the
previous one along optical flow, and :func:`depth_flicker` measures what is left.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from vnvs.defaults import DEFAULT_DEPTH_MODEL
from vnvs.errors import InputError, MissingDependencyError
from vnvs.estimators.flow import (
    FlowEstimator,
    flow_with_consistency,
    get_flow_estimator,
)
from vnvs.geometry.warp import backward_warp, correspondence_from_flow
from vnvs.io.depth import load_depth
from vnvs.utils.device import resolve_device
from vnvs.synthetic import render_depth


_DEPTH_FILE_SUFFIXES = (".npy", ".npz")
_METRIC_MODEL_TYPES = ("zoedepth",)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DepthPrediction:
    """Per-frame depth from an estimator."""

    depth: torch.Tensor
    """``(T, H, W)`` float32, > 0 where ``valid``."""
    valid: torch.Tensor
    """``(T, H, W)`` bool."""
    kind: str
    """``"metric"`` (scene units) or ``"relative"`` (arbitrary scale, see :func:`align_depth_scale`)."""


class DepthEstimator(Protocol):
    """Monocular depth for a video."""

    def __call__(self, frames: torch.Tensor) -> DepthPrediction:
        """``(T, 3, H, W)`` frames in [0, 1] -> :class:`DepthPrediction` at ``(H, W)``."""
        ...


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"depth estimation needs (T, 3, H, W) frames with T >= 1, got {shape}")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _local_copy(model: str) -> str:
    """``model`` itself when it is a folder; else its snapshot folder in the Hugging Face cache, if cached."""
    if Path(model).exists():
        return model
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id: nothing cached
        return model
    return str(Path(found).parent) if isinstance(found, str) else model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection within ``timeout`` seconds: checked once
    before a download, so that a machine without network gets one line at once instead of minutes of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def _read_preprocessor(model: str) -> dict:
    """The image processor settings of a local model folder (``preprocessor_config.json``), or ``{}``.

    Read as JSON so that neither PIL nor torchvision (which transformers' image processors need) is required.
    """
    path = Path(model) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class TransformersDepth:
    """A Hugging Face depth-estimation model (``AutoModelForDepthEstimation``).

    Frames are resized in torch (bilinear, antialiased) so that the longer side is about ``max_side``
    (each side a multiple of the model's patch size), normalised with the image processor's mean / std
    (``preprocessor_config.json`` of a local folder; ImageNet's otherwise), run in batches without
    gradients, and the prediction is resized back to ``(H, W)`` bilinearly.

    Relative models (Depth Anything, DPT) predict disparity-like values; they are turned into depth of
    an arbitrary scale: over the whole clip, the 2nd and 98th percentiles of the disparity are mapped
    linearly to ``1 / far`` and ``1 / near``, and ``depth = 1 / max(disp, 1 / (4 far))``. Pixels whose
    disparity had to be clamped (sky, beyond ``4 far``) are marked invalid (their depth is ``4 far``).
    Metric models (``metric=True``, or a config that says ``depth_estimation_type="metric"``, or ZoeDepth)
    give depth in metres directly; non-finite / non-positive values are invalid (depth 0 there).
    """

    model: str = DEFAULT_DEPTH_MODEL
    """Hub id or local folder (``save_pretrained`` layout)."""
    device: str | None = None
    """Device to run on (default: CUDA when available)."""
    batch_size: int = 8
    """Frames per forward pass."""
    max_side: int = 518
    """Longer side of the network input, in pixels (rounded to a multiple of the patch size)."""
    metric: bool | None = None
    """Treat the output as metric depth; ``None``: decide from the model's config."""
    near: float = 1.0
    """Depth the 98th percentile of a relative model's disparity maps to."""
    far: float = 20.0
    """Depth the 2nd percentile of a relative model's disparity maps to."""
    name: str = field(default="transformers", init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_side < 1:
            raise InputError(f"batch_size and max_side must be >= 1, got {self.batch_size} and {self.max_side}")
        if not 0 < self.near < self.far:
            raise InputError(f"depth range needs 0 < near < far, got near={self.near} far={self.far}")
        try:
            from transformers import AutoModelForDepthEstimation
        except ImportError:
            raise MissingDependencyError("depth models need transformers: pip install 'transformers>=4.40' "
                                         "(or pass --depth FILE)") from None
        net = None
        local = _local_copy(self.model)
        if Path(local).exists():  # a local folder, or the snapshot folder in the cache: no network access
            try:
                net = AutoModelForDepthEstimation.from_pretrained(local, local_files_only=True)
            except Exception:  # noqa: BLE001 - an incomplete copy: try the hub below
                net = None
        if net is None and not Path(self.model).exists() and not _hub_offline() and _hub_reachable():
            try:
                net = AutoModelForDepthEstimation.from_pretrained(self.model)
            except Exception:  # noqa: BLE001
                net = None
        if net is None and Path(self.model).exists():
            raise InputError(f"depth model folder {self.model} holds no loadable transformers depth model "
                             "(config.json and weights, as save_pretrained writes them)")
        if net is None:
            raise MissingDependencyError(
                f"depth model {self.model} is not in the Hugging Face cache and could not be downloaded; "
                f"fetch it once while online (`hf download {self.model}`), or use a local model folder "
                "or a depth file with one map per frame instead")
        device = resolve_device(self.device)
        self._net = net.eval().to(device)
        cfg = net.config
        if self.metric is None:
            self.metric = (getattr(cfg, "depth_estimation_type", None) == "metric"
                           or getattr(cfg, "model_type", "") in _METRIC_MODEL_TYPES)
        proc = _read_preprocessor(self.model)
        self._mean = torch.tensor(proc.get("image_mean") or _IMAGENET_MEAN, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(proc.get("image_std") or _IMAGENET_STD, dtype=torch.float32).view(1, -1, 1, 1)
        backbone = getattr(cfg, "backbone_config", None)
        patch = getattr(backbone, "patch_size", None) or getattr(cfg, "patch_size", None)
        self._multiple = int(patch or proc.get("ensure_multiple_of") or 14)
        # DPT's plain ViT backbone reshapes tokens to a square grid: feed it square inputs.
        self._square = (getattr(cfg, "model_type", "") == "dpt" and not getattr(cfg, "is_hybrid", False)
                        and backbone is None)

    @property
    def kind(self) -> str:
        """``"metric"`` or ``"relative"``."""
        return "metric" if self.metric else "relative"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input size ``(h, w)`` for frames of ``(height, width)``."""
        m = self._multiple
        if self._square:
            s = max(m, round(self.max_side / m) * m)
            return s, s
        scale = self.max_side / max(height, width)
        return (max(m, round(height * scale / m) * m), max(m, round(width * scale / m) * m))

    @torch.no_grad()
    def predict_raw(self, frames: torch.Tensor) -> torch.Tensor:
        """The network's output ``(T, H, W)`` at the frames' size (disparity-like for relative models)."""
        _check_frames(frames)
        T, _, H, W = frames.shape
        device = next(self._net.parameters()).device
        h, w = self.input_size(H, W)
        mean, std = self._mean.to(device), self._std.to(device)
        out = []
        for i in range(0, T, self.batch_size):
            x = frames[i:i + self.batch_size].to(device=device, dtype=torch.float32).clamp(0, 1)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            pred = self._net(pixel_values=(x - mean) / std).predicted_depth
            if pred.dim() == 4:
                pred = pred[:, 0]
            pred = F.interpolate(pred[:, None].float(), size=(H, W), mode="bilinear", align_corners=False)[:, 0]
            out.append(pred.cpu())
        return torch.cat(out)

    def __call__(self, frames: torch.Tensor) -> DepthPrediction:
        raw = self.predict_raw(frames)
        if self.metric:
            valid = torch.isfinite(raw) & (raw > 0)
            return DepthPrediction(torch.where(valid, raw, torch.zeros(())).float(), valid, "metric")
        depth, valid = disparity_to_depth(raw, near=self.near, far=self.far)
        return DepthPrediction(depth, valid, "relative")


def disparity_to_depth(disp: torch.Tensor, near: float = 1.0, far: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Arbitrary-scale depth from disparity-like values (the rule of :class:`TransformersDepth`).

    The 2nd / 98th percentiles of the finite values (over all frames) map linearly to ``1 / far`` /
    ``1 / near``; ``depth = 1 / max(disp', 1 / (4 far))``. Returns ``depth (T, H, W)`` float32 > 0 and
    ``valid`` (finite and not clamped). A constant input gives depth ``sqrt(near * far)`` everywhere.
    """
    disp = disp.float()
    finite = torch.isfinite(disp)
    vals = disp[finite]
    lo_d, hi_d = 1.0 / far, 1.0 / near
    floor = 1.0 / (4.0 * far)
    if vals.numel() == 0:
        return torch.full_like(disp, 4.0 * far), torch.zeros_like(disp, dtype=torch.bool)
    if vals.numel() > 2_000_000:  # quantile has a size limit; a strided subsample is plenty
        vals = vals[:: math.ceil(vals.numel() / 2_000_000)]
    p2, p98 = torch.quantile(vals.double(), torch.tensor([0.02, 0.98], dtype=torch.float64)).tolist()
    if p98 - p2 <= 1e-12 * max(abs(p98), abs(p2), 1e-30):
        d = torch.full_like(disp, math.sqrt(near * far))
        return d, finite
    n = (disp - p2) / (p98 - p2)
    scaled = lo_d + n * (hi_d - lo_d)
    valid = finite & (scaled >= floor)
    scaled = torch.where(finite, scaled, torch.zeros(())).clamp_min(floor)
    return (1.0 / scaled).float(), valid


@dataclass
class FileDepth:
    """Depth precomputed by another tool: a ``.npy`` / ``.npz`` file (see :func:`vnvs.io.load_depth`)."""

    path: str
    """The depth file."""
    kind: str = "metric"
    """What the file holds: ``"metric"`` (scene units, the default) or ``"relative"``."""
    allow_invalid: bool = False
    """Mark non-finite / non-positive values invalid instead of refusing the file."""
    name: str = field(default="file", init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("metric", "relative"):
            raise InputError(f"depth kind must be 'metric' or 'relative', got {self.kind!r}")

    def __call__(self, frames: torch.Tensor) -> DepthPrediction:
        _check_frames(frames)
        T, _, H, W = frames.shape
        maps = load_depth(self.path, num_frames=T, size=(H, W), allow_invalid=self.allow_invalid)
        return DepthPrediction(maps.depth, maps.valid, self.kind)


@dataclass
class GroundTruthDepth:
    """Exact depth of a procedural scene (:mod:`vnvs.synthetic`) seen by known cameras at known times.

    Called on the frames rendered by the same cameras (or any chunk ``start:start+t`` of them, with
    ``start``), it renders the scene's z-depth for them; every pixel is valid (the scenes are closed).
    """

    scene: object
    """A :class:`vnvs.synthetic.Scene`."""
    w2c: torch.Tensor
    """``(N, 4, 4)`` cameras of the frames."""
    K: torch.Tensor
    """``(N, 3, 3)`` intrinsics."""
    times: torch.Tensor
    """``(N,)`` scene times in [0, 1]."""
    kind: str = field(default="metric", init=False)
    name: str = field(default="ground-truth", init=False)

    def __call__(self, frames: torch.Tensor, start: int = 0) -> DepthPrediction:
        _check_frames(frames)
        T, _, H, W = frames.shape
        if start < 0 or start + T > self.w2c.shape[0]:
            raise InputError(f"frames {start}..{start + T - 1} are beyond the {self.w2c.shape[0]} known cameras")
        sl = slice(start, start + T)
        depth, _ = render_depth(self.scene, self.w2c[sl], self.K[sl], H, W, self.times[sl])
        return DepthPrediction(depth.float(), torch.isfinite(depth) & (depth > 0), "metric")


def is_depth_file(spec: str | os.PathLike) -> bool:
    """True when a depth spec names a depth file (``.npy`` / ``.npz``, or any existing file) rather than a model."""
    path = Path(spec)
    return path.suffix.lower() in _DEPTH_FILE_SUFFIXES or path.is_file()


def get_depth_estimator(spec: str = DEFAULT_DEPTH_MODEL, **kwargs) -> DepthEstimator:
    """A depth estimator from a spec: a ``.npy`` / ``.npz`` path -> :class:`FileDepth`; anything else
    (a hub id or a local model folder) -> :class:`TransformersDepth` (``kwargs`` go to the constructor)."""
    spec = str(spec)
    if is_depth_file(spec):
        return FileDepth(spec, **kwargs)
    return TransformersDepth(spec, **kwargs)


# --------------------------------------------------------------------------- temporal alignment


def _as_flow(flow: str | FlowEstimator) -> FlowEstimator:
    return get_flow_estimator(flow) if isinstance(flow, str) else flow


def _check_video_depth(depth: torch.Tensor, valid: torch.Tensor | None, frames: torch.Tensor) -> torch.Tensor:
    _check_frames(frames)
    if depth.dim() != 3 or tuple(depth.shape) != (frames.shape[0], *frames.shape[-2:]):
        raise InputError(f"depth of shape {tuple(depth.shape)} does not match frames of shape {tuple(frames.shape)}")
    if valid is None:
        valid = torch.ones_like(depth, dtype=torch.bool)
    if valid.shape != depth.shape:
        raise InputError(f"valid mask of shape {tuple(valid.shape)} does not match depth {tuple(depth.shape)}")
    return valid.bool() & torch.isfinite(depth) & (depth > 0)


def _pair_correspondences(est: FlowEstimator, frames: torch.Tensor):
    """For every consecutive pair: pixel coordinates in frame ``t-1`` of frame ``t``'s pixels
    (``(T-1, 2, H, W)``) and the flow-consistency mask on frame ``t``'s grid (``(T-1, H, W)``)."""
    fw, _, ok = flow_with_consistency(est, frames[1:], frames[:-1])
    return correspondence_from_flow(fw), ok


def _irls_affine(x: torch.Tensor, y: torch.Tensor, iters: int = 10) -> tuple[float, float]:
    """Huber-IRLS fit of ``a x + b ~ y`` (1-D float64 tensors); ``delta = 1.345 * 1.4826 * MAD``."""
    w = torch.ones_like(x)
    a, b = 1.0, 0.0
    for _ in range(iters):
        sw = w.sum()
        mx, my = (w * x).sum() / sw, (w * y).sum() / sw
        vx = (w * (x - mx) ** 2).sum()
        if vx <= 1e-30:
            a, b = 1.0, float(my - mx)
        else:
            a = float((w * (x - mx) * (y - my)).sum() / vx)
            b = float(my - a * mx)
        r = (a * x + b - y).abs()
        delta = 1.345 * 1.4826 * float(r.median()) + 1e-12
        w = torch.where(r <= delta, torch.ones_like(r), delta / r)
    return a, b


class DepthScaleAligner:
    """Streaming :func:`align_depth_scale`: feed consecutive chunks of a video, get aligned depth.

    The last frame of each chunk (its aligned disparity, validity and image) is kept, so the first
    frame of the next chunk is fitted to it exactly as in one call on the whole video; memory does not
    grow with the video's length. Arguments as in :func:`align_depth_scale`.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> frames = torch.rand(1, 3, 32, 32).expand(4, 3, 32, 32)              # a still, textured view
        >>> truth = torch.linspace(1.0, 3.0, 32).view(1, 1, 32).expand(4, 32, 32)  # depth rising to the right
        >>> depth = truth * torch.tensor([1.0, 2.0, 1.0, 4.0]).view(4, 1, 1)     # ... with scale flicker
        >>> aligner = DepthScaleAligner()
        >>> for t in (0, 2):  # two chunks of two frames
        ...     aligned, scale, shift = aligner(depth[t:t + 2], None, frames[t:t + 2])
        ...     print(scale.round(decimals=3).tolist(), torch.allclose(aligned, truth[:2], rtol=1e-3))
        [1.0, 2.0] True
        [1.0, 4.0] True
    """

    def __init__(self, flow: str | FlowEstimator = "dis", min_pixels: int = 64, iters: int = 10) -> None:
        self.flow = _as_flow(flow)
        self.min_pixels = min_pixels
        self.iters = iters
        self._prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __call__(self, depth: torch.Tensor, valid: torch.Tensor | None, frames: torch.Tensor):
        """Align one chunk: ``depth (t, H, W)``, ``valid (t, H, W)`` or ``None``, ``frames (t, 3, H, W)``.

        Returns ``aligned depth (t, H, W)`` float32 (0 where invalid), ``scale (t,)``, ``shift (t,)``.
        """
        valid = _check_video_depth(depth, valid, frames)
        t_n = depth.shape[0]
        disp = torch.where(valid, 1.0 / depth.clamp_min(1e-30), torch.zeros(())).double()
        scale = torch.ones(t_n, dtype=torch.float64)
        shift = torch.zeros(t_n, dtype=torch.float64)
        out = disp.clone()
        if self._prev is not None and self._prev[0].shape != disp.shape[1:]:
            raise InputError(f"depth chunk of size {tuple(disp.shape[1:])} follows one of size "
                             f"{tuple(self._prev[0].shape)}")
        if self._prev is None:
            first, ref, ref_valid, all_frames = 1, None, None, frames.float()
        else:
            first = 0
            ref, ref_valid, ref_frame = self._prev
            all_frames = torch.cat([ref_frame[None], frames.float()])
        if all_frames.shape[0] > 1:
            corr, ok = _pair_correspondences(self.flow, all_frames)
            corr = corr.double()
            off = 0 if self._prev is None else 1  # pair index of frame t of this chunk is t - 1 + off
            for t in range(first, t_n):
                if t == 0:
                    prev_disp, prev_valid = ref, ref_valid
                else:
                    prev_disp, prev_valid = out[t - 1], valid[t - 1]
                k = t - 1 + off
                y = backward_warp(prev_disp[None, None], corr[k:k + 1], padding_mode="zeros")[0, 0]
                yv = backward_warp(prev_valid[None, None].double(), corr[k:k + 1], padding_mode="zeros")[0, 0] > 0.999
                m = ok[k] & valid[t] & yv & (y > 0)
                x_t = disp[t]
                a = b = None
                if int(m.sum()) >= self.min_pixels:
                    a, b = _irls_affine(x_t[m], y[m], iters=self.iters)
                    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
                        a = b = None
                if a is None:
                    cur, prv = x_t[valid[t]], prev_disp[prev_valid]
                    a = float(prv.median() / cur.median()) if cur.numel() and prv.numel() else 1.0
                    b = 0.0
                new = a * x_t + b
                floor = 1e-3 * float(new[valid[t]].median()) if valid[t].any() else 1e-12
                if floor <= 0:
                    floor = 1e-3 * float((a * x_t[valid[t]]).median())
                out[t] = torch.where(valid[t], new.clamp_min(floor), torch.zeros(()))
                scale[t], shift[t] = a, b
        self._prev = (out[-1].clone(), valid[-1].clone(), frames[-1].float().clone())
        aligned = torch.where(valid, 1.0 / out.clamp_min(1e-300), torch.zeros(())).float()
        return aligned, scale, shift


def align_depth_scale(depth: torch.Tensor, valid: torch.Tensor | None, frames: torch.Tensor,
                      flow: str | FlowEstimator = "dis", min_pixels: int = 64, iters: int = 10):
    """Remove per-frame scale flicker from relative depth by chaining frames along optical flow.

    Works in disparity ``x = 1 / depth``. Frame 0 is kept (``a = 1, b = 0``). For ``t >= 1`` the flow
    ``t -> t-1`` fetches (bilinearly) the previous *aligned* disparity at the pixels of frame ``t``; on
    pixels that are flow-consistent (forward-backward check) and valid in both frames, a Huber IRLS fit
    gives ``a x_t + b ~ x_{t-1}``. With fewer than ``min_pixels`` such pixels, or a fit with ``a <= 0``,
    the frame is scaled by the ratio of median disparities instead (``b = 0``). The aligned disparity is
    clamped to at least ``1e-3`` times the frame's median aligned disparity, so depth stays positive.
    :class:`DepthScaleAligner` does the same on a video streamed in chunks.

    Args:
        depth: ``(T, H, W)`` depth > 0 where valid.
        valid: ``(T, H, W)`` bool or ``None`` (all valid where finite and > 0).
        frames: ``(T, 3, H, W)`` in [0, 1], used for the flow.
        flow: a flow backend name (see :data:`vnvs.estimators.flow.FLOW_BACKENDS`) or estimator.
    Returns:
        ``aligned depth (T, H, W)`` float32 (0 where invalid), ``scale (T,)`` and ``shift (T,)`` float64:
        the disparity of frame ``t`` became ``scale[t] * x_t + shift[t]``.
    """
    return DepthScaleAligner(flow, min_pixels=min_pixels, iters=iters)(depth, valid, frames)


def depth_flicker(depth: torch.Tensor, valid: torch.Tensor | None, frames: torch.Tensor,
                  flow: str | FlowEstimator = "dis", min_pixels: int = 16) -> float:
    """Scale flicker of a depth video: median over consecutive pairs of ``|log r_t|``, where ``r_t`` is
    the median of ``depth_t(p) / depth_{t-1}(p + F_{t->t-1}(p))`` over pixels ``p`` of frame ``t`` that are
    flow-consistent and valid in both frames (the previous depth is sampled bilinearly). Pairs with
    fewer than ``min_pixels`` such pixels are skipped; 0.0 when no pair is left. For a static scene and
    a slowly moving camera exact depth gives a value near 0.
    """
    valid = _check_video_depth(depth, valid, frames)
    T = depth.shape[0]
    if T < 2:
        return 0.0
    corr, ok = _pair_correspondences(_as_flow(flow), frames.float())
    prev = backward_warp(depth[:-1, None].double(), corr.double(), padding_mode="zeros")[:, 0]
    prev_ok = backward_warp(valid[:-1, None].double(), corr.double(), padding_mode="zeros")[:, 0] > 0.999
    logs = []
    for t in range(1, T):
        m = ok[t - 1] & valid[t] & prev_ok[t - 1] & (prev[t - 1] > 0)
        if int(m.sum()) < min_pixels:
            continue
        r = (depth[t].double()[m] / prev[t - 1][m]).median()
        logs.append(abs(math.log(float(r))))
    return float(torch.tensor(logs).median()) if logs else 0.0


__all__ = ["DEFAULT_DEPTH_MODEL", "DepthEstimator", "DepthPrediction", "DepthScaleAligner", "FileDepth", "GroundTruthDepth", "TransformersDepth",
           "align_depth_scale", "depth_flicker", "disparity_to_depth", "get_depth_estimator"]
