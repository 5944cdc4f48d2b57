"""The preparation run: probe → detect → track → write → finalize.

Two streaming passes over the video. The first decodes every frame and runs the detector on a
subset; what it keeps is a few numbers per frame. The boxes are then smoothed over the whole
clip (which needs the future as well as the past, hence two passes), and the second pass decodes
again, crops, optionally blurs, and hands the images to a writer thread. Decoding twice costs
~1.7 ms a 720p frame; holding the frames instead would cost ~1.4 GB per 20 s of 720p.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avatars.pipeline import blur, track
from avatars.pipeline.detect import FaceBox, FaceDetector, HaarFaceDetector
from avatars.pipeline.errors import PipelineCancelled, PipelineError
from avatars.pipeline.video import VideoInfo, VideoLimits, check_decoded_duration, iter_frames, open_capture, probe
from avatars.pipeline.writer import FrameWriteError, FrameWriter, write_image

MANIFEST_VERSION = 1
STAGES = ("probe", "detect", "track", "write", "finalize")

# Share of the overall progress each stage ends at; writing dominates the run time.
_STAGE_END = {"probe": 2.0, "detect": 40.0, "track": 42.0, "write": 97.0, "finalize": 100.0}
_STAGE_START = {"probe": 0.0, "detect": 2.0, "track": 40.0, "write": 42.0, "finalize": 97.0}

ProgressCallback = Callable[[str, int, int], None]
CancelCheck = Callable[[], bool]


def overall_progress(stage: str, done: int, total: int) -> float:
    """Percent (0–100) of the whole run when `done` of `total` frames of `stage` are finished."""
    start, end = _STAGE_START[stage], _STAGE_END[stage]
    fraction = min(1.0, done / total) if total > 0 else 0.0
    return round(start + (end - start) * fraction, 1)


@dataclass(frozen=True)
class PrepareOptions:
    apply_blur: bool = False
    crop_size: int = 256
    frame_format: str = "jpg"  # "jpg" or "png" for full frames; crops are always PNG
    jpeg_quality: int = 95
    detect_every: int = 5
    # A face must be seen (or bridged) in this share of frames.
    min_face_ratio: float = 0.9
    # The face's median height (the detector's box) must be at least this share of the frame height.
    min_face_height: float = 0.1
    # Misses up to this long (a blink, a hand passing) are bridged.
    bridge_gap_s: float = 1.0
    # A second face in more than this share of detected frames fails the run.
    max_multiple_faces_ratio: float = 0.5
    limits: VideoLimits = field(default_factory=VideoLimits)


@dataclass(frozen=True)
class PreparedAvatar:
    out_dir: Path
    video: VideoInfo
    frame_count: int
    fps: float
    crop_size: int
    face_ratio: float
    detector: str
    timings_s: dict[str, float]


@dataclass
class _Detections:
    faces: dict[int, FaceBox]
    frame_count: int
    attempts: int
    multi_face_frames: int


def prepare(
    video_path: str | Path,
    out_dir: str | Path,
    options: PrepareOptions = PrepareOptions(),
    on_progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    detector: FaceDetector | None = None,
) -> PreparedAvatar:
    """Turn `video_path` into the prepared avatar layout inside `out_dir` (which must not exist).

    `on_progress(stage, frames_done, frames_total)` is called at each stage change and every few
    frames; `cancelled()` is checked between frames. On any failure or cancellation `out_dir` is
    removed, so a run either leaves the whole layout or nothing.
    Raises PipelineError (named quality errors) or PipelineCancelled.
    """
    out_dir = Path(out_dir)
    report = on_progress or (lambda stage, done, total: None)
    is_cancelled = cancelled or (lambda: False)
    detector = detector or HaarFaceDetector()
    out_dir.mkdir(parents=True)
    try:
        return _prepare(Path(video_path), out_dir, options, report, is_cancelled, detector)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _prepare(
    video_path: Path,
    out_dir: Path,
    options: PrepareOptions,
    report: ProgressCallback,
    is_cancelled: CancelCheck,
    detector: FaceDetector,
) -> PreparedAvatar:
    timings: dict[str, float] = {}

    started = time.perf_counter()
    report("probe", 0, 1)
    info = probe(video_path, options.limits)
    report("probe", 1, 1)
    timings["probe"] = time.perf_counter() - started

    started = time.perf_counter()
    found = _detect_faces(video_path, info, options, detector, report, is_cancelled)
    check_decoded_duration(found.frame_count, info.fps, options.limits)
    timings["detect"] = time.perf_counter() - started

    started = time.perf_counter()
    report("track", 0, 1)
    raw_track = track.build_track(found.faces, found.frame_count, _max_gap(info.fps, options))
    _check_faces(raw_track, found, info, options, video_path)
    smooth = track.smooth_track(raw_track, info.fps)
    boxes = track.crop_boxes(smooth, info.width, info.height)
    report("track", 1, 1)
    timings["track"] = time.perf_counter() - started

    started = time.perf_counter()
    preview = _write_frames(video_path, out_dir, boxes, smooth, options, report, is_cancelled)
    timings["write"] = time.perf_counter() - started

    started = time.perf_counter()
    report("finalize", 0, 1)
    coords = [tuple(int(v) for v in box) for box in boxes]
    with open(out_dir / "coords.pkl", "wb") as handle:
        pickle.dump(coords, handle)
    write_image(out_dir / "preview.jpg", preview, [cv2.IMWRITE_JPEG_QUALITY, 85])
    timings["finalize"] = time.perf_counter() - started
    video = VideoInfo(
        width=info.width,
        height=info.height,
        fps=info.fps,
        frame_count=found.frame_count,
        duration_s=round(found.frame_count / info.fps, 3),
        container=info.container,
        codec=info.codec,
    )
    manifest = {
        "format_version": MANIFEST_VERSION,
        "source": video.as_dict(),
        "fps": info.fps,
        "frame_count": found.frame_count,
        "crop_size": options.crop_size,
        "frame_format": options.frame_format,
        "apply_blur": options.apply_blur,
        "detector": detector.name,
        "detect_every": options.detect_every,
        "faces": {
            "detected_ratio": round(raw_track.face_ratio, 4),
            "detection_attempts": found.attempts,
            "detections": len(found.faces),
            "frames_without_face": raw_track.frames_without_face(),
        },
        "timings_s": {name: round(value, 3) for name, value in timings.items()},
        "coords": [list(box) for box in coords],
    }
    (out_dir / "avatar.json").write_text(json.dumps(manifest, indent=1))
    report("finalize", 1, 1)
    return PreparedAvatar(
        out_dir=out_dir,
        video=video,
        frame_count=found.frame_count,
        fps=info.fps,
        crop_size=options.crop_size,
        face_ratio=raw_track.face_ratio,
        detector=detector.name,
        timings_s=timings,
    )


def _progress_step(total: int) -> int:
    # About a hundred reports a stage: often enough for a live bar, rare enough to cost nothing.
    return max(1, total // 100) if total > 0 else 10


def _detect_faces(
    video_path: Path,
    info: VideoInfo,
    options: PrepareOptions,
    detector: FaceDetector,
    report: ProgressCallback,
    is_cancelled: CancelCheck,
) -> _Detections:
    """First pass: run the detector on every k-th frame, and on every frame while the face is lost."""
    max_frames = int(options.limits.max_duration_s * info.fps) + 1
    associator = track.FaceAssociator(_max_gap(info.fps, options))
    faces: dict[int, FaceBox] = {}
    attempts = multi_face_frames = 0
    lost = False
    step = _progress_step(info.frame_count)
    last_index = info.frame_count - 1  # from the header; detecting there avoids holding a stale box at the end

    def wanted(index: int) -> bool:
        return lost or index % options.detect_every == 0 or index == last_index

    frame_count = 0
    report("detect", 0, info.frame_count)
    for index, frame in iter_frames(video_path, wanted):
        if is_cancelled():
            raise PipelineCancelled()
        frame_count = index + 1
        if frame_count > max_frames:
            check_decoded_duration(frame_count, info.fps, options.limits)
        if frame is not None:
            attempts += 1
            candidates = detector.detect(frame)
            chosen = associator.choose(index, candidates)
            lost = chosen is None
            if chosen is not None:
                faces[index] = chosen
                if _has_second_face(chosen, candidates):
                    multi_face_frames += 1
        if frame_count % step == 0:
            report("detect", frame_count, max(info.frame_count, frame_count))
    report("detect", frame_count, frame_count)
    return _Detections(faces, frame_count, attempts, multi_face_frames)


def _max_gap(fps: float, options: PrepareOptions) -> int:
    return max(options.detect_every, round(options.bridge_gap_s * fps))


def _has_second_face(best: FaceBox, faces: list[FaceBox]) -> bool:
    """Whether a face besides the tutor's is about as sure and as large, and elsewhere."""
    for other in faces:
        if other is best:
            continue
        apart = abs(other.cx - best.cx) > (best.w + other.w) / 2 or abs(other.cy - best.cy) > (best.h + other.h) / 2
        if apart and other.score >= max(3.0, 0.5 * best.score) and other.size >= 0.6 * best.size:
            return True
    return False


