"""Metrics: PSNR / SSIM (plain and DyCheck-masked), LPIPS, FID / FVD, CLIP scores, camera accuracy, EPE.

:mod:`vnvs.metrics.suite` is the one entry point of the evaluation harness (``per_video_metrics``,
``set_metrics``, ``camera_accuracy``, ``load_metric_networks``); ``docs/metrics.md`` documents each metric.
"""

from vnvs.metrics.camera import camera_errors
from vnvs.metrics.clip import ClipScorer, clip_scores, load_clip
from vnvs.metrics.dycheck import dycheck_ssim_per_frame
from vnvs.metrics.flow import epe_per_frame, flow_metrics
from vnvs.metrics.frechet import (
    FeatureNetwork,
    frechet_distance,
    load_fid_network,
    load_fvd_network,
)
from vnvs.metrics.image import (
    nan_to_none,
    nanmean,
    psnr,
    psnr_per_frame,
    ssim,
    ssim_from_map,
    ssim_map,
)
from vnvs.metrics.lpips import LPIPS, load_lpips, lpips_per_frame
from vnvs.metrics.suite import (
    MetricOptions,
    Unavailable,
    camera_accuracy,
    load_metric_networks,
    per_video_metrics,
    set_metrics,
    to_json,
)

__all__ = ["LPIPS", "ClipScorer", "FeatureNetwork", "MetricOptions", "Unavailable", "camera_accuracy", "camera_errors",
           "clip_scores", "dycheck_ssim_per_frame", "epe_per_frame", "flow_metrics", "frechet_distance",
           "load_clip", "load_fid_network", "load_fvd_network", "load_lpips", "load_metric_networks", "lpips_per_frame",
           "nan_to_none", "nanmean", "per_video_metrics", "psnr", "psnr_per_frame", "set_metrics", "ssim",
           "ssim_from_map", "ssim_map", "to_json"]
