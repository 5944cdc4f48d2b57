"""The background blur of blur.py as torch tensor operations, for a CUDA device.

On the CPU, OpenCV is faster (measured here: torch's CPU blur is ~10x slower), so the pipeline
uses this module only when the compute device is a GPU. Both compute the same thing: 8x8 box
averages, a Gaussian (mirrored borders), bilinear resize back up, and a per-pixel blend with the
person mask; a test checks that the two agree on the CPU.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from avatars.pipeline.blur import DEFAULT_SIGMA, SHRINK


def _separable(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter (N, C, H, W) float images with the 1-D kernel `taps` along both axes, mirrored borders."""
    channels = images.shape[1]
    radius = len(taps) // 2
    taps = taps.to(images.device, images.dtype)
    horizontal = taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    images = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    images = F.conv2d(images, horizontal, groups=channels)
    images = F.pad(images, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(images, vertical, groups=channels)


def blur_background(frames: torch.Tensor, masks: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Blur the background of `frames` (N, 3, H, W) uint8 outside `masks` (N, 1, H, W) float in
    [0, 1]; returns (N, 3, H, W) uint8 on the frames' device."""
    height, width = frames.shape[-2:]
    images = frames.float()
    # As blur.shrink: 8x8 box averages, leaving out the last width % 8 columns and height % 8 rows.
    small = F.avg_pool2d(images[..., : height // SHRINK * SHRINK, : width // SHRINK * SHRINK], SHRINK)
    small = small.round()  # OpenCV's shrunk copy is 8-bit
    small_sigma = sigma / SHRINK
    # The same kernel OpenCV's GaussianBlur builds for 8-bit images with this sigma.
    ksize = int(round(small_sigma * 3 * 2 + 1)) | 1
    gaussian = torch.from_numpy(cv2.getGaussianKernel(ksize, small_sigma).ravel().astype(np.float32))
    small = _separable(small, gaussian)
    blurred = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    blended = images * masks + blurred * (1.0 - masks)
    return blended.round().clamp(0, 255).to(torch.uint8)


def blur_background_bgr(frame_bgr: np.ndarray, mask: np.ndarray, device: str) -> np.ndarray:
    """One (H, W, 3) uint8 frame through the torch path on `device`; same signature as blur.py's."""
    frames = torch.from_numpy(frame_bgr).to(device).permute(2, 0, 1).unsqueeze(0)
    masks = torch.from_numpy(mask).to(device).unsqueeze(0).unsqueeze(0)
    out = blur_background(frames, masks)
    return out.squeeze(0).permute(1, 2, 0).contiguous().cpu().numpy()
