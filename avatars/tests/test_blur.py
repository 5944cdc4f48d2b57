"""Background blur: the person stays sharp, the background loses its detail, nothing flickers,
and the OpenCV (CPU) and torch (GPU) implementations agree."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from avatars.pipeline import PrepareOptions, prepare
from avatars.pipeline.blur import BackgroundBlur, blur_background, person_mask


def laplacian_energy(image: np.ndarray, where: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_64F))[where].mean())


@pytest.fixture(scope="module")
def sharp_and_blurred(face_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("blur")
    prepare(face_video[0], out / "sharp", PrepareOptions(frame_format="png"))
    prepare(face_video[0], out / "blurred", PrepareOptions(frame_format="png", apply_blur=True))
    return out / "sharp", out / "blurred"


def test_background_detail_drops_by_at_least_60_percent(sharp_and_blurred):
    sharp_dir, blurred_dir = sharp_and_blurred
    coords = pickle.loads((sharp_dir / "coords.pkl").read_bytes())
    drops = []
    for index in (0, 12, 25, 37, 49):
        sharp = cv2.imread(str(sharp_dir / "full_imgs" / f"{index:08d}.png"))
        blurred = cv2.imread(str(blurred_dir / "full_imgs" / f"{index:08d}.png"))
        y1, y2, x1, x2 = coords[index]
        side = y2 - y1
        face_size = side / 1.7
        # Outside the person: everything the head-and-shoulders mask leaves at zero.
        mask = person_mask((x1 + x2) / 2, (y1 + y2) / 2 - 0.1 * face_size, face_size, sharp.shape[1], sharp.shape[0])
        background = mask < 0.01
        drops.append(1 - laplacian_energy(blurred, background) / laplacian_energy(sharp, background))
    print("background detail drop per frame: " + ", ".join(f"{d:.0%}" for d in drops))
    assert min(drops) >= 0.6


def test_the_face_in_the_crops_is_the_same_with_and_without_blur(sharp_and_blurred, face_video):
    """Blur is judged on the face itself (the oval inside the true face box, forehead to chin and
    ear to ear): the crop's corners are background, blurred on purpose."""
    sharp_dir, blurred_dir = sharp_and_blurred
    truth = face_video[1]
    coords = pickle.loads((sharp_dir / "coords.pkl").read_bytes())
    for index in (0, 25, 49):
        y1, y2, x1, x2 = coords[index]
        scale = 256 / (y2 - y1)
        fx1, fy1, fx2, fy2 = ((v - origin) * scale for v, origin in zip(truth[index], (x1, y1, x1, y1)))
        face = np.zeros((256, 256), np.uint8)
        cv2.ellipse(face, (round((fx1 + fx2) / 2), round((fy1 + fy2) / 2)), (round((fx2 - fx1) / 2), round((fy2 - fy1) / 2)),
                    0, 0, 360, 255, -1)
        face = face > 0
        sharp = cv2.imread(str(sharp_dir / "face_imgs" / f"{index:08d}.png")).astype(float)[face]
        blurred = cv2.imread(str(blurred_dir / "face_imgs" / f"{index:08d}.png")).astype(float)[face]
        assert face.mean() > 0.15 and np.abs(sharp - blurred).mean() < 0.5, np.abs(sharp - blurred).mean()


def paste_back_change(avatar_dir, index: int) -> float:
    """A renderer's paste-back (LiveTalking's wav2lip layout): the crop resized to its box and
    written into the full frame there. The mean change inside the box, in grey levels."""
    coords = pickle.loads((avatar_dir / "coords.pkl").read_bytes())
    y1, y2, x1, x2 = coords[index]
    frame = cv2.imread(str(avatar_dir / "full_imgs" / f"{index:08d}.png")).astype(float)
    crop = cv2.imread(str(avatar_dir / "face_imgs" / f"{index:08d}.png"))
    pasted = cv2.resize(crop, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR).astype(float)
    return float(np.abs(frame[y1:y2, x1:x2] - pasted).mean())


def test_crops_paste_back_into_blurred_frames_without_a_seam(sharp_and_blurred):
    """The crops are cut from the frame as published, so pasting one back changes its box by
    resampling only, with blur as without (a crop cut before blurring changed it ~4 levels)."""
    sharp_dir, blurred_dir = sharp_and_blurred
    for index in (0, 25, 49):
        without_blur, with_blur = paste_back_change(sharp_dir, index), paste_back_change(blurred_dir, index)
        print(f"frame {index}: paste-back change {without_blur:.2f} without blur, {with_blur:.2f} with blur")
        assert with_blur <= without_blur + 0.5 and with_blur < 2.0


def test_the_face_in_the_full_frame_stays_sharp(sharp_and_blurred):
    sharp_dir, blurred_dir = sharp_and_blurred
    coords = pickle.loads((sharp_dir / "coords.pkl").read_bytes())
    y1, y2, x1, x2 = coords[25]
    inset = (y2 - y1) // 5  # the face itself, inside the crop's margin
    sharp = cv2.imread(str(sharp_dir / "full_imgs" / "00000025.png"))[y1 + inset : y2 - inset, x1 + inset : x2 - inset]
    blurred = cv2.imread(str(blurred_dir / "full_imgs" / "00000025.png"))[y1 + inset : y2 - inset, x1 + inset : x2 - inset]
    assert np.abs(sharp.astype(float) - blurred.astype(float)).mean() < 1.0


def test_mask_does_not_flicker_between_frames():
    """Consecutive masks of a face moving 2 px a frame differ by little, everywhere."""
    masks = [person_mask(300 + 2 * i, 150, 100, 640, 360) for i in range(10)]
    steps = [float(np.abs(a - b).max()) for a, b in zip(masks, masks[1:])]
    assert max(steps) < 0.1


def test_reused_buffers_give_the_same_result_as_the_plain_function(face_video):
    capture = cv2.VideoCapture(str(face_video[0]))
    frames = [capture.read()[1] for _ in range(3)]
    background_blur = BackgroundBlur()
    for frame in frames:
        expected = blur_background(frame, person_mask(320, 150, 100, 640, 360))
        assert np.abs(background_blur(frame, 320, 150, 100).astype(int) - expected.astype(int)).max() <= 1


def test_torch_and_opencv_blur_agree(face_video):
    from avatars.pipeline import torch_blur

    capture = cv2.VideoCapture(str(face_video[0]))
    frame = capture.read()[1]
    mask = person_mask(320, 150, 100, frame.shape[1], frame.shape[0])
    with_opencv = blur_background(frame, mask).astype(int)
    with_torch = torch_blur.blur_background_bgr(frame, mask, "cpu").astype(int)
    difference = np.abs(with_opencv - with_torch)
    print(f"opencv vs torch: mean difference {difference.mean():.3f}, max {difference.max()} grey levels")
    assert difference.mean() < 0.5 and difference.max() <= 6
