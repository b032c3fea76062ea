"""``SamplingConfig``: how a trained model is sampled, saved beside its weights as ``sampling.json``."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vnvs.errors import InputError
from vnvs.geometry.control import RENDERERS
from vnvs.utils import validate
from vnvs.utils.atomic import atomic_path

SAMPLING_FILE = "sampling.json"
"""The file of sampling settings beside a saved model (optional; absent means the defaults below)."""


@dataclass
class SamplingConfig:
    """Settings a model is sampled with unless a caller overrides them.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = SamplingConfig(steps=4, resolution=64, composite=True).save(folder)
        ...     SamplingConfig.load(folder).steps
        4
    """

    steps: int | None = None
    """Euler steps (None: the model config's ``sampling_steps``, else the pipeline's default)."""
    guidance: float = 1.0
    """Classifier-free guidance scale on the control signal (1: none, one model pass per step)."""
    shift: float | None = None
    """Timestep shift (None: the model config's, else the pipeline's default)."""
    resolution: int | None = None
    """Short side of the frames the model sees (None: the input's, rounded to the model's size multiple)."""
    window: int | None = None
    """Frames per model call (None: the model's own window, else whole clips)."""
    overlap: int = 4
    """Frames shared by neighbouring windows."""
    composite: bool = False
    """Keep the warped source frame wherever a source pixel landed; the model fills only the holes."""
    seamless: bool = False
    """With ``composite``: shift the colours the model paints into the holes by the difference between
    the warp and the model around them, so the holes meet the warped frame without a seam
    (:func:`vnvs.geometry.control.composite_warped`)."""
    renderer: str | None = None
    """Conditioning renderer the model was trained with (``zbuffer`` or ``mesh``, see
    :func:`vnvs.geometry.control.render_control`); None: not recorded. ``vnvs render`` warns when its
    ``renderer`` differs."""

    def __post_init__(self) -> None:
        for name in ("steps", "resolution", "window"):
            validate.positive_int(getattr(self, name), name, optional=True)
        validate.need(validate.is_number(self.guidance), f"guidance must be a number, got {self.guidance!r}")
        validate.need(self.shift is None or (validate.is_number(self.shift) and self.shift > 0),
                      f"shift must be a number > 0, got {self.shift!r}")
        validate.need(validate.is_int(self.overlap) and self.overlap >= 0,
                      f"overlap must be an integer >= 0, got {self.overlap!r}")
        validate.need(isinstance(self.composite, bool), f"composite must be true or false, got {self.composite!r}")
        validate.need(isinstance(self.seamless, bool), f"seamless must be true or false, got {self.seamless!r}")
        validate.choice(self.renderer, (*RENDERERS, None), "renderer")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SamplingConfig":
        """A validated copy with the given fields changed (fields given as None keep their value)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "SamplingConfig":
        """The ``sampling.json`` of a model folder (the defaults when there is none); one-line
        :class:`InputError` when it is unreadable, not a JSON object, or holds unknown keys or bad values."""
        file = Path(folder) / SAMPLING_FILE
        if not file.is_file():
            return cls()
        try:
            data = json.loads(file.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot read {file}: {' '.join(str(exc).split())}") from None
        known = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise InputError(f"{file} must hold a JSON object with keys among {', '.join(known)}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(f"{file} has unknown keys {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        try:
            return cls(**{k: v for k, v in data.items() if v is not None})
        except InputError as exc:
            raise InputError(f"{file}: {exc}") from None

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/sampling.json`` atomically; return its path."""
        path = Path(folder) / SAMPLING_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path
