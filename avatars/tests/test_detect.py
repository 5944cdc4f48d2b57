"""Face detectors behind the interface, and the settings that pick one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core import checks

from avatars.pipeline.detect import (
    HaarFaceDetector,
    YuNetFaceDetector,
    YuNetOnnxFaceDetector,
    detector_name,
    full_search_scale,
    haar_working_height,
    make_detector,
)
from testsupport.videos import PHOTO_FACE_BOX, astronaut_bgr


def inside_photo_face(face, margin: float = 10) -> bool:
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    return x1 - margin <= face.cx <= x2 + margin and y1 - margin <= face.cy <= y2 + margin


def test_haar_finds_the_astronaut_and_a_local_search_finds_it_again():
    photo = astronaut_bgr()
    detector = HaarFaceDetector(detect_height=240)
    faces = detector.detect(photo)
    assert faces
    face = faces[0]
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    assert x1 - 10 <= face.cx - face.w / 2 and face.cx + face.w / 2 <= x2 + 10 and y1 - 10 <= face.y <= y2
    assert face.landmarks is None
    again = detector.detect(photo, near=face)
    assert again and abs(again[0].cx - face.cx) < 5


def test_yunet_finds_the_astronaut_with_five_facial_points_in_place():
    photo = astronaut_bgr()
    detector = YuNetFaceDetector()
    faces = detector.detect(photo)
    assert len(faces) == 1 and inside_photo_face(faces[0])
    face = faces[0]
    points = np.array(face.landmarks).reshape(5, 2)
    eye_left, eye_right, nose, mouth_left, mouth_right = points
    assert eye_left[0] < nose[0] < eye_right[0] and mouth_left[0] < mouth_right[0]
    assert max(eye_left[1], eye_right[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    for x, y in points:  # every point inside the detector's box
        assert face.x <= x <= face.x + face.w and face.y <= y <= face.y + face.h


def test_yunet_near_search_finds_the_same_face_in_a_large_frame():
    photo = cv2.resize(astronaut_bgr(), None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    detector = YuNetFaceDetector()
    face = detector.detect(photo)[0]
    again = detector.detect(photo, near=face)
    assert again and abs(again[0].cx - face.cx) < 0.05 * face.w and abs(again[0].h / face.h - 1) < 0.15
    # A region with nothing in it: no face, no error.
    assert detector.detect(np.zeros_like(photo), near=face) == []


def test_yunet_finds_a_face_rotated_30_degrees_either_way():
    photo = astronaut_bgr()
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    for angle in (-30, 30):
        matrix = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, 1.0)
        rotated = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REPLICATE)
        faces = YuNetFaceDetector().detect(rotated)
        assert faces and inside_photo_face(faces[0])


def test_a_cat_is_not_a_face():
    from skimage import data

    cat = cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)
    for scale in (1.0, 2.0):
        image = cv2.resize(cat, None, fx=scale, fy=scale)
        assert YuNetFaceDetector().detect(image) == []
        assert YuNetFaceDetector(fine_long_side=1920).detect(image) == []


def test_full_search_scale_keeps_half_the_smallest_face_findable():
    for short_side in (240, 360, 720, 1080, 2160):
        scale = full_search_scale(short_side, 96)
        assert scale * 48 >= 12 or scale == 1.0
        assert scale * short_side >= min(200, short_side)
    assert full_search_scale(720, 96) == pytest.approx(200 / 720)
    assert full_search_scale(2160, 96) == pytest.approx(0.25)


def test_haar_working_height_lets_the_smallest_allowed_face_fill_the_cascade_window():
    assert haar_working_height(0.15) * 0.15 >= 24
    assert haar_working_height(0.10) * 0.10 >= 24
    assert 120 <= haar_working_height(0.5) and haar_working_height(0.01) <= 480


def test_the_setting_names_the_detector():
    assert isinstance(make_detector("yunet"), YuNetFaceDetector)
    assert isinstance(make_detector("haar", frame_height=720), HaarFaceDetector)
    assert detector_name("yunet") == YuNetFaceDetector.name
    assert detector_name("haar") == HaarFaceDetector.name
    assert detector_name("yunet", model_path="/x.onnx") == YuNetOnnxFaceDetector.name
    with pytest.raises(ValueError):
        make_detector("dlib")


def test_the_crop_holds_the_astronauts_face_upright_and_tilted_30_degrees():
    from avatars.pipeline.head import YUNET_HEAD
    from avatars.pipeline.track import crop_box

    photo = astronaut_bgr()
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], float)
    for angle in (-30, -15, 0, 15, 30):
        matrix = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, 1.0)
        turned = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REPLICATE)
        face = YuNetFaceDetector().detect(turned)[0]
        top, bottom, left, right = crop_box(*YUNET_HEAD.square(face), 512, 512)
        (fx1, fy1), (fx2, fy2) = (corners @ matrix.T).min(0), (corners @ matrix.T).max(0)
        assert left <= fx1 and top <= fy1 and right >= fx2 and bottom >= fy2, angle
        assert (bottom - top) * (right - left) <= 4 * (fx2 - fx1) * (fy2 - fy1), angle


def test_a_named_model_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_detector("yunet", model_path=str(tmp_path / "yunet.onnx"))
    with pytest.raises(FileNotFoundError):
        YuNetOnnxFaceDetector(tmp_path / "yunet.onnx")


def test_a_file_that_is_not_an_onnx_model_is_refused_by_opencv(tmp_path):
    bogus = tmp_path / "yunet.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(cv2.error):
        YuNetOnnxFaceDetector(bogus)


def test_startup_check_reports_a_missing_model_file(settings, tmp_path):
    settings.AVATAR_FACE_MODEL = str(tmp_path / "missing.onnx")
    errors = [message for message in checks.run_checks() if message.id == "avatars.E001"]
    assert len(errors) == 1 and "missing.onnx" in errors[0].msg
    settings.AVATAR_FACE_MODEL = ""
    assert not [message for message in checks.run_checks() if message.id == "avatars.E001"]


def test_startup_check_reports_an_unknown_detector(settings):
    settings.AVATAR_FACE_DETECTOR = "dlib"
    errors = [message for message in checks.run_checks() if message.id == "avatars.E002"]
    assert len(errors) == 1 and "dlib" in errors[0].msg
    settings.AVATAR_FACE_DETECTOR = "haar"
    assert not [message for message in checks.run_checks() if message.id.startswith("avatars.E00")]


def test_a_turned_retry_maps_the_face_and_its_points_back_into_the_frame():
    """The retry of a missed near search searches the region turned: what it finds must come back
    where the face is in the frame (checked on an upright face, searched turned either way)."""
    from avatars.pipeline.detect import _search_turned, _Window

    photo = astronaut_bgr()
    detector = YuNetFaceDetector()
    upright = detector.detect(photo)[0]
    window = _Window(100, 0, 400, 300, 0.5)
    image = cv2.resize(photo[0:300, 100:400], (150, 150), interpolation=cv2.INTER_AREA)
    for angle in (-30, 30):
        faces = _search_turned(image, window, angle, detector._search)
        assert faces, angle
        face = faces[0]
        assert abs(face.cx - upright.cx) < 0.08 * upright.h and abs(face.cy - upright.cy) < 0.08 * upright.h
        # YuNet's points barely follow a turn, so turned back they are only roughly in place:
        # inside the face, mouth below eyes.
        points = np.array(face.landmarks).reshape(5, 2)
        assert (np.abs(points - (upright.cx, upright.cy)) < 0.6 * upright.h).all()
        assert points[3:, 1].min() > points[:2, 1].max()
