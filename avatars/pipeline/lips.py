"""Lip shape per frame: a face-mesh model's lip contours, and what they say about the mouth.

The model is MediaPipe's `face_landmark.tflite` (468 points of a face mesh from a 192x192 crop;
Apache-2.0; 1.2 MB), which ships inside the official `mediapipe` 0.10.21 wheel. That wheel pins
numpy<2, so it is installed without its dependencies (`requirements-models.txt`, `pip install
--no-deps`): nothing of mediapipe is imported, only its model file is read, and it runs through
`ai-edge-litert` (LiteRT, Apache-2.0) with numpy 2. `AVATAR_LIP_MODEL` (an environment variable)
names another copy of the file. Without the model, preparation goes on without lip shapes and
sessions draw the mouth with the animator (the avatar's coverage says so).

The crop is placed by the tracker's five facial points (eyes, nose, mouth corners), turned so
the eyes are level: one pass of the model per frame. Its size and centre were fitted to the box
MediaPipe's own tracking derives from a previous mesh (1.5x the mesh's bounds): on a real talking
video, a second pass placed by the first mesh moved the points by 1.8-2.9 pixels (of a ~460-pixel
crop) with a first guess of 3.1 eye-to-mouth distances; with the fitted 3.55, a second pass placed
by the first mesh's own eye and mouth corners moves them by 1.1 pixels (median; 0.5-1.7 over 40
frames), which a second pass per frame is not worth.

Per frame the result is a `LipShape`: the points the renderer needs (lip contours, the face's
lower outline, points that do not move with the mouth) in frame pixels, and five numbers:
openness (the gap between the inner lips ÷ the mouth's width), width (the mouth's width ÷ the
outer eye corners' distance), rounding (how far the lips push forward and purse: the outer lips'
height ÷ their width, with the opening taken out) and teeth (the share of the inner-lip opening
that is lighter and less red than the lips, as teeth are), and sharpness (the Laplacian variance
of the mouth: blurred frames make poor samples). Pure NumPy and OpenCV.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from avatars.pipeline.errors import LipModelMissing

MODEL_FILE = "mediapipe/modules/face_landmark/face_landmark.tflite"
INPUT = 192

# Face-mesh indices (MediaPipe's canonical face mesh).
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
# The face's outline from one cheek, under the chin, to the other (the part below the eyes).
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
# Points the mouth does not move: eye corners, the nose's bridge, tip and wings.
STABLE = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 98, 327, 2)
NOSE_BOTTOM = 2
KEPT = LIPS_OUTER + LIPS_INNER + JAW + STABLE
# Positions in a LipShape's `points` of each group.
OUTER = slice(0, len(LIPS_OUTER))
INNER = slice(OUTER.stop, OUTER.stop + len(LIPS_INNER))
JAWLINE = slice(INNER.stop, INNER.stop + len(JAW))
STILL = slice(JAWLINE.stop, JAWLINE.stop + len(STABLE))
POINT_COUNT = STILL.stop
# Within the groups: mouth corners, the middles of the inner lips, the chin.
_CORNER_LEFT, _CORNER_RIGHT = 0, 10  # in OUTER
_INNER_TOP, _INNER_BOTTOM = 5, 15  # in INNER
_EYE_OUTER_LEFT, _EYE_OUTER_RIGHT = 0, 3  # in STILL

FEATURES = ("openness", "width", "rounding", "teeth", "sharpness")
# The crop relative to the five points: side in eye-to-mouth distances, centre from the eyes
# towards the mouth (fitted as the module's docstring says).
_SIDE_PER_EYE_MOUTH = 3.55
_CENTRE_TOWARD_MOUTH = 0.44
# The model's face flag (a logit) below which the mesh is not trusted (a turned-away head).
_MIN_FACE_LOGIT = 0.0


def model_path() -> Path:
    """Where the face-mesh model is: AVATAR_LIP_MODEL, else inside the installed mediapipe wheel."""
    override = os.environ.get("AVATAR_LIP_MODEL")
    if override:
        path = Path(override)
        if not path.is_file():
            raise LipModelMissing(f"AVATAR_LIP_MODEL names no file: {path}")
        return path
    try:
        distribution = metadata.distribution("mediapipe")
    except metadata.PackageNotFoundError:
        raise LipModelMissing("the mediapipe wheel (requirements-models.txt) is not installed") from None
    path = Path(distribution.locate_file(MODEL_FILE))
    if not path.is_file():
        raise LipModelMissing(f"the mediapipe wheel has no {MODEL_FILE}")
    return path


def available() -> bool:
    try:
        model_path()
        import ai_edge_litert.interpreter  # noqa: F401
    except (LipModelMissing, ImportError):
        return False
    return True


@dataclass(frozen=True)
class LipShape:
    points: np.ndarray  # (POINT_COUNT, 2) float32, frame pixels
    features: np.ndarray  # (5,) float32: FEATURES


class LipLandmarker:
    """One face-mesh interpreter (not thread-safe: one per thread)."""

    def __init__(self, path: Path | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path or model_path()), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        by_size = sorted(outputs, key=lambda output: int(np.prod(output["shape"])))
        self._flag, self._mesh = by_size[0]["index"], by_size[-1]["index"]
        self._buffer = np.empty((1, INPUT, INPUT, 3), np.float32)

    def measure(self, frame: np.ndarray, five_points: np.ndarray) -> LipShape | None:
        """The lip shape of the face whose five points (eyes, nose, mouth corners; (5, 2)) are
        given, or None (no points, or the model sees no face there)."""
        if five_points is None or np.isnan(five_points).any():
            return None
        eyes = (five_points[0] + five_points[1]) / 2
        mouth = (five_points[3] + five_points[4]) / 2
        toward_mouth = mouth - eyes
        distance = float(np.linalg.norm(toward_mouth))
        if distance < 4:
            return None
        down = toward_mouth / distance
        across = np.array([down[1], -down[0]])  # image-right for an upright face
        scale = _SIDE_PER_EYE_MOUTH * distance / INPUT
        centre = eyes + _CENTRE_TOWARD_MOUTH * toward_mouth
        # Crop pixel (u, v) -> frame: centre + (u - 96) * scale * across + (v - 96) * scale * down.
        to_frame = np.array([[across[0] * scale, down[0] * scale, 0.0], [across[1] * scale, down[1] * scale, 0.0]])
        to_frame[:, 2] = centre - INPUT / 2 * (to_frame[:, 0] + to_frame[:, 1])
        crop = cv2.warpAffine(frame, to_frame, (INPUT, INPUT), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=crop)
        np.multiply(crop, np.float32(1 / 255), out=self._buffer[0], casting="unsafe")
        self._interpreter.set_tensor(self._input, self._buffer)
        self._interpreter.invoke()
        if float(self._interpreter.get_tensor(self._flag).ravel()[0]) < _MIN_FACE_LOGIT:
            return None
        mesh = self._interpreter.get_tensor(self._mesh).reshape(-1, 3)[:, :2]
        points = (mesh[list(KEPT)] @ to_frame[:, :2].T + to_frame[:, 2]).astype(np.float32)
        return LipShape(points, shape_features(points, frame))


def shape_features(points: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
    """FEATURES of one frame's points (teeth needs the frame; 0 without it)."""
    outer, inner = points[OUTER], points[INNER]
    width = float(np.linalg.norm(outer[_CORNER_RIGHT] - outer[_CORNER_LEFT]))
    eyes = float(np.linalg.norm(points[STILL][_EYE_OUTER_RIGHT] - points[STILL][_EYE_OUTER_LEFT]))
    if width < 1 or eyes < 1:
        return np.zeros(len(FEATURES), np.float32)
    gap = float(np.linalg.norm(inner[_INNER_BOTTOM] - inner[_INNER_TOP]))
    openness = gap / width
    outer_height = float(np.linalg.norm(outer[15] - outer[5]))  # lower outer middle - upper outer middle
    rounding = max(0.0, (outer_height - gap) / width)
    teeth = teeth_share(frame, inner, outer) if frame is not None and openness > 0.03 else 0.0
    return np.array([openness, width / eyes, rounding, teeth, mouth_sharpness(frame, outer)], np.float32)