def _check_faces(face_track: track.FaceTrack, found: _Detections, info: VideoInfo, options: PrepareOptions,
                 video_path: Path) -> None:
    """The quality gates that need the detections: no_face, face_too_small, multiple_faces."""
    ratio = face_track.face_ratio
    if ratio < options.min_face_ratio:
        # A face too small for the detector's working size is still worth naming as such.
        small = _small_face_height(video_path, info)
        if small is not None and small < options.min_face_height:
            raise _face_too_small(small, options)
        raise PipelineError(
            "no_face",
            f"A face was found in only {ratio:.0%} of the frames (at least {options.min_face_ratio:.0%} needed). "
            "Record the tutor facing the camera, well lit, with nothing covering the face.",
            {"detected_ratio": round(ratio, 4)},
        )
    heights = np.array([face.h for face in found.faces.values()])
    face_height = float(np.median(heights)) / info.height
    if face_height < options.min_face_height:
        raise _face_too_small(face_height, options)
    detected = max(1, len(found.faces))
    multi_ratio = found.multi_face_frames / detected
    if multi_ratio > options.max_multiple_faces_ratio:
        raise PipelineError(
            "multiple_faces",
            f"A second face is visible in {multi_ratio:.0%} of the frames. Record the tutor alone in the picture.",
            {"multiple_faces_ratio": round(multi_ratio, 4)},
        )


