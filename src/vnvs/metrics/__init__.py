"""Metrics: PSNR / SSIM (plain and DyCheck-masked), LPIPS, FID / FVD, CLIP scores, camera accuracy, EPE.

:mod:`vnvs.metrics.suite` is the one entry point of the evaluation harness (``per_video_metrics``,
``set_metrics``, ``camera_accuracy``, ``load_metric_networks``); ``docs/metrics.md`` documents each metric.
"""

from vnvs.metrics.dycheck import dycheck_ssim_per_frame
from vnvs.metrics.image import (
    nan_to_none,
    nanmean,
    psnr,
    psnr_per_frame,
    ssim,
    ssim_from_map,
    ssim_map,
)
from vnvs.metrics.suite import (
    MetricOptions,
    Unavailable,
    camera_accuracy,
    load_metric_networks,
    per_video_metrics,
    set_metrics,
    to_json,
)

__all__ = ["MetricOptions", "Unavailable", "camera_accuracy", "dycheck_ssim_per_frame", "load_metric_networks",
           "nan_to_none", "nanmean", "per_video_metrics", "psnr", "psnr_per_frame", "set_metrics", "ssim",
           "ssim_from_map", "ssim_map", "to_json"]
