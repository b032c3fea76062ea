"""Which device a model runs on."""

from __future__ import annotations

import torch

from vnvs.errors import InputError


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """``spec`` as a device, or CUDA when available and the CPU otherwise.

    Refuses, in one line, a device name torch does not know and a CUDA device on a machine without
    CUDA (rather than quietly running on the CPU).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device {spec!r} is not a device name ({' '.join(str(exc).split())})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {spec!r} asks for CUDA, but this machine has no CUDA device (use cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
