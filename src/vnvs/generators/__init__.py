"""Generators fill a novel view from its control signal; ``get_generator(name)`` picks one."""

from __future__ import annotations

from vnvs.errors import InputError
from vnvs.generators.base import Generator
from vnvs.generators.classical import InpaintGenerator, WarpGenerator

GENERATORS = {
    "warp": ("the warped source frame, holes left black", WarpGenerator),
    "warp+inpaint": ("the warped source frame with holes filled by OpenCV inpainting", InpaintGenerator),
}
DEFAULT_GENERATOR = "warp+inpaint"


def get_generator(name: str | None = None) -> Generator:
    """The generator registered under ``name`` (default: the best one available offline)."""
    name = name or DEFAULT_GENERATOR
    if name not in GENERATORS:
        raise InputError(f"unknown generator {name!r}; available: {', '.join(GENERATORS)}")
    return GENERATORS[name][1]()


__all__ = ["DEFAULT_GENERATOR", "GENERATORS", "Generator", "InpaintGenerator", "WarpGenerator", "get_generator"]
