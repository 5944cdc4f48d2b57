"""From sparse face detections to one steady crop box per frame, online.

Detection runs on a subset of frames. The tracker fills the frames between detections by
interpolation, holds the last box through misses, and smooths centres and size over time with
a centred Gaussian, so the crop neither jitters nor lags. Smoothing needs a little of the future:
a frame's box is final once the track is known `radius` frames past it, so the caller keeps only
that many frames in memory, whatever the video's length. Pure NumPy: no I/O, no OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.pipeline.detect import FaceBox
from avatars.pipeline.head import YUNET_HEAD, HeadGeometry

# The crop is the head's square (see head.py) with this margin for tracking error. With the Haar
# cascade's box this is the crop it always had: 1.7x the box, moved down by a tenth of it.
CROP_MARGIN = 1.1
LANDMARK_COUNT = 5
# What the tracker follows per frame: the head square (cx, cy, side), then the facial points
# (x, y) x 5, NaN when the detector gives none.
_HEAD = slice(0, 3)
_POINTS = slice(3, 3 + 2 * LANDMARK_COUNT)


def track_values(face: FaceBox, head: HeadGeometry = YUNET_HEAD) -> np.ndarray:
    """The values the tracker interpolates and smooths for one detected face."""
    values = np.full(3 + 2 * LANDMARK_COUNT, np.nan)
    values[_HEAD] = head.square(face)
    if face.landmarks is not None:
        values[_POINTS] = face.landmarks
    return values


class FaceAssociator:
    """Picks, among a frame's detections, the one that continues the tutor's face track.

    Haar cascades fire on faces that are not there (a helmet rim, a poster), with fewer
    neighbours than a real face; such a box often persists while the real face is covered. So a
    detection is accepted if it continues the track (near the last face, of similar size), or
    else if it is at least half as sure as the faces accepted so far by the same kind of search:
    a search near the last face tries fewer sizes, so even a real face collects fewer neighbours
    there (measured: ~10 against ~30), and one typical score for both let a false face through.
    """

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self.last: FaceBox | None = None
        self.last_index = -1
        self.scores: dict[bool, list[float]] = {True: [], False: []}  # by full_search

    def _typical_score(self, full_search: bool) -> float:
        scores = self.scores[full_search]
        return float(np.median(scores[-50:])) if scores else 0.0

    def _continues(self, candidate: FaceBox, index: int) -> bool:
        last = self.last
        assert last is not None
        frames = index - self.last_index
        reach = min(1.0, 0.5 + 0.02 * frames) * last.size
        distance = float(np.hypot(candidate.cx - last.cx, candidate.cy - last.cy))
        return distance <= reach and 0.67 <= candidate.size / last.size <= 1.5

    def choose(self, index: int, candidates: list[FaceBox], full_search: bool = True) -> FaceBox | None:
        """The face of frame `index` among `candidates` (surest first; from a search of the whole
        frame, or of the region near the last face), or None."""
        if not candidates:
            return None
        typical = self._typical_score(full_search)
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
            self.scores[full_search].append(pick.score)
        return pick


def gaussian_kernel(sigma_frames: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma_frames)))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / max(sigma_frames, 1e-6)) ** 2)
    return kernel / kernel.sum()


@dataclass(frozen=True)
class TrackedBox:
    """A frame's smoothed head square (centre and side, full-frame pixels), its square crop box,
    and its smoothed facial points ((5, 2) float array, NaN without them)."""

    cx: float
    cy: float
    size: float
    crop: tuple[int, int, int, int]  # (y1, y2, x1, x2)
    landmarks: np.ndarray
    # The face the background blur's person shape is drawn around: the detector box's centre, and
    # its size in the Haar cascade's terms (brow to lower lip), which the shape was drawn for.
    face_cy: float
    face_size: float

    @property
    def face_cx(self) -> float:
        return self.cx


class FaceTracker:
    """Online face track of one video: feed it every frame's detection result in order, read back
    final boxes as soon as they are known.

    Frames are filled in as soon as the track there is settled: between two detections by linear
    interpolation; while the face is missing, by holding the last box once `detect_every` frames
    have passed without a detection (so the caller's frame buffer stays short even through long
    misses). Whether a frame counts as showing a face is decided separately, from the accepted
    detections: misses up to `max_gap` frames are bridged, longer runs are frames without a face.
    """

    def __init__(self, fps: float, frame_width: int, frame_height: int, detect_every: int, max_gap: int,
                 centre_sigma_s: float = 0.08, size_sigma_s: float = 0.3, head: HeadGeometry = YUNET_HEAD) -> None:
        self.width, self.height = frame_width, frame_height
        self.head = head
        self.detect_every = max(1, detect_every)
        self.max_gap = max(max_gap, self.detect_every)
        self.associator = FaceAssociator(self.max_gap)
        self._centre_kernel = gaussian_kernel(centre_sigma_s * fps)
        self._size_kernel = gaussian_kernel(size_sigma_s * fps)
        self.radius = (max(len(self._centre_kernel), len(self._size_kernel)) - 1) // 2
        self._values: list[np.ndarray] = []  # raw track_values(), frames 0..filled
        self.detected: list[int] = []  # frames whose detection was accepted
        self.faces: dict[int, FaceBox] = {}
        self.frames_seen = 0
        self._finished = False

    # --- feeding ------------------------------------------------------------------------------

    def seed(self, index: int, face: FaceBox) -> None:
        """Start the track with the first face, found at frame `index` by a search ahead: the
        frames before it take its box (they count as frames without a face if too many)."""
        self.associator.choose(index, [face])
        self.faces[index] = face
        self._values.extend([track_values(face, self.head)] * (index + 1))

    @property
    def last_face(self) -> FaceBox | None:
        """The last accepted face while the track is fresh: where to search next."""
        assoc = self.associator
        if assoc.last is not None and self.frames_seen - 1 - assoc.last_index <= self.max_gap:
            return assoc.last
        return None

    def add(self, index: int, candidates: list[FaceBox] | None, full_search: bool = True) -> FaceBox | None:
        """Frame `index` (the next one) with the detector's faces, or None when no detection ran;
        `full_search` says whether the detector searched the whole frame or near the last face.
        Returns the face accepted for this frame, if any."""
        assert index == self.frames_seen, "frames must be added in order"
        self.frames_seen += 1
        if index in self.faces:  # the seeding face: its frames are filled already
            self.detected.append(index)
            return self.faces[index]
        chosen = self.associator.choose(index, candidates, full_search) if candidates is not None else None
        if chosen is not None:
            self.faces[index] = chosen
            self.detected.append(index)
            self._fill_to(index, track_values(chosen, self.head))
        elif self._values and index - (len(self._values) - 1) > self.detect_every:
            # Missing for a while: hold the last box rather than keep frames waiting for the face.
            self._fill_to(index - self.detect_every, self._values[-1])
        return chosen

    def _fill_to(self, index: int, value: np.ndarray) -> None:
        if not self._values:
            # Frames before the first face take its box.
            self._values.extend([value] * (index + 1))
            return
        start = len(self._values) - 1
        previous = self._values[start]
        steps = index - start
        if np.isnan(previous[_POINTS]).any() != np.isnan(value[_POINTS]).any():
            # Points on one side only: hold what is known rather than interpolate towards NaN.
            known = value if np.isnan(previous[_POINTS]).any() else previous
            previous, value = previous.copy(), value.copy()
            previous[_POINTS] = value[_POINTS] = known[_POINTS]
        for step in range(1, steps + 1):
            self._values.append(previous + (value - previous) * (step / steps))

    def finish(self) -> None:
        """The video has ended: hold the last box to the last frame, and let the end reflect."""
        if self._values and len(self._values) < self.frames_seen:
            self._fill_to(self.frames_seen - 1, self._values[-1])
        self._finished = True

    # --- reading ------------------------------------------------------------------------------

    def final_through(self) -> int:
        """The last frame whose smoothed box can no longer change."""
        if not self._values:
            return -1
        settled = len(self._values) - 1 if self._finished else len(self._values) - 1 - self.radius
        return min(settled, self.frames_seen - 1)

    def box(self, index: int) -> TrackedBox:
        """The smoothed face and crop box of frame `index` (at most final_through())."""
        values = np.asarray(self._window(index, len(self._size_kernel) // 2))
        # Every column with the centre's kernel in one product (facial points move with the head;
        # a NaN column stays NaN), the size with its own: ~0.1 ms a frame against ~0.35 column by column.
        centred = self._smooth(values, self._centre_kernel)
        cx, cy = float(centred[0]), float(centred[1])
        size = float(self._smooth(values[:, 2], self._size_kernel))
        points = centred[_POINTS].reshape(LANDMARK_COUNT, 2)
        box_height = size / self.head.side
        return TrackedBox(cx, cy, size, crop_box(cx, cy, size, self.width, self.height), points,
                          cy - self.head.shift_down * box_height, self.head.haar_size * box_height)

    def _window(self, index: int, radius: int) -> list[np.ndarray]:
        # Mirrored at both ends of the video (numpy's "reflect"): no lag, no pull at the edges.
        last = len(self._values) - 1
        window = []
        for position in range(index - radius, index + radius + 1):
            if position < 0:
                position = min(-position, last)
            elif position > last:
                position = max(2 * last - position, 0)
            window.append(self._values[position])
        return window

    @staticmethod
    def _smooth(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """The kernel applied at the middle row of `values` (a column, or rows of columns)."""
        middle = len(values) // 2
        half = len(kernel) // 2
        return kernel @ values[middle - half : middle + half + 1]

    # --- the verdict --------------------------------------------------------------------------

    def face_mask(self) -> np.ndarray:
        """Per frame, whether a face was seen there (detected, or inside a bridged gap)."""
        total = self.frames_seen
        has_face = np.zeros(total, dtype=bool)
        if not self.detected:
            return has_face
        keys = np.array(self.detected)
        has_face[keys] = True
        for start, end in zip(keys[:-1], keys[1:]):
            if end - start <= self.max_gap:
                has_face[start:end] = True
        if keys[0] <= self.max_gap:
            has_face[: keys[0]] = True
        if total - 1 - keys[-1] <= self.max_gap:
            has_face[keys[-1] :] = True
        return has_face

    def frames_without_face_so_far(self) -> int:
        """A lower bound on the frames without a face, usable before the video ends."""
        if not self.detected:
            return self.frames_seen
        mask = self.face_mask()
        # The open run after the last detection may still be bridged; count it only once it is long.
        open_run = self.frames_seen - 1 - self.detected[-1]
        settled = int((~mask[: self.detected[-1] + 1]).sum())
        return settled + (open_run if open_run > self.max_gap else 0)


def frames_without_face(has_face: np.ndarray) -> list[list[int]]:
    """Runs of frames with no face, as [first, last] index pairs."""
    runs: list[list[int]] = []
    for index in np.flatnonzero(~has_face):
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = int(index)
        else:
            runs.append([int(index), int(index)])
    return runs


def crop_box(cx: float, cy: float, side: float, frame_width: int, frame_height: int) -> tuple[int, int, int, int]:
    """The square crop (y1, y2, x1, x2) around a head square, kept inside the frame.

    A box that would cross the frame's edge is shifted back inside rather than shrunk, so the face
    keeps its scale in the crop; only a box larger than the frame itself is shrunk to fit.
    """
    side = int(min(max(2, round(side * CROP_MARGIN)), frame_width, frame_height))
    x1 = int(round(cx - side / 2))
    y1 = int(round(cy - side / 2))
    x1 = min(max(x1, 0), frame_width - side)
    y1 = min(max(y1, 0), frame_height - side)
    return (y1, y1 + side, x1, x1 + side)
