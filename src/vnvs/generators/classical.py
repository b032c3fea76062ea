"""Classical baselines: the warped frame as is, and the warped frame with OpenCV inpainting."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vnvs.geometry.control import split_control_signal


@dataclass
class WarpGenerator:
    """Returns the warped frame ``I_r``; pixels no source point reached stay black."""

    name: str = "warp"

    def __call__(self, control: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        _, _, warped, mask = split_control_signal(control)
        return warped * mask[:, None]


@dataclass
class InpaintGenerator:
    """Fills the pixels no source point reached with OpenCV inpainting (Telea's method), frame by frame."""

    name: str = "warp+inpaint"
    radius: int = 3
    method: str = "telea"

    def __call__(self, control: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        _, _, warped, mask = split_control_signal(control)
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        frames = (warped.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        holes = (~mask).numpy().astype(np.uint8)
        out = np.empty_like(frames)
        for i, (frame, hole) in enumerate(zip(frames, holes)):
            out[i] = cv2.inpaint(np.ascontiguousarray(frame), hole, self.radius, flag) if hole.any() else frame
        result = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255
        # keep the exact warped values where the mask is set (no 8-bit rounding there)
        return torch.where(mask[:, None], warped.float(), result)
