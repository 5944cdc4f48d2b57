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
    assert manifest["detector"] == "opencv-haar-frontalface-default"
    assert set(manifest["timings_s"]) == {"probe", "frames", "finalize"}
    assert cv2.imread(str(out / "preview.jpg")) is not None


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


def test_unwritable_output_fails_with_write_failed(face_video, tmp_path, monkeypatch):
    from avatars.pipeline import writer

    def failing_write(path: Path, image, params):
        raise writer.FrameWriteError("No space left on device")

    monkeypatch.setattr(writer, "write_image", failing_write)
    with pytest.raises(PipelineError) as caught:
        prepare(face_video[0], tmp_path / "out")
    assert caught.value.code == "write_failed"
    assert not (tmp_path / "out").exists()
