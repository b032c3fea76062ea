"""Samplers: the denoising loops that turn a model and a control signal into frames (diffusers'
pipelines, kept apart from the models and their schedulers)."""

from vnvs.sampling.config import SAMPLING_FILE, SamplingConfig
from vnvs.sampling.pipeline import (
    DEFAULT_SHIFT,
    DEFAULT_STEPS,
    NovelViewPipeline,
    latent_shape,
    make_scheduler,
)

__all__ = ["SAMPLING_FILE", "SamplingConfig", "DEFAULT_SHIFT", "DEFAULT_STEPS", "NovelViewPipeline", "latent_shape", "make_scheduler"]
