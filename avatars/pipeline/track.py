"""From sparse face detections to one steady crop box per frame.

Detection runs on a subset of frames; here the gaps are filled by interpolation, short misses
are bridged, long ones are counted as frames without a face, and the boxes are smoothed over time
so the crop does not jitter. Pure NumPy: no I/O, no OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.pipeline.detect import FaceBox

# The Haar box spans roughly brow to lower lip. Relative to its centre and side s, a face
# (forehead to chin) spans about -0.62 s to +0.72 s vertically: the crop is moved down a little
# and padded so forehead and chin stay inside with a margin for tracking error.
CROP_SCALE = 1.7
CROP_SHIFT_DOWN = 0.1


@dataclass(frozen=True)
class FaceTrack:
    """Per-frame face centre and side (float arrays of length N) and whether a face was seen
    there (detected, or inside a bridged gap)."""

    cx: np.ndarray
    cy: np.ndarray
    size: np.ndarray
    has_face: np.ndarray

    @property
    def face_ratio(self) -> float:
        return float(self.has_face.mean()) if len(self.has_face) else 0.0

    def frames_without_face(self) -> list[list[int]]:
        """Runs of frames with no face, as [first, last] index pairs."""
        runs: list[list[int]] = []
        for index in np.flatnonzero(~self.has_face):
            if runs and runs[-1][1] == index - 1:
                runs[-1][1] = int(index)
            else:
                runs.append([int(index), int(index)])
        return runs


class FaceAssociator:
    """Picks, among a frame's detections, the one that continues the tutor's face track.

    Haar cascades fire on faces that are not there (a helmet rim, a poster), with fewer
    neighbours than a real face; such a box often persists while the real face is covered. So a
    detection is accepted if it continues the track (near the last face, of similar size), or
    else if it is at least half as sure as the faces accepted so far. Decisions are online,
    because the first pass uses them to decide where to run the detector next.
    """

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.last: FaceBox | None = None
        self.last_index = -1
        self.scores: list[float] = []

    def _typical_score(self) -> float:
        return float(np.median(self.scores[-50:])) if self.scores else 0.0

    def _continues(self, candidate: FaceBox, index: int) -> bool:
        last = self.last
        assert last is not None
        frames = index - self.last_index
        reach = min(1.0, 0.5 + 0.02 * frames) * last.size
        distance = float(np.hypot(candidate.cx - last.cx, candidate.cy - last.cy))
        return distance <= reach and 0.67 <= candidate.size / last.size <= 1.5

    def choose(self, index: int, candidates: list[FaceBox]) -> FaceBox | None:
        """The face of frame `index` among `candidates` (surest first), or None."""
        if not candidates:
            return None
        typical = self._typical_score()
        best = candidates[0]
        fresh = self.last is not None and index - self.last_index <= self.max_gap
        near = [c for c in candidates if self._continues(c, index)] if fresh else []
        pick = near[0] if near else None
        if pick is None or (best is not pick and best.score >= 2 * pick.score):
            # Nothing continues the track (the face moved fast, or came back), or something far
            # stronger is elsewhere: take the surest face only if it is as sure as a real one.
            pick = best if best.score >= 0.5 * typical else pick
        if pick is not None:
            self.last, self.last_index = pick, index
            self.scores.append(pick.score)
        return pick


def build_track(detections: dict[int, FaceBox], frame_count: int, max_gap: int) -> FaceTrack:
    """Interpolate `detections` (frame index → face) over `frame_count` frames.

    Frames between two detections at most `max_gap` frames apart count as having a face (a blink,
    a hand passing); frames in longer gaps, or further than `max_gap` from the first or last
    detection, do not, but still get an interpolated box so every frame can be cropped.
    """
    if frame_count <= 0:
        raise ValueError("frame_count must be positive")
    if not detections:
        zeros = np.zeros(frame_count)
        return FaceTrack(zeros, zeros.copy(), zeros.copy(), np.zeros(frame_count, dtype=bool))
    keys = np.array(sorted(detections))
    frames = np.arange(frame_count)
    cx = np.interp(frames, keys, [detections[k].cx for k in keys])
    cy = np.interp(frames, keys, [detections[k].cy for k in keys])
    size = np.interp(frames, keys, [detections[k].size for k in keys])

    has_face = np.zeros(frame_count, dtype=bool)
    has_face[keys] = True
    for start, end in zip(keys[:-1], keys[1:]):
        if end - start <= max_gap:
            has_face[start:end] = True
    if keys[0] <= max_gap:
        has_face[: keys[0]] = True
    if frame_count - 1 - keys[-1] <= max_gap:
        has_face[keys[-1] :] = True
    return FaceTrack(cx, cy, size, has_face)


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing along the time axis, edges mirrored (no lag, no edge pull)."""
    if sigma <= 0 or len(values) < 2:
        return values.astype(float)
    radius = max(1, int(3 * sigma))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values.astype(float), radius, mode="reflect" if len(values) > radius else "edge")
    return np.convolve(padded, kernel, mode="valid")


def smooth_track(track: FaceTrack, fps: float, centre_sigma_s: float = 0.08, size_sigma_s: float = 0.5) -> FaceTrack:
    """Smooth centres lightly (they follow the head) and the side strongly (a face's size changes
    slowly, and a breathing crop looks worse than a slightly loose one)."""
    return FaceTrack(
        gaussian_smooth(track.cx, centre_sigma_s * fps),
        gaussian_smooth(track.cy, centre_sigma_s * fps),
        gaussian_smooth(track.size, size_sigma_s * fps),
        track.has_face,
    )


def crop_boxes(track: FaceTrack, frame_width: int, frame_height: int) -> np.ndarray:
    """Square crop boxes as an (N, 4) int array of (y1, y2, x1, x2), kept inside the frame.

    A box that would cross the frame's edge is shifted back inside rather than shrunk, so the face
    keeps its scale in the crop; only a box larger than the frame itself is shrunk to fit.
    """
    side = np.minimum(np.round(track.size * CROP_SCALE), min(frame_width, frame_height)).astype(int)
    side = np.maximum(side, 2)
    x1 = np.round(track.cx - side / 2).astype(int)
    y1 = np.round(track.cy + CROP_SHIFT_DOWN * track.size - side / 2).astype(int)
    x1 = np.clip(x1, 0, frame_width - side)
    y1 = np.clip(y1, 0, frame_height - side)
    return np.stack([y1, y1 + side, x1, x1 + side], axis=1)