def _bounds(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the points' bounding box in whole pixels, inside a picture of `shape`."""
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int) + 1
    return max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])


def mouth_sharpness(frame: np.ndarray | None, outer: np.ndarray) -> float:
    """The Laplacian variance of the mouth's box (grey): how much detail a sample carries. Frames of
    one video differ a lot (motion blur, the codec): on a real 360x288 conversation the sharpest
    tenth had 3-4x the median's, and blurred samples read as a smeared mouth."""
    if frame is None:
        return 0.0
    x0, y0, x1, y1 = _bounds(outer, frame.shape)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return 0.0
    grey = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def teeth_share(frame: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> float:
    """The share of the inner-lip opening that looks like teeth: lighter than the lips and less
    red (CIELAB). Measured on a real talking video: teeth L* 150-170 against the lips' ~130, a*
    143-148 against the lips' ~155; the dark mouth L* 50-90. Saturation alone did not separate
    yellowish teeth from lips."""
    x0, y0, x1, y1 = _bounds(outer, frame.shape)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    opening = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(opening, [np.round(inner - (x0, y0)).astype(np.int32)], 1)
    lip_ring = np.zeros_like(opening)
    cv2.fillPoly(lip_ring, [np.round(outer - (x0, y0)).astype(np.int32)], 1)
    lip_ring[opening > 0] = 0
    if opening.sum() < 4 or lip_ring.sum() < 4:
        return 0.0
    lab = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2LAB)
    lips_l, lips_a = np.median(lab[lip_ring > 0][:, :2].astype(np.float32), axis=0)
    inside = lab[opening > 0].astype(np.float32)
    teeth = (inside[:, 0] > lips_l + 5) & (inside[:, 1] < lips_a - 3)
    return float(teeth.mean())


