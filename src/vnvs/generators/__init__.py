"""Generators fill a novel view from its control signal; ``get_generator(name)`` picks one.

Names: the registered ones (:data:`GENERATORS`: ``warp``, ``warp+inpaint``, ``default``, ``cognvs``,
``warp+inpaint+refine``) or the path
of a saved model folder (``config.json`` + ``model.safetensors``, as ``vnvs train`` writes to
``OUTPUT/model``), which becomes a :class:`~vnvs.generators.learned.LearnedGenerator`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vnvs.defaults import (
    DEFAULT_GENERATOR,
    INPAINT_GENERATOR,
    REFINE_GENERATOR,
    SHIPPED_CHECKPOINT,
    SHIPPED_INPAINT_CHECKPOINT,
)
from vnvs.errors import InputError
from vnvs.generators.base import Generator
from vnvs.generators.classical import InpaintGenerator, WarpGenerator
from vnvs.generators.learned import LearnedGenerator, is_model_folder
from vnvs.generators.refined import RefinedGenerator
from vnvs.generators.windows import WindowedGenerator

log = logging.getLogger(__name__)


GENERATORS = {
    "warp": "the warped source frame, holes left black",
    "warp+inpaint": "the warped source frame with holes filled by OpenCV inpainting",
    "default": f"the model that ships with vnvs ({SHIPPED_CHECKPOINT}); warp+inpaint if it is missing",
    INPAINT_GENERATOR: f"the CogNVS-style inpainting model that ships with vnvs ({SHIPPED_INPAINT_CHECKPOINT})",
    REFINE_GENERATOR: f"warp+inpaint, its holes redrawn by the shipped model ({SHIPPED_CHECKPOINT}, SDEdit from the "
                      "inpainting); warp+inpaint if the model is missing",
}
"""Registered generator names and what they do; a saved model folder is accepted as a name too."""
SHIPPED_MODELS = {"default": SHIPPED_CHECKPOINT, INPAINT_GENERATOR: SHIPPED_INPAINT_CHECKPOINT}
"""Generator names of the models that ship with vnvs -> their folder names under ``vnvs/checkpoints``."""


def shipped_checkpoint(name: str = SHIPPED_CHECKPOINT) -> Path | None:
    """The folder of a model shipped with the package (``vnvs/checkpoints/NAME``, default the
    ``default`` generator's ``vnvs-dit-small``), or None when it is not installed."""
    path = Path(__file__).resolve().parent.parent / "checkpoints" / name
    return path if is_model_folder(path) else None


def get_generator(name: str | None = None, **options) -> Generator:
    """The generator called ``name`` (default :data:`DEFAULT_GENERATOR`).

    Args:
        name: a key of :data:`GENERATORS`, a saved model folder, or ``warp+inpaint+refine:MODEL`` (the
            inpainting redrawn by ``MODEL``: ``default``, ``cognvs`` or a model folder).
        options: settings of learned generators (``steps``, ``guidance``, ``device``, ``resolution``,
            ``window``, ... of :class:`~vnvs.generators.learned.LearnedGenerator`); the classical
            generators ignore them.

    Raises:
        InputError: unknown name (the message lists the options), or a folder that holds no model.
    """
    name = name or DEFAULT_GENERATOR
    if name == "warp":
        return WarpGenerator()
    if name == "warp+inpaint":
        return InpaintGenerator()
    if name == REFINE_GENERATOR:
        path = shipped_checkpoint(SHIPPED_CHECKPOINT)
        if path is None:
            log.warning("the shipped model %s is not installed; generator %s uses warp+inpaint", SHIPPED_CHECKPOINT,
                        REFINE_GENERATOR)
            return InpaintGenerator()
        return RefinedGenerator(_learned(path, options))
    if name.startswith(REFINE_GENERATOR + ":"):  # warp+inpaint+refine:MODEL (a shipped name or a model folder)
        refiner = get_generator(name[len(REFINE_GENERATOR) + 1:], **options)
        if not isinstance(refiner, LearnedGenerator):
            raise InputError(f"{name}: the refiner must be a learned model (default, cognvs or a model folder)")
        return RefinedGenerator(refiner, name=f"{REFINE_GENERATOR}:{refiner.name}")
    if name in SHIPPED_MODELS:
        path = shipped_checkpoint(SHIPPED_MODELS[name])
        if path is None and name == "default":
            log.warning("the shipped model %s is not installed; generator 'default' uses warp+inpaint",
                        SHIPPED_CHECKPOINT)
            return InpaintGenerator()
        if path is None:
            raise InputError(f"the shipped inpainting model {SHIPPED_MODELS[name]} is missing from this installation")
        return _learned(path, options)
    path = Path(name).expanduser()
    if path.is_dir():
        return _learned(path, options)
    raise InputError(f"unknown generator {name!r}; available: {', '.join(GENERATORS)}, "
                     f"a saved model folder (config.json + model.safetensors) or {REFINE_GENERATOR}:MODEL")


def _learned(path: Path, options: dict) -> Generator:
    return LearnedGenerator(path, **options)


def __getattr__(name: str):
    # heavy classes on first use, so `import vnvs.generators` stays light
    if name == "LearnedGenerator":
        return LearnedGenerator
    if name == "WindowedGenerator":
        return WindowedGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_GENERATOR", "GENERATORS", "Generator", "InpaintGenerator", "LearnedGenerator", "SHIPPED_CHECKPOINT",
           "SHIPPED_MODELS", "RefinedGenerator", "WarpGenerator", "WindowedGenerator", "get_generator", "shipped_checkpoint"]
