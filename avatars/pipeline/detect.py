"""Face detectors. The pipeline talks to the FaceDetector interface only.

Two detectors, chosen by name (`make_detector`):

- ``yunet`` (the default): the YuNet CNN of libfacedetection, compiled into the ``yuface`` wheel
  (BSD-3; the model is inside its library, nothing is downloaded). It finds real faces that the
  Haar cascade misses and gives five facial points per face. Measured here on 600 frames of real
  people (``bench/detector_bench.py``): recall 0.93 searching whole frames and 1.00 near the last
  face, against the cascade's 0.61 and 0.38; no false faces, against the cascade's 0.13 a frame.
  With ``AVATAR_FACE_MODEL`` naming a YuNet ONNX file, the same network runs through OpenCV's
  ``FaceDetectorYN`` instead (for operators who want another YuNet release).
- ``haar``: the frontal-face Haar cascade that opencv-python ships, kept as a fallback: it misses
  turned, tilted and partly covered faces, finds false ones, and gives no facial points.

Every detector runs on the CPU: detection is a small share of a frame's cost (a full search every
2 s, a search near the last face every 5th frame), so a GPU would not pay for the copies.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

DETECTORS = ("yunet", "haar")


@dataclass(frozen=True)
class FaceBox:
    """A detected face in full-frame pixels; `score` orders faces by confidence (higher is surer;
    each detector has its own scale). `landmarks`, when the detector gives them, are five points
    (x, y) in full-frame pixels, as ten floats: the eye on the image's left, the other eye, the
    nose tip, the mouth corner on the image's left, the other mouth corner."""

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: tuple[float, ...] | None = None

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
    head: str  # "yunet" or "haar": how its boxes relate to the head (head.py)

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        """Faces in one (H, W, 3) uint8 BGR frame, surest first; empty when there is none.

        `near`, when given, is where the face was a moment ago: a detector may search only
        around it, at about its size (the caller runs a full search when it needs one).
        """


