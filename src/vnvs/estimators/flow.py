"""Optical flow between frame pairs: one interface, several backends.

A backend maps frame pairs ``(N, 3, H, W)`` (source, target), float in [0, 1] or uint8, to forward
flows ``(N, 2, H, W)`` on the source grid: source pixel ``p`` moves to ``p + F(p)`` in the target.
uint8 frames ``u`` give the flows of the float frames ``u / 255`` bit for bit (the OpenCV backends
convert them to grey through a table of the same float32 values, without a float copy of the frames).

* ``dis`` (default): OpenCV's DIS optical flow, no weights; presets ``fast`` and ``medium``.
* ``farneback``: OpenCV's Farneback flow, no weights.
* ``raft``: torchvision's RAFT (large or small) when torchvision and its weights are available
  (a local file or the torch hub cache); a clear message otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from vnvs.errors import InputError, MissingDependencyError
from vnvs.geometry.warp import backward_warp, correspondence_from_flow
from vnvs.utils.device import resolve_device
from vnvs.utils.threads import thread_budget


class FlowEstimator(Protocol):
    """Forward optical flow between frame pairs."""

    name: str

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` source and target frames (float in [0, 1] or uint8) -> ``(N, 2, H, W)`` flow on the source grid."""
        ...


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dim() != 4 or source.shape[1] != 3 or source.shape != target.shape:
        raise InputError(f"flow needs two (N, 3, H, W) batches of the same shape, got {tuple(source.shape)} "
                         f"and {tuple(target.shape)}")


_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _gray_tables() -> list[np.ndarray]:
    """Per channel, the 256 float32 values ``(v / 255) * w_c``: the terms of the luma of uint8 frames."""
    w = torch.tensor(_GRAY_WEIGHTS, dtype=torch.float32)
    return [((torch.arange(256, dtype=torch.float32) / 255) * w[c]).numpy() for c in range(3)]


_GRAY_TABLES: list[np.ndarray] = []


