"""Metrics: masked PSNR / SSIM over videos."""

from vnvs.metrics.image import nan_to_none, psnr, ssim, ssim_from_map, ssim_map

__all__ = ["nan_to_none", "psnr", "ssim", "ssim_from_map", "ssim_map"]
