"""Synthetic tutor videos whose true face box is known in every frame.

The tutor is scikit-image's public-domain astronaut portrait (Eileen Collins, NASA), moved and
zoomed over a textured background. Because every frame is a known affine transform of the
photo, the true face box (forehead to chin, ear to ear, measured once on the photo) is known
exactly per frame. Used by the tests and the benchmarks; needs scikit-image (a test dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# The face in the 512x512 astronaut photo, forehead to chin and ear to ear: (x1, y1, x2, y2).
PHOTO_FACE_BOX = (175.0, 55.0, 275.0, 182.0)


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def textured_background(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A busy, fine-grained background (stripes, squares, noise): lots of detail for a blur to remove."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = (np.sin(xx / 3.0) * 60 + np.cos(yy / 5.0) * 40 + 128).astype(np.float32)
    squares = (((xx // 16) + (yy // 16)) % 2 * 50).astype(np.float32)
    noise = rng.normal(0, 18, (height, width)).astype(np.float32)
    grey = np.clip(stripes * 0.6 + squares + noise, 0, 255).astype(np.uint8)
    background = cv2.merge([grey, np.roll(grey, 7, axis=1), np.roll(grey, 13, axis=0)])
    return background


@dataclass(frozen=True)
class Placement:
    """Where the photo sits in a frame: its top-left corner and its zoom."""

    x: float
    y: float
    zoom: float


Motion = Callable[[float], Placement]  # seconds from the start -> placement


def placed(width: int, height: int, centre_x: float, centre_y: float, face_height_ratio: float = 0.35) -> Motion:
    """The face at a fixed size, its centre at (centre_x, centre_y) as shares of the frame."""
    zoom = face_height_ratio * height / (PHOTO_FACE_BOX[3] - PHOTO_FACE_BOX[1])
    face_cx = (PHOTO_FACE_BOX[0] + PHOTO_FACE_BOX[2]) / 2 * zoom
    face_cy = (PHOTO_FACE_BOX[1] + PHOTO_FACE_BOX[3]) / 2 * zoom
    return lambda t: Placement(centre_x * width - face_cx, centre_y * height - face_cy, zoom)


def centred(width: int, height: int, face_height_ratio: float = 0.35) -> Motion:
    """The face at a fixed size, centred in the frame."""
    return placed(width, height, 0.5, 0.5, face_height_ratio)


def drifting(width: int, height: int, face_height_ratio: float = 0.35, amplitude: float = 0.15,
             zoom_amplitude: float = 0.15, period_s: float = 6.0) -> Motion:
    """A slow sway across the frame with a slow zoom in and out, as a tutor moving in a chair."""
    base_zoom = face_height_ratio * height / (PHOTO_FACE_BOX[3] - PHOTO_FACE_BOX[1])

    def at(t: float) -> Placement:
        phase = 2 * math.pi * t / period_s
        zoom = base_zoom * (1 + zoom_amplitude * math.sin(phase * 0.7))
        face_cx = (PHOTO_FACE_BOX[0] + PHOTO_FACE_BOX[2]) / 2 * zoom
        face_cy = (PHOTO_FACE_BOX[1] + PHOTO_FACE_BOX[3]) / 2 * zoom
        centre_x = width / 2 + amplitude * width * math.sin(phase)
        centre_y = height / 2 + amplitude * 0.5 * height * math.sin(phase * 1.3)
        return Placement(centre_x - face_cx, centre_y - face_cy, zoom)

    return at


def face_box_at(placement: Placement) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    z = placement.zoom
    return (placement.x + x1 * z, placement.y + y1 * z, placement.x + x2 * z, placement.y + y2 * z)


def render_frame(photo: np.ndarray, background: np.ndarray, placement: Placement) -> np.ndarray:
    height, width = background.shape[:2]
    matrix = np.float32([[placement.zoom, 0, placement.x], [0, placement.zoom, placement.y]])
    warped = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR)
    coverage = cv2.warpAffine(np.full(photo.shape[:2], 255, np.uint8), matrix, (width, height))
    frame = background.copy()
    inside = coverage > 127
    frame[inside] = warped[inside]
    return frame


def write_face_video(
    path: str | Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: float = 25.0,
    seconds: float = 2.0,
    motion: Motion | None = None,
    brightness_drift: float = 0.0,
    covered_frames: range | set[int] = range(0),
    with_face: bool = True,
    second_face: Motion | None = None,
    fourcc: str = "mp4v",
) -> list[tuple[float, float, float, float]]:
    """Write an MP4 of the astronaut; return the true face box (x1, y1, x2, y2) of every frame.

    `brightness_drift` adds up to that many grey levels, linearly over the clip; frames in
    `covered_frames` have a grey card over the face (as a hand or a turned head would);
    `with_face=False` writes only the moving background; `second_face` places another copy of
    the photo (a second person) where that motion says.
    """
    motion = motion or centred(width, height)
    photo = astronaut_bgr()
    background = textured_background(width, height)
    frame_count = max(1, round(seconds * fps))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    truth = []
    try:
        for index in range(frame_count):
            placement = motion(index / fps)
            box = face_box_at(placement)
            if with_face:
                frame = render_frame(photo, background, placement)
            else:
                frame = np.roll(background, index * 3, axis=1)
            if second_face is not None:
                frame = render_frame(photo, frame, second_face(index / fps))
            if index in covered_frames:
                x1, y1, x2, y2 = (round(v) for v in box)
                cv2.rectangle(frame, (x1 - 5, y1 - 5), (x2 + 5, y2 + 5), (128, 128, 128), -1)
            if brightness_drift:
                shift = brightness_drift * index / max(1, frame_count - 1)
                frame = cv2.add(frame, np.full_like(frame, int(shift))) if shift > 0 else \
                    cv2.subtract(frame, np.full_like(frame, int(-shift)))
            writer.write(frame)
            truth.append(box)
    finally:
        writer.release()
    return truth


def write_variable_rate_video(path: str | Path, *, width: int = 640, height: int = 360, frames: int = 100,
                              fast_ms: int = 40, slow_ms: int = 120) -> float:
    """An MKV whose first half of frames is `fast_ms` apart and second half `slow_ms` (a phone's
    variable frame rate), its header saying 25 fps; returns its true length in seconds. Needs
    PyAV (a test dependency): OpenCV's writer only writes constant rates."""
    import fractions

    import av

    photo = cv2.resize(astronaut_bgr(), (height, height))
    background = textured_background(width, height)
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    pts = 0
    for index in range(frames):
        frame = background.copy()
        left = (index * 2) % max(1, width - height)
        frame[:, left:left + height] = photo
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:, :, ::-1]), format="rgb24")
        picture.pts, picture.time_base = pts, fractions.Fraction(1, 1000)
        pts += fast_ms if index < frames // 2 else slow_ms
        for packet in stream.encode(picture):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return (frames // 2 * fast_ms + (frames - frames // 2) * slow_ms) / 1000


def write_static_h264(path: str | Path, *, width: int = 1920, height: int = 1080, fps: int = 25,
                      seconds: float = 10.0) -> None:
    """An H.264 MP4 of one still picture of the astronaut (a tutor who does not move): a few
    hundred KB, however many full-size frames it holds."""
    import av

    frame = render_frame(astronaut_bgr(), np.full((height, width, 3), 90, np.uint8), centred(width, height)(0))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast"}
        picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
        for _ in range(round(seconds * fps)):
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
