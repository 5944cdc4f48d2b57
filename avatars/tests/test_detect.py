"""Face detectors behind the interface, and the setting that picks one."""

from __future__ import annotations

import cv2
import pytest
from django.core import checks

from avatars.pipeline.detect import HaarFaceDetector, YuNetFaceDetector, make_detector, working_height
from testsupport.videos import PHOTO_FACE_BOX, astronaut_bgr


def test_haar_finds_the_astronaut_and_a_local_search_finds_it_again():
    photo = astronaut_bgr()
    detector = HaarFaceDetector(detect_height=240)
    faces = detector.detect(photo)
    assert faces
    face = faces[0]
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    assert x1 - 10 <= face.cx - face.w / 2 and face.cx + face.w / 2 <= x2 + 10 and y1 - 10 <= face.y <= y2
    again = detector.detect(photo, near=face)
    assert again and abs(again[0].cx - face.cx) < 5


def test_working_height_lets_the_smallest_allowed_face_fill_the_cascade_window():
    assert working_height(0.15) * 0.15 >= 24
    assert working_height(0.10) * 0.10 >= 24
    assert 120 <= working_height(0.5) and working_height(0.01) <= 480


def test_without_a_model_file_the_haar_cascade_is_used():
    assert isinstance(make_detector(None, 0.15), HaarFaceDetector)


def test_a_named_model_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_detector(str(tmp_path / "yunet.onnx"), 0.15)
    with pytest.raises(FileNotFoundError):
        YuNetFaceDetector(tmp_path / "yunet.onnx")


def test_a_file_that_is_not_an_onnx_model_is_refused_by_opencv(tmp_path):
    bogus = tmp_path / "yunet.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(cv2.error):
        YuNetFaceDetector(bogus)


def test_startup_check_reports_a_missing_model_file(settings, tmp_path):
    settings.AVATAR_FACE_MODEL = str(tmp_path / "missing.onnx")
    errors = [message for message in checks.run_checks() if message.id == "avatars.E001"]
    assert len(errors) == 1 and "missing.onnx" in errors[0].msg
    settings.AVATAR_FACE_MODEL = ""
    assert not [message for message in checks.run_checks() if message.id == "avatars.E001"]
