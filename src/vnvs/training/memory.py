"""How much memory a training step needs, estimated before the first step.

The activations that autograd keeps for the backward pass are measured exactly on one sample (a
forward pass under :func:`torch.autograd.graph.saved_tensors_hooks`, counting each storage once and
leaving out the parameters); they grow linearly with the micro-batch. Weights, gradients, AdamW's
two moments and the EMA copy are counted from the parameters. The peak adds a margin for the
temporaries of the backward pass (gradients of activations, attention scores being recomputed)
that :data:`PEAK_MARGIN` covers. The trainer compares the estimate with the memory free on its
device and refuses to start, in one line that names a micro-batch that fits, rather than being
killed by the kernel halfway through the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from vnvs.utils.memory import available_memory

PEAK_MARGIN = 1.75
"""Peak memory per sample over the activations kept per sample, measured for ``dit-small`` on the CPU:
1.47 on 128 px, 16-frame synthetic pairs (peak RSS 1.05 GB at micro-batch 1, 2.73 GB at 4, 0.38 GB kept
per sample) and 1.70 on 256 px, 16-frame pairs (3.05 GB at micro-batch 1 over a 0.45 GB process, 1.53 GB
kept); the larger one, rounded up."""
GB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process needs at its peak."""

    weights: int
    """Parameters of the model."""
    training_state: int
    """Gradients, AdamW moments and EMA copy of the trainable parameters."""
    activations_per_sample: int
    """Activations kept for the backward pass, per sample of the micro-batch."""
    batch_size: int
    """Samples per micro-batch."""

    @property
    def peak(self) -> int:
        return int(self.weights + self.training_state + PEAK_MARGIN * self.activations_per_sample * self.batch_size)

    def fitting_batch(self, available: int) -> int:
        """The largest micro-batch whose peak fits in ``available`` bytes (0: not even one sample)."""
        room = available - self.weights - self.training_state
        return max(0, int(room // max(1.0, PEAK_MARGIN * self.activations_per_sample)))

    def describe(self) -> str:
        return (f"about {format_bytes(self.peak)} (activations {format_bytes(self.activations_per_sample)} per sample "
                f"x {self.batch_size}, weights and optimizer state {format_bytes(self.weights + self.training_state)})")


def format_bytes(n: float) -> str:
    """``n`` bytes in GB, MB or kB (two significant decimals where useful).

    Example:
        >>> format_bytes(3 * GB), format_bytes(2.5 * 1024**2), format_bytes(900)
        ('3.00 GB', '2.50 MB', '0.88 kB')
    """
    for unit, size in (("GB", GB), ("MB", 1024**2)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n / 1024:.2f} kB"


def kept_activation_bytes(run: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd saves for backward while ``run()`` executes (each storage once,
    tensors sharing storage with ``exclude``, e.g. the parameters, left out).

    Example:
        >>> lin = torch.nn.Linear(64, 64)
        >>> x = torch.randn(10, 64, requires_grad=True)
        >>> kept_activation_bytes(lambda: torch.tanh(lin(x)).sum(), exclude=lin.parameters())  # x and tanh(.)
        5120
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in skip:
            seen[ptr] = max(seen.get(ptr, 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return int(sum(seen.values()))


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can use on ``device``: free CUDA memory, or on the CPU
    :func:`vnvs.utils.memory.available_memory` (None: unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_memory() if device.type == "cpu" else None
