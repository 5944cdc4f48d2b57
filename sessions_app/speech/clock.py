"""One media clock per session, with audio as its master.

Video frame i covers audio samples [i*rate/fps, (i+1)*rate/fps) (rounded down), so a frame's
presentation time and its audio's agree to one sample, however the rate and fps divide.
"""

from __future__ import annotations

import math


def frame_samples(index: int, rate: int, fps: float) -> tuple[int, int]:
    """The audio samples [start, end) that video frame `index` covers."""
    return math.floor(index * rate / fps), math.floor((index + 1) * rate / fps)


def pts_us(sample: int, rate: int) -> int:
    """The presentation time (microseconds) of audio sample `sample`; frame i's is that of its first sample."""
    return sample * 1_000_000 // rate
