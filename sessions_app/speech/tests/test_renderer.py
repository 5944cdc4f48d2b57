"""The mouth animator on a real face: it moves the mouth, and nothing outside its feathered mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatars.pipeline.detect import YuNetFaceDetector
from sessions_app.speech.renderer import AvatarMaterial, FrameSpeech, MouthAnimator
from testsupport.videos import astronaut_bgr

SILENT = np.zeros(960, np.int16)


@pytest.fixture(scope="module")
def face():
    """A photo of a real face and its five facial points, as the pipeline's detector finds them."""
    image = astronaut_bgr()
    found = max(YuNetFaceDetector().detect(image), key=lambda box: box.score)
    points = np.array(found.landmarks, np.float32).reshape(5, 2)
    return image, points


def material(points: np.ndarray | None, coords=None, frames: int = 1) -> AvatarMaterial:
    landmarks = None if points is None else np.repeat(points[None], frames, axis=0)
    return AvatarMaterial(frames, 512, 512, 25.0, coords or [None] * frames, landmarks, lambda index: None)


def speech(openness: float) -> FrameSpeech:
    return FrameSpeech(openness, SILENT, 24000)


def test_a_closed_mouth_is_the_idle_frame_itself(face):
    image, points = face
    assert MouthAnimator(material(points)).render(image, 0, speech(0.0)) is image


def test_an_open_mouth_changes_the_mouth_and_nothing_above_it_or_far_from_it(face):
    image, points = face
    before = image.copy()
    out = MouthAnimator(material(points)).render(image, 0, speech(0.9))
    assert np.array_equal(image, before)  # the idle frame is not modified
    changed = np.abs(out.astype(int) - image).max(axis=2) > 0
    assert changed.sum() > 200
    mouth_centre = (points[3] + points[4]) / 2
    mouth_width = np.linalg.norm(points[4] - points[3])
    ys, xs = np.nonzero(changed)
    # Everything that changed lies below the nose and within two mouth widths of the mouth.
    assert ys.min() > points[2][1]
    assert np.hypot(xs - mouth_centre[0], ys - mouth_centre[1]).max() < 2 * mouth_width
    # The eyes, the nose and the whole frame outside that region are the idle frame's pixels.
    far = np.hypot(*np.meshgrid(np.arange(512) - mouth_centre[0], np.arange(512) - mouth_centre[1])) >= 2 * mouth_width
    assert np.array_equal(out[far], image[far])
    # The mouth region itself moved: its mean change is visible.
    box = (slice(int(mouth_centre[1] - 0.2 * mouth_width), int(mouth_centre[1] + 0.5 * mouth_width)),
           slice(int(points[3][0]), int(points[4][0])))
    assert np.abs(out[box].astype(int) - image[box]).mean() > 8


def test_the_mask_is_feathered_no_seam_at_its_edge(face):
    """Where the change ends around the jaw and cheeks, it fades: the pixels at the outer rim of the
    changed area differ from the idle frame far less than those at the lips (where the mouth opens,
    a sharp edge is the point)."""
    image, points = face
    out = MouthAnimator(material(points)).render(image, 0, speech(1.0))
    change = np.abs(out.astype(int) - image).max(axis=2)
    # The changed area with its holes filled (pixels whose shift happened to change nothing), and
    # its outer rim: the pixels within 2 of its edge.
    outside = (change == 0).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)
    area = (outside != 2).astype(np.uint8)
    rim = (area > 0) & (cv2.distanceTransform(area, cv2.DIST_L2, 3) <= 2)
    centre, width = (points[3] + points[4]) / 2, np.linalg.norm(points[4] - points[3])
    grid_x, grid_y = np.meshgrid(np.arange(512), np.arange(512))
    rim &= np.hypot(grid_x - centre[0], grid_y - centre[1]) > 0.8 * width  # away from the lips
    assert rim.sum() > 50
    assert np.percentile(change[rim], 95) <= 10  # a hard-edged mask: ~70 here
    assert change.max() > 60


def test_wider_openness_opens_wider(face):
    image, points = face
    animator = MouthAnimator(material(points))
    changes = [np.abs(animator.render(image, 0, speech(o)).astype(int) - image).sum() for o in (0.2, 0.5, 1.0)]
    assert changes[0] < changes[1] < changes[2]


def test_without_facial_points_the_face_box_places_the_mouth(face):
    image, points = face
    centre = (points[3] + points[4]) / 2
    size = np.linalg.norm(points[4] - points[3]) / 0.18  # a head box of the usual proportions
    x1, y1 = centre[0] - 0.47 * size, centre[1] - 0.62 * size
    coords = [(int(y1), int(y1 + size), int(x1), int(x1 + size))]
    out = MouthAnimator(material(None, coords)).render(image, 0, speech(0.8))
    ys, xs = np.nonzero(np.abs(out.astype(int) - image).max(axis=2))
    assert len(ys) and abs(np.median(xs) - centre[0]) < 0.2 * size and ys.min() > points[2][1] - 0.05 * size


def test_a_frame_without_a_face_is_left_as_it_is(face):
    image, points = face
    nan_points = np.full((5, 2), np.nan, np.float32)
    assert MouthAnimator(material(nan_points)).render(image, 0, speech(1.0)) is image
