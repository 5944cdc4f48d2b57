"""The background blur of blur.py as torch tensor operations, for a CUDA device.

On the CPU, OpenCV is faster (measured here: torch's CPU blur is ~10x slower), so the pipeline
uses this module only when the compute device is a GPU. Both compute the same thing: pyramid
steps down (5-tap binomial filter, mirrored borders), a Gaussian, bilinear resize back up, and a
per-pixel blend with the person mask; a test checks that the two agree on the CPU.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from avatars.pipeline.blur import DEFAULT_SIGMA, PYRAMID_STEPS

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _separable(images: torch.Tensor, taps: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Filter (N, C, H, W) float images with the 1-D kernel `taps` along both axes, mirrored borders."""
    channels = images.shape[1]
    radius = len(taps) // 2
    taps = taps.to(images.device, images.dtype)
    horizontal = taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    images = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    images = F.conv2d(images, horizontal, groups=channels, stride=(1, stride))
    images = F.pad(images, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(images, vertical, groups=channels, stride=(stride, 1))


def blur_background(frames: torch.Tensor, masks: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Blur the background of `frames` (N, 3, H, W) uint8 outside `masks` (N, 1, H, W) float in
    [0, 1]; returns (N, 3, H, W) uint8 on the frames' device."""
    height, width = frames.shape[-2:]
    images = frames.float()
    small = images
    for _ in range(PYRAMID_STEPS):
        small = _separable(small, _BINOMIAL, stride=2)
    small_sigma = sigma / 2**PYRAMID_STEPS
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