@dataclass(frozen=True)
class _Window:
    """The part of a frame a search looks at, and the scale it is searched at."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def _near_window(near: FaceBox, width: int, height: int, reach: float, face_px: float) -> _Window:
    """The square `reach` face sizes either side of the last face's centre, clipped to the frame,
    scaled so that the face is about `face_px` pixels."""
    half = reach * near.size
    x0, y0 = max(0, int(near.cx - half)), max(0, int(near.cy - half))
    x1, y1 = min(width, int(near.cx + half) + 1), min(height, int(near.cy + half) + 1)
    return _Window(x0, y0, x1, y1, min(1.0, face_px / max(near.size, 1.0)))


def _cut(frame: np.ndarray, window: _Window, grey: bool = False, area: bool = False) -> np.ndarray:
    """The window's pixels at its scale: every k-th pixel (k the whole part of 1/scale), then
    bilinear for the rest (less than 2x). Measured on 720p frames: ~1.4 ms for a whole-frame
    search image against ~5.8 ms by area averaging (OpenCV's slow path for factors that are not
    whole numbers), ~0.25 ms against ~1.2 ms for a near search, and YuNet finds the same faces
    (recall on the real-face clips unchanged). `area` averages instead (past 4x down, from every
    k/2-th pixel): the Haar cascade needs it (its near-search recall fell from 0.38 to 0.35)."""
    part = frame[window.y0 : window.y1, window.x0 : window.x1]
    size = (max(1, round((window.x1 - window.x0) * window.scale)),
            max(1, round((window.y1 - window.y0) * window.scale)))
    if window.scale < 1.0:
        step = int(1 / (2 * window.scale)) if area else int(1 / window.scale)
        if step > 1:
            part = part[::step, ::step]
    if grey:
        part = cv2.cvtColor(np.ascontiguousarray(part), cv2.COLOR_BGR2GRAY)
    if window.scale < 1.0:
        part = cv2.resize(np.ascontiguousarray(part), size, interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
    return np.ascontiguousarray(part)


def full_search_scale(short_side: int, min_face_px: float, base_short_side: int = 200,
                      smallest_found_px: float = 12.0) -> float:
    """The scale a whole-frame search runs at: the frame's shorter side at least `base_short_side`
    pixels (faces of 96 pixels at 720p are then ~27 pixels tall, where YuNet scores them ~0.9), and large enough that a face of half the smallest allowed height (`min_face_px`) is
    still `smallest_found_px` pixels tall, so a face somewhat too small is found and named
    `face_too_small` rather than missed. Measured here, YuNet finds faces down to ~14-18 pixels tall."""
    wanted = max(base_short_side / max(short_side, 1), smallest_found_px / max(0.5 * min_face_px, 1.0))
    return min(1.0, wanted)


class _OpenMP:
    """Sets the thread count of the OpenMP runtime that the yuface wheel bundles, for the calling
    thread. Left alone it starts a team of one thread per core, which spin while the writer
    threads want the same two cores: measured here, one thread takes ~35 ms of CPU for a 240-line
    frame, two take ~48 ms between them for ~24 ms of wall time."""

    def __init__(self, package_dir: str) -> None:
        libraries = glob.glob(os.path.join(package_dir, os.pardir, "yuface.libs", "libgomp*"))
        self._set = ctypes.CDLL(libraries[0]).omp_set_num_threads if libraries else None

    def limit(self, threads: int) -> None:
        if self._set is not None:
            self._set(ctypes.c_int(threads))


class _YuNetSearches:
    """How both YuNet detectors search (a whole frame, or the region near the last face, turned
    when it misses); a subclass runs the network on one image (`_search`).

    A full search scales the whole frame (`full_search_scale`): ~25 ms of CPU for a 720p frame
    searched at 356x200 (measured on the real-face clips: recall 0.93, against 0.94 and ~30 ms at
    427x240; the near searches in between find the rest). A search near the last face cuts the
    region NEAR_REACH face sizes either side of it and scales it so the face is NEAR_FACE_PX
    pixels tall (detections there score as high as at full size): ~1.5 ms.

    YuNet finds faces turned up to ~30 degrees in the image plane; a head tilted further (a tilted
    pose and a tilted camera add up) is missed. A near search that finds nothing therefore looks
    again with the region turned by ±TURN_DEG (~1.5 ms each, only on such misses), and maps what it
    finds back.
    """

    head = "yunet"  # its box's relation to the head: head.py
    # The near search's image is ~95 pixels square: YuNet pads its input to multiples of 32, and
    # measured here 96 pixels cost ~1.4 ms against ~2.6 ms for 104-128.
    NEAR_REACH = 1.35
    NEAR_FACE_PX = 35.0
    TURN_DEG = 30.0
    min_face_px: float
    # Set: full searches run at this longer side (or full size), for a close look at small faces.
    fine_long_side: int | None = None

    def _full_scale(self, width: int, height: int) -> float:
        if self.fine_long_side:
            return min(1.0, self.fine_long_side / max(width, height))
        return full_search_scale(min(width, height), self.min_face_px)

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        height, width = frame_bgr.shape[:2]
        if near is None:
            window = _Window(0, 0, width, height, self._full_scale(width, height))
        else:
            window = _near_window(near, width, height, self.NEAR_REACH, self.NEAR_FACE_PX)
            if window.empty:
                return []
        image = _cut(frame_bgr, window)
        if image.shape[0] < 16 or image.shape[1] < 16:
            return []
        faces = self._search(image, window)
        if not faces and near is not None:
            for angle in (self.TURN_DEG, -self.TURN_DEG):
                faces = _search_turned(image, window, angle, self._search)
                if faces:
                    break
        return faces

    def _search(self, image: np.ndarray, window: _Window) -> list[FaceBox]:
        raise NotImplementedError


class YuNetFaceDetector(_YuNetSearches):
    """YuNet from the `yuface` wheel: five facial points per face, CPU only. Faces scoring under
    `min_score` (0-1) are dropped: real faces scored 0.77-0.95 here down to 18 pixels tall, a
    cat's face at most 0.49."""

    name = "yunet-libfacedetection"

    def __init__(self, min_face_px: float = 96.0, min_score: float = 0.6, threads: int = 1,
                 fine_long_side: int | None = None) -> None:
        import yuface
        from yuface.yuface import detect as raw_detect

        self._raw_detect = raw_detect
        self._openmp = _OpenMP(os.path.dirname(yuface.__file__))
        self.min_face_px = min_face_px
        self.min_score = min_score
        self.threads = threads
        self.fine_long_side = fine_long_side

    def _search(self, image: np.ndarray, window: _Window) -> list[FaceBox]:
        # Per calling thread: the pipeline calls from its decoding thread, the tests from theirs.
        self._openmp.limit(self.threads)
        return _faces_from_rows(self._raw_detect(image), window, score_column=0, score_scale=0.01,
                                min_score=self.min_score, box_columns=slice(1, 5), landmark_columns=slice(5, 15))