def _gray_u8(frames: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` float in [0, 1] (or uint8) -> ``(N, H, W)`` uint8 luma (BT.601).

    The weighted sum runs channel by channel in place, the order of ``(frames * w).sum(1)`` (so the
    values are the same bit for bit), without the ``(N, 3, H, W)`` temporary. uint8 frames ``u`` take
    each channel's term from a table of ``(v / 255) * w_c`` (OpenCV's LUT) and give exactly the luma
    of ``u / 255``, with no float copy of the frames.
    """
    if frames.dtype == torch.uint8:
        return _gray_u8_from_uint8(frames)
    w = torch.tensor(_GRAY_WEIGHTS, dtype=frames.dtype)
    x = frames.detach().cpu()
    gray = x[:, 0] * w[0]
    gray.add_(x[:, 1] * w[1]).add_(x[:, 2] * w[2])
    return gray.clamp_(0, 1).mul_(255).round_().to(torch.uint8).numpy()


def _gray_u8_from_uint8(frames: torch.Tensor) -> np.ndarray:
    if not _GRAY_TABLES:
        _GRAY_TABLES.extend(_gray_tables())
    x = frames.detach().cpu().numpy()
    out = np.empty((x.shape[0],) + x.shape[2:], dtype=np.uint8)
    for i, frame in enumerate(x):
        acc = cv2.LUT(np.ascontiguousarray(frame[0]), _GRAY_TABLES[0])
        acc += cv2.LUT(np.ascontiguousarray(frame[1]), _GRAY_TABLES[1])
        acc += cv2.LUT(np.ascontiguousarray(frame[2]), _GRAY_TABLES[2])
        np.clip(acc, 0, 1, out=acc)
        acc *= 255
        np.rint(acc, out=acc)
        out[i] = acc
    return out


def _gray_u8_reference(frames: torch.Tensor) -> np.ndarray:
    """The plain form of :func:`_gray_u8` (kept for its test)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=frames.dtype, device=frames.device).view(1, 3, 1, 1)
    gray = (frames * w).sum(1).clamp(0, 1) * 255
    return gray.round().to(torch.uint8).cpu().numpy()


def _stack_flows(flows: list[np.ndarray], device) -> torch.Tensor:
    """``(H, W, 2)`` float32 flows -> ``(N, 2, H, W)`` tensor."""
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous().to(device)


_DIS_PRESETS = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST}


@dataclass
class DISFlow:
    """OpenCV Dense Inverse Search flow (Kroeger et al. 2016)."""

    preset: str = "medium"
    """``fast``, ``medium`` (default) or ``ultrafast``."""
    name: str = field(default="dis", init=False)

    def __post_init__(self) -> None:
        if self.preset not in _DIS_PRESETS:
            raise InputError(f"unknown DIS preset {self.preset!r}; expected one of {', '.join(_DIS_PRESETS)}")

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(source, target)
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        a, b = _gray_u8(source), _gray_u8(target)
        return _stack_flows([dis.calc(x, y, None) for x, y in zip(a, b)], source.device)

    def both(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward flows of frame pairs, each frame converted to grey once.

        Equals ``self(source, target), self(target, source)``.
        """
        _check_pair(source, target)
        a, b = _gray_u8(source), _gray_u8(target)
        preset = _DIS_PRESETS[self.preset]

        def calc(pairs) -> list[np.ndarray]:
            dis = cv2.DISOpticalFlow_create(preset)
            return [dis.calc(x, y, None) for x, y in pairs]

        if thread_budget() >= 2 and len(a) > 1:
            # DIS's own parallel loops leave cores idle between its pyramid levels: the backward flows run
            # on a second thread beside the forward ones (OpenCV releases the GIL), 1.5x faster on 2 cores.
            box: dict = {}

            def backward() -> None:
                try:
                    box["bw"] = calc(zip(b, a))
                except BaseException as e:  # re-raised on the calling thread
                    box["error"] = e

            worker = threading.Thread(target=backward, daemon=True)
            worker.start()
            try:
                fw = calc(zip(a, b))
            finally:
                worker.join()
            if "error" in box:
                raise box["error"]
            bw = box["bw"]
        else:
            fw, bw = calc(zip(a, b)), calc(zip(b, a))
        return _stack_flows(fw, source.device), _stack_flows(bw, source.device)


@dataclass
class FarnebackFlow:
    """OpenCV Farneback polynomial-expansion flow."""

    pyr_scale: float = 0.5
    """Scale between pyramid levels."""
    levels: int = 4
    """Number of pyramid levels."""
    winsize: int = 15
    """Averaging window size."""
    iterations: int = 3
    """Iterations per level."""
    name: str = field(default="farneback", init=False)

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(source, target)
        a, b = _gray_u8(source), _gray_u8(target)
        flows = [cv2.calcOpticalFlowFarneback(x, y, None, self.pyr_scale, self.levels, self.winsize, self.iterations,
                                              5, 1.1, 0) for x, y in zip(a, b)]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous().to(source.device)


RAFT_WEIGHT_FILES = {"large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth", "small": "raft_small_C_T_V2-01064c6d.pth"}


@dataclass
class RAFTFlow:
    """torchvision's RAFT; needs torchvision (``pip install 'vnvs[gpu]'``) and its weights."""

    variant: str = "large"
    """``large`` or ``small``."""
    weights: str | None = None
    """Path of the weights file; default: torchvision's file name in the torch hub cache."""
    device: str | None = None
    """Device to run on (default: CUDA when available)."""
    iterations: int = 12
    """Refinement iterations."""
    name: str = field(default="raft", init=False)

    def __post_init__(self) -> None:
        if self.variant not in RAFT_WEIGHT_FILES:
            raise InputError(f"unknown RAFT variant {self.variant!r}; expected 'large' or 'small'")
        try:
            from torchvision.models import optical_flow  # noqa: F401
        except ImportError:
            raise MissingDependencyError("the RAFT flow backend needs torchvision: pip install 'vnvs[gpu]' "
                                         "(or use --flow dis)") from None
        path = Path(self.weights) if self.weights else Path(torch.hub.get_dir()) / "checkpoints" / RAFT_WEIGHT_FILES[self.variant]
        if not path.is_file():
            raise MissingDependencyError(f"RAFT weights not found at {path}: download {RAFT_WEIGHT_FILES[self.variant]} "
                                         "from torchvision's model zoo into that folder or pass its path "
                                         "(or use --flow dis)")
        self._path = path
        self._model = None

    def _load(self):
        from torchvision.models.optical_flow import raft_large, raft_small

        device = resolve_device(self.device)
        model = (raft_large if self.variant == "large" else raft_small)(weights=None)
        model.load_state_dict(torch.load(self._path, map_location="cpu", weights_only=True))
        self._model = model.eval().to(device)
        return self._model

    @torch.no_grad()
    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(source, target)
        if source.dtype == torch.uint8:
            source, target = source.to(torch.float32) / 255, target.to(torch.float32) / 255
        model = self._model or self._load()
        device = next(model.parameters()).device
        H, W = source.shape[-2:]
        ph, pw = (-H) % 8, (-W) % 8  # RAFT needs sizes divisible by 8

        def prep(x):
            x = torch.nn.functional.pad(x.to(device) * 2 - 1, (0, pw, 0, ph), mode="replicate")
            return x

        flow = model(prep(source), prep(target), num_flow_updates=self.iterations)[-1]
        return flow[..., :H, :W].to(source.device)


FLOW_BACKENDS = {"dis": "OpenCV DIS, preset medium (default)", "dis-fast": "OpenCV DIS, preset fast",
                 "farneback": "OpenCV Farneback", "raft": "torchvision RAFT-large (needs torchvision and weights)",
                 "raft-small": "torchvision RAFT-small (needs torchvision and weights)"}


def get_flow_estimator(name: str = "dis", **kwargs) -> FlowEstimator:
    """The flow backend called ``name`` (see :data:`FLOW_BACKENDS`)."""
    if name == "dis":
        return DISFlow(**kwargs)
    if name == "dis-fast":
        return DISFlow(preset="fast", **kwargs)
    if name == "farneback":
        return FarnebackFlow(**kwargs)
    if name in ("raft", "raft-small"):
        return RAFTFlow(variant="small" if name == "raft-small" else "large", **kwargs)
    raise InputError(f"unknown flow backend {name!r}; available: {', '.join(FLOW_BACKENDS)}")


def forward_backward_consistency(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01,
                                 beta: float = 0.5) -> torch.Tensor:
    """Pixels whose forward flow is confirmed by the backward flow (Brox criterion, as in DyCheck).

    A source pixel ``p`` is consistent unless
    ``|F(p) + B(p + F(p))|^2 > alpha (|F(p)|^2 + |B(p + F(p))|^2) + beta``, or ``p + F(p)`` leaves the image.

    Args:
        flow_fw: ``(N, 2, H, W)`` flow source -> target on the source grid.
        flow_bw: ``(N, 2, H, W)`` flow target -> source on the target grid.

    Returns:
        ``(N, H, W)`` bool, True where consistent.

    Example:
        >>> f = torch.ones(1, 2, 4, 4)
        >>> forward_backward_consistency(f, -f)[0, :3, :3].all().item()
        True
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.dim() != 4 or flow_fw.shape[1] != 2:
        raise InputError(f"flows must both be (N, 2, H, W), got {tuple(flow_fw.shape)} and {tuple(flow_bw.shape)}")
    H, W = flow_fw.shape[-2:]
    target = correspondence_from_flow(flow_fw)
    bw = backward_warp(flow_bw, target, padding_mode="border")
    tx, ty = target[:, 0], target[:, 1]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    fx, fy, bx, by = flow_fw[:, 0], flow_fw[:, 1], bw[:, 0], bw[:, 1]
    # the terms of (flow_fw + bw).pow(2).sum(1) and of the bound, in the same order (same values)
    sx, sy = fx + bx, fy + by
    err = sx.mul_(sx).add_(sy.mul_(sy))
    bound = (fx * fx).add_(fy * fy).add_((bx * bx).add_(by * by)).mul_(alpha).add_(beta)
    return inside.logical_and_(err <= bound)


def flow_with_consistency(estimator: FlowEstimator, source: torch.Tensor, target: torch.Tensor):
    """Forward flow, backward flow and the forward flow's consistency mask for frame pairs.

    Returns:
        ``flow_fw (N, 2, H, W)``, ``flow_bw (N, 2, H, W)``, ``valid (N, H, W)`` bool on the source grid.
    """
    if hasattr(estimator, "both"):  # one grey conversion per frame, no concatenated copies
        flow_fw, flow_bw = estimator.both(source, target)
    else:
        both = estimator(torch.cat([source, target]), torch.cat([target, source]))
        n = source.shape[0]
        flow_fw, flow_bw = both[:n], both[n:]
    return flow_fw, flow_bw, forward_backward_consistency(flow_fw, flow_bw)


__all__ = ["DISFlow", "FLOW_BACKENDS", "FarnebackFlow", "FlowEstimator", "RAFTFlow", "flow_with_consistency",
           "forward_backward_consistency", "get_flow_estimator"]
