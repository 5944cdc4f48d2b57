"""The online face tracker and its parts (pure NumPy)."""

from __future__ import annotations

import numpy as np

from avatars.pipeline.detect import FaceBox
from avatars.pipeline.track import CROP_MARGIN, FaceAssociator, FaceTracker, crop_box, frames_without_face, gaussian_kernel


def face(cx: float, cy: float, side: float = 100, score: float = 20) -> FaceBox:
    return FaceBox(cx - side / 2, cy - side / 2, side, side, score)


def run_tracker(detections: dict[int, FaceBox], frame_count: int, detect_every: int = 5, max_gap: int = 10,
                fps: float = 25.0) -> tuple[FaceTracker, list, int]:
    """Feed a tracker frame by frame, reading boxes as soon as they are final, as the pipeline does.
    Returns the tracker, all boxes, and the most frames ever waiting for their box."""
    tracker = FaceTracker(fps, 640, 360, detect_every, max_gap)
    first = min(detections)
    tracker.seed(first, detections[first])
    boxes, waiting, most_waiting = [], [], 0
    for index in range(frame_count):
        attempted = index > first and (index % detect_every == 0 or tracker.last_face is None or index == frame_count - 1)
        tracker.add(index, ([detections[index]] if index in detections else []) if attempted else None)
        waiting.append(index)
        most_waiting = max(most_waiting, len(waiting))
        while waiting and waiting[0] <= tracker.final_through():
            boxes.append(tracker.box(waiting.pop(0)))
    tracker.finish()
    boxes.extend(tracker.box(i) for i in waiting)
    return tracker, boxes, most_waiting


def test_boxes_follow_a_moving_face_without_lag():
    truth = {i: face(100 + 4 * i, 180) for i in range(100)}
    tracker, boxes, _ = run_tracker(truth, 100)
    assert len(boxes) == 100
    errors = [abs(box.cx - truth[i].cx) for i, box in enumerate(boxes)]
    assert max(errors[5:-5]) < 1.0  # linear motion: interpolation and a centred filter are exact
    assert tracker.face_mask().all()


def test_jitter_is_smoothed():
    rng = np.random.default_rng(1)
    truth = 300 + 40 * np.sin(np.arange(200) / 25)
    detections = {i: face(truth[i] + rng.normal(0, 5), 180) for i in range(200)}
    _, boxes, _ = run_tracker(detections, 200, detect_every=1)
    smoothed_error = np.mean([abs(box.cx - truth[i]) for i, box in enumerate(boxes)][10:-10])
    raw_error = np.mean([abs(detections[i].cx - truth[i]) for i in range(200)][10:-10])
    assert smoothed_error < 0.5 * raw_error


def test_short_gaps_are_bridged_long_ones_are_frames_without_a_face():
    detections = {i: face(200, 180) for i in range(0, 100) if not (20 <= i < 26 or 50 <= i < 80)}
    tracker, boxes, _ = run_tracker(detections, 100, detect_every=1, max_gap=10)
    mask = tracker.face_mask()
    assert mask[20:26].all()
    assert frames_without_face(mask) == [[50, 79]]
    assert len(boxes) == 100


def test_memory_is_bounded_by_the_smoothing_window_not_the_video():
    detections = {i: face(200 + i % 50, 180) for i in range(0, 2000) if not (500 <= i < 900)}
    tracker, boxes, most_waiting = run_tracker(detections, 2000)
    assert len(boxes) == 2000
    assert most_waiting <= tracker.radius + tracker.detect_every + 2


def test_frames_before_the_first_face_take_its_box():
    tracker, boxes, _ = run_tracker({30: face(200, 180), 35: face(200, 180)} | {i: face(200, 180) for i in range(40, 60)}, 60)
    assert boxes[0].crop == boxes[30].crop
    assert not tracker.face_mask()[:19].any()


def test_associator_ignores_a_weak_false_face_while_the_real_one_is_covered():
    associator = FaceAssociator(max_gap=25)
    for index in range(5):
        assert associator.choose(index, [face(320, 176, 100, 25), face(443, 249, 120, 8)]).cx == 320
    for index in range(5, 45):  # face covered; a weak false detection persists elsewhere
        assert associator.choose(index, [face(443, 249, 120, 8)]) is None
    assert associator.choose(45, [face(320, 176, 100, 21), face(443, 249, 120, 7)]).cx == 320


def test_near_search_scores_do_not_lower_the_bar_for_a_full_search():
    """Near searches collect fewer neighbours (~10 against ~30 for the same face); a false face
    with 8 found by a full search while the real face is covered must still be refused."""
    associator = FaceAssociator(max_gap=25)
    associator.choose(0, [face(320, 176, 100, 30)], full_search=True)
    for index in range(5, 50, 5):
        assert associator.choose(index, [face(321, 176, 100, 10)], full_search=False).cx == 321
    assert associator.choose(80, [face(443, 249, 120, 8)], full_search=True) is None
    # A real face found again near where it was, with a near search's usual score, is taken.
    assert associator.choose(85, [face(322, 176, 100, 9)], full_search=False).cx == 322


def test_associator_follows_a_fast_but_strong_face():
    associator = FaceAssociator(max_gap=25)
    associator.choose(0, [face(100, 100, 100, 30)])
    assert associator.choose(5, [face(400, 100, 100, 28)]).cx == 400


def test_crop_boxes_are_square_inside_the_frame_and_shifted_not_shrunk_at_edges():
    for cx, cy in ((20, 20), (620, 340), (320, 180)):
        y1, y2, x1, x2 = crop_box(cx, cy, 100, 640, 360)
        assert y2 - y1 == x2 - x1 == round(100 * CROP_MARGIN)
        assert 0 <= x1 and x2 <= 640 and 0 <= y1 and y2 <= 360


def test_crop_larger_than_frame_is_shrunk_to_fit():
    y1, y2, x1, x2 = crop_box(320, 180, 400, 640, 360)
    assert y2 - y1 == x2 - x1 == 360


def test_gaussian_kernel_is_normalised_and_symmetric():
    kernel = gaussian_kernel(2.0)
    assert abs(kernel.sum() - 1) < 1e-9 and np.allclose(kernel, kernel[::-1]) and len(kernel) == 13
