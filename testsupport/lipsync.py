"""Lip-sync without a sync model: does the mouth move when the sound is loud, and how many frames
apart? Pure numpy, so a test and a benchmark can share it.

- `mouth_box` places a box over the mouth and jaw from the avatar's five facial points
  (landmarks.npy: eye, eye, nose tip, mouth corner, mouth corner).
- `mouth_motion` gives one number per video frame: the mean absolute difference of its mouth box
  from a reference crop. With the idle frame at the same avatar index as reference, that number is
  how far the mouth is drawn open (head motion of the idle loop cancels out); without one, it is
  the change from the previous frame (which also counts head motion: use it on still avatars).
- `envelope_per_frame` gives the RMS loudness of each video frame's own audio samples.
- `best_lag` correlates the two over a range of frame lags.

Lag convention: at lag L, motion[t] is paired with envelope[t - L]. A positive best lag means the
mouth moves L frames *after* the sound (video late), a negative one *before* it (video early).
NaN marks a frame to leave out (no face, or not part of an utterance); pairs with a NaN are skipped,
so several utterances can be laid end to end with NaN between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The box, in mouth widths (distance between the mouth corners) from the mouth centre: wide
# enough for the corners and cheeks, tall enough for the lower lip and the jaw when they drop.
BOX_SIDE = 0.7
BOX_UP = 0.25
BOX_DOWN = 1.0


def mouth_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the mouth region in an image of `shape`, from one frame's (5, 2) facial
    points in pixels; None when the points are missing (NaN) or the mouth is too small to see."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (5, 2) or np.isnan(points).any():
        return None
    left, right = points[3], points[4]
    width = float(np.linalg.norm(right - left))
    if width < 4:
        return None
    cx, cy = (left + right) / 2
    height, image_width = shape[:2]
    x0, x1 = max(0, int(cx - BOX_SIDE * width)), min(image_width, int(np.ceil(cx + BOX_SIDE * width)))
    y0, y1 = max(0, int(cy - BOX_UP * width)), min(height, int(np.ceil(cy + BOX_DOWN * width)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return y0, y1, x0, x1


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1]


def mouth_motion(crops: Sequence[np.ndarray | None], reference: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Per frame, the mean absolute difference (grey levels) of its mouth crop from `reference`'s
    crop of the same position, or, without `reference`, from the previous frame's crop (the first
    frame is then NaN). A missing crop (None) or a size mismatch gives NaN."""
    out = np.full(len(crops), np.nan)
    for index, current in enumerate(crops):
        if reference is not None:
            other = reference[index]
        else:
            other = crops[index - 1] if index > 0 else None
        if current is None or other is None or current.shape != other.shape:
            continue
        out[index] = float(np.abs(current.astype(np.int16) - other.astype(np.int16)).mean())
    return out


def envelope_per_frame(frames: Sequence[np.ndarray | None]) -> np.ndarray:
    """RMS (int16 scale) of each video frame's audio samples; NaN where a frame has none."""
    out = np.full(len(frames), np.nan)
    for index, samples in enumerate(frames):
        if samples is not None and len(samples):
            out[index] = float(np.sqrt(np.mean(np.asarray(samples, dtype=np.float64) ** 2)))
    return out


def correlation_at(motion: np.ndarray, envelope: np.ndarray, lag: int) -> float:
    """Pearson correlation of motion[t] with envelope[t - lag] over the pairs with no NaN (NaN when
    fewer than 3 pairs, or either side is constant)."""
    motion, envelope = np.asarray(motion, np.float64), np.asarray(envelope, np.float64)
    if len(motion) != len(envelope):
        raise ValueError("motion and envelope must have one value per frame each")
    count = len(motion)
    if lag >= 0:
        a, b = motion[lag:], envelope[:count - lag]
    else:
        a, b = motion[:count + lag], envelope[-lag:]
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def correlation_by_lag(motion: np.ndarray, envelope: np.ndarray, max_lag: int) -> dict[int, float]:
    return {lag: correlation_at(motion, envelope, lag) for lag in range(-max_lag, max_lag + 1)}


def best_lag(motion: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag, correlation) with the highest correlation for lags -max_lag..max_lag (see the module's
    lag convention); (0, nan) when no lag can be measured."""
    by_lag = {lag: corr for lag, corr in correlation_by_lag(motion, envelope, max_lag).items() if not np.isnan(corr)}
    if not by_lag:
        return 0, float("nan")
    lag = max(by_lag, key=lambda candidate: (by_lag[candidate], -abs(candidate)))
    return lag, by_lag[lag]
