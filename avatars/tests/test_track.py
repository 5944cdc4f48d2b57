"""Filling, bridging and smoothing face tracks (pure NumPy)."""

from __future__ import annotations

import numpy as np

from avatars.pipeline.detect import FaceBox
from avatars.pipeline.track import build_track, crop_boxes, gaussian_smooth, smooth_track


def face(cx: float, cy: float, side: float = 100) -> FaceBox:
    return FaceBox(cx - side / 2, cy - side / 2, side, side, 10)


def test_gaps_within_max_gap_are_bridged_and_longer_ones_are_not():
    detections = {0: face(100, 100), 5: face(110, 100), 40: face(200, 100)}
    track = build_track(detections, 45, max_gap=10)
    assert track.has_face[:6].all()
    assert not track.has_face[6:40].any()
    assert track.has_face[40:].all()
    assert track.cx[2] == 104.0  # interpolated between 100 and 110
    assert track.frames_without_face() == [[6, 39]]


def test_no_detection_means_no_face_anywhere():
    track = build_track({}, 10, max_gap=5)
    assert track.face_ratio == 0.0


def test_smoothing_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    frames = np.arange(200)
    truth = 300 + 50 * np.sin(frames / 30)
    noisy = truth + rng.normal(0, 4, len(frames))
    smooth = gaussian_smooth(noisy, 2.0)
    assert np.abs(smooth - truth)[10:-10].mean() < 0.5 * np.abs(noisy - truth)[10:-10].mean()
    assert abs(np.argmax(smooth[:100]) - np.argmax(truth[:100])) <= 3


def test_crop_boxes_are_square_inside_the_frame_and_shifted_not_shrunk_at_edges():
    detections = {0: face(20, 20, 100), 9: face(620, 340, 100)}
    track = smooth_track(build_track(detections, 10, max_gap=10), fps=25)
    boxes = crop_boxes(track, 640, 360)
    for y1, y2, x1, x2 in boxes:
        assert y2 - y1 == x2 - x1 == 170
        assert 0 <= x1 and x2 <= 640 and 0 <= y1 and y2 <= 360


def test_crop_larger_than_frame_is_shrunk_to_fit():
    track = build_track({0: face(320, 180, 400)}, 3, max_gap=5)
    boxes = crop_boxes(track, 640, 360)
    assert all(y2 - y1 == 360 for y1, y2, _, _ in boxes)
