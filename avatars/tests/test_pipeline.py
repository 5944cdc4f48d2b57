"""The pipeline alone, on small generated videos whose true face box is known per frame."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatars.pipeline import PipelineCancelled, PipelineError, PrepareOptions, prepare
from avatars.pipeline.prepare import overall_progress
from testsupport.videos import write_face_video


def test_prepared_layout_has_one_entry_per_decoded_frame(face_video, tmp_path):
    path, truth = face_video
    result = prepare(path, tmp_path / "out")
    out = tmp_path / "out"
    frame_count = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert result.frame_count == frame_count == len(truth) == 50
    full = sorted((out / "full_imgs").iterdir())
    faces = sorted((out / "face_imgs").iterdir())
    assert [p.name for p in full] == [f"{i:08d}.jpg" for i in range(frame_count)]
    assert [p.name for p in faces] == [f"{i:08d}.png" for i in range(frame_count)]
    crop = cv2.imread(str(faces[0]))
    assert crop.shape == (256, 256, 3)
    assert cv2.imread(str(full[0])).shape == (360, 640, 3)
    coords = pickle.loads((out / "coords.pkl").read_bytes())
    assert isinstance(coords, list) and len(coords) == frame_count
    for box in coords:
        assert isinstance(box, tuple) and len(box) == 4 and all(type(v) is int for v in box)
        y1, y2, x1, x2 = box
        assert 0 <= y1 < y2 <= 360 and 0 <= x1 < x2 <= 640 and y2 - y1 == x2 - x1
    manifest = json.loads((out / "avatar.json").read_text())
    assert manifest["frame_count"] == frame_count and manifest["crop_size"] == 256
    assert manifest["coords"] == [list(box) for box in coords]
    assert manifest["detector"] == "yunet-libfacedetection"
    assert set(manifest["timings_s"]) == {"probe", "frames", "finalize"}
    assert cv2.imread(str(out / "preview.jpg")) is not None
    assert manifest["landmarks"] == ["eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right"]
    landmarks = np.load(out / "landmarks.npy")
    assert landmarks.shape == (frame_count, 5, 2) and landmarks.dtype == np.float32
    for points, (y1, y2, x1, x2), (fx1, fy1, fx2, fy2) in zip(landmarks, coords, truth):
        # Every point inside the true face, in a face's order: eyes above nose above mouth.
        assert (fx1 <= points[:, 0]).all() and (points[:, 0] <= fx2).all()
        assert (fy1 <= points[:, 1]).all() and (points[:, 1] <= fy2).all()
        assert points[:2, 1].max() < points[2, 1] < points[3:, 1].min()
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]


def test_haar_fallback_prepares_without_landmarks(face_video, tmp_path):
    path, truth = face_video
    prepare(path, tmp_path / "out", PrepareOptions(face_detector="haar"))
    manifest = json.loads((tmp_path / "out" / "avatar.json").read_text())
    assert manifest["detector"] == "opencv-haar-frontalface-default" and manifest["landmarks"] is None
    assert not (tmp_path / "out" / "landmarks.npy").exists()
    coords = pickle.loads((tmp_path / "out" / "coords.pkl").read_bytes())
    inside = sum(x1 <= fx1 and y1 <= fy1 and x2 >= fx2 and y2 >= fy2
                 for (y1, y2, x1, x2), (fx1, fy1, fx2, fy2) in zip(coords, truth))
    assert inside >= 0.98 * len(coords)


def test_true_face_is_inside_every_crop(face_video, tmp_path):
    path, truth = face_video
    prepare(path, tmp_path / "out")
    coords = pickle.loads((tmp_path / "out" / "coords.pkl").read_bytes())
    inside = 0
    for (y1, y2, x1, x2), (fx1, fy1, fx2, fy2) in zip(coords, truth):
        inside += x1 <= fx1 and y1 <= fy1 and x2 >= fx2 and y2 >= fy2
        area_ratio = (y2 - y1) * (x2 - x1) / ((fx2 - fx1) * (fy2 - fy1))
        assert area_ratio <= 4.0
    print(f"true face inside crop in {inside}/{len(coords)} frames")
    assert inside == len(coords)


def test_face_crop_shows_the_face(face_video, tmp_path):
    """The crop is the right region: the detector finds a face filling most of it."""
    path, _ = face_video
    prepare(path, tmp_path / "out")
    crop = cv2.imread(str(tmp_path / "out" / "face_imgs" / "00000025.png"))
    grey = cv2.equalizeHist(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(grey, 1.1, 4, minSize=(80, 80))
    assert len(faces) >= 1


def test_video_without_a_face_fails_with_no_face_and_leaves_nothing(no_face_video, tmp_path):
    with pytest.raises(PipelineError) as caught:
        prepare(no_face_video, tmp_path / "out")
    assert caught.value.code == "no_face"
    assert "0%" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_progress_is_reported_per_stage_and_never_decreases(face_video, tmp_path):
    path, _ = face_video
    calls = []
    prepare(path, tmp_path / "out", on_progress=lambda stage, done, total: calls.append((stage, done, total)))
    stages = [stage for stage, _, _ in calls]
    assert list(dict.fromkeys(stages)) == ["probe", "frames", "finalize"]
    percents = [overall_progress(*call) for call in calls]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert len(calls) > 10


def test_cancel_flag_stops_the_run_between_frames_and_removes_its_output(face_video, tmp_path):
    path, _ = face_video
    seen = []

    def on_progress(stage, done, total):
        seen.append(stage)

    with pytest.raises(PipelineCancelled):
        prepare(path, tmp_path / "out", on_progress=on_progress, cancelled=lambda: len(seen) > 5)
    assert not (tmp_path / "out").exists()


def test_png_frame_format(face_video, tmp_path):
    path, _ = face_video
    prepare(path, tmp_path / "out", PrepareOptions(frame_format="png"))
    names = sorted(p.name for p in (tmp_path / "out" / "full_imgs").iterdir())
    assert names[0] == "00000000.png" and len(names) == 50


def test_brief_cover_is_bridged_long_cover_counts_as_no_face(tmp_path):
    brief = tmp_path / "brief.mp4"
    write_face_video(brief, seconds=2.0, covered_frames=range(20, 28))
    result = prepare(brief, tmp_path / "brief_out")
    assert result.face_ratio == 1.0
    long = tmp_path / "long.mp4"
    write_face_video(long, seconds=2.0, covered_frames=range(5, 45))
    with pytest.raises(PipelineError) as caught:
        prepare(long, tmp_path / "long_out")
    assert caught.value.code == "no_face"


def test_small_face_fails_with_face_too_small(tmp_path):
    from testsupport.videos import centred

    path = tmp_path / "far.mp4"
    write_face_video(path, width=1280, height=720, seconds=1.5, motion=centred(1280, 720, face_height_ratio=0.12))
    with pytest.raises(PipelineError) as caught:
        prepare(path, tmp_path / "out", PrepareOptions())
    assert caught.value.code == "face_too_small"
    assert caught.value.details["face_height_px"] < 96 and "pixels tall" in caught.value.message


def test_a_face_just_above_the_pixel_limit_is_accepted_at_any_frame_size(tmp_path):
    """Judged in pixels: a 1080p frame whose face is 12% of its height (~130 pixels) is fine."""
    from testsupport.videos import centred

    path = tmp_path / "waist_up.mp4"
    write_face_video(path, width=1920, height=1080, seconds=1.2, motion=centred(1920, 1080, face_height_ratio=0.12))
    result = prepare(path, tmp_path / "out", PrepareOptions())
    assert result.face_ratio == 1.0


def test_unwritable_output_fails_with_write_failed(face_video, tmp_path, monkeypatch):
    from avatars.pipeline import writer

    def failing_write(path: Path, image, params):
        raise writer.FrameWriteError("No space left on device")

    monkeypatch.setattr(writer, "write_image", failing_write)
    with pytest.raises(PipelineError) as caught:
        prepare(face_video[0], tmp_path / "out")
    assert caught.value.code == "write_failed"
    assert not (tmp_path / "out").exists()


def test_a_face_hovering_around_the_size_limit_is_too_small_not_missing(tmp_path):
    from testsupport.videos import drifting

    path = tmp_path / "hovering.mp4"
    write_face_video(path, width=1280, height=720, seconds=3.0,
                     motion=drifting(1280, 720, face_height_ratio=0.12, amplitude=0.1, zoom_amplitude=0.2, period_s=2.0))
    with pytest.raises(PipelineError) as caught:
        prepare(path, tmp_path / "out")
    assert caught.value.code == "face_too_small"


def test_an_early_stop_reports_the_share_of_the_frames_it_has_seen(tmp_path):
    """The face shows for the first second, then is covered: the run stops early, and the share
    it reports is of the frames it looked at, not of the whole video."""
    path = tmp_path / "covered.mp4"
    write_face_video(path, seconds=8.0, covered_frames=range(25, 200))
    with pytest.raises(PipelineError) as caught:
        prepare(path, tmp_path / "out")
    error = caught.value
    assert error.code == "no_face"
    checked = error.details["frames_checked"]
    assert checked < 200
    # Exact to the detector's stride (a search every 5th frame): the last face is placed within it.
    assert abs(error.details["detected_ratio"] - 25 / checked) <= 5 / checked + 0.01, error.details
    assert f"{checked} frames" in error.message
