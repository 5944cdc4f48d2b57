"""Face detectors. The pipeline talks to the FaceDetector interface only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """A detected face in full-frame pixels; `score` orders faces by confidence (higher is surer;
    each detector has its own scale)."""

    x: float
    y: float
    w: float
    h: float
    score: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def size(self) -> float:
        return (self.w + self.h) / 2


class FaceDetector(Protocol):
    name: str

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        """Faces in one (H, W, 3) uint8 BGR frame, surest first; empty when there is none.

        `near`, when given, is where the face was a moment ago: a detector may search only
        around it, at about its size (the caller runs a full search when it needs one).
        """


def working_height(min_face_height: float) -> int:
    """The smallest detection height at which a face of `min_face_height` (share of the frame
    height) still fills the Haar cascade's 24-pixel window, with a little margin."""
    return int(min(480, max(120, np.ceil(26 / max(min_face_height, 0.01)))))


class HaarFaceDetector:
    """The frontal-face Haar cascade that opencv-python ships: no download, runs on any CPU.

    A full search runs on a grey, equalised copy of the whole frame whose shorter side is
    `detect_height` pixels: ~30 ms of CPU for a 720p frame there against ~100 ms at full size.
    Equalising makes the cascade far less sensitive to exposure and brightness drift. A search
    near the last face converts and scales only the region around it, so that the face is about
    NEAR_FACE_PX pixels tall whatever its size in the frame, equalises it with the whole frame's
    table, and tries only sizes the tracker would accept as the same face: measured here, ~2.5 ms
    of CPU against ~12 ms when it scaled the whole frame first. A face the near search misses is
    looked for by a full search (the caller's job), so a narrow search costs no faces. Faces are
    ranked by the cascade's neighbour count rather than by size: measured here, the largest box
    picked a shirt collar in 24 of 500 frames, the box with the most neighbours was right in 499.
    """

    name = "opencv-haar-frontalface-default"
    WINDOW = 24  # the cascade's own window, in pixels
    # Near searches: the region (in face sizes either side of the last centre: room for the
    # largest size tried plus half a face of movement since the last search), the face's size in
    # the searched image, and the range of sizes tried (within the tracker's "same face" range).
    NEAR_REACH = 1.2
    NEAR_FACE_PX = 32
    NEAR_SIZES = (0.75, 1.35)

    def __init__(self, detect_height: int = 160) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade could not be loaded from {path}")
        self.detect_height = detect_height

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        height, width = frame_bgr.shape[:2]
        if near is None:
            x0, y0, x1, y1 = 0, 0, width, height
            scale = min(1.0, self.detect_height / min(width, height))
            min_side, max_side = self.WINDOW, 0
        else:
            reach = self.NEAR_REACH * near.size
            x0, y0 = max(0, int(near.cx - reach)), max(0, int(near.cy - reach))
            x1, y1 = min(width, int(near.cx + reach) + 1), min(height, int(near.cy + reach) + 1)
            scale = min(1.0, self.NEAR_FACE_PX / max(near.size, 1.0))
            side = near.size * scale
            min_side = max(self.WINDOW, int(self.NEAR_SIZES[0] * side))
            max_side = int(self.NEAR_SIZES[1] * side) + 1
            if x1 <= x0 or y1 <= y0:
                return []
        grey = cv2.cvtColor(frame_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        # Near searches equalise with the whole frame's table: equalising the region on its own
        # made the cascade fire on a hand covering the face (measured on the covered-face video).
        grey = cv2.equalizeHist(grey) if near is None else cv2.LUT(grey, _equalisation_table(frame_bgr))
        if grey.shape[0] < min_side or grey.shape[1] < min_side:
            return []
        boxes, neighbours = self._cascade.detectMultiScale2(
            grey, scaleFactor=1.1, minNeighbors=4, minSize=(min_side, min_side), maxSize=(max_side, max_side)
        )
        if len(boxes) == 0:
            return []
        faces = [
            FaceBox(x / scale + x0, y / scale + y0, w / scale, h / scale, float(n))
            for (x, y, w, h), n in zip(boxes, np.ravel(neighbours))
        ]
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces


def _equalisation_table(frame_bgr: np.ndarray, step: int = 4) -> np.ndarray:
    """The 256-entry table that histogram-equalises this frame's grey levels, made from every
    `step`-th pixel each way (for 720p, 57,600 pixels: a fraction of a millisecond)."""
    sample = cv2.cvtColor(np.ascontiguousarray(frame_bgr[::step, ::step]), cv2.COLOR_BGR2GRAY)
    cdf = np.cumsum(np.bincount(sample.ravel(), minlength=256))
    lowest = cdf[np.flatnonzero(cdf)[0]]
    spread = max(1, int(cdf[-1] - lowest))
    return np.clip(np.round((cdf - lowest) * (255.0 / spread)), 0, 255).astype(np.uint8)


class YuNetFaceDetector:
    """OpenCV's YuNet face detector (a small CNN, far better than Haar at angles and in poor
    light), for operators who have its ONNX file (face_detection_yunet_*.onnx); nothing here
    downloads it. It always searches the whole frame; it is fast enough to."""

    name = "opencv-yunet"

    def __init__(self, model_path: str | os.PathLike, detect_height: int = 320, score_threshold: float = 0.7) -> None:
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"YuNet model file not found: {model_path}")
        self.model_path = os.fspath(model_path)
        self.detect_height = detect_height
        self._detector = cv2.FaceDetectorYN.create(self.model_path, "", (320, 320), score_threshold, 0.3, 50)
        self._input_size: tuple[int, int] | None = None

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, self.detect_height / min(width, height))
        small = frame_bgr if scale == 1.0 else cv2.resize(
            frame_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, rows = self._detector.detect(small)
        if rows is None:
            return []
        faces = [FaceBox(r[0] / scale, r[1] / scale, r[2] / scale, r[3] / scale, float(r[14])) for r in rows]
        faces.sort(key=lambda face: face.score, reverse=True)
        return faces


def make_detector(model_path: str | None, min_face_height: float) -> FaceDetector:
    """YuNet when a model file is named, else the Haar cascade sized for `min_face_height`."""
    if model_path:
        return YuNetFaceDetector(model_path)
    return HaarFaceDetector(detect_height=working_height(min_face_height))