def _face_too_small(face_height: float, options: PrepareOptions) -> PipelineError:
    return PipelineError(
        "face_too_small",
        f"The face fills only {face_height:.0%} of the frame height (at least {options.min_face_height:.0%} "
        "needed). Move the camera closer or zoom in so head and shoulders fill the picture.",
        {"face_height_ratio": round(face_height, 4)},
    )


def _small_face_height(video_path: Path, info: VideoInfo, samples: int = 5) -> float | None:
    """Median face height (share of the frame) on a few frames at full detail, if most show one."""
    fine = HaarFaceDetector(detect_height=min(info.width, info.height, 1080))
    capture = open_capture(video_path)
    heights = []
    try:
        total = max(1, info.frame_count)
        for position in np.linspace(0, total - 1, samples).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(position))
            ok, frame = capture.read()
            faces = fine.detect(frame) if ok else []
            if faces:
                heights.append(faces[0].h / info.height)
    finally:
        capture.release()
    return float(np.median(heights)) if len(heights) > samples // 2 else None


def _write_frames(
    video_path: Path,
    out_dir: Path,
    boxes: np.ndarray,
    smooth: track.FaceTrack,
    options: PrepareOptions,
    report: ProgressCallback,
    is_cancelled: CancelCheck,
) -> np.ndarray:
    """Second pass: crop (and blur) every frame and queue it for the writer. Returns the preview
    (the middle frame, scaled to at most 640 pixels wide)."""
    total = len(boxes)
    step = _progress_step(total)
    preview: np.ndarray | None = None
    size = options.crop_size
    writer = FrameWriter(out_dir, options.frame_format, options.jpeg_quality)
    report("write", 0, total)
    try:
        written = 0
        for index, frame in iter_frames(video_path):
            if index >= total:
                break  # a frame the first pass did not see has no box
            if is_cancelled():
                raise PipelineCancelled()
            y1, y2, x1, x2 = boxes[index]
            crop = frame[y1:y2, x1:x2]
            interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
            face = cv2.resize(crop, (size, size), interpolation=interpolation)
            if options.apply_blur:
                height, width = frame.shape[:2]
                mask = blur.person_mask(smooth.cx[index], smooth.cy[index], smooth.size[index], width, height)
                frame = blur.blur_background(frame, mask)
            writer.put(index, frame, face)
            if index == total // 2:
                scale = min(1.0, 640 / frame.shape[1])
                preview = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            written = index + 1
            if written % step == 0:
                report("write", written, total)
        if written != total:
            raise PipelineError(
                "unreadable_video",
                f"The video gave {written} frames on the second read but {total} on the first; it may be damaged.",
            )
        writer.close()
    except FrameWriteError as exc:
        writer.abort()
        raise PipelineError("write_failed", f"The prepared files could not be written: {exc}") from exc
    except BaseException:
        writer.abort()
        raise
    report("write", total, total)
    assert preview is not None
    return preview