class ThreadLandmarkers:
    """One LipLandmarker per thread, made on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> LipLandmarker:
        landmarker = getattr(self._local, "landmarker", None)
        if landmarker is None:
            landmarker = self._local.landmarker = LipLandmarker(self.path)
        return landmarker


# The lower face cut from each frame for the renderer's bank: from the nose's bottom to below the
# chin, cheek to cheek, with this margin (in mouth widths) around the points.
PATCH_MARGIN = 0.35


def patch_box(points: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the frame's lower-face patch."""
    lower = np.concatenate([points[OUTER], points[JAWLINE][3:-3], points[STILL][[13]]])
    width = float(np.linalg.norm(points[OUTER][_CORNER_RIGHT] - points[OUTER][_CORNER_LEFT]))
    margin = PATCH_MARGIN * max(width, 8.0)
    x0, y0 = np.floor(lower.min(0) - margin).astype(int)
    x1, y1 = np.ceil(lower.max(0) + margin).astype(int)
    height, frame_width = frame_shape[:2]
    return max(0, x0), max(0, y0), min(frame_width, x1), min(height, y1)


# Lips are measured on every MEASURE_EVERY-th frame (and the mouth bank keeps those frames): the
# face mesh, its features and the patch cost ~2.7 ms of a core a frame at 720p, which took
# preparation from 247 to 202 fps on a 10 s 720p clip; every other frame halves that, and a bank at
# 12.5 samples a second still holds every shape a sentence shows. The frames between get their
# points by interpolation (the renderer places a mouth on every frame).
MEASURE_EVERY = 2

# The files a prepared avatar keeps of its lips (beside mouth_imgs/<index>.jpg).
POINTS_FILE, FEATURES_FILE, BOXES_FILE = "lips.npy", "lip_features.npy", "mouth_boxes.npy"


def write_arrays(out_dir: Path, shapes: dict[int, tuple[LipShape, tuple[int, int, int, int]]],
                 frame_count: int) -> np.ndarray:
    """Save the measured frames' points ((frames, POINT_COUNT, 2), NaN where unmeasured), features
    ((frames, 5), NaN) and patch boxes ((frames, 4) x0, y0, x1, y1, -1 without a patch); the features."""
    points = np.full((frame_count, POINT_COUNT, 2), np.nan, np.float32)
    features = np.full((frame_count, len(FEATURES)), np.nan, np.float32)
    boxes = np.full((frame_count, 4), -1, np.int32)
    for index, (shape, box) in shapes.items():
        if index < frame_count:
            points[index], features[index], boxes[index] = shape.points, shape.features, box
    np.save(out_dir / POINTS_FILE, fill_between(points))
    np.save(out_dir / FEATURES_FILE, features)
    np.save(out_dir / BOXES_FILE, boxes)
    return features


def fill_between(points: np.ndarray, max_gap: int = 2 * MEASURE_EVERY) -> np.ndarray:
    """(frames, n, 2) points with the unmeasured frames between two measured ones (at most
    `max_gap` apart) interpolated linearly; longer gaps and the ends stay NaN."""
    measured = np.flatnonzero(~np.isnan(points).any(axis=(1, 2)))
    out = points.copy()
    for before, after in zip(measured, measured[1:]):
        gap = after - before
        if 1 < gap <= max_gap:
            for step in range(1, gap):
                share = step / gap
                out[before + step] = (1 - share) * points[before] + share * points[after]
    return out


def manifest_facts(measured_frames: int) -> dict:
    return {"model": "mediapipe face_landmark (468-point face mesh)", "points": POINT_COUNT,
            "features": list(FEATURES), "measured_frames": measured_frames, "measured_every": MEASURE_EVERY,
            "files": [POINTS_FILE, FEATURES_FILE, BOXES_FILE, "mouth_imgs/"]}


def measure_frames(frames, five_points: np.ndarray, out_dir: Path,
                   landmarker: LipLandmarker | None = None) -> tuple[dict, np.ndarray]:
    """The lip shapes of an already prepared avatar (one made before they were measured): `frames`
    yields (index, published frame), `five_points` is landmarks.npy. Writes what preparation writes
    (mouth_imgs/, lips.npy, lip_features.npy, mouth_boxes.npy) into `out_dir`; the manifest's
    facts and the features. The published frames are measured (the decoded source is gone): with a
    blurred background that is the same face."""
    landmarker = landmarker or LipLandmarker()
    (out_dir / "mouth_imgs").mkdir(parents=True, exist_ok=True)
    shapes = {}
    count = 0
    for index, frame in frames:
        count = max(count, index + 1)
        if index >= len(five_points) or index % MEASURE_EVERY:
            continue
        shape = landmarker.measure(frame, five_points[index])
        if shape is None:
            continue
        x0, y0, x1, y1 = patch_box(shape.points, frame.shape)
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        ok, encoded = cv2.imencode(".jpg", frame[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if ok:
            (out_dir / "mouth_imgs" / f"{index:08d}.jpg").write_bytes(encoded.tobytes())
            shapes[index] = (shape, (x0, y0, x1, y1))
    features = write_arrays(out_dir, shapes, count)
    return manifest_facts(len(shapes)), features
