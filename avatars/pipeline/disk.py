"""How much disk a prepared avatar will take, before it is made: the check that keeps a job from
filling the disk halfway and failing there.

Measured on 2 s clips of the synthetic tutor over its noisy textured background (the worst case
for compression; real backgrounds compress better): full frames at JPEG quality 95 took 0.38 to
0.45 bytes a pixel without blur, 0.12 to 0.16 with; the 256-pixel PNG face crops 84 to 90 KB
each (1.3 to 1.4 bytes a pixel). The estimate rounds those up: 0.5 bytes a pixel for JPEG, 2 for
PNG frames, 1.5 for crops, plus 1 MB for the rest (coordinates, points, preview, manifest).
"""

from __future__ import annotations

BYTES_PER_PIXEL = {"jpg": 0.5, "png": 2.0}
CROP_BYTES_PER_PIXEL = 1.5
FIXED_BYTES = 1024 * 1024


def estimated_output_bytes(width: int, height: int, frame_count: int, frame_format: str = "jpg",
                           crop_size: int = 256) -> int:
    per_frame = width * height * BYTES_PER_PIXEL.get(frame_format, 2.0) + crop_size * crop_size * CROP_BYTES_PER_PIXEL
    return int(frame_count * per_frame) + FIXED_BYTES
