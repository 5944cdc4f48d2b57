"""The face crops' PNG encoder: lossless, and readable by OpenCV and Pillow."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from avatars.pipeline import png
from testsupport.videos import astronaut_bgr


@pytest.mark.parametrize("shape", [(256, 256), (1, 1), (37, 300), (300, 37)])
def test_encoding_is_lossless_for_opencv_and_pillow(shape):
    image = cv2.resize(astronaut_bgr(), shape[::-1], interpolation=cv2.INTER_AREA)
    data = png.encode_png(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), image)
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()  # checks every chunk's CRC and the zlib stream
        assert decoded.mode == "RGB"
        assert np.array_equal(np.asarray(decoded)[:, :, ::-1], image)


def test_isal_is_used_and_its_files_are_smaller_than_opencvs():
    assert png.isal_zlib is not None, "isal (requirements.txt) is not installed"
    crop = cv2.resize(astronaut_bgr()[0:300, 150:450], (256, 256))
    assert len(png.encode_png(crop)) < len(cv2.imencode(".png", crop)[1])


def test_without_isal_opencv_encodes(monkeypatch):
    monkeypatch.setattr(png, "isal_zlib", None)
    image = cv2.resize(astronaut_bgr(), (64, 64))
    assert np.array_equal(cv2.imdecode(np.frombuffer(png.encode_png(image), np.uint8), cv2.IMREAD_COLOR), image)
