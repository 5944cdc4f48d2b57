"""The named refusals a run's faces can earn, and the rules that decide them.

Each verdict names the real cause, so its advice is the right one:

- ``multiple_faces``: a second face, about as sure and as large as the tutor's, in more than the
  allowed share of the whole-frame searches (only those can see one).
- ``no_face``: too few frames show a face at all (a cat, an empty room, a face covered). The share
  in the message is of the frames actually seen, also when the run stops early.
- ``face_too_small``: a face is there, but smaller (in source pixels: the detector's box, brow to
  chin) than the crops need. Judged in pixels, not as a share of the frame: a 1080p waist-up shot
  with a 140-pixel face makes good 256-pixel crops, a 320x240 clip with its face filling 40% of
  the height does not.

Pure Python and NumPy: the run collects the facts (FaceCounts, the tracker), this module judges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.pipeline.detect import FaceBox
from avatars.pipeline.errors import PipelineError

# Refusals that reprocessing the same video would only repeat: they say something about the
# video itself (its faces, its length, its frames), so the help is another video. The others
# (insufficient_storage, write_failed, internal_error, a cancelled run) may pass on a second run.
SAME_VIDEO_FAILS_AGAIN = frozenset({
    "multiple_faces", "no_face", "face_too_small", "incomplete_video", "output_too_large",
    "not_a_video", "unreadable_video", "too_short", "too_long", "resolution_too_low",
    "resolution_too_high", "video_too_large",
})


@dataclass
class FaceCounts:
    """What the searches of one run found, as it goes."""

    attempts: int = 0  # detector calls
    full_with_face: int = 0  # whole-frame searches that found the tutor
    multiple_faces: int = 0  # ... and a second face beside it

    def count_full_search(self, tutor: FaceBox, faces: list[FaceBox]) -> None:
        self.full_with_face += 1
        self.multiple_faces += has_second_face(tutor, faces)

    @property
    def multiple_faces_ratio(self) -> float:
        return self.multiple_faces / max(1, self.full_with_face)


def has_second_face(tutor: FaceBox, faces: list[FaceBox]) -> bool:
    """Whether a face besides the tutor's is about as sure and as large, and elsewhere."""
    for other in faces:
        if other is tutor:
            continue
        apart = abs(other.cx - tutor.cx) > (tutor.w + other.w) / 2 or abs(other.cy - tutor.cy) > (tutor.h + other.h) / 2
        if apart and other.score >= 0.5 * tutor.score and other.size >= 0.6 * tutor.size:
            return True
    return False


def no_face(frames_with_face: int, frames_seen: int, min_face_ratio: float) -> PipelineError:
    seen = frames_with_face / max(1, frames_seen)
    return PipelineError(
        "no_face",
        f"A face was found in only {seen:.0%} of the {frames_seen} frames looked at (at least "
        f"{min_face_ratio:.0%} needed). Record the tutor facing the camera, well lit, with nothing covering the face.",
        {"detected_ratio": round(seen, 4), "frames_checked": frames_seen},
    )


def face_too_small(face_px: float, min_face_px: float) -> PipelineError:
    return PipelineError(
        "face_too_small",
        f"The face is only {face_px:.0f} pixels tall in the video (at least {min_face_px:.0f} needed for sharp "
        "face crops). Move the camera closer, zoom in, or record at a higher resolution.",
        {"face_height_px": round(face_px, 1), "min_face_height_px": round(min_face_px, 1)},
    )


def multiple_faces(ratio: float) -> PipelineError:
    return PipelineError(
        "multiple_faces",
        f"A second face is visible in {ratio:.0%} of the frames checked. Record the tutor alone in the picture.",
        {"multiple_faces_ratio": round(ratio, 4)},
    )


def median_face_height(faces: list[FaceBox]) -> float:
    return float(np.median([face.h for face in faces])) if faces else 0.0


def judge(has_face: np.ndarray, faces: list[FaceBox], counts: FaceCounts, *, min_face_ratio: float,
          min_face_px: float, max_multiple_faces_ratio: float) -> PipelineError | None:
    """The verdict on a whole run, or None when the video makes a good avatar. `has_face` says
    per frame whether a face was seen (or bridged); `faces` are the tutor's accepted detections.
    A second person comes first: with several faces the others' failures follow from it."""
    if counts.multiple_faces_ratio > max_multiple_faces_ratio:
        return multiple_faces(counts.multiple_faces_ratio)
    if has_face.mean() < min_face_ratio:
        return no_face(int(has_face.sum()), len(has_face), min_face_ratio)
    face_px = median_face_height(faces)
    if face_px < min_face_px:
        return face_too_small(face_px, min_face_px)
    return None


def small_face_instead(no_face_error: PipelineError, sampled_heights: list[float], samples: int,
                       min_face_px: float) -> PipelineError:
    """When a run found too few faces, a finer search of a few frames (`sampled_heights`: the
    face height found in each sampled frame that showed one) may show that a face was there all
    along, only too small for the run's searches: then that is the verdict."""
    if len(sampled_heights) > samples // 2:
        face_px = float(np.median(sampled_heights))
        if face_px < min_face_px:
            return face_too_small(face_px, min_face_px)
    return no_face_error
