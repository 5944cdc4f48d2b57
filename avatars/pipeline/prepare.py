"""The preparation run: probe → frames → finalize, in one streaming pass over the video.

The decoding thread runs the face detector on a subset of frames (a full search now and then,
a search near the last face in between, a full search on every frame while the face is lost)
and feeds the online tracker. A frame waits in a short buffer until the tracker's smoothed box
for it is final (a fraction of a second of future is needed), then goes to the writer threads,
which crop, blur if asked, encode and write it. Memory is bounded by that buffer, not by the
video's length, and each frame is decoded once.

Quality gates that need the whole video (share of frames with a face, face size, a second face)
are judged at the end by `verdicts.py`; a run that fails them leaves nothing, like any failed run.
A video whose frames without a face already exceed the allowance stops early.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avatars.pipeline import blur, lips, mouth_bank, verdicts
from avatars.pipeline.detect import FaceBox, FaceDetector, YuNetFaceDetector, make_detector
from avatars.pipeline.errors import FrameWriteError, PipelineCancelled, PipelineError
from avatars.pipeline.head import GEOMETRIES
from avatars.pipeline.track import LANDMARK_COUNT, FaceTracker, TrackedBox, frames_without_face
from avatars.pipeline.video import (
    FramePool,
    VideoInfo,
    DecodeClock,
    VideoLimits,
    check_decoded_budget,
    check_decoded_duration,
    decoded_frame_limit,
    iter_frames,
    open_capture,
    playback_fps,
    probe,
)
from avatars.pipeline.writer import BlurFunction, FrameWriterPool, write_image

# 2: the crop holds the whole head; landmarks.npy. 3: lip shapes (lips.npy, lip_features.npy,
# mouth_boxes.npy, mouth_imgs/) and the mouth coverage.
MANIFEST_VERSION = 3

# Share of the overall progress (percent) each stage starts and ends at.
_STAGE_SPAN = {"probe": (0.0, 1.0), "frames": (1.0, 98.0), "finalize": (98.0, 100.0)}
# The stages in words, for people (the staff pages); the API says the codes above.
STAGE_WORDS = {"probe": "checking the video", "frames": "tracking the face", "finalize": "publishing the files"}

ProgressCallback = Callable[[str, int, int], None]
CancelCheck = Callable[[], bool]


def overall_progress(stage: str, done: int, total: int) -> float:
    """Percent (0–100) of the whole run when `done` of `total` units of `stage` are finished."""
    start, end = _STAGE_SPAN[stage]
    fraction = min(1.0, done / total) if total > 0 else 0.0
    return round(start + (end - start) * fraction, 1)


@dataclass(frozen=True)
class PrepareOptions:
    apply_blur: bool = False
    crop_size: int = 256
    frame_format: str = "jpg"  # "jpg" or "png" for full frames; crops are always PNG
    jpeg_quality: int = 95
    # Search near the last face every k-th frame; search the whole frame every `full_search_s`.
    detect_every: int = 5
    full_search_s: float = 2.0
    # A face must be seen (or bridged) in this share of frames.
    min_face_ratio: float = 0.9
    # The face's median height (the detector's box, brow to chin), in source pixels: 96 makes a
    # head crop of ~170 pixels, scaled up at most ~1.5x to 256-pixel crops.
    min_face_px: float = 96.0
    # Misses up to this long (a blink, a hand passing) are bridged.
    bridge_gap_s: float = 1.0
    # A second face in more than this share of full searches that found the tutor fails the run.
    max_multiple_faces_ratio: float = 0.5
    # "yunet" (the default CNN) or "haar" (OpenCV's cascade, a fallback); with "yunet", a YuNet
    # ONNX file runs through OpenCV instead of the copy compiled into the yuface wheel.
    face_detector: str = "yunet"
    face_model: str | None = None
    # "cpu" or "cuda:N": where the blur runs (OpenCV on the CPU, torch on a GPU).
    device: str = "cpu"
    writer_threads: int = 2
    limits: VideoLimits = field(default_factory=VideoLimits)
    # Bytes the frames and crops may take on disk; past it the run fails with output_too_large.
    max_output_bytes: int | None = None
    # Measure the lips of every frame and keep its lower face (the renderer's mouth bank): about
    # 2 ms of one core a frame (face mesh) plus a small JPEG. Without the model the run goes on
    # without them, and the coverage says so.
    lip_shapes: bool = True


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
    mouth_coverage: dict = field(default_factory=dict)


def prepare(
    video_path: str | Path,
    out_dir: str | Path,
    options: PrepareOptions = PrepareOptions(),
    on_progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
    detector: FaceDetector | None = None,
) -> PreparedAvatar:
    """Turn `video_path` into the prepared avatar layout inside `out_dir` (which must not exist).

    `on_progress(stage, done, total)` is called at each stage change and every few frames;
    `cancelled()` is checked between frames. On any failure or cancellation `out_dir` is removed,
    so a run either leaves the whole layout or nothing.
    Raises PipelineError (named quality errors) or PipelineCancelled.
    """
    out_dir = Path(out_dir)
    run = _Run(
        Path(video_path), out_dir, options,
        on_progress or (lambda stage, done, total: None),
        cancelled or (lambda: False),
        detector,
    )
    out_dir.mkdir(parents=True)
    try:
        return run.execute()
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _blur_factory(options: PrepareOptions) -> Callable[[], BlurFunction] | None:
    """What each writer thread blurs with: OpenCV on the CPU (faster there), torch on a GPU."""
    if not options.apply_blur:
        return None
    if options.device.startswith("cuda"):
        from avatars.pipeline import torch_blur  # imports torch: only for a GPU

        def on_gpu(frame: np.ndarray, box: TrackedBox) -> np.ndarray:
            height, width = frame.shape[:2]
            mask = blur.person_mask(box.face_cx, box.face_cy, box.face_size, width, height)
            return torch_blur.blur_background_bgr(frame, mask, options.device)

        return lambda: on_gpu

    def on_cpu() -> BlurFunction:
        background_blur = blur.BackgroundBlur()
        return lambda frame, box: background_blur(frame, box.face_cx, box.face_cy, box.face_size)

    return on_cpu


def _progress_step(total: int) -> int:
    # About a hundred reports a stage: often enough for a live bar, rare enough to cost nothing.
    return max(1, total // 100) if total > 0 else 10


@dataclass
class _Run:
    video_path: Path
    out_dir: Path
    options: PrepareOptions
    report: ProgressCallback
    is_cancelled: CancelCheck
    detector: FaceDetector | None
    timings: dict[str, float] = field(default_factory=dict)

    def execute(self) -> PreparedAvatar:
        started = time.perf_counter()
        self.report("probe", 0, 1)
        info = probe(self.video_path, self.options.limits)
        if self.detector is None:
            self.detector = make_detector(self.options.face_detector, model_path=self.options.face_model,
                                          min_face_px=self.options.min_face_px, frame_height=info.height)
        self.report("probe", 1, 1)
        self.timings["probe"] = time.perf_counter() - started

        started = time.perf_counter()
        clock = DecodeClock()
        tracker, coords, landmarks, counts, lip_shapes = self._frames(info, clock)
        self.timings["frames"] = time.perf_counter() - started
        fps = playback_fps(info.fps, info.frame_count, len(coords), clock.last_ms)
        check_decoded_duration(len(coords), fps, self.options.limits)  # the duration its clock gives

        started = time.perf_counter()
        self.report("finalize", 0, 1)
        has_face = tracker.face_mask()
        verdict = verdicts.judge(
            has_face, list(tracker.faces.values()), counts, min_face_ratio=self.options.min_face_ratio,
            min_face_px=self.options.min_face_px, max_multiple_faces_ratio=self.options.max_multiple_faces_ratio,
        )
        if verdict is not None:
            raise self._small_face_instead(info, verdict) if verdict.code == "no_face" else verdict
        with open(self.out_dir / "coords.pkl", "wb") as handle:
            pickle.dump(coords, handle)
        has_landmarks = not np.isnan(landmarks).all()
        if has_landmarks:
            np.save(self.out_dir / "landmarks.npy", landmarks)
        self._write_preview(len(coords))
        frame_count = len(coords)
        lip_facts, coverage = self._write_lips(lip_shapes, frame_count)
        video = VideoInfo(info.width, info.height, fps, frame_count, round(frame_count / fps, 3),
                          info.container, info.codec)
        face_ratio = float(has_face.mean())
        self.timings["finalize"] = time.perf_counter() - started
        manifest = {
            "format_version": MANIFEST_VERSION,
            "source": video.as_dict(),
            "fps": fps,
            "frame_count": frame_count,
            "crop_size": self.options.crop_size,
            "frame_format": self.options.frame_format,
            "apply_blur": self.options.apply_blur,
            "detector": self.detector.name,
            "detect_every": self.options.detect_every,
            "landmarks": LANDMARK_NAMES if has_landmarks else None,
            "lips": lip_facts,
            "mouth_coverage": coverage,
            "faces": {
                "detected_ratio": round(face_ratio, 4),
                "detection_attempts": counts.attempts,
                "detections": len(tracker.detected),
                "median_face_height_px": round(verdicts.median_face_height(list(tracker.faces.values())), 1),
                "multiple_faces_ratio": round(counts.multiple_faces_ratio, 4),
                "frames_without_face": frames_without_face(has_face),
            },
            "timings_s": {name: round(value, 3) for name, value in self.timings.items()},
            "coords": [list(box) for box in coords],
        }
        (self.out_dir / "avatar.json").write_text(json.dumps(manifest, indent=1))
        self.report("finalize", 1, 1)
        return PreparedAvatar(self.out_dir, video, frame_count, fps, self.options.crop_size,
                              face_ratio, self.detector.name, dict(self.timings), coverage)

    def _write_lips(self, lip_shapes: dict | None, frame_count: int) -> tuple[dict | None, dict]:
        """lips.npy, lip_features.npy and mouth_boxes.npy (lips.write_arrays); the manifest's facts
        about them and the coverage."""
        if lip_shapes is None:
            return None, mouth_bank.coverage(None)
        features = lips.write_arrays(self.out_dir, lip_shapes, frame_count)
        facts = lips.manifest_facts(len(lip_shapes))
        return facts, mouth_bank.coverage(features)

    # --- the pass over the frames --------------------------------------------------------------

    def _frames(self, info: VideoInfo, clock: DecodeClock) -> tuple[FaceTracker, list[tuple[int, int, int, int]],
                                                                   np.ndarray, verdicts.FaceCounts, dict | None]:
        options = self.options
        max_gap = max(options.detect_every, round(options.bridge_gap_s * info.fps))
        tracker = FaceTracker(info.fps, info.width, info.height, options.detect_every, max_gap,
                              head=GEOMETRIES[self.detector.head])
        allowance = (1.0 - options.min_face_ratio) * info.frame_count if info.frame_count > 0 else None
        self.report("frames", 0, info.frame_count)
        first_index, first_faces = self._find_first_face(info, allowance)
        tracker.seed(first_index, first_faces[0])

        full_every = max(options.detect_every, round(options.full_search_s * info.fps))
        last_expected = info.frame_count - 1  # searching there avoids holding a stale box at the end
        max_frames = decoded_frame_limit(info.width, info.height, info.fps, options.limits)
        step = _progress_step(info.frame_count)
        counts = verdicts.FaceCounts(attempts=first_index + 1)
        counts.count_full_search(first_faces[0], first_faces)
        coords: list[tuple[int, int, int, int]] = []
        landmarks: list[np.ndarray] = []
        waiting: deque[tuple[int, np.ndarray]] = deque()
        lost = False
        last_report = time.monotonic()
        frame_pool = FramePool()
        landmarkers = lips.ThreadLandmarkers(lips.model_path()) if options.lip_shapes and lips.available() else None
        writers = FrameWriterPool(
            self.out_dir, crop_size=options.crop_size, frame_format=options.frame_format,
            jpeg_quality=options.jpeg_quality, blur_factory=_blur_factory(options), frame_pool=frame_pool,
            threads=options.writer_threads, max_bytes=options.max_output_bytes, landmarkers=landmarkers,
        )

        def release(through: int) -> None:
            while waiting and waiting[0][0] <= through:
                index, frame = waiting.popleft()
                box = tracker.box(index)
                coords.append(box.crop)
                landmarks.append(box.landmarks)
                writers.submit(index, frame, box)

        try:
            for index, frame in iter_frames(self.video_path, frame_pool, clock):
                if self.is_cancelled():
                    raise PipelineCancelled()
                if index + 1 > max_frames:
                    check_decoded_budget(index + 1, info.width, info.height, info.fps, options.limits)
                candidates, full = None, False
                if index > first_index:
                    near = tracker.last_face  # None once the track is stale
                    full = lost or near is None or index % full_every == 0
                    if full or index % options.detect_every == 0 or index == last_expected:
                        counts.attempts += 1
                        candidates = self.detector.detect(frame, None if full else near)
                        if not candidates and not full:
                            # Lost near where it was: look at the whole frame before giving up.
                            counts.attempts += 1
                            full = True
                            candidates = self.detector.detect(frame)
                        elif not candidates and near is not None:
                            # The whole frame shows no face, but it was here a moment ago: a near
                            # search sees it larger and, with YuNet, tries it turned (a head tilted
                            # past what a whole-frame search finds).
                            counts.attempts += 1
                            full = False
                            candidates = self.detector.detect(frame, near)
                chosen = tracker.add(index, candidates, full)
                if candidates is not None:
                    lost = chosen is None  # search every frame until the face is back
                if full and chosen is not None:
                    # Only a search of the whole frame can see a second face.
                    counts.count_full_search(chosen, candidates)
                waiting.append((index, frame))
                release(tracker.final_through())
                now = time.monotonic()
                if (index + 1) % step == 0 or now - last_report >= 0.25:
                    # Every ~1% of the frames, and at least four times a second.
                    last_report = now
                    self.report("frames", index + 1, max(info.frame_count, index + 1))
                    missing = tracker.frames_without_face_so_far()
                    if allowance is not None and missing > allowance:
                        seen = tracker.frames_seen
                        raise self._small_face_instead(
                            info, verdicts.no_face(seen - missing, seen, options.min_face_ratio))
            check_decoded_duration(tracker.frames_seen, info.fps, options.limits)
            tracker.finish()
            release(tracker.final_through())
            writers.close()
        except FrameWriteError as exc:
            writers.abort()
            raise PipelineError("write_failed", f"The prepared files could not be written: {exc}") from exc
        except BaseException:
            writers.abort()
            raise
        self.report("frames", tracker.frames_seen, tracker.frames_seen)
        points = np.array(landmarks, dtype=np.float32).reshape(len(landmarks), LANDMARK_COUNT, 2)
        return tracker, coords, points, counts, (writers.lip_shapes if landmarkers is not None else None)

    def _find_first_face(self, info: VideoInfo, allowance: float | None) -> tuple[int, list[FaceBox]]:
        """Search frame by frame for the first face, before the main pass starts: the frames before
        it need its box, and a video that shows none within the allowance stops here."""
        looked_at = 0  # also right for a video that decodes no frame at all
        for index, frame in iter_frames(self.video_path):
            if self.is_cancelled():
                raise PipelineCancelled()
            faces = self.detector.detect(frame)
            if faces:
                return index, faces
            looked_at = index + 1
            if allowance is not None and looked_at > allowance:
                break
        raise self._small_face_instead(info, verdicts.no_face(0, looked_at, self.options.min_face_ratio))

    # --- the verdict ---------------------------------------------------------------------------

    def _small_face_instead(self, info: VideoInfo, no_face_error: PipelineError) -> PipelineError:
        """A run that found too few faces looks again at a few frames, at full detail: a face too
        small for its searches is named as such."""
        heights = _sampled_face_heights(self.video_path, info)
        return verdicts.small_face_instead(no_face_error, heights, _SMALL_FACE_SAMPLES, self.options.min_face_px)

    def _write_preview(self, frame_count: int) -> None:
        ext = ".png" if self.options.frame_format == "png" else ".jpg"
        middle = cv2.imread(str(self.out_dir / "full_imgs" / f"{frame_count // 2:08d}{ext}"))
        scale = min(1.0, 640 / middle.shape[1])
        preview = cv2.resize(middle, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        write_image(self.out_dir / "preview.jpg", preview, [cv2.IMWRITE_JPEG_QUALITY, 85])


# The five facial points of landmarks.npy, in order (image left and right, as the frame shows them).
LANDMARK_NAMES = ["eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right"]
_SMALL_FACE_SAMPLES = 5


def _sampled_face_heights(video_path: Path, info: VideoInfo, samples: int = _SMALL_FACE_SAMPLES) -> list[float]:
    """The height (pixels) of the surest face in each of `samples` frames spread over the video,
    searched at up to 1920 pixels wide (faces down to ~20 pixels tall), for those that show one."""
    fine = YuNetFaceDetector(fine_long_side=1920)
    capture = open_capture(video_path)
    heights = []
    try:
        total = max(1, info.frame_count)
        for position in np.linspace(0, total - 1, samples).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(position))
            ok, frame = capture.read()
            faces = fine.detect(frame) if ok else []
            if faces:
                heights.append(faces[0].h)
    finally:
        capture.release()
    return heights