class YuNetOnnxFaceDetector(_YuNetSearches):
    """YuNet through OpenCV's FaceDetectorYN, for operators who name an ONNX file of it
    (face_detection_yunet_*.onnx, `AVATAR_FACE_MODEL`); nothing here downloads it. Not run by the
    tests (no model file ships in a package); it shares every search with YuNetFaceDetector."""

    name = "opencv-yunet-onnx"

    def __init__(self, model_path: str | os.PathLike, min_face_px: float = 96.0, min_score: float = 0.6) -> None:
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"YuNet model file not found: {model_path}")
        self.model_path = os.fspath(model_path)
        self.min_face_px = min_face_px
        self._detector = cv2.FaceDetectorYN.create(self.model_path, "", (320, 320), min_score, 0.3, 50)
        self._input_size: tuple[int, int] | None = None

    def _search(self, image: np.ndarray, window: _Window) -> list[FaceBox]:
        size = (image.shape[1], image.shape[0])
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, rows = self._detector.detect(image)
        if rows is None:
            return []
        return _faces_from_rows(rows, window, score_column=14, score_scale=1.0, min_score=0.0,
                                box_columns=slice(0, 4), landmark_columns=slice(4, 14))


def _search_turned(image: np.ndarray, window: _Window, angle: float,
                   search: Callable[[np.ndarray, _Window], list[FaceBox]]) -> list[FaceBox]:
    """Search `image` turned by `angle` degrees about its centre; faces come back in frame pixels,
    upright boxes of the same size around the turned-back centres, points turned back. (YuNet's
    points barely follow a turn, so these are rough: measured on the astronaut searched turned by
    30 degrees, the mouth corners within 7 pixels of a 113-pixel face, the eyes within ~30.)"""
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(image, turn, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(turn)
    found = search(turned, _Window(0, 0, width, height, 1.0))  # in the turned image's pixels
    faces = []
    for face in found:
        points = np.array((face.cx, face.cy) + (face.landmarks or ()), float).reshape(-1, 2)
        points = points @ back[:, :2].T + back[:, 2]
        points = points / window.scale + (window.x0, window.y0)
        w, h = face.w / window.scale, face.h / window.scale
        (cx, cy), rest = points[0], points[1:]
        faces.append(FaceBox(float(cx - w / 2), float(cy - h / 2), w, h, face.score,
                             tuple(float(v) for v in rest.ravel()) if face.landmarks else None))
    return faces


def _faces_from_rows(rows: np.ndarray, window: _Window, *, score_column: int, score_scale: float,
                     min_score: float, box_columns: slice, landmark_columns: slice) -> list[FaceBox]:
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return []
    faces = []
    for row in rows.reshape(len(rows), -1):
        score = row[score_column] * score_scale
        if score < min_score:
            continue
        x, y, w, h = (float(v) for v in row[box_columns])
        points = row[landmark_columns].copy()
        points[0::2] = points[0::2] / window.scale + window.x0
        points[1::2] = points[1::2] / window.scale + window.y0
        faces.append(FaceBox(x / window.scale + window.x0, y / window.scale + window.y0, w / window.scale,
                             h / window.scale, float(score), tuple(float(v) for v in points)))
    faces.sort(key=lambda face: face.score, reverse=True)
    return faces


def haar_working_height(min_face_height: float) -> int:
    """The smallest detection height at which a face of `min_face_height` (share of the frame
    height) still fills the Haar cascade's 24-pixel window, with a little margin."""
    return int(min(480, max(120, np.ceil(26 / max(min_face_height, 0.01)))))


class HaarFaceDetector:
    """The frontal-face Haar cascade that opencv-python ships: no download, runs on any CPU, no
    facial points. Measured on real people's videos it finds about half of the faces YuNet finds
    (turned, tilted past ~15 degrees, glasses with a cap, an open mouth): a fallback only.

    A full search runs on a grey, equalised copy of the whole frame whose shorter side is
    `detect_height` pixels: ~30 ms of CPU for a 720p frame there against ~100 ms at full size.
    Equalising makes the cascade far less sensitive to exposure and brightness drift. A search
    near the last face converts and scales only the region around it, so that the face is about
    NEAR_FACE_PX pixels tall whatever its size in the frame, equalises it with the whole frame's
    table, and tries only sizes the tracker would accept as the same face: measured here, ~2.5 ms
    of CPU against ~12 ms when it scaled the whole frame first. Faces are ranked by the cascade's
    neighbour count rather than by size: measured here, the largest box picked a shirt collar in
    24 of 500 frames, the box with the most neighbours was right in 499.
    """

    name = "opencv-haar-frontalface-default"
    head = "haar"
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
            window = _Window(0, 0, width, height, min(1.0, self.detect_height / min(width, height)))
            min_side, max_side = self.WINDOW, 0
        else:
            window = _near_window(near, width, height, self.NEAR_REACH, self.NEAR_FACE_PX)
            if window.empty:
                return []
            side = near.size * window.scale
            min_side = max(self.WINDOW, int(self.NEAR_SIZES[0] * side))
            max_side = int(self.NEAR_SIZES[1] * side) + 1
        grey = _cut(frame_bgr, window, grey=True, area=True)
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
        scale = window.scale
        faces = [
            FaceBox(x / scale + window.x0, y / scale + window.y0, w / scale, h / scale, float(n))
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


def make_detector(name: str = "yunet", *, model_path: str | None = None, min_face_px: float = 96.0,
                  frame_height: int | None = None) -> FaceDetector:
    """The detector called `name` ("yunet" or "haar"). With `model_path` (a YuNet ONNX file),
    "yunet" runs that file through OpenCV. `min_face_px` is the smallest face the run accepts;
    the Haar cascade also needs `frame_height` to size its search."""
    if name == "yunet":
        if model_path:
            return YuNetOnnxFaceDetector(model_path, min_face_px=min_face_px)
        return YuNetFaceDetector(min_face_px=min_face_px)
    if name == "haar":
        share = min_face_px / frame_height if frame_height else 0.15
        return HaarFaceDetector(detect_height=haar_working_height(0.5 * share))
    raise ValueError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")


def detector_name(name: str = "yunet", *, model_path: str | None = None) -> str:
    """The `name` attribute of the detector make_detector() would build (what avatar.json says)."""
    if name == "yunet":
        return YuNetOnnxFaceDetector.name if model_path else YuNetFaceDetector.name
    if name == "haar":
        return HaarFaceDetector.name
    raise ValueError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")
