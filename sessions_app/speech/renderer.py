"""Frame renderers: (the avatar's frame, its index, the speech it covers) -> the frame to show.

The renderer is a setting (SESSION_RENDERER, a dotted path to a class made with one
`AvatarMaterial`). Built in:
- `MouthSampleRenderer` (speech/mouth_samples.py, the default): the tutor's own recorded mouth,
  chosen per frame from the avatar's mouth bank and blended into the frame.
- `MouthAnimator`: moves the jaw and opens the lips with the mouth openness of the frame, inside
  a feathered lower-face mask placed by the avatar's facial points (every pixel outside the mask
  is the idle frame's own). The fallback for avatars whose video holds no usable mouth shapes.

A renderer may say `renders_silence = True`: the stage then draws silent frames through it too
(with `FrameSpeech.openness` 0), so a mouth can rest while the recorded video talks.

A neural lip-sync model (Wav2Lip-class: a face crop and the frame's audio window in, a new lower
face out) plugs in as another class with the same `render`; it gets the prepared face crops
(`AvatarMaterial.read_crop`, boxes in `coords`) and each frame's audio (`FrameSpeech.audio`), and
loads its weights from a file the operator provides. No such weights ship with any package this
project installs, so none is built in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import cv2
import numpy as np


@dataclass(frozen=True)
class FrameSpeech:
    openness: float  # 0 (closed, as the idle frame) .. 1 (widest)
    audio: np.ndarray  # the int16 samples this frame covers, at `rate`
    rate: int
    spread: float = 0.0  # -1 rounded (o, u, w) .. 0 neutral .. +1 spread (i, e)
    teeth: float = 0.0  # 0..1 teeth showing; with the lips nearly closed, on the lower lip (f, v)


def silence(count: int, rate: int) -> FrameSpeech:
    """What a silent frame says (for renderers that draw silence: the mouth at rest)."""
    return FrameSpeech(0.0, np.zeros(count, np.int16), rate)


@dataclass(frozen=True)
class AvatarMaterial:
    """What a renderer may use of a prepared avatar."""

    frame_count: int
    width: int
    height: int
    fps: float
    coords: list  # per frame: the face crop box (y1, y2, x1, x2), as coords.pkl has it
    landmarks: np.ndarray | None  # (frames, 5, 2): eyes, nose tip, mouth corners; NaN where no face
    read_crop: Callable[[int], np.ndarray]  # the prepared face crop of frame i (BGR)
    # The mouth bank (avatars/pipeline/lips.py), None for avatars prepared without lip shapes:
    lip_points: np.ndarray | None = None  # (frames, lips.POINT_COUNT, 2), NaN where unmeasured
    lip_features: np.ndarray | None = None  # (frames, 5): lips.FEATURES
    mouth_boxes: np.ndarray | None = None  # (frames, 4): x0, y0, x1, y1 of mouth_imgs/<i>.jpg; -1 none
    read_mouth: Callable[[int], np.ndarray] | None = None  # frame i's lower-face patch (BGR)


class FrameRenderer(Protocol):
    renders_silence: bool  # draw silent frames too (a resting mouth)
    description: dict  # what draws the mouth, for the session header: name, fallback, reason

    def __init__(self, material: AvatarMaterial) -> None: ...

    def render(self, frame: np.ndarray, index: int, speech: FrameSpeech) -> np.ndarray:
        """Frame `index` of the avatar (BGR, not to be modified) as it shows while `speech` sounds."""


# Where the mouth sits in the face crop box when an avatar has no facial points (a detector without
# landmarks): the median over the generated test face's 500 frames, mouth centre at 0.47 of the
# box's width and 0.62 of its height, mouth 0.18 of its width.
_CROP_MOUTH_X, _CROP_MOUTH_Y, _CROP_MOUTH_WIDTH = 0.47, 0.62, 0.18

# Shape of the motion, in mouth widths (the distance between the mouth corners):
MAX_JAW_DROP = 0.24  # how far the lower lip and jaw move at openness 1
MASK_CENTRE_DOWN = 0.45  # the lower-face mask's centre, below the mouth line
MASK_HALF_WIDTH = 1.0  # its half-axes, sideways and down
MASK_HALF_HEIGHT = 0.8
MASK_SOLID = 0.45  # inside this fraction of the ellipse the mask is 1; it feathers to 0 at its edge
CAVITY_DEPTH = np.float32(0.85)  # how much darker the uncovered gap is than what it shows
MIN_OPENNESS = 0.02  # below this the idle frame is shown as it is


class MouthAnimator:
    """Jaw and lips moved by a displacement field, the gap between the lips darkened with the
    mouth's own darkest colour, all blended into the idle frame through a feathered ellipse under
    the nose: no seam, no change outside. Nothing is painted over what the frame shows: a flat
    cavity and tooth colour drew a purple bar through a smiling tutor's teeth (and a flat dark
    colour a grey one), so the gap is the frame's own stretched mouth, shaded."""

    renders_silence = False
    description = {"name": "animator", "fallback": False, "reason": None, "rest": "source"}

    def __init__(self, material: AvatarMaterial) -> None:
        self.points = [self._mouth_of(material, index) for index in range(material.frame_count)]

    @staticmethod
    def _mouth_of(material: AvatarMaterial, index: int):
        """(mouth centre, mouth width, unit vector sideways, unit vector down the face) or None."""
        if material.landmarks is not None and index < len(material.landmarks):
            points = material.landmarks[index]
            if not np.isnan(points).any():
                eyes = (points[0] + points[1]) / 2
                left, right = points[3], points[4]
                centre = (left + right) / 2
                width = float(np.linalg.norm(right - left))
                if width >= 4:
                    side = (right - left) / width
                    down = np.array([-side[1], side[0]])
                    if np.dot(centre - eyes, down) < 0:
                        down = -down
                    return centre, width, side, down
        if index < len(material.coords) and material.coords[index] is not None:
            y1, y2, x1, x2 = material.coords[index]
            if x2 - x1 >= 8 and y2 - y1 >= 8:
                centre = np.array([x1 + _CROP_MOUTH_X * (x2 - x1), y1 + _CROP_MOUTH_Y * (y2 - y1)])
                return centre, _CROP_MOUTH_WIDTH * (x2 - x1), np.array([1.0, 0.0]), np.array([0.0, 1.0])
        return None

    def render(self, frame: np.ndarray, index: int, speech: FrameSpeech) -> np.ndarray:
        mouth = self.points[index] if index < len(self.points) else None
        if mouth is None or speech.openness < MIN_OPENNESS:
            return frame
        centre, width, side, down = mouth
        openness = min(1.0, float(speech.openness))
        reach = width * (MASK_CENTRE_DOWN + max(MASK_HALF_WIDTH, MASK_HALF_HEIGHT)) + 2
        height, frame_width = frame.shape[:2]
        x0, x1 = max(0, int(centre[0] - reach)), min(frame_width, int(np.ceil(centre[0] + reach)) + 1)
        y0, y1 = max(0, int(centre[1] - reach)), min(height, int(np.ceil(centre[1] + reach)) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return frame
        grid_x, grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        dx, dy = grid_x - np.float32(centre[0]), grid_y - np.float32(centre[1])
        along = dx * np.float32(side[0]) + dy * np.float32(side[1])  # sideways from the mouth centre
        below = dx * np.float32(down[0]) + dy * np.float32(down[1])  # down the face from the mouth line
        radius = np.sqrt((along / (MASK_HALF_WIDTH * width)) ** 2
                         + ((below - MASK_CENTRE_DOWN * width) / (MASK_HALF_HEIGHT * width)) ** 2)
        mask = _smoothstep(1.0, MASK_SOLID, radius)
        if not mask.any():
            return frame
        drop = np.float32(MAX_JAW_DROP * width * openness)
        # The upper lip stays, the lower lip and jaw move. Beside the lips (the cheeks) the onset
        # spreads lower, so the skin stretches instead of tearing along the mouth line.
        beside = np.maximum(np.abs(along) - 0.45 * width, 0)
        jaw = _smoothstep(-0.03 * width + 0.5 * beside, 0.12 * width + 1.2 * beside, below)
        shift = drop * jaw * mask * mask  # the motion fades out before the blend does
        region = frame[y0:y1, x0:x1]
        moved = cv2.remap(region, (grid_x - x0 - shift * np.float32(down[0])),
                          (grid_y - y0 - shift * np.float32(down[1])), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # The gap the lower lip leaves: dark inside, upper teeth along its top.
        gap = max(float(drop), 1e-3)
        half_span = 0.4 * width * (0.75 + 0.25 * openness)
        inside = np.sqrt((along / half_span) ** 2 + ((below - 0.5 * gap) / (0.5 * gap)) ** 2)
        cavity = _smoothstep(1.0, 0.75, inside) * np.float32(min(1.0, gap / 3.0))
        # The shadow of the open mouth: what the lower lip uncovered is darkened in proportion,
        # never painted over, so its own texture (teeth of a smile, the lip line) stays visible.
        moved *= (1 - CAVITY_DEPTH * cavity)[..., None]
        blended = region.astype(np.float32) + mask[..., None] * (moved - region)
        out = frame.copy()
        touched = mask > 0
        out[y0:y1, x0:x1][touched] = np.clip(np.rint(blended[touched]), 0, 255).astype(np.uint8)
        return out


def _smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    """0 at edge0, 1 at edge1, smooth between (either order)."""
    t = np.clip((value - np.float32(edge0)) / np.float32(edge1 - edge0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def load_renderer(dotted_path: str, material: AvatarMaterial) -> FrameRenderer:
    module_name, _, class_name = dotted_path.rpartition(".")
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)(material)
